"""The spine as a user meets it: a real vokterd, the real vokter, real Unix users."""

from __future__ import annotations

import json
import os
import socket
import stat
import struct
from pathlib import Path

from tests.support.daemon import RunningDaemon
from tests.support.users import UserFactory

END = "2030-06-30"


def create(daemon: RunningDaemon, project: str, leader: str, *extra: str, user: str | None = None):
    return daemon.vokter("project", "create", project, "--title", f"Study {project}",
                         "--leader", leader, "--end-date", END, *extra, user=user)


def test_root_creates_project_with_private_zones(daemon: RunningDaemon) -> None:
    result = create(daemon, "p1234", "root")
    assert result.returncode == 0, result.stderr
    assert "Created project p1234" in result.stdout
    for zone in ("data", "key", "export", "quarantine"):
        path = daemon.zones_dir / "p1234" / zone
        mode = stat.S_IMODE(path.stat().st_mode)
        assert path.is_dir() and mode == 0o700, (zone, oct(mode))
    assert stat.S_IMODE(daemon.zones_dir.stat().st_mode) == 0o711  # not listable by outsiders
    listed = json.loads(daemon.vokter("project", "list", "--json").stdout)
    assert [p["project"] for p in listed] == ["p1234"]
    shown = json.loads(daemon.vokter("project", "show", "p1234", "--json").stdout)
    assert shown["leader"] == "root" and shown["end_date"] == END and shown["members"] == 1


def test_s5_key_zone_on_data_file_system_is_warned_at_creation(daemon: RunningDaemon) -> None:
    result = create(daemon, "p7", "root")
    assert result.returncode == 0
    assert "warning: S5" in result.stderr


def test_non_root_project_create_is_refused_and_audited(
    daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    user = unix_users.create()
    result = create(daemon, "p55", user.name, user=user.name)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vokter: only root"), result.stderr
    assert not (daemon.zones_dir / "p55").exists()
    refused = [e for e in daemon.audit_events()
               if e["action"] == "project.create" and e["outcome"] == "refused"]
    assert len(refused) == 1
    assert refused[0]["actor_uid"] == user.uid and refused[0]["actor"] == user.name
    assert (refused[0]["project_id"], refused[0]["target"]) == (None, "p55")


def test_identity_comes_from_the_kernel_not_the_client(
    daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    user = unix_users.create()
    status = json.loads(daemon.vokter("status", "--json", user=user.name).stdout)
    assert status["caller"] == {"uid": user.uid, "user": user.name}
    # A request that claims to be root is refused for its extra field, not believed.
    script = (
        "import socket,struct,json,sys;s=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1]);"
        "b=json.dumps({'v':1,'op':'project.create','args':{'project':'p9','title':'x',"
        "'leader':'root','end_date':'2030-01-01','uid':0}}).encode();"
        "s.sendall(struct.pack('>I',len(b))+b);n=struct.unpack('>I',s.recv(4))[0];"
        "print(s.recv(n).decode())"
    )
    import subprocess
    import sys
    answer = subprocess.run(["runuser", "-u", user.name, "--", sys.executable, "-c", script,
                             str(daemon.socket_path)], capture_output=True, text=True, timeout=30)
    reply = json.loads(answer.stdout)
    assert reply["ok"] is False and "uid" in reply["error"]["message"]
    assert not (daemon.zones_dir / "p9").exists()


def test_a1_leader_sees_own_projects_and_outsiders_see_nothing(
    daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    alice, bob, carol = unix_users.create(), unix_users.create(), unix_users.create()
    assert create(daemon, "p1", alice.name).returncode == 0
    assert create(daemon, "p2", bob.name).returncode == 0
    mine = json.loads(daemon.vokter("project", "list", "--json", user=alice.name).stdout)
    assert [p["project"] for p in mine] == ["p1"]
    assert json.loads(daemon.vokter("project", "list", "--json", user=carol.name).stdout) == []
    # An outsider cannot tell an existing project from a missing one.
    existing = daemon.vokter("project", "show", "p1", user=carol.name)
    missing = daemon.vokter("project", "show", "p999", user=carol.name)
    assert existing.returncode == missing.returncode == 1
    assert existing.stderr.replace("p1", "pX") == missing.stderr.replace("p999", "pX")
    assert daemon.vokter("project", "show", "p1", user=alice.name).returncode == 0


def test_bad_input_gets_one_line_and_changes_nothing(
    daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    cases = {
        "impossible date": ("p3", "root", "2030-02-30", "end_date"),
        "unknown leader": ("p3", "nosuchuser9", END, "no Unix account"),
        "past end date": ("p3", "root", "2020-01-01", "(L1)"),
        "bad project id": ("../p3", "root", END, "not a project id"),
    }
    for name, (project, leader, end, expected) in cases.items():
        result = daemon.vokter("project", "create", project, "--title", "t", "--leader", leader,
                               "--end-date", end)
        assert result.returncode == 1, name
        assert len(result.stderr.strip().splitlines()) == 1, (name, result.stderr)
        assert expected in result.stderr, (name, result.stderr)
    assert json.loads(daemon.vokter("project", "list", "--json").stdout) == []
    assert not daemon.zones_dir.exists() or list(daemon.zones_dir.iterdir()) == []
    refusals = [e for e in daemon.audit_events() if e["outcome"] == "refused"]
    assert len(refusals) == len(cases)


def test_usage_error_exits_2(daemon: RunningDaemon) -> None:
    result = daemon.vokter("project", "create", "p1", "--leader", "root")
    assert result.returncode == 2
    assert "--title" in result.stderr


def test_cli_says_when_the_daemon_is_not_running(tmp_path: Path) -> None:
    import subprocess

    from tests.support.daemon import VOKTER
    result = subprocess.run([str(VOKTER), "--socket", str(tmp_path / "none.sock"), "status"],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "vokterd is not running" in result.stderr
    assert "Traceback" not in result.stderr


def test_malformed_and_oversized_requests_do_not_stop_the_daemon(daemon: RunningDaemon) -> None:
    for payload in (b"\x00\x00\x00\x05{nope", struct.pack(">I", 2 * 1024 * 1024) + b"x" * 10,
                    struct.pack(">I", 7) + b"[1,2,3]"):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(str(daemon.socket_path))
            sock.sendall(payload)
            (length,) = struct.unpack(">I", sock.recv(4))
            reply = json.loads(sock.recv(length))
            assert reply["ok"] is False and reply["error"]["type"] == "ProtocolError"
    assert daemon.vokter("status").returncode == 0
    assert daemon.process is not None and daemon.process.poll() is None


def test_socket_is_world_connectable(daemon: RunningDaemon) -> None:
    assert stat.S_IMODE(os.stat(daemon.socket_path).st_mode) == 0o666


def test_plain_lines_in_a_pipe(daemon: RunningDaemon) -> None:
    create(daemon, "p42", "root")
    out = daemon.vokter("project", "list").stdout
    assert out.splitlines() == [f"p42\tStudy p42\troot\t{END}\tactive"]


def test_status_shows_version_store_policy_uptime(daemon: RunningDaemon) -> None:
    status = json.loads(daemon.vokter("status", "--json").stdout)
    assert status["store"] == "sqlite"
    assert status["policy"]["name"] == "default" and status["policy"]["version"]
    assert status["uptime_seconds"] >= 0 and status["version"]
    assert "watchers" in status
    text = daemon.vokter("status").stdout
    assert "policy:" in text and "store:" in text and "uptime:" in text
