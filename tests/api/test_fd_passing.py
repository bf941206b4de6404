"""File descriptors passed with a request (SCM_RIGHTS) and progress frames, over a real socket.

The client opens the file with its own rights; the daemon writes through the descriptor and
never opens a path a client names. The server closes every descriptor it received after the
request, used or not; an operation that takes none refuses a request that carries some.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.access.users import name_of_uid
from agent.api.client import VokterClient
from agent.api.dispatch import Attachments, Caller, Operation, RequestContext, dispatch
from agent.api.protocol import MAX_FDS, decode_body, read_frame, send_frame
from agent.api.schemas import NoArgs
from agent.api.server import SocketServer
from agent.errors import Failed, ProtocolError
from agent.operations import OPERATIONS
from agent.services import Services
from tests.api.inprocess import audit_events, make_server

seen: dict[str, Any] = {}


def write_greeting(ctx: RequestContext, _args: NoArgs) -> dict[str, Any]:
    """A test operation taking one descriptor: reports progress, then writes through it."""
    [fd] = ctx.fds
    seen["cloexec"] = bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)
    for done in range(3):
        ctx.progress(done, 3)
    os.write(fd, b"written by the daemon\n")
    return {"wrote": True}


def fail_after_taking(ctx: RequestContext, _args: NoArgs) -> None:
    raise RuntimeError("the handler broke")


def talk_forever(ctx: RequestContext, _args: NoArgs) -> None:
    """Progress to a client that has gone: the first failed send stops the handler."""
    for done in range(100_000):
        ctx.progress(done, 100_000)


TEST_OPERATIONS = {
    **OPERATIONS,
    "test.write": Operation(NoArgs, write_greeting, fds=1),
    "test.break": Operation(NoArgs, fail_after_taking, fds=1),
    "test.talk": Operation(NoArgs, talk_forever),
}


@pytest.fixture
def fd_server(sqlite_services: Services, socket_dir: Path) -> Iterator[SocketServer]:
    server = SocketServer(
        socket_dir / "vokterd.sock",
        handle=lambda message, caller: dispatch(message, caller, sqlite_services,
                                                TEST_OPERATIONS),
        refuse=lambda caller, error: None,
        name_of=name_of_uid,
        timeout=1.0,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def open_descriptors_to(path: Path) -> int:
    """How many descriptors of this process (client and server alike) point at ``path``."""
    count = 0
    for entry in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{entry}") == str(path):
                count += 1
        except OSError:
            continue
    return count


def test_a_passed_descriptor_is_written_through_then_closed_by_the_server(
    fd_server: SocketServer, tmp_path: Path
) -> None:
    target = tmp_path / "out.txt"
    progress: list[tuple[int, int]] = []
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        result = VokterClient(fd_server.path, timeout=10).call_streaming(
            "test.write", fds=[fd], on_progress=lambda done, total: progress.append((done, total)))
        assert open_descriptors_to(target) == 1  # the client's own; the server's copy is closed
    finally:
        os.close(fd)
    assert result == {"wrote": True}
    assert progress == [(0, 3), (1, 3), (2, 3)]
    assert target.read_bytes() == b"written by the daemon\n"
    assert seen["cloexec"] is True  # a program the daemon starts never inherits it


def test_plain_call_skips_progress_frames_and_gets_the_answer(
    fd_server: SocketServer, tmp_path: Path
) -> None:
    fd = os.open(tmp_path / "out.txt", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(str(fd_server.path))
            send_frame(sock, {"v": 1, "op": "test.write", "args": {}}, [fd])
            frames = []
            while True:
                frame = decode_body(read_frame(sock, 10))
                frames.append(frame)
                if "ok" in frame:
                    break
    finally:
        os.close(fd)
    assert frames[:3] == [{"progress": n, "total": 3} for n in range(3)]
    assert frames[3] == {"ok": True, "result": {"wrote": True}}


def test_descriptors_for_an_operation_that_takes_none_are_refused_audited_and_closed(
    fd_server: SocketServer, sqlite_services: Services, tmp_path: Path
) -> None:
    target = tmp_path / "out.txt"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(ProtocolError, match="status takes 0 file descriptors; 1 came"):
            VokterClient(fd_server.path, timeout=10).call_streaming("status", fds=[fd])
        assert open_descriptors_to(target) == 1
    finally:
        os.close(fd)
    assert target.read_bytes() == b""
    [event] = audit_events(sqlite_services)
    assert (event.action, event.outcome) == ("status", "refused")
    assert json.loads(event.details)["error"] == "ProtocolError"


def test_an_operation_that_takes_a_descriptor_refuses_a_request_without_one(
    fd_server: SocketServer,
) -> None:
    with pytest.raises(ProtocolError, match=r"test\.write takes 1 file descriptor; 0 came"):
        VokterClient(fd_server.path, timeout=10).call("test.write")


def test_too_many_descriptors_are_refused_and_none_is_kept(
    fd_server: SocketServer, tmp_path: Path
) -> None:
    target = tmp_path / "out.txt"
    fds = [os.open(target, os.O_WRONLY | os.O_CREAT, 0o600) for _ in range(MAX_FDS + 2)]
    try:
        with pytest.raises(ProtocolError, match=f"at most {MAX_FDS} are accepted"):
            VokterClient(fd_server.path, timeout=10).call_streaming("test.write", fds=fds)
        assert open_descriptors_to(target) == len(fds)
    finally:
        for fd in fds:
            os.close(fd)
    assert VokterClient(fd_server.path, timeout=10).call("status")["caller"]["uid"] == 0


def test_a_handler_that_breaks_still_has_its_descriptors_closed(
    fd_server: SocketServer, sqlite_services: Services, tmp_path: Path
) -> None:
    target = tmp_path / "out.txt"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(Failed, match="internal error"):
            VokterClient(fd_server.path, timeout=10).call_streaming("test.break", fds=[fd])
        assert open_descriptors_to(target) == 1
    finally:
        os.close(fd)
    assert [(e.action, e.outcome) for e in audit_events(sqlite_services)] == [
        ("test.break", "failed")]


def test_a_client_gone_mid_progress_stops_the_handler_and_the_server_serves_on(
    fd_server: SocketServer, sqlite_services: Services
) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(fd_server.path))
        send_frame(sock, {"v": 1, "op": "test.talk", "args": {}})
        read_frame(sock, 10)  # the first progress frame: the handler runs
    # The handler's next sends fail; it is stopped and the failure is audited.
    deadline = time.monotonic() + 10
    while not audit_events(sqlite_services) and time.monotonic() < deadline:
        time.sleep(0.05)
    [event] = audit_events(sqlite_services)
    assert (event.action, event.outcome) == ("test.talk", "failed")
    assert "client went away" in json.loads(event.details)["message"]
    assert VokterClient(fd_server.path, timeout=10).call("status")["caller"]["uid"] == 0


def test_dispatch_without_a_socket_takes_attachments_explicitly(
    sqlite_services: Services, tmp_path: Path, root_caller: Caller
) -> None:
    fd = os.open(tmp_path / "out.txt", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        answer = dispatch({"op": "test.write"}, root_caller, sqlite_services, TEST_OPERATIONS,
                          Attachments(fds=(fd,)))
    finally:
        os.close(fd)
    assert answer == {"ok": True, "result": {"wrote": True}}
    assert (tmp_path / "out.txt").read_bytes() == b"written by the daemon\n"


def test_the_daemons_wiring_refuses_descriptors_for_every_plain_operation(
    sqlite_services: Services, socket_dir: Path, tmp_path: Path
) -> None:
    server = make_server(sqlite_services, socket_dir / "vokterd.sock")
    server.start()
    fd = os.open(tmp_path / "out.txt", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(ProtocolError, match="takes 0 file descriptors"):
            VokterClient(server.path, timeout=10).call_streaming("project.list", fds=[fd])
    finally:
        os.close(fd)
        server.stop()
