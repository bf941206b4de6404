"""The Unix socket server, in process: real sockets, real peer credentials, real Unix users.

One request per connection, each on its own thread with a deadline: a slow, oversized or
garbage request is refused clearly and never holds up other clients.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from agent.api.client import VokterClient
from agent.api.protocol import decode_body, encode, read_frame
from agent.api.server import SocketServer
from agent.errors import ConfigError, DaemonUnreachable, Failed, InvalidRequest
from agent.services import Services
from tests.api.inprocess import audit_events, make_server
from tests.support.users import UserFactory

CLIENT_SCRIPT = """
import json, sys
from agent.api.client import VokterClient
client = VokterClient(sys.argv[1], timeout=10)
status = client.call("status")
try:
    client.call("status", uid=0)
    claimed = "accepted"
except Exception as exc:
    claimed = type(exc).__name__
print(json.dumps({"caller": status["caller"], "claim": claimed, "pid": __import__("os").getpid()}))
"""


def _raw(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(path))
    return sock


def _answer(sock: socket.socket) -> dict[str, Any]:
    answer = decode_body(read_frame(sock, timeout=10))
    assert isinstance(answer, dict)
    return answer


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _half_frame(path: Path) -> socket.socket:
    """A client that announces 100 bytes and sends only 50 of them."""
    sock = _raw(path)
    sock.sendall(struct.pack(">I", 100) + b"x" * 50)
    return sock


def test_socket_file_is_mode_0666_even_under_a_strict_umask(
    sqlite_services: Services, socket_dir: Path
) -> None:
    path = socket_dir / "run" / "vokterd.sock"
    server = make_server(sqlite_services, path)
    with _umask(0o077):
        server.start()
    try:
        st = os.lstat(path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o666
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o755  # made traversable
    finally:
        server.stop()


def test_in_process_client_is_identified_by_the_kernel(
    server: SocketServer, sqlite_services: Services
) -> None:
    client = VokterClient(server.path, timeout=10)
    assert client.call("status")["caller"] == {"uid": os.getuid(), "user": "root"}
    with pytest.raises(InvalidRequest, match="uid: is not an accepted field"):
        client.call("status", uid=1000)
    [event] = audit_events(sqlite_services)
    assert (event.actor_uid, event.outcome) == (0, "refused")
    assert json.loads(event.details)["pid"] == os.getpid()  # SO_PEERCRED, not a claim


@pytest.mark.root
def test_caller_uid_is_the_connecting_users_real_uid(
    server: SocketServer, sqlite_services: Services, unix_users: UserFactory
) -> None:
    user = unix_users.create()
    result = subprocess.run(
        ["runuser", "-u", user.name, "--", sys.executable, "-c", CLIENT_SCRIPT, str(server.path)],
        capture_output=True, text=True, timeout=30, cwd="/",
    )
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply["caller"] == {"uid": user.uid, "user": user.name}
    assert reply["claim"] == "InvalidRequest"  # sending uid=0 does not make anyone root
    [event] = audit_events(sqlite_services)
    assert (event.actor_uid, event.actor, event.outcome) == (user.uid, user.name, "refused")
    assert json.loads(event.details)["pid"] == reply["pid"]


def test_oversized_request_is_refused_and_the_server_serves_the_next_client(
    server: SocketServer, sqlite_services: Services
) -> None:
    with _raw(server.path) as sock:
        sock.sendall(struct.pack(">I", 2 * 1024 * 1024))  # announces 2 MiB
        answer = _answer(sock)
    assert answer["ok"] is False
    assert answer["error"]["type"] == "ProtocolError"
    assert "2097152 bytes" in answer["error"]["message"]
    assert VokterClient(server.path, timeout=10).call("status")["caller"]["uid"] == 0
    [event] = audit_events(sqlite_services)
    assert (event.action, event.outcome) == ("request", "refused")
    assert json.loads(event.details)["error"] == "ProtocolError"


def test_slow_clients_time_out_while_others_are_answered_at_once(server: SocketServer) -> None:
    began = time.monotonic()
    slow = [_half_frame(server.path) for _ in range(3)]
    try:
        fast_began = time.monotonic()
        status = VokterClient(server.path, timeout=10).call("status")
        assert time.monotonic() - fast_began < 0.5  # not queued behind the slow ones
        assert status["caller"]["uid"] == 0
        for sock in slow:
            answer = _answer(sock)
            assert answer["ok"] is False
            assert answer["error"]["type"] == "ProtocolError"
            assert "too slow" in answer["error"]["message"]
        waited = time.monotonic() - began
        assert 0.9 <= waited < 5.0  # refused after the 1 s deadline, not before
    finally:
        for sock in slow:
            sock.close()


def test_a_client_that_sends_nothing_is_cut_off_after_the_deadline(server: SocketServer) -> None:
    with _raw(server.path) as sock:
        began = time.monotonic()
        answer = _answer(sock)
    assert "too slow" in answer["error"]["message"]
    assert 0.9 <= time.monotonic() - began < 5.0


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (struct.pack(">I", 9) + b"\xffnot json", "not valid UTF-8 JSON"),
        (encode(["status"]), "must be a JSON object"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "at most"),
    ],
    ids=["not-json", "not-an-object", "http"],
)
def test_garbage_is_refused_clearly(server: SocketServer, payload: bytes, expected: str) -> None:
    with _raw(server.path) as sock:
        sock.sendall(payload)
        answer = _answer(sock)
    assert answer["ok"] is False
    assert answer["error"]["type"] == "ProtocolError"
    assert expected in answer["error"]["message"]
    assert VokterClient(server.path, timeout=10).call("status")["caller"]["uid"] == 0


def test_twenty_concurrent_clients_all_get_answers(server: SocketServer) -> None:
    start = threading.Barrier(20)

    def ask(_: int) -> int:
        start.wait(timeout=10)
        return int(VokterClient(server.path, timeout=10).call("status")["caller"]["uid"])

    with ThreadPoolExecutor(max_workers=20) as pool:
        uids = list(pool.map(ask, range(20)))
    assert uids == [0] * 20


@pytest.fixture
def one_slot_server(sqlite_services: Services, socket_dir: Path) -> Iterator[SocketServer]:
    server = make_server(sqlite_services, socket_dir / "vokterd.sock", max_clients=1)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_client_beyond_max_clients_is_told_the_daemon_is_busy(
    one_slot_server: SocketServer,
) -> None:
    path = one_slot_server.path
    with _half_frame(path) as slow:
        time.sleep(0.1)  # the slow client holds the only slot
        with _raw(path) as extra:
            answer = _answer(extra)
        assert answer["ok"] is False
        assert answer["error"]["type"] == "Failed"
        assert "busy" in answer["error"]["message"]
        assert "too slow" in _answer(slow)["error"]["message"]
    time.sleep(0.1)  # the slot is given back
    assert VokterClient(path, timeout=10).call("status")["caller"]["uid"] == 0


class _LateSender(VokterClient):
    """A client that is slower to send than the daemon is to answer (a loaded machine)."""

    def _connect(self) -> socket.socket:
        sock = super()._connect()
        time.sleep(0.2)
        return sock


def test_vokter_client_is_told_busy_even_when_it_sends_after_the_daemon_answered(
    one_slot_server: SocketServer,
) -> None:
    with _half_frame(one_slot_server.path):
        time.sleep(0.1)
        with pytest.raises(Failed) as caught:
            _LateSender(one_slot_server.path, timeout=10).call("status")
    if isinstance(caught.value, DaemonUnreachable):
        raise caught.value  # what users see today: a 'broken connection', not 'busy'
    assert "busy" in caught.value.message


def test_a_stale_socket_file_is_replaced_at_start(
    sqlite_services: Services, socket_dir: Path
) -> None:
    path = socket_dir / "vokterd.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))  # left behind by a daemon that died: nobody listens
    dead.close()
    path.chmod(0o600)
    server = make_server(sqlite_services, path)
    server.start()
    try:
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o666  # a new socket, not the old one
        assert VokterClient(path, timeout=10).call("status")["caller"]["uid"] == 0
    finally:
        server.stop()


def test_a_regular_file_at_the_socket_path_is_never_replaced(
    sqlite_services: Services, socket_dir: Path
) -> None:
    path = socket_dir / "vokterd.sock"
    path.write_text("someone's file")
    with pytest.raises(ConfigError, match="not a socket"):
        make_server(sqlite_services, path).start()
    assert path.read_text() == "someone's file"


def test_a_second_server_on_a_live_socket_is_refused(
    server: SocketServer, sqlite_services: Services
) -> None:
    inode = os.lstat(server.path).st_ino
    with pytest.raises(ConfigError, match="already listening"):
        make_server(sqlite_services, server.path).start()
    assert os.lstat(server.path).st_ino == inode
    assert VokterClient(server.path, timeout=10).call("status")["caller"]["uid"] == 0


def test_stop_removes_the_socket_file_and_clients_are_told_it_is_not_running(
    sqlite_services: Services, socket_dir: Path
) -> None:
    path = socket_dir / "vokterd.sock"
    server = make_server(sqlite_services, path)
    server.start()
    server.stop()
    assert not os.path.lexists(path)
    with pytest.raises(DaemonUnreachable, match="vokterd is not running"):
        VokterClient(path, timeout=5).call("status")


def test_stop_leaves_a_newer_servers_socket_alone(
    sqlite_services: Services, socket_dir: Path
) -> None:
    path = socket_dir / "vokterd.sock"
    old = make_server(sqlite_services, path)
    old.start()
    path.unlink()  # e.g. an operator removed it; a new daemon then took the path
    new = make_server(sqlite_services, path)
    new.start()
    try:
        old.stop()
        assert os.path.lexists(path)
        assert VokterClient(path, timeout=10).call("status")["caller"]["uid"] == 0
    finally:
        new.stop()
    assert not os.path.lexists(path)
