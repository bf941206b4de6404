"""The key store over a real database, SQLite and PostgreSQL alike (S3, S5): keysets stored only
wrapped, crypto-shredding with a tombstone, master-key rotation and its crash recovery, and the
start-up checks that refuse a master key that does not match."""

from __future__ import annotations

import base64
import os
import threading
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from sqlmodel import col, select

from agent.crypto.keyfiles import write_new
from agent.crypto.keyset import serialize_keyset
from agent.crypto.keystore import KeyStore, open_key_store
from agent.crypto.master import (
    CREDENTIAL_NAME,
    MASTER_KEY_FILE,
    NEXT_KEY_FILE,
    encode_master_key,
    read_master_key_file,
    write_next_master_key,
)
from agent.crypto.stream_io import encrypt_stream
from agent.crypto.wrapping import (
    MasterKey,
    file_associated_data,
    keyset_associated_data,
    unwrap_keyset,
    wrap_keyset,
)
from agent.errors import KeyDestroyed, KeyStoreUnavailable, NotFound, Refused
from agent.services import Services
from agent.store.tables import Project, ProjectKeyset
from tests.support.files import decrypt_file

NO_ENV: dict[str, str] = {}


def add_project(services: Services, project_id: str, *, with_keyset: bool = True) -> None:
    now = services.clock.now()
    with services.store.write() as session:
        session.add(Project(
            id=project_id, title="t", leader="alice", leader_uid=1001,
            end_date=date(2030, 1, 1), data_root=f"/z/{project_id}/data",
            key_root=f"/z/{project_id}/key", export_root=f"/z/{project_id}/export",
            quarantine_root=f"/z/{project_id}/quarantine", created_at=now, created_by="root"))
        session.flush()
        if with_keyset:
            services.key_store.create(session, project_id, now)


def rows(services: Services) -> dict[str, ProjectKeyset]:
    with services.store.read() as session:
        found = session.exec(select(ProjectKeyset).order_by(col(ProjectKeyset.project_id)))
        return {row.project_id: row for row in found.all()}


def reopen(services: Services) -> KeyStore:
    return open_key_store(services.config, services.store, clock=services.clock, environ=NO_ENV)


def master_path(services: Services) -> Path:
    return services.config.key_store / MASTER_KEY_FILE


def test_s3_each_project_gets_its_own_keyset_stored_only_wrapped(services: Services) -> None:
    add_project(services, "p1")
    add_project(services, "p2")
    one, two = services.key_store.keyset("p1"), services.key_store.keyset("p2")
    assert one.primary.key_value != two.primary.key_value
    stored = rows(services)
    assert set(stored) == {"p1", "p2"}
    for project, keyset in (("p1", one), ("p2", two)):
        wrapped = stored[project].wrapped or b""
        assert keyset.primary.key_value not in wrapped
        assert stored[project].master_key_id == services.key_store.master_key_id
    assert services.key_store.keyset("p1") == one  # the same keyset every time


def test_s3_a_project_made_before_keysets_gets_one_on_first_use(services: Services) -> None:
    add_project(services, "p1", with_keyset=False)
    assert rows(services) == {}
    first = services.key_store.keyset("p1")
    assert services.key_store.keyset("p1") == first
    assert list(rows(services)) == ["p1"]
    with pytest.raises(NotFound, match="no project p9"):
        services.key_store.keyset("p9")


def test_s3_shred_key_leaves_a_tombstone_and_every_later_use_says_destroyed(
    services: Services,
) -> None:
    add_project(services, "p1")
    add_project(services, "p2")
    services.key_store.keyset("p1")
    with services.store.write() as session:
        result = services.key_store.shred(session, "p1", services.clock.now(), "root")
    assert result["had_keyset"] is True and result["destroyed_by"] == "root"
    assert services.key_store.purge()["purged"] is True
    tombstone = rows(services)["p1"]
    assert tombstone.wrapped is None and tombstone.destroyed_by == "root"
    assert tombstone.destroyed_at == services.clock.now()
    with pytest.raises(KeyDestroyed) as caught:
        services.key_store.keyset("p1")
    assert caught.value.rule == "S3"
    assert caught.value.message == (
        "the key of project p1 was destroyed on 2026-11-23 by root (crypto-shredded); files "
        "encrypted under it cannot be decrypted by anyone")
    services.key_store.keyset("p2")  # the other project keeps its key
    with pytest.raises(Refused, match="already destroyed on 2026-11-23 by root"), \
            services.store.write() as session:
        services.key_store.shred(session, "p1", services.clock.now(), "root")


def test_s3_shredding_a_never_used_keyset_stops_one_being_made_later(
    services: Services,
) -> None:
    add_project(services, "p1", with_keyset=False)
    with services.store.write() as session:
        assert services.key_store.shred(session, "p1", services.clock.now(),
                                        "root")["had_keyset"] is False
    with pytest.raises(KeyDestroyed):
        services.key_store.keyset("p1")
    assert rows(services)["p1"].wrapped is None


