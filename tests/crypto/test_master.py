"""Reading the master key (S5): the credential wins, the key-store file must be private, a key
is made only when no wrapped keyset exists, and nothing here ever prints key bytes."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from agent.crypto.keyfiles import write_new
from agent.crypto.master import (
    CREDENTIAL_NAME,
    MASTER_KEY_FILE,
    NEXT_KEY_FILE,
    SOURCE_CREDENTIAL,
    SOURCE_KEY_STORE,
    discard_next_master_key,
    encode_master_key,
    load_master_key,
    promote_next_master_key,
    write_next_master_key,
)
from agent.crypto.wrapping import MasterKey
from agent.errors import KeyStoreUnavailable

NO_ENV: dict[str, str] = {}


def key_store(tmp_path: Path) -> Path:
    folder = tmp_path / "keystore"
    folder.mkdir(mode=0o700)
    return folder


def assert_no_key_bytes(text: str, key: MasterKey) -> None:
    assert key.material.hex() not in text
    assert base64.b64encode(key.material).decode() not in text


def test_s5_first_start_makes_a_private_base64_master_key(tmp_path: Path) -> None:
    folder = key_store(tmp_path)
    key, source = load_master_key(folder, may_create=True, environ=NO_ENV)
    path = folder / MASTER_KEY_FILE
    assert source == SOURCE_KEY_STORE
    assert path.stat().st_mode & 0o777 == 0o400
    assert base64.b64decode(path.read_bytes().strip()) == key.material
    assert path.read_bytes().endswith(b"\n")
    again, _ = load_master_key(folder, may_create=True, environ=NO_ENV)
    assert again.material == key.material  # never replaced


def test_s5_a_missing_key_with_wrapped_keysets_is_refused_not_made(tmp_path: Path) -> None:
    folder = key_store(tmp_path)
    with pytest.raises(KeyStoreUnavailable, match="missing, but the database holds wrapped"):
        load_master_key(folder, may_create=False, environ=NO_ENV)
    assert not (folder / MASTER_KEY_FILE).exists()


@pytest.mark.parametrize(("content", "why"), [
    (b"not base64 at all!\n", "does not hold a master key"),
    (base64.b64encode(b"k" * 16) + b"\n", "16 bytes, not 32"),
    (b"", "0 bytes, not 32"),
    (os.urandom(32), "does not hold a master key"),  # raw bytes: only a credential may
])
def test_s5_a_damaged_master_key_is_refused_by_name(tmp_path: Path, content: bytes,
                                                     why: str) -> None:
    folder = key_store(tmp_path)
    write_new(folder / MASTER_KEY_FILE, content)
    with pytest.raises(KeyStoreUnavailable, match=why) as caught:
        load_master_key(folder, may_create=False, environ=NO_ENV)
    assert str(folder / MASTER_KEY_FILE) in caught.value.one_line()
    assert "backup" in caught.value.one_line()


def test_s5_a_master_key_others_may_read_is_refused(tmp_path: Path) -> None:
    folder = key_store(tmp_path)
    load_master_key(folder, may_create=True, environ=NO_ENV)
    (folder / MASTER_KEY_FILE).chmod(0o644)
    with pytest.raises(KeyStoreUnavailable, match=r"readable by others \(mode 644\)") as caught:
        load_master_key(folder, may_create=False, environ=NO_ENV)
    assert "chmod 400" in caught.value.one_line()


def test_s5_a_key_store_folder_others_may_enter_is_refused(tmp_path: Path) -> None:
    folder = key_store(tmp_path)
    load_master_key(folder, may_create=True, environ=NO_ENV)
    folder.chmod(0o755)
    with pytest.raises(KeyStoreUnavailable, match=r"open to others \(mode 755\)") as caught:
        load_master_key(folder, may_create=False, environ=NO_ENV)
    assert f"chmod 700 {folder}" in caught.value.one_line()


def test_s5_a_symlinked_master_key_is_refused(tmp_path: Path) -> None:
    folder = key_store(tmp_path)
    elsewhere = tmp_path / "elsewhere.key"
    write_new(elsewhere, encode_master_key(MasterKey.generate()))
    (folder / MASTER_KEY_FILE).symlink_to(elsewhere)
    with pytest.raises(KeyStoreUnavailable, match="symbolic link"):
        load_master_key(folder, may_create=False, environ=NO_ENV)


@pytest.mark.parametrize("raw", [True, False])
def test_s5_the_systemd_credential_wins_over_the_key_store(tmp_path: Path, raw: bool) -> None:
    folder = key_store(tmp_path)
    load_master_key(folder, may_create=True, environ=NO_ENV)
    credentials = tmp_path / "credentials"
    credentials.mkdir(mode=0o500)
    credential = MasterKey.generate()
    write_new(credentials / CREDENTIAL_NAME,
              credential.material if raw else encode_master_key(credential))
    key, source = load_master_key(folder, may_create=False,
                                  environ={"CREDENTIALS_DIRECTORY": str(credentials)})
    assert source == SOURCE_CREDENTIAL
    assert key.material == credential.material


def test_s5_next_key_is_written_once_then_promoted_or_discarded(tmp_path: Path) -> None:
    folder = key_store(tmp_path)
    first, _ = load_master_key(folder, may_create=True, environ=NO_ENV)
    second = MasterKey.generate()
    write_next_master_key(folder, second)
    with pytest.raises(KeyStoreUnavailable, match="already exists"):
        write_next_master_key(folder, MasterKey.generate())
    discard_next_master_key(folder)
    assert not (folder / NEXT_KEY_FILE).exists()
    write_next_master_key(folder, second)
    promote_next_master_key(folder)
    loaded, _ = load_master_key(folder, may_create=False, environ=NO_ENV)
    assert loaded.key_id == second.key_id != first.key_id
    assert (folder / MASTER_KEY_FILE).stat().st_mode & 0o777 == 0o400


def test_s5_master_key_never_shows_its_bytes(tmp_path: Path) -> None:
    folder = key_store(tmp_path)
    key, _ = load_master_key(folder, may_create=True, environ=NO_ENV)
    assert_no_key_bytes(repr(key) + str(key) + f"{key}", key)
    (folder / MASTER_KEY_FILE).write_bytes(b"garbage\n")
    with pytest.raises(KeyStoreUnavailable) as caught:
        load_master_key(folder, may_create=False, environ=NO_ENV)
    assert_no_key_bytes(caught.value.one_line() + repr(caught.value), key)
