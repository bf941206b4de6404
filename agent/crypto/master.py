"""Reading the master key: from a systemd credential, or from the key store directory (S5).

The master key only wraps the projects' keysets, which live in the database. It therefore must
never sit beside them: it lives in ``<key_store>/master.key`` (base64 of 32 bytes and a newline,
mode 0400, in a folder only root may enter), or comes as the systemd credential
``vokter-master-key`` (``LoadCredential=``), which wins when present. A key is made only on a
first start, when no wrapped keyset exists yet; otherwise a missing or damaged key stops the
daemon, because a fresh key would leave every wrapped keyset, and so every encrypted file,
unreadable.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from agent.crypto.keyfiles import read_key_file, write_new
from agent.crypto.wrapping import MASTER_KEY_SIZE, MasterKey
from agent.durable import fsync_folder
from agent.errors import KeyStoreUnavailable

MASTER_KEY_FILE = "master.key"
#: The next master key during a rotation: written before the database names it, renamed over
#: ``master.key`` after; a start finds it only after a crash in between.
NEXT_KEY_FILE = "master.key.next"
CREDENTIAL_NAME = "vokter-master-key"

SOURCE_CREDENTIAL = "credential"
SOURCE_KEY_STORE = "key store"

_RESTORE = "restore the key store from its backup (see docs/keys.md)"


def encode_master_key(key: MasterKey) -> bytes:
    """The file form: base64 and a newline, so an operator can copy it as text."""
    return base64.b64encode(key.material) + b"\n"


def parse_master_key(data: bytes, where: Path, *, allow_raw: bool = False) -> MasterKey:
    """The base64 text of 32 bytes, or (``allow_raw``, for a credential) the 32 bytes
    themselves: base64 of 32 bytes is 44 characters, so the two cannot be confused. The
    message names the file and what was expected, never the bytes found."""
    if allow_raw and len(data) == MASTER_KEY_SIZE:
        return MasterKey(material=data)
    try:
        material = base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyStoreUnavailable(
            f"{where} does not hold a master key (expected base64 of 32 bytes and a newline)",
            rule="S5", hint=_RESTORE,
        ) from None
    if len(material) != MASTER_KEY_SIZE:
        raise KeyStoreUnavailable(
            f"{where} holds a key of {len(material)} bytes, not {MASTER_KEY_SIZE}",
            rule="S5", hint=_RESTORE,
        )
    return MasterKey(material=material)


def credential_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """The systemd credential, if the service was started with one (``LoadCredential=``)."""
    directory = (os.environ if environ is None else environ).get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    path = Path(directory) / CREDENTIAL_NAME
    return path if os.path.lexists(path) else None


def check_key_store_folder(key_store: Path) -> None:
    """The folder holding the master key: a real directory only its owner may enter."""
    try:
        info = os.lstat(key_store)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        raise KeyStoreUnavailable(f"the key store {key_store} is not a directory", rule="S5",
                                  hint="point key_store in the config at the key store folder")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise KeyStoreUnavailable(
            f"the key store {key_store} is open to others (mode {mode:o})", rule="S5",
            hint=f"chmod 700 {key_store}; if others could read the master key, rotate it",
        )


def read_master_key_file(path: Path, *, allow_raw: bool = False) -> MasterKey:
    data = read_key_file(
        path, error=KeyStoreUnavailable,
        hint=f"chmod 400 {path}; if others could read it, rotate the master key "
        "('vokter keys rotate-master')",
    )
    return parse_master_key(data, path, allow_raw=allow_raw)


def load_master_key(key_store: Path, *, may_create: bool,
                    environ: Mapping[str, str] | None = None) -> tuple[MasterKey, str]:
    """The master key and where it came from ("credential" or "key store"). ``may_create``
    (no wrapped keyset exists) allows making one in the key store; it never overwrites."""
    credential = credential_path(environ)
    if credential is not None:
        return read_master_key_file(credential, allow_raw=True), SOURCE_CREDENTIAL
    check_key_store_folder(key_store)
    path = key_store / MASTER_KEY_FILE
    if not os.path.lexists(path):
        if not may_create:
            raise KeyStoreUnavailable(
                f"the master key {path} is missing, but the database holds wrapped keysets",
                rule="S5",
                hint=f"{_RESTORE}; a new key would leave every encrypted file unreadable",
            )
        key_store.mkdir(mode=0o700, parents=True, exist_ok=True)
        check_key_store_folder(key_store)
        write_new(path, encode_master_key(MasterKey.generate()))
    return read_master_key_file(path), SOURCE_KEY_STORE


def write_next_master_key(key_store: Path, key: MasterKey) -> Path:
    """Durably write the next master key beside the current one (step one of a rotation)."""
    path = key_store / NEXT_KEY_FILE
    if not write_new(path, encode_master_key(key)):
        raise KeyStoreUnavailable(
            f"{path} already exists: another rotation is under way or was interrupted",
            hint="restart vokterd, which finishes or undoes an interrupted rotation",
        )
    return path


def promote_next_master_key(key_store: Path) -> None:
    """Make the next key the master key (the last step of a rotation, after the database
    commit): an atomic rename, made durable."""
    os.rename(key_store / NEXT_KEY_FILE, key_store / MASTER_KEY_FILE)
    fsync_folder(key_store)


def discard_next_master_key(key_store: Path) -> None:
    """Undo a rotation the database never committed to."""
    try:
        os.unlink(key_store / NEXT_KEY_FILE)
    except FileNotFoundError:
        return
    fsync_folder(key_store)