def test_s5_rotation_rewraps_every_keyset_and_the_old_master_opens_nothing(
    services: Services,
) -> None:
    for project in ("p1", "p2", "p3"):
        add_project(services, project)
    with services.store.write() as session:
        services.key_store.shred(session, "p3", services.clock.now(), "root")
    before = {p: serialize_keyset(services.key_store.keyset(p)) for p in ("p1", "p2")}
    old = read_master_key_file(master_path(services))
    result = services.key_store.rotate_master(services.clock.now())
    assert result["rewrapped"] == 2 and result["old_master_key_id"] == old.key_id
    new = read_master_key_file(master_path(services))
    assert new.key_id == result["master_key_id"] == services.key_store.master_key_id
    assert not (services.config.key_store / NEXT_KEY_FILE).exists()
    after = {p: serialize_keyset(services.key_store.keyset(p)) for p in ("p1", "p2")}
    assert after == before  # the files' keys did not change, only their wrapping
    for project, row in rows(services).items():
        if row.wrapped is None:
            continue
        assert row.master_key_id == new.key_id
        with pytest.raises(KeyStoreUnavailable, match="does not unwrap"):
            unwrap_keyset(row.wrapped, old, keyset_associated_data(project))
    assert reopen(services).master_key_id == new.key_id


def test_s5_a_crash_after_the_rotation_committed_is_finished_at_the_next_start(
    services: Services,
) -> None:
    add_project(services, "p1")
    before = serialize_keyset(services.key_store.keyset("p1"))
    old = read_master_key_file(master_path(services))
    new = MasterKey.generate()
    # The rotation's steps up to the commit, then the "crash": no rename.
    write_next_master_key(services.config.key_store, new)
    with services.store.write() as session:
        row = session.get(ProjectKeyset, "p1")
        assert row is not None and row.wrapped is not None
        data = keyset_associated_data("p1")
        row.wrapped = wrap_keyset(unwrap_keyset(row.wrapped, old, data), new, data)
        row.master_key_id = new.key_id
        session.add(row)
    restarted = reopen(services)
    assert restarted.master_key_id == new.key_id
    assert read_master_key_file(master_path(services)).key_id == new.key_id
    assert not (services.config.key_store / NEXT_KEY_FILE).exists()
    assert serialize_keyset(restarted.keyset("p1")) == before


def test_s5_a_crash_before_the_rotation_committed_is_undone_at_the_next_start(
    services: Services,
) -> None:
    add_project(services, "p1")
    old_id = services.key_store.master_key_id
    write_next_master_key(services.config.key_store, MasterKey.generate())
    restarted = reopen(services)
    assert restarted.master_key_id == old_id
    assert not (services.config.key_store / NEXT_KEY_FILE).exists()
    restarted.keyset("p1")


def test_s5_start_refuses_a_master_key_that_does_not_match_the_keysets(
    services: Services,
) -> None:
    add_project(services, "p1")
    add_project(services, "p2")
    right = read_master_key_file(master_path(services))
    master_path(services).unlink()
    stranger = MasterKey.generate()
    write_new(master_path(services), encode_master_key(stranger))
    with pytest.raises(KeyStoreUnavailable) as caught:
        reopen(services)
    assert caught.value.message == (
        f"the master key in {master_path(services)} (id {stranger.key_id}) does not match "
        f"the 2 wrapped keysets in the database (id {right.key_id}): restore the key store "
        "from its backup")
    assert read_master_key_file(master_path(services)).key_id == stranger.key_id  # untouched


def test_s5_start_refuses_when_the_master_key_is_gone_but_keysets_exist(
    services: Services,
) -> None:
    add_project(services, "p1")
    master_path(services).unlink()
    with pytest.raises(KeyStoreUnavailable, match="missing, but the database holds wrapped"):
        reopen(services)
    assert not master_path(services).exists()  # never made afresh


def test_s5_rotation_is_refused_when_the_master_key_is_a_systemd_credential(
    services: Services, tmp_path: Path,
) -> None:
    add_project(services, "p1")
    credentials = tmp_path / "credentials"
    credentials.mkdir(mode=0o500)
    write_new(credentials / CREDENTIAL_NAME, master_path(services).read_bytes())
    from_credential = open_key_store(services.config, services.store,
                                     environ={"CREDENTIALS_DIRECTORY": str(credentials)})
    assert from_credential.source == "credential"
    assert from_credential.status()["keysets_live"] == 1
    with pytest.raises(Refused, match="rotate the credential instead"):
        from_credential.rotate_master(services.clock.now())
    assert not (services.config.key_store / NEXT_KEY_FILE).exists()


def test_s5_key_store_and_keysets_never_show_key_bytes(services: Services) -> None:
    add_project(services, "p1")
    keyset = services.key_store.keyset("p1")
    master = read_master_key_file(master_path(services))
    shown = repr(services.key_store) + str(services.key_store) + repr(keyset) + str(keyset)
    shown += repr(services) + str(services.key_store.status())
    for secret in (master.material, keyset.primary.key_value):
        assert secret.hex() not in shown
        assert base64.b64encode(secret).decode() not in shown


