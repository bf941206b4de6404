"""systemd's notify protocol, spoken to a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.sd_notify import notify, watchdog_interval


@pytest.fixture
def systemd_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2.0)
    try:
        yield sock, path
    finally:
        sock.close()


def _assert_nothing_more(sock: socket.socket) -> None:
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        sock.recv(4096)


def test_ready_is_delivered_as_exactly_one_datagram(
    systemd_socket: tuple[socket.socket, str],
) -> None:
    sock, path = systemd_socket
    assert notify("READY=1", environ={"NOTIFY_SOCKET": path}) is True
    assert sock.recv(4096) == b"READY=1"
    _assert_nothing_more(sock)


def test_each_notification_is_its_own_datagram(systemd_socket: tuple[socket.socket, str]) -> None:
    sock, path = systemd_socket
    env = {"NOTIFY_SOCKET": path}
    assert notify("READY=1\nSTATUS=serving", environ=env)
    assert notify("WATCHDOG=1", environ=env)
    assert notify("STOPPING=1", environ=env)
    assert [sock.recv(4096) for _ in range(3)] == [
        b"READY=1\nSTATUS=serving", b"WATCHDOG=1", b"STOPPING=1"
    ]
    _assert_nothing_more(sock)


def test_abstract_socket_address_with_at_sign() -> None:
    name = f"vokter-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2.0)
    with sock:
        assert notify("READY=1", environ={"NOTIFY_SOCKET": "@" + name}) is True
        assert sock.recv(4096) == b"READY=1"
        _assert_nothing_more(sock)


def test_process_environment_is_used_when_no_environ_is_given(
    systemd_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = systemd_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert notify("STATUS=from os.environ") is True
    assert sock.recv(4096) == b"STATUS=from os.environ"


def test_without_notify_socket_nothing_is_sent_and_false_returned() -> None:
    assert notify("READY=1", environ={}) is False
    assert notify("READY=1", environ={"NOTIFY_SOCKET": ""}) is False


def test_unreachable_notify_socket_returns_false_without_raising(tmp_path: Path) -> None:
    assert notify("READY=1", environ={"NOTIFY_SOCKET": str(tmp_path / "absent.sock")}) is False
    name = f"@vokter-absent-{uuid.uuid4().hex}"
    assert notify("READY=1", environ={"NOTIFY_SOCKET": name}) is False


def test_watchdog_interval_is_half_the_period() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "1000000"}) == 0.5


def test_watchdog_interval_for_this_process_pid() -> None:
    env = {"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval(env) == 10.0


def test_watchdog_meant_for_another_process_is_ignored() -> None:
    env = {"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert watchdog_interval(env) is None


@pytest.mark.parametrize("env", [{}, {"WATCHDOG_USEC": ""}, {"WATCHDOG_USEC": "soon"},
                                 {"WATCHDOG_PID": "1"}])
def test_no_or_unreadable_watchdog_means_none(env: dict[str, str]) -> None:
    assert watchdog_interval(env) is None


def test_watchdog_interval_has_a_floor() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "1"}) == 0.1


def test_watchdog_interval_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "8000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval() == 4.0
