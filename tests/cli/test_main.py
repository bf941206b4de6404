"""The vokter CLI in process, against a real in-process socket server: exit codes 0/1/2, one line
per error on stderr, never a traceback."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from agent.api.server import SocketServer
from agent.services import Services
from agent.store import Project
from cli.main import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return code, out, err


def _one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("vokter: ")
    return lines[0]


def test_status_exit_0(server: SocketServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "--socket", str(server.path), "status")
    assert code == 0, err
    assert "vokterd: running, version test" in out
    assert "you are: root (uid 0)" in out


def test_status_json(server: SocketServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--socket", str(server.path), "status", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["caller"] == {"uid": 0, "user": "root"}
    assert info["store"] == "sqlite"


def test_config_file_names_the_socket(
    server: SocketServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "vokter.toml"
    config.write_text(f'socket_path = "{server.path}"\n')
    code, _, err = _run(capsys, "--config", str(config), "status")
    assert code == 0, err
    monkeypatch.setenv("VOKTER_CONFIG", str(config))
    code, _, err = _run(capsys, "status")
    assert code == 0, err


def test_refusal_from_the_daemon_exits_1_with_its_rule_l1(
    server: SocketServer, sqlite_services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "--socket", str(server.path), "project", "create", "p1234",
                          "--title", "Too late", "--leader", "root", "--end-date", "2020-01-01")
    assert code == 1
    line = _one_error_line(err)
    assert "2020-01-01" in line and line.count("(L1)") == 1
    assert "Created" not in out  # (stdout also holds the in-process daemon's log)
    with sqlite_services.store.read() as session:
        assert session.get(Project, "p1234") is None


def test_impossible_date_exits_1_naming_end_date(
    server: SocketServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "--socket", str(server.path), "project", "create", "p1234",
                        "--title", "T", "--leader", "root", "--end-date", "2026-02-30")
    assert code == 1
    assert _one_error_line(err).startswith("vokter: end_date: ")


def test_unknown_project_exits_1(server: SocketServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "--socket", str(server.path), "project", "show", "p404")
    assert code == 1
    assert "p404" in _one_error_line(err)


def test_root_creates_a_project_exit_0(
    server: SocketServer, sqlite_services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "--socket", str(server.path), "project", "create", "p1234",
                          "--title", "Diabetes and income", "--leader", "root",
                          "--end-date", "2029-12-31")
    assert code == 0, err
    assert "Created project p1234 (Diabetes and income)" in out
    zones = sqlite_services.config.zones_dir / "p1234"
    assert all((zones / name).is_dir() for name in ("data", "key", "export", "quarantine"))
    assert "warning: S5" in err  # key zone on the data zone's file system
    code, out, _ = _run(capsys, "--socket", str(server.path), "project", "list", "--json")
    assert code == 0 and [p["project"] for p in json.loads(out)] == ["p1234"]


def test_nobody_listening_on_a_stale_socket_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "stale.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()
    code, _, err = _run(capsys, "--socket", str(path), "status")
    assert code == 1
    line = _one_error_line(err)
    assert "vokterd is not running: nothing listens on" in line and "systemctl" in line


def test_missing_config_exits_1_with_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "--config", str(tmp_path / "absent.toml"), "status")
    assert code == 1
    line = _one_error_line(err)
    assert "no such config file" in line and "VOKTER_CONFIG" in line


def test_invalid_config_exits_1_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "vokter.toml"
    config.write_text('zone_dir = "/srv"\n')
    code, _, err = _run(capsys, "--config", str(config), "status")
    assert code == 1
    assert "zone_dir: unknown key" in _one_error_line(err)


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["project", "--help"]])
def test_help_and_version_exit_0(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, *argv)
    assert code == 0 and out and err == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--bogus"],
        ["project", "create"],
        ["project", "create", "p1", "--title"],
        ["project", "show"],
        ["project", "frobnicate"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "--socket", "/nonexistent/x.sock", *argv)
    assert code == 2
    lines = err.splitlines()
    assert lines[0].startswith("vokter: ")
    assert all(line.startswith("Try 'vokter") for line in lines[1:])
    assert out == ""


def test_a_group_without_a_subcommand_does_not_print_help_as_one_error_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = _run(capsys, "project")
    assert code == 2
    assert "Options:" not in err.splitlines()[0]
