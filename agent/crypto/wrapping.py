"""The master key and keyset wrapping: a project's keyset is kept only encrypted (S5).

A wrapped keyset is Tink's ``google.crypto.tink.EncryptedKeyset``: the serialized keyset
sealed with AES-256-GCM under the master key (12-byte random nonce || ciphertext || 16-byte
tag, which is what a Tink ``AesGcmKey`` with RAW output prefix produces), with the project's
name bound in as associated data so one project's wrapped keyset cannot stand in for
another's. Stock Tink unwraps it given the master key
(``tink.proto_keyset_format.parse_encrypted``). Pure: randomness injected, no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from secrets import token_bytes

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent.crypto import protowire as pw
from agent.crypto.keyset import TAG_SIZE, Keyset, keyset_info, parse_keyset, serialize_keyset
from agent.errors import KeyStoreUnavailable

MASTER_KEY_SIZE = 32
NONCE_SIZE = 12
_KEY_ID_LABEL = b"vokter-master-key-id"


@dataclass(frozen=True)
class MasterKey:
    """The AES-256 key that wraps every project's keyset. It never encrypts data itself."""

    material: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.material) != MASTER_KEY_SIZE:
            raise ValueError("the master key is 32 bytes")

    @property
    def key_id(self) -> str:
        """Names the key in messages and status without revealing it: a keyed hash, so it
        says nothing about the material."""
        return hmac.new(self.material, _KEY_ID_LABEL, hashlib.sha256).digest()[:8].hex()

    @classmethod
    def generate(cls, random: Callable[[int], bytes] = token_bytes) -> MasterKey:
        return cls(material=random(MASTER_KEY_SIZE))

    def __str__(self) -> str:
        return f"MasterKey(key_id={self.key_id})"

    def __repr__(self) -> str:
        return str(self)


def keyset_associated_data(project_id: str) -> bytes:
    """Binds a wrapped keyset to its project."""
    return b"vokter-keyset-v1:" + project_id.encode("ascii")


def file_associated_data(project_id: str) -> bytes:
    """Binds an encrypted file to its project: the HKDF info of Tink's streaming AEAD."""
    return b"vokter-file-v1:" + project_id.encode("ascii")


def wrap_keyset(keyset: Keyset, master: MasterKey, associated_data: bytes, *,
                random: Callable[[int], bytes] = token_bytes) -> bytes:
    """The keyset sealed under the master key, as Tink's ``EncryptedKeyset`` protobuf."""
    nonce = random(NONCE_SIZE)
    sealed = nonce + AESGCM(master.material).encrypt(nonce, serialize_keyset(keyset),
                                                     associated_data)
    return pw.message([pw.bytes_field(2, sealed), pw.bytes_field(3, keyset_info(keyset))])


def unwrap_keyset(wrapped: bytes, master: MasterKey, associated_data: bytes) -> Keyset:
    """The keyset inside ``wrapped``; refuses clearly when the master key is not the one it was
    wrapped under, the bytes are damaged, or they belong to another project."""
    refusal = KeyStoreUnavailable(
        f"the wrapped keyset does not unwrap under master key {master.key_id}: "
        "it was wrapped under another master key, belongs to another project, or is damaged",
        rule="S5", hint="use the master key the keysets were wrapped with (key store backup)")
    try:
        sealed = pw.last_bytes(pw.parse_fields(wrapped), 2)
    except pw.WireError:
        raise refusal from None
    if len(sealed) < NONCE_SIZE + TAG_SIZE:
        raise refusal
    try:
        plain = AESGCM(master.material).decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:],
                                                associated_data)
    except InvalidTag:
        raise refusal from None
    return parse_keyset(plain)
