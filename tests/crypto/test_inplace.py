"""Encryption in place (S3) on a real file system: the happy path, every refusal leaving
everything as it was, and recovery from each state a crash can leave, built step by step
with the module's own pieces (the SIGKILL test, tests/crypto/test_crash.py, kills the whole
thing at random instead)."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from agent.crypto import inplace
from agent.crypto.inplace import encrypt_in_place, recover
from agent.crypto.journal import JournalEntry, journal_dir, write_entry
from agent.crypto.keyset import Keyset, new_keyset
from agent.crypto.stream_io import encrypt_stream
from agent.crypto.wrapping import file_associated_data
from agent.errors import (
    AlreadyExists,
    InvalidRequest,
    KeyDestroyed,
    KeyStoreUnavailable,
    Refused,
)
from tests.support.files import decrypt_file

PROJECT = "p4711"
NAME = "cohort.csv"


class Zone:
    def __init__(self, base: Path) -> None:
        self.root = base / "zones" / PROJECT / "data"
        self.folder = self.root / "sub"
        self.folder.mkdir(parents=True)
        self.journal = journal_dir(base / "state")
        self.keyset = new_keyset()
        self.plain = self.folder / NAME
        self.cipher = self.folder / (NAME + ".tink")

    def write(self, data: bytes, name: str = NAME) -> Path:
        path = self.folder / name
        path.write_bytes(data)
        return path

    def encrypt(self, name: str = NAME, folder: str = "sub") -> inplace.InPlaceResult:
        fd = os.open(self.root / folder / name, os.O_RDONLY)
        try:
            return encrypt_in_place(journal=self.journal, project=PROJECT, zone="data",
                                    zone_root=str(self.root), folder=folder, name=name,
                                    source_fd=fd, key=self.keyset.primary)
        finally:
            os.close(fd)

    def keyset_for(self, project: str) -> Keyset:
        assert project == PROJECT
        return self.keyset

    def decrypted(self, path: Path | None = None) -> bytes:
        out = self.folder.parent / "check.out"
        decrypt_file(path or self.cipher, out, self.keyset, PROJECT)
        data = out.read_bytes()
        out.unlink()
        return data

    def leftovers(self) -> list[str]:
        partial = [p.name for p in self.folder.iterdir() if inplace.PARTIAL in p.name]
        return partial + [p.name for p in self.journal.iterdir()]


@pytest.fixture
def zone(tmp_path: Path) -> Zone:
    return Zone(tmp_path)


def test_s3_encrypting_in_place_leaves_only_a_ciphertext_that_decrypts_to_the_file(
        zone: Zone) -> None:
    data = os.urandom(300_000)
    zone.write(data)
    os.chown(zone.plain, 4321, 4322)
    zone.plain.chmod(0o640)
    result = zone.encrypt()
    assert result.target_name == NAME + ".tink"
    assert result.plaintext_bytes == len(data)
    assert not zone.plain.exists()
    info = zone.cipher.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (4321, 4322, 0o640)
    assert info.st_size == result.ciphertext_bytes
    assert hashlib.sha256(zone.decrypted()).digest() == hashlib.sha256(data).digest()
    assert zone.leftovers() == []


def _acl_of(path: Path) -> list[str]:
    listed = subprocess.run(["getfacl", "--omit-header", "--numeric", str(path)],
                            capture_output=True, text=True, check=True).stdout
    return [line for line in listed.splitlines() if line]


def test_s3_the_ciphertext_gets_the_plaintexts_acl_not_the_folders_default(zone: Zone) -> None:
    zone.write(b"id;value\n1;2\n")
    subprocess.run(["setfacl", "-d", "-m", "u:4400:rw", str(zone.folder)], check=True)
    subprocess.run(["setfacl", "-m", "u:4321:r", str(zone.plain)], check=True)
    before = _acl_of(zone.plain)
    zone.encrypt()
    assert _acl_of(zone.cipher) == before
    assert not any("4400" in line for line in _acl_of(zone.cipher))


def test_s3_the_ciphertext_is_the_daemons_alone_until_it_is_complete(zone: Zone) -> None:
    """Nobody the folder admits can write into the ciphertext between the daemon's write and
    the plaintext's removal: the temporary file is root's, 0600, with an empty ACL mask."""
    zone.write(os.urandom(3 * 65536))
    subprocess.run(["setfacl", "-d", "-m", "u:4400:rw", str(zone.folder)], check=True)
    os.chown(zone.plain, 4321, 4322)
    seen: list[os.stat_result] = []

    def look(_done: int) -> None:
        seen.extend(p.stat() for p in zone.folder.iterdir() if inplace.PARTIAL in p.name)

    fd = os.open(zone.plain, os.O_RDONLY)
    try:
        encrypt_in_place(journal=zone.journal, project=PROJECT, zone="data",
                         zone_root=str(zone.root), folder="sub", name=NAME, source_fd=fd,
                         key=zone.keyset.primary, progress=look)
    finally:
        os.close(fd)
    assert seen
    assert all((s.st_uid, stat.S_IMODE(s.st_mode) & 0o077) == (0, 0) for s in seen)
    assert zone.cipher.stat().st_uid == 4321


def test_s3_a_plaintext_written_to_after_the_ciphertext_was_placed_is_kept(
        zone: Zone, monkeypatch: pytest.MonkeyPatch) -> None:
    zone.write(b"first version\n")
    placed = inplace.rename_noreplace

    def place_then_edit(folder_fd: int, source: str, target: str) -> None:
        placed(folder_fd, source, target)
        with zone.plain.open("ab") as file:  # someone still writing to the plaintext
            file.write(b"a line added meanwhile\n")

    monkeypatch.setattr(inplace, "rename_noreplace", place_then_edit)
    with pytest.raises(Refused, match="changed while it was being encrypted"):
        zone.encrypt()
    assert zone.plain.read_bytes() == b"first version\na line added meanwhile\n"
    assert not zone.cipher.exists()
    assert zone.leftovers() == []


def test_s3_an_empty_file_encrypts_too(zone: Zone) -> None:
    zone.write(b"")
    zone.encrypt()
    assert zone.decrypted() == b"" and not zone.plain.exists()


def test_s3_a_name_ending_in_tink_is_refused_as_encrypted_already(zone: Zone) -> None:
    zone.write(b"x", NAME + ".tink")
    with pytest.raises(InvalidRequest, match="encrypted already"):
        zone.encrypt(NAME + ".tink")
    assert zone.cipher.read_bytes() == b"x" and zone.leftovers() == []


def test_s3_an_existing_target_is_never_replaced(zone: Zone) -> None:
    zone.write(b"plain")
    zone.cipher.write_bytes(b"someone's")
    with pytest.raises(AlreadyExists, match="exists already"):
        zone.encrypt()
    assert zone.plain.read_bytes() == b"plain" and zone.cipher.read_bytes() == b"someone's"
    assert zone.leftovers() == []


def test_s3_a_hard_linked_file_is_refused_since_its_other_name_keeps_the_plaintext(
        zone: Zone) -> None:
    zone.write(b"plain")
    os.link(zone.plain, zone.folder / "other")
    with pytest.raises(InvalidRequest, match="hard links"):
        zone.encrypt()
    assert zone.plain.read_bytes() == b"plain" and not zone.cipher.exists()


def test_s3_a_file_replaced_after_it_was_opened_is_refused(zone: Zone) -> None:
    zone.write(b"first")
    fd = os.open(zone.plain, os.O_RDONLY)
    try:
        zone.plain.unlink()
        zone.write(b"second")
        with pytest.raises(InvalidRequest, match="no longer the file"):
            encrypt_in_place(journal=zone.journal, project=PROJECT, zone="data",
                             zone_root=str(zone.root), folder="sub", name=NAME, source_fd=fd,
                             key=zone.keyset.primary)
    finally:
        os.close(fd)
    assert zone.plain.read_bytes() == b"second" and not zone.cipher.exists()


def test_s3_a_symlinked_folder_in_a_zone_is_never_followed(zone: Zone, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / NAME).write_bytes(b"elsewhere")
    (zone.root / "link").symlink_to(outside)
    fd = os.open(outside / NAME, os.O_RDONLY)
    try:
        with pytest.raises(InvalidRequest, match="never follow links"):
            encrypt_in_place(journal=zone.journal, project=PROJECT, zone="data",
                             zone_root=str(zone.root), folder="link", name=NAME, source_fd=fd,
                             key=zone.keyset.primary)
    finally:
        os.close(fd)
    assert os.listdir(outside) == [NAME] and zone.leftovers() == []


# --- recovery: each state a crash can leave ---------------------------------------------------


def _journalled(zone: Zone, *, with_temp: bool, cipher: str | None) -> JournalEntry:
    """The disk as the steps leave it: an entry, maybe the temporary ciphertext (complete or
    cut short), maybe renamed into place. ``cipher``: None, "partial", "complete", "placed"."""
    info = zone.plain.stat()
    entry = JournalEntry(entry_id="00aa11bb22cc33dd", project=PROJECT, zone="data",
                         zone_root=str(zone.root), folder="sub", name=NAME,
                         temp_name=f".{NAME}{inplace.PARTIAL}00aa11bb22cc33dd",
                         target_name=NAME + ".tink", dev=info.st_dev, ino=info.st_ino,
                         size=info.st_size, mtime_ns=info.st_mtime_ns)
    write_entry(zone.journal, entry)
    if not with_temp:
        return entry
    temp = zone.folder / entry.temp_name
    src = os.open(zone.plain, os.O_RDONLY)
    dst = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        made = os.fstat(dst)
        entry = replace(entry, cipher_dev=made.st_dev, cipher_ino=made.st_ino)
        write_entry(zone.journal, entry)
        if cipher is not None:
            encrypt_stream(src, dst, zone.keyset.primary, file_associated_data(PROJECT))
            if cipher == "partial":
                os.ftruncate(dst, os.fstat(dst).st_size // 2)
    finally:
        os.close(src)
        os.close(dst)
    if cipher == "placed":
        temp.rename(zone.cipher)
    return entry


def test_s3_recovery_after_a_crash_before_the_ciphertext_was_started_keeps_the_plaintext(
        zone: Zone) -> None:
    zone.write(b"plain")
    _journalled(zone, with_temp=False, cipher=None)
    [done] = recover(zone.journal, zone.keyset_for)
    assert done["outcome"] == "rolled back"
    assert done["path"] == str(zone.plain)  # as file.encrypted names it
    assert zone.plain.read_bytes() == b"plain" and zone.leftovers() == []


def test_s3_recovery_removes_a_half_written_temporary_file_and_keeps_the_plaintext(
        zone: Zone) -> None:
    zone.write(os.urandom(200_000))
    _journalled(zone, with_temp=True, cipher="partial")
    recover(zone.journal, zone.keyset_for)
    assert zone.plain.exists() and not zone.cipher.exists() and zone.leftovers() == []


def test_s3_recovery_finishes_the_job_when_the_whole_ciphertext_was_placed(zone: Zone) -> None:
    data = os.urandom(200_000)
    zone.write(data)
    _journalled(zone, with_temp=True, cipher="placed")
    [done] = recover(zone.journal, zone.keyset_for)
    assert done["outcome"] == "finished"
    assert not zone.plain.exists() and zone.decrypted() == data and zone.leftovers() == []


def test_s3_recovery_keeps_the_plaintext_when_the_placed_ciphertext_does_not_authenticate(
        zone: Zone) -> None:
    data = os.urandom(200_000)
    zone.write(data)
    _journalled(zone, with_temp=True, cipher="placed")
    with zone.cipher.open("r+b") as damaged:
        damaged.seek(100_000)
        byte = damaged.read(1)
        damaged.seek(100_000)
        damaged.write(bytes([byte[0] ^ 1]))
    [done] = recover(zone.journal, zone.keyset_for)
    assert done["outcome"] == "rolled back"
    assert zone.plain.read_bytes() == data and not zone.cipher.exists()


def test_s3_recovery_never_touches_a_target_it_did_not_write(zone: Zone) -> None:
    zone.write(b"plain")
    _journalled(zone, with_temp=True, cipher="complete")
    zone.cipher.write_bytes(b"someone else's file")
    recover(zone.journal, zone.keyset_for)
    assert zone.plain.read_bytes() == b"plain"
    assert zone.cipher.read_bytes() == b"someone else's file" and zone.leftovers() == []


def test_s3_recovery_keeps_the_ciphertext_when_it_is_the_only_copy(zone: Zone) -> None:
    data = os.urandom(1000)
    zone.write(data)
    _journalled(zone, with_temp=True, cipher="placed")
    zone.plain.unlink()
    [done] = recover(zone.journal, zone.keyset_for)
    assert done["outcome"] == "complete" and zone.decrypted() == data


def test_s3_recovery_keeps_the_plaintext_when_the_key_was_destroyed(zone: Zone) -> None:
    zone.write(b"plain")
    _journalled(zone, with_temp=True, cipher="placed")

    def destroyed(_project: str) -> Keyset:
        raise KeyDestroyed("the key was destroyed")

    recover(zone.journal, destroyed)
    assert zone.plain.read_bytes() == b"plain" and not zone.cipher.exists()
    assert zone.leftovers() == []


def test_s5_recovery_leaves_its_entry_for_the_next_start_when_the_key_store_fails(
        zone: Zone) -> None:
    zone.write(b"plain")
    _journalled(zone, with_temp=True, cipher="placed")

    def unavailable(_project: str) -> Keyset:
        raise KeyStoreUnavailable("the key store is damaged")

    [done] = recover(zone.journal, unavailable)
    assert done["outcome"] == "kept for the next start"
    assert zone.plain.exists() and zone.cipher.exists()
    recover(zone.journal, zone.keyset_for)
    assert not zone.plain.exists() and zone.leftovers() == []


def test_s3_recovery_does_not_follow_a_folder_swapped_for_a_symlink(
        zone: Zone, tmp_path: Path) -> None:
    zone.write(b"plain")
    entry = _journalled(zone, with_temp=True, cipher="partial")
    elsewhere = tmp_path / "elsewhere"
    zone.folder.rename(elsewhere)
    zone.folder.symlink_to(elsewhere)
    [done] = recover(zone.journal, zone.keyset_for)
    assert done["outcome"] == "folder gone"
    assert sorted(os.listdir(elsewhere)) == sorted([NAME, entry.temp_name])
