"""The key store end to end (S3, S5), with a real vokterd and the real CLI: the daemon refuses to
start on a missing, damaged, exposed or foreign master key; takes the key from a systemd
credential; finishes an interrupted rotation; shreds a project's key on root's confirmed word;
and no key byte ever reaches its log or the audit trail."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.crypto.keyfiles import write_new
from agent.crypto.master import (
    CREDENTIAL_NAME,
    MASTER_KEY_FILE,
    NEXT_KEY_FILE,
    encode_master_key,
    read_master_key_file,
    write_next_master_key,
)
from agent.crypto.wrapping import MasterKey, keyset_associated_data, unwrap_keyset, wrap_keyset
from tests.support.daemon import RunningDaemon
from tests.support.users import UserFactory


def make_project(daemon: RunningDaemon, unix_users: UserFactory, project: str = "p1") -> str:
    leader = unix_users.create("vkk")
    created = daemon.vokter("project", "create", project, "--title", "Cohort", "--leader",
                            leader.name, "--end-date", "2030-06-30")
    assert created.returncode == 0, created.stderr
    return leader.name


def wrapped_keysets(daemon: RunningDaemon) -> dict[str, tuple[str, bytes | None]]:
    with sqlite3.connect(f"file:{daemon.state_dir / 'vokter.db'}?mode=ro", uri=True) as db:
        return {p: (m, w) for p, m, w in
                db.execute("SELECT project_id, master_key_id, wrapped FROM project_keyset")}


def master_path(daemon: RunningDaemon) -> Path:
    return daemon.key_store / MASTER_KEY_FILE


def replace_master(daemon: RunningDaemon, content: bytes) -> None:
    master_path(daemon).unlink()
    write_new(master_path(daemon), content)


DAMAGES: dict[str, tuple[Callable[[RunningDaemon], None], str]] = {
    "deleted": (lambda d: master_path(d).unlink(),
                "is missing, but the database holds wrapped keysets"),
    "wrong length": (lambda d: replace_master(d, base64.b64encode(b"x" * 20) + b"\n"),
                     "holds a key of 20 bytes, not 32"),
    "not base64": (lambda d: replace_master(d, b"this is no key\n"),
                   "does not hold a master key"),
    "mode 0644": (lambda d: master_path(d).chmod(0o644), "is readable by others (mode 644)"),
    "folder 0755": (lambda d: d.key_store.chmod(0o755), "is open to others (mode 755)"),
    "another key": (lambda d: replace_master(d, encode_master_key(MasterKey.generate())),
                    "does not match the 1 wrapped keysets in the database"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_s5_vokterd_refuses_to_start_on_a_broken_key_store(
    daemon: RunningDaemon, unix_users: UserFactory, damage: str
) -> None:
    make_project(daemon, unix_users)
    assert daemon.stop() == 0
    before = wrapped_keysets(daemon)
    harm, expected = DAMAGES[damage]
    harm(daemon)
    with pytest.raises(RuntimeError, match="vokterd exited at start"):
        daemon.start()
    assert daemon.process is not None and daemon.process.returncode != 0
    log = daemon.log_path.read_text()
    assert expected in log
    assert str(daemon.key_store) in log
    assert wrapped_keysets(daemon) == before  # nothing re-wrapped, nothing made afresh
    if damage == "deleted":
        assert not master_path(daemon).exists()


def test_s5_vokterd_takes_the_master_key_from_a_systemd_credential(
    enclave_root: Path, unix_users: UserFactory
) -> None:
    credentials = enclave_root / "credentials"
    credentials.mkdir(mode=0o700)
    key = MasterKey.generate()
    write_new(credentials / CREDENTIAL_NAME, key.material)  # raw bytes, as systemd-creds may
    daemon = RunningDaemon(enclave_root, env={"CREDENTIALS_DIRECTORY": str(credentials)})
    daemon.start()
    try:
        make_project(daemon, unix_users)
        status = daemon.vokter("keys", "status", "--json")
        assert status.returncode == 0, status.stderr
        view = json.loads(status.stdout)
        assert (view["source"], view["master_key_id"]) == ("credential", key.key_id)
        assert view["keysets_live"] == 1
        rotate = daemon.vokter("keys", "rotate-master")
        assert rotate.returncode == 1
        assert "rotate the credential instead" in rotate.stderr
    finally:
        daemon.stop()
    assert not master_path(daemon).exists()  # the key store file is neither read nor made
    assert {m for m, _ in wrapped_keysets(daemon).values()} == {key.key_id}


def test_s5_a_rotation_interrupted_after_its_commit_is_finished_at_the_next_start(
    daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    make_project(daemon, unix_users)
    assert daemon.stop() == 0
    old = read_master_key_file(master_path(daemon))
    new = MasterKey.generate()
    # The rotation's steps up to the commit, then the "crash": the rename never happens.
    write_next_master_key(daemon.key_store, new)
    data = keyset_associated_data("p1")
    with sqlite3.connect(daemon.state_dir / "vokter.db") as db:
        (wrapped,) = db.execute("SELECT wrapped FROM project_keyset").fetchone()
        keyset = unwrap_keyset(wrapped, old, data)
        db.execute("UPDATE project_keyset SET wrapped = ?, master_key_id = ?",
                   (wrap_keyset(keyset, new, data), new.key_id))
    daemon.start()
    status = json.loads(daemon.vokter("keys", "status", "--json").stdout)
    assert status["master_key_id"] == new.key_id
    assert read_master_key_file(master_path(daemon)).key_id == new.key_id
    assert not (daemon.key_store / NEXT_KEY_FILE).exists()


def test_s3_shred_key_needs_root_and_confirmation_and_no_key_byte_is_ever_logged(
    daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    leader = make_project(daemon, unix_users)
    make_project(daemon, unix_users, "p2")
    first_master = read_master_key_file(master_path(daemon))
    secrets = [first_master.material]
    for project, (_, wrapped) in wrapped_keysets(daemon).items():
        assert wrapped is not None
        keyset = unwrap_keyset(wrapped, first_master, keyset_associated_data(project))
        secrets.append(keyset.primary.key_value)

    rotated = daemon.vokter("keys", "rotate-master")
    assert rotated.returncode == 0, rotated.stderr
    assert "2 keysets re-wrapped" in rotated.stdout
    secrets.append(read_master_key_file(master_path(daemon)).material)

    unconfirmed = daemon.vokter("project", "shred-key", "p1")  # no terminal, no --yes
    assert unconfirmed.returncode == 2 and "pass --yes" in unconfirmed.stderr
    by_leader = daemon.vokter("project", "shred-key", "p1", "--yes", user=leader)
    assert by_leader.returncode == 1 and by_leader.stderr.count("\n") == 1
    assert wrapped_keysets(daemon)["p1"][1] is not None

    shred = daemon.vokter("project", "shred-key", "p1", "--yes")
    assert shred.returncode == 0, shred.stderr
    assert "destroyed the key of p1" in shred.stdout
    assert wrapped_keysets(daemon)["p1"][1] is None
    again = daemon.vokter("project", "shred-key", "p1", "--yes")
    assert again.returncode == 1 and "already destroyed" in again.stderr
    status = json.loads(daemon.vokter("keys", "status", "--json").stdout)
    assert (status["keysets_live"], status["keysets_destroyed"]) == (1, 1)
    assert status["last_rotated"] is not None
    actions = [(e["action"], e["outcome"]) for e in daemon.audit_events()]
    assert ("project.key_shredded", "ok") in actions and ("keys.master_rotated", "ok") in actions

    assert daemon.stop() == 0
    trail = json.dumps(daemon.audit_events(), default=str)
    log = daemon.log_path.read_text(errors="replace")
    for secret in secrets:
        for shown in (secret.hex(), base64.b64encode(secret).decode()):
            assert shown not in trail and shown not in log
    assert os.path.getsize(daemon.log_path) > 0
