"""``vokter encrypt`` and ``vokter decrypt`` as people meet them (S3, S6): a real vokterd holding
the keys, real Unix users running the real CLI, files in real zones guarded by ACLs and the
fanotify gate; then the daemon killed mid-encryption and restarted, and a shredded key."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.daemon import VOKTER, RunningDaemon, ok
from tests.support.daemon import one_line_failure as refused
from tests.support.files import sha256_of
from tests.support.users import TestUser, UserFactory, home_of, write_as

PROJECT = "p4711"
BIG = 200 * 1024 * 1024


@dataclass
class Enclave:
    daemon: RunningDaemon
    leader: TestUser
    member: TestUser
    custodian: TestUser
    outsider: TestUser

    @property
    def data(self) -> Path:
        return self.daemon.zones_dir / PROJECT / "data"

    @property
    def key(self) -> Path:
        return self.daemon.zones_dir / PROJECT / "key"

    def vokter(self, *args: str, user: TestUser | None) -> subprocess.CompletedProcess[str]:
        return self.daemon.vokter(*args, user=None if user is None else user.name)

    def home(self, user: TestUser) -> Path:
        return home_of(self.daemon.root, user)

    def write_as(self, user: TestUser, path: Path, data: bytes) -> None:
        write_as(user, path, data)

    def write_big_as(self, user: TestUser, path: Path) -> str:
        subprocess.run(["runuser", "-u", user.name, "--", "sh", "-c",
                        f'head -c {BIG} /dev/urandom > "$1"', "sh", str(path)],
                       check=True, timeout=120)
        return sha256_of(path)




@pytest.fixture
def enclave(daemon: RunningDaemon, unix_users: UserFactory) -> Iterator[Enclave]:
    leader, member = unix_users.create("vkl"), unix_users.create("vkm")
    custodian, outsider = unix_users.create("vkk"), unix_users.create("vko")
    ok(daemon.vokter("project", "create", PROJECT, "--title", "Shift work", "--leader",
                     leader.name, "--end-date", "2030-06-30"))
    for user, role in ((member, "member"), (custodian, "key_custodian")):
        ok(daemon.vokter("member", "add", PROJECT, user.name, "--role", role, "--reason",
                         "cohort analysis", user=leader.name))
    yield Enclave(daemon, leader, member, custodian, outsider)


def decrypted_events(daemon: RunningDaemon) -> list[dict[str, object]]:
    return [e for e in daemon.audit_events() if e["action"] == "file.decrypted"]


def test_s3_a_member_encrypts_a_data_zone_file_in_place_and_decrypts_it_into_their_home(
        enclave: Enclave) -> None:
    member = enclave.member
    data = os.urandom(1_000_000) + b"0101701234"
    plain = enclave.data / "cohort.csv"
    enclave.write_as(member, plain, data)
    out = ok(enclave.vokter("encrypt", str(plain), user=member))
    assert "cohort.csv.tink" in out
    cipher = enclave.data / "cohort.csv.tink"
    assert not plain.exists() and cipher.exists()
    assert cipher.stat().st_uid == member.uid
    assert data[:4096] not in cipher.read_bytes()
    target = enclave.home(member) / "cohort.csv"
    ok(enclave.vokter("decrypt", str(cipher), "-o", str(target), user=member))
    assert target.read_bytes() == data
    assert target.stat().st_uid == member.uid and target.stat().st_mode & 0o077 == 0
    assert sorted(os.listdir(enclave.home(member))) == ["cohort.csv"]
    [event] = decrypted_events(enclave.daemon)
    assert (event["actor"], event["project_id"], event["outcome"]) == (member.name, PROJECT, "ok")
    assert event["target"] == str(cipher)
    details = json.loads(str(event["details"]))
    assert details["bytes"] == cipher.stat().st_size
    assert "0101701234" not in json.dumps(event)
    # Again, refused without --force: the first plaintext stays.
    line = refused(enclave.vokter("decrypt", str(cipher), "-o", str(target), user=member), 2)
    assert "--force" in line and target.read_bytes() == data
    line = refused(enclave.vokter("encrypt", str(cipher), user=member))
    assert "encrypted already" in line and "vokter decrypt" in line
    encrypted = [(e["outcome"], e["project_id"]) for e in enclave.daemon.audit_events()
                 if e["action"] == "file.encrypted"]
    assert encrypted == [("ok", PROJECT), ("refused", PROJECT)]


def test_s3_root_encrypts_but_never_decrypts_and_the_refusal_is_audited(
        enclave: Enclave) -> None:
    plain = enclave.data / "register.csv"
    enclave.write_as(enclave.member, plain, b"id;value\n1;2\n")
    ok(enclave.vokter("encrypt", str(plain), user=None))
    cipher = enclave.data / "register.csv.tink"
    line = refused(enclave.vokter("decrypt", str(cipher), "-o",
                                  str(enclave.daemon.root / "root.out"), user=None))
    assert "root is the operator" in line
    assert not (enclave.daemon.root / "root.out").exists()
    refusals = [e for e in enclave.daemon.audit_events()
                if e["action"] == "crypto.decrypt" and e["outcome"] == "refused"]
    assert len(refusals) == 1 and refusals[0]["actor"] == "root"
    [event] = decrypted_events(enclave.daemon)
    assert (event["actor"], event["project_id"], event["outcome"], event["target"]) == (
        "root", PROJECT, "refused", str(cipher))


def test_s3_a_file_the_member_may_only_read_is_not_encrypted_by_them(enclave: Enclave) -> None:
    """Encrypting in place replaces the file: only someone who may write it may ask for it."""
    member = enclave.member
    plain = enclave.data / "frozen.csv"
    enclave.write_as(member, plain, b"id;value\n1;2\n")
    plain.chmod(0o400)
    line = refused(enclave.vokter("encrypt", str(plain), user=member))
    assert "permission denied" in line and "may write" in line
    assert plain.read_bytes() == b"id;value\n1;2\n"
    assert not (enclave.data / "frozen.csv.tink").exists()


def test_s3_a_full_disk_is_a_one_line_failure_audited_and_leaves_no_output(
        enclave: Enclave) -> None:
    member = enclave.member
    plain = enclave.data / "cohort.csv"
    enclave.write_as(member, plain, os.urandom(300_000))
    ok(enclave.vokter("encrypt", str(plain), user=member))
    small = enclave.daemon.root / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0777", "tmpfs", str(small)],
                   check=True)
    try:
        line = refused(enclave.vokter("decrypt", str(enclave.data / "cohort.csv.tink"), "-o",
                                      str(small / "cohort.csv"), user=member))
        assert "No space left on device" in line and "nothing was decrypted" in line
        assert os.listdir(small) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)
    outcomes = [e["outcome"] for e in decrypted_events(enclave.daemon)]
    assert outcomes == ["ok", "failed"]


def test_s3_a_changed_byte_fails_in_one_line_and_leaves_no_output(enclave: Enclave) -> None:
    member = enclave.member
    plain = enclave.data / "cohort.csv"
    enclave.write_as(member, plain, os.urandom(300_000))
    ok(enclave.vokter("encrypt", str(plain), user=member))
    cipher = enclave.data / "cohort.csv.tink"
    with cipher.open("r+b") as file:
        file.seek(200_000)
        byte = file.read(1)
        file.seek(200_000)
        file.write(bytes([byte[0] ^ 0x10]))
    line = refused(enclave.vokter("decrypt", str(cipher), "-o",
                                  str(enclave.home(member) / "out.csv"), user=member))
    assert "segment" in line
    assert os.listdir(enclave.home(member)) == []
    outcomes = [e["outcome"] for e in decrypted_events(enclave.daemon)]
    assert outcomes == ["ok", "refused"]


def test_s6_a_member_is_refused_a_key_zone_file_that_a_key_custodian_decrypts(
        enclave: Enclave) -> None:
    custodian, member = enclave.custodian, enclave.member
    plain = enclave.key / "linkage.csv"
    enclave.write_as(custodian, plain, b"pseudonym;person\n")
    ok(enclave.vokter("encrypt", str(plain), user=custodian))
    cipher = enclave.key / "linkage.csv.tink"
    member_out = enclave.home(member) / "linkage.csv"
    refused(enclave.vokter("decrypt", str(cipher), "-o", str(member_out), user=member))
    assert os.listdir(enclave.home(member)) == []
    custodian_out = enclave.home(custodian) / "linkage.csv"
    ok(enclave.vokter("decrypt", str(cipher), "-o", str(custodian_out), user=custodian))
    assert custodian_out.read_bytes() == b"pseudonym;person\n"
    line = refused(enclave.vokter("encrypt", str(enclave.key / "other.csv"), user=member))
    assert "no such file" in line or "permission denied" in line


def copied_out(enclave: Enclave) -> Path:
    """A table the member encrypted in the data zone, its ciphertext copied to a folder
    outside every zone that everyone may read (an export taken out)."""
    plain = enclave.data / "table.csv"
    enclave.write_as(enclave.member, plain, b"n;mean\n10;4.2\n")
    ok(enclave.vokter("encrypt", str(plain), user=enclave.member))
    shared = enclave.daemon.root / "shared"
    shared.mkdir(mode=0o755)
    copy = shared / "table.csv.tink"
    copy.write_bytes((enclave.data / "table.csv.tink").read_bytes())
    copy.chmod(0o644)
    return copy


def test_s3_outside_every_zone_a_member_names_the_project_and_an_outsider_learns_nothing(
        enclave: Enclave) -> None:
    member, outsider = enclave.member, enclave.outsider
    copy = copied_out(enclave)
    os.chown(copy, enclave.member.uid, enclave.member.gid)  # theirs: encrypting needs write
    line = refused(enclave.vokter("decrypt", str(copy), "-o", str(enclave.home(member) / "t"),
                                  user=member))
    assert "--project" in line
    ok(enclave.vokter("decrypt", str(copy), "-o", str(enclave.home(member) / "t"),
                      "--project", PROJECT, user=member))
    assert (enclave.home(member) / "t").read_bytes() == b"n;mean\n10;4.2\n"
    outsider_out = enclave.home(outsider) / "t"
    line = refused(enclave.vokter("decrypt", str(copy), "-o", str(outsider_out), "--project",
                                  PROJECT, user=outsider))
    assert f"no project {PROJECT}" in line
    line = refused(enclave.vokter("decrypt", str(enclave.data / "table.csv.tink"), "-o",
                                  str(outsider_out), user=outsider))
    assert "permission denied" in line and PROJECT not in line.replace(str(enclave.data), "")
    assert os.listdir(enclave.home(outsider)) == []
    line = refused(enclave.vokter("encrypt", str(copy), user=member))
    assert "not in any project's zone" in line


def test_l8_after_the_end_a_members_copy_is_not_decrypted_and_the_leaders_is(
        enclave: Enclave) -> None:
    """Members keep their rows after the end but not their access: a ciphertext they copied
    out before the end no longer opens for them; the leader, who keeps reading, decrypts it."""
    member, leader = enclave.member, enclave.leader
    copy = copied_out(enclave)
    ok(enclave.vokter("project", "end", PROJECT, "--yes", user=leader))
    line = refused(enclave.vokter("decrypt", str(copy), "-o", str(enclave.home(member) / "t"),
                                  "--project", PROJECT, user=member))
    assert line == (f"vokter: {PROJECT} has ended (ended): only its leader decrypts its files "
                    f"now (L8); ask {leader.name}, who keeps read access after the end")
    assert os.listdir(enclave.home(member)) == []
    line = refused(enclave.vokter("decrypt", str(copy), "-o",
                                  str(enclave.home(enclave.custodian) / "t"), "--project",
                                  PROJECT, user=enclave.custodian))
    assert "(L8)" in line
    line = refused(enclave.vokter("decrypt", str(copy), "-o",
                                  str(enclave.home(enclave.outsider) / "t"), "--project",
                                  PROJECT, user=enclave.outsider))
    assert f"no project {PROJECT}" in line and "L8" not in line
    ok(enclave.vokter("decrypt", str(copy), "-o", str(enclave.home(leader) / "t"),
                      "--project", PROJECT, user=leader))
    assert (enclave.home(leader) / "t").read_bytes() == b"n;mean\n10;4.2\n"
    outcomes = [(e["actor"], e["outcome"], e["rule"]) for e in decrypted_events(enclave.daemon)]
    assert outcomes == [(member.name, "refused", "L8"), (enclave.custodian.name, "refused", "L8"),
                        (enclave.outsider.name, "refused", None), (leader.name, "ok", None)]


def vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_s3_memory_does_not_grow_with_the_file_size(enclave: Enclave) -> None:
    member = enclave.member
    plain = enclave.data / "big.bin"
    digest = enclave.write_big_as(member, plain)
    assert enclave.daemon.process is not None
    pid = enclave.daemon.process.pid
    before = vm_hwm(pid)
    ok(enclave.vokter("encrypt", str(plain), user=member))
    out = enclave.home(member) / "big.bin"
    ok(enclave.vokter("decrypt", str(enclave.data / "big.bin.tink"), "-o", str(out),
                      user=member))
    grown = vm_hwm(pid) - before
    assert grown < 64 * 1024 * 1024, f"vokterd's peak RSS grew by {grown // 2**20} MiB"
    assert sha256_of(out) == digest


def test_s3_a_daemon_killed_mid_encryption_settles_the_file_when_it_restarts(
        enclave: Enclave) -> None:
    member, daemon = enclave.member, enclave.daemon
    plain = enclave.data / "big.bin"
    digest = enclave.write_big_as(member, plain)
    client = subprocess.Popen(
        ["runuser", "-u", member.name, "--", str(VOKTER), "--config", str(daemon.config_path),
         "encrypt", str(plain)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal = daemon.state_dir / "crypto-journal"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and client.poll() is None:
        partial = [p for p in enclave.data.iterdir() if ".tink.partial-" in p.name]
        if partial and partial[0].stat().st_size > 16 * 1024 * 1024:
            break
        time.sleep(0.005)
    daemon.signal(signal.SIGKILL)
    assert daemon.process is not None
    daemon.process.wait()
    _, err = client.communicate(timeout=60)
    interrupted = list(journal.glob("*.json"))
    if interrupted:  # the kill came mid-way (almost always): the client was told it broke
        assert client.returncode == 1 and len(err.strip().splitlines()) == 1, err
    daemon.start()
    names = sorted(os.listdir(enclave.data))
    assert names in (["big.bin"], ["big.bin.tink"]), names
    assert list(journal.glob("*")) == []
    if names == ["big.bin"]:
        assert sha256_of(plain) == digest
    out = enclave.home(member) / "big.bin"
    if names == ["big.bin.tink"]:
        ok(enclave.vokter("decrypt", str(enclave.data / "big.bin.tink"), "-o", str(out),
                          user=member))
        assert sha256_of(out) == digest
    if interrupted:
        assert any(e["action"] == "file.encrypt_recovered" for e in daemon.audit_events())


def test_s3_after_shred_key_decryption_fails_saying_the_key_was_destroyed(
        enclave: Enclave) -> None:
    member = enclave.member
    plain = enclave.data / "cohort.csv"
    enclave.write_as(member, plain, b"a;b\n")
    ok(enclave.vokter("encrypt", str(plain), user=member))
    ok(enclave.vokter("project", "shred-key", PROJECT, "--yes", user=None))
    out = enclave.home(member) / "cohort.csv"
    line = refused(enclave.vokter("decrypt", str(enclave.data / "cohort.csv.tink"), "-o",
                                  str(out), user=member))
    assert "destroyed" in line
    assert os.listdir(enclave.home(member)) == []
    [event] = decrypted_events(enclave.daemon)
    assert (event["project_id"], event["outcome"]) == (PROJECT, "refused")
    assert json.loads(str(event["details"]))["error"] == "KeyDestroyed"