def test_s3_after_shredding_on_sqlite_the_wrapped_bytes_are_in_no_file(
    sqlite_services: Services,
) -> None:
    services = sqlite_services
    add_project(services, "p1")
    wrapped_versions: list[bytes] = []
    for _ in range(3):  # rotations leave older versions in the WAL and the pages
        wrapped_versions.append(rows(services)["p1"].wrapped or b"")
        services.key_store.rotate_master(services.clock.now())
    wrapped_versions.append(rows(services)["p1"].wrapped or b"")
    database = Path(services.store.engine.url.database or "")
    files = [database, database.with_name(database.name + "-wal")]
    assert any(wrapped_versions[-1] in path.read_bytes() for path in files if path.exists())
    with services.store.write() as session:
        services.key_store.shred(session, "p1", services.clock.now(), "root")
    assert services.key_store.purge()["purged"] is True
    files += [path for path in services.config.key_store.rglob("*") if path.is_file()]
    for path in files:
        if path.exists():
            content = path.read_bytes()
            for version in wrapped_versions:
                assert version not in content, f"{path} still holds the wrapped keyset"
                assert version[-32:] not in content, f"{path} still holds part of it"
    wal = files[1]
    assert not wal.exists() or os.path.getsize(wal) == 0  # checkpointed and truncated


def _encrypt(services: Services, project: str, plaintext: bytes, tmp: Path) -> Path:
    source, target = tmp / f"{project}.plain", tmp / f"{project}.tink"
    source.write_bytes(plaintext)
    keyset = services.key_store.keyset(project)
    with source.open("rb") as src, target.open("wb") as dst:
        encrypt_stream(src.fileno(), dst.fileno(), keyset.primary, file_associated_data(project))
    return target


def _decrypt(services: Services, project: str, ciphertext: Path) -> bytes:
    out = ciphertext.with_suffix(".out")
    decrypt_file(ciphertext, out, services.key_store.keyset(project), project)
    return out.read_bytes()


def test_s5_files_encrypted_before_a_rotation_decrypt_after_it_and_not_after_a_shred(
    services: Services, tmp_path: Path,
) -> None:
    add_project(services, "p1")
    plaintext = os.urandom(200_000)
    ciphertext = _encrypt(services, "p1", plaintext, tmp_path)
    services.key_store.rotate_master(services.clock.now())
    services.key_store.rotate_master(services.clock.now())
    assert _decrypt(services, "p1", ciphertext) == plaintext
    with services.store.write() as session:
        services.key_store.shred(session, "p1", services.clock.now(), "root")
    with pytest.raises(KeyDestroyed, match="was destroyed on 2026-11-23 by root"):
        _decrypt(services, "p1", ciphertext)


def test_s3_a_new_keyset_takes_the_policys_segment_size_and_an_old_one_keeps_its_own(
        services: Services) -> None:
    add_project(services, "p1")
    policy = services.policies.current()
    services.policies.replace(replace(policy, crypto=replace(policy.crypto, segment_size=4096)))
    add_project(services, "p2")
    assert services.key_store.keyset("p1").primary.segment_size == 65536
    assert services.key_store.keyset("p2").primary.segment_size == 4096


class _LateSwap:
    """Stands in for the key store's master-key lock: when the rotating thread comes to take
    the new key (its database commit is done), it lets a reader run first, for up to 2 s."""

    def __init__(self, rotating: threading.Thread | None = None) -> None:
        self._lock = threading.Lock()
        self.rotator = rotating
        self.entered = 0
        self.committed = threading.Event()
        self.reader_done = threading.Event()

    def __enter__(self) -> None:
        if threading.current_thread() is self.rotator:
            self.entered += 1
            if self.entered == 2:  # the first reads the old key, the second swaps it
                self.committed.set()
                self.reader_done.wait(timeout=2)
        self._lock.acquire()

    def __exit__(self, *_exc: object) -> None:
        self._lock.release()


def test_s5_a_keyset_asked_for_in_the_middle_of_a_rotation_is_still_given(
        services: Services) -> None:
    """Between the rotation's commit and this daemon taking the new key, a request sees a
    keyset wrapped under a key it does not hold yet: it waits for the rotation, not fails."""
    add_project(services, "p1")
    key_store = services.key_store
    expected = key_store.keyset("p1")
    swap = _LateSwap()
    key_store._lock = swap  # type: ignore[assignment]
    got: list[object] = []

    def read() -> None:
        swap.committed.wait(timeout=10)
        try:
            got.append(key_store.keyset("p1"))
        except Exception as error:
            got.append(error)
        swap.reader_done.set()

    reader = threading.Thread(target=read)
    reader.start()
    rotator = threading.Thread(target=key_store.rotate_master, args=(services.clock.now(),))
    swap.rotator = rotator
    rotator.start()
    rotator.join(timeout=20)
    reader.join(timeout=20)
    assert got == [expected]
