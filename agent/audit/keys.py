"""The audit trail's two keys, kept in the key store, apart from the database and state dir.

- the MAC key (32 random bytes) seals every event: someone who can write the database but not
  read the key store cannot make an event that verifies;
- the Ed25519 signing key signs checkpoints and export manifests; its public half is what an
  auditor takes out of the enclave to verify exports with no access to it.

Both are made on the daemon's first start, written crash-safely (temporary file, fsync, rename,
fsync of the folder) and never overwritten: losing them would make the trail unverifiable, so
an existing but unreadable or malformed key stops the daemon instead of being replaced.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.crypto.keyfiles import read_key_file, write_new
from agent.errors import AuditUnavailable

AUDIT_DIR = "audit"
MAC_KEY_FILE = "mac.key"
SIGNING_KEY_FILE = "signing.key"
MAC_KEY_BYTES = 32


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """A short, stable name for a public key: the first 16 hex digits of SHA-256 of its raw
    32 bytes. Checkpoints and manifests name the key that signed them."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_public_pem(text: str | bytes) -> Ed25519PublicKey:
    """An auditor's copy of the public key; a clear error for anything else."""
    raw = text.encode("ascii", "replace") if isinstance(text, str) else text
    try:
        key = serialization.load_pem_public_key(raw)
    except (ValueError, TypeError):
        raise ValueError(
            "not a PEM public key (expected the output of 'vokter audit pubkey')"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key (expected 'vokter audit pubkey' output)")
    return key


def signature_valid(public_key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class AuditKeys:
    # Key material stays out of every repr: a logged Services or a traceback must not leak it.
    mac_key: bytes = field(repr=False)
    signing_key: Ed25519PrivateKey = field(repr=False)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.signing_key.public_key()

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_key)

    @property
    def public_pem(self) -> str:
        return public_pem(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self.signing_key.sign(message)


def _read_key_file(path: Path) -> bytes:
    return read_key_file(
        path, error=AuditUnavailable,
        hint=f"chmod 600 {path}; if others could read it, the trail's seal is in doubt",
    )


def key_store_dir(key_store: Path) -> Path:
    """The audit keys' folder, made root-only if missing; a folder others can enter is refused."""
    directory = key_store / AUDIT_DIR
    if not key_store.exists():
        key_store.parent.mkdir(parents=True, exist_ok=True)
        key_store.mkdir(mode=0o700, exist_ok=True)
    directory.mkdir(exist_ok=True, mode=0o700)
    for folder in (key_store, directory):
        mode = stat.S_IMODE(os.lstat(folder).st_mode)
        if mode & 0o077:
            raise AuditUnavailable(
                f"the key store {folder} is open to others (mode {mode:o})",
                hint=f"chmod 700 {folder}",
            )
    return directory


def load_or_create_audit_keys(key_store: Path, *, trail_started: bool = False) -> AuditKeys:
    """The audit keys; made on first start. ``trail_started`` (the trail already holds events)
    forbids making new ones: fresh keys would leave every existing event unverifiable, so a
    missing key means the key store must be restored, not replaced."""
    directory = key_store_dir(key_store)
    mac_path = directory / MAC_KEY_FILE
    signing_path = directory / SIGNING_KEY_FILE
    missing = [path for path in (mac_path, signing_path) if not path.exists()]
    if missing and trail_started:
        raise AuditUnavailable(
            f"the audit key {missing[0]} is missing, but the trail already holds events",
            hint="restore the key store from its backup; new keys would leave the existing "
            "trail unverifiable",
        )
    if not mac_path.exists():
        write_new(mac_path, os.urandom(MAC_KEY_BYTES).hex().encode() + b"\n")
    if not signing_path.exists():
        fresh = Ed25519PrivateKey.generate()
        write_new(
            signing_path,
            fresh.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
    try:
        mac_key = bytes.fromhex(_read_key_file(mac_path).decode("ascii").strip())
    except (ValueError, UnicodeDecodeError):
        raise AuditUnavailable(f"{mac_path} is not a hex key; restore it from backup") from None
    if len(mac_key) != MAC_KEY_BYTES:
        raise AuditUnavailable(f"{mac_path} holds a key of the wrong length; restore it")
    try:
        signing = serialization.load_pem_private_key(_read_key_file(signing_path), None)
    except (ValueError, TypeError):
        raise AuditUnavailable(f"{signing_path} is not a PEM private key; restore it") from None
    if not isinstance(signing, Ed25519PrivateKey):
        raise AuditUnavailable(f"{signing_path} is not an Ed25519 key; restore it")
    return AuditKeys(mac_key=mac_key, signing_key=signing)
