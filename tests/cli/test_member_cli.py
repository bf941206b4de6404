"""vokter member add/remove/list: usage errors before any request, what is sent over the wire,
and how the contract's results are shown (line, table, tab-separated, JSON, A3 warnings)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.errors import PermissionDenied
from agent.services import Services
from cli.main import main
from tests.cli.wire import ContractDaemon, contract_daemon

NO_DAEMON = "/nonexistent/vokterd.sock"  # a request would fail with exit 1, never 2

ADDED = {
    "project": "p1234", "user": "alice", "uid": 1001, "role": "member",
    "expires": "2027-01-31", "granted_by": "leia", "reason": "PhD student",
    "granted_at": "2026-11-23T12:00:00+00:00", "acl": {"checked": 4, "changed": 4},
}

HOLDERS = [
    {"pid": 4242, "user": "alice", "program": "R",
     "paths": ["/srv/vokter/p1234/data/cohort.csv", "/srv/vokter/p1234/data/evil\n\x1b[2J"]},
    {"pid": 4250, "user": "alice", "program": "bash",
     "paths": ["cwd:/srv/vokter/p1234/data/work"]},
]


def removed(*, processes: list[dict[str, Any]], terminated: list[int],
            role: str | None = None) -> dict[str, Any]:
    return {
        "project": "p1234", "user": "alice", "role": role,
        "revoked_at": "2026-11-23T12:00:00+00:00", "handed_over": 3,
        "processes": processes, "terminated": terminated,
        "acl": {"checked": 12, "changed": 5}, "effective_ms": 8.4,
    }


MEMBERS = [
    {"user": "alice", "uid": 1001, "role": "member", "granted_by": "leia",
     "reason": "PhD student, cohort analysis", "granted_at": "2026-11-01T09:00:00+00:00",
     "expires": "2027-01-31"},
    {"user": "bob", "uid": 1002, "role": "key_custodian", "granted_by": "leia",
     "reason": "holds the\x1b[31m linkage\nkey", "granted_at": "2026-11-02T10:00:00+00:00",
     "expires": None},
]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@pytest.fixture
def daemon(sqlite_services: Services, socket_dir: Path) -> Iterator[ContractDaemon]:
    answers = {
        "member.add": lambda args: {**ADDED, "role": args.role, "expires": args.expires},
        "member.remove": removed(processes=HOLDERS, terminated=[]),
        "member.list": MEMBERS,
    }
    with contract_daemon(sqlite_services, socket_dir, answers) as running:
        yield running


@pytest.mark.parametrize("command", ["add", "remove", "list"])
def test_every_member_command_has_help_with_examples(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "member", command, "--help")
    assert code == 0 and err == ""
    assert "Examples:" in out and f"vokter member {command} p1234" in out


def test_member_is_a_command_of_vokter(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "member" in out and "access" in out


def test_an_unknown_role_is_a_usage_error_naming_the_roles(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "--socket", NO_DAEMON, "member", "add", "p1234", "alice",
                         "--role", "owner", "--reason", "x")
    assert code == 2 and out == ""
    first = err.splitlines()[0]
    assert first.startswith("vokter: ") and "owner" in first
    assert all(role in first for role in ("'member'", "'key_custodian'", "'auditor'"))


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["add", "p1234", "alice", "--role", "member"], "--reason"),
        (["add", "p1234", "alice", "--reason", "PhD student"], "--role"),
        (["remove", "p1234", "alice"], "--reason"),
        (["remove", "p1234", "alice", "--reason", "left", "--role", "leader"], "leader"),
        (["add", "p1234"], "USER"),
        (["list"], "PROJECT"),
    ],
)
def test_incomplete_member_commands_are_usage_errors(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--socket", NO_DAEMON, "member", *argv)
    assert code == 2 and out == ""
    assert err.startswith("vokter: ") and named in err.splitlines()[0]


def test_add_sends_the_contract_and_confirms_in_one_line(
    daemon: ContractDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--socket", str(daemon.path), "member", "add", "p1234", "alice",
                         "--role", "member", "--expires", "2027-01-31",
                         "--reason", "PhD student")
    assert code == 0, err
    assert daemon.calls == [("member.add", {"project": "p1234", "user": "alice",
                                            "role": "member", "expires": "2027-01-31",
                                            "reason": "PhD student"})]
    assert out == "granted member access to p1234 for alice (expires 2027-01-31)\n"


def test_add_without_expiry_sends_none_and_says_so(
    daemon: ContractDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--socket", str(daemon.path), "member", "add", "p1234", "alice",
                         "--role", "key_custodian", "--reason", "holds the linkage key")
    assert code == 0, err
    assert "expires" not in daemon.calls[0][1]
    assert out == "granted key_custodian access to p1234 for alice (no expiry date)\n"


def test_add_json_prints_the_result(
    daemon: ContractDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--socket", str(daemon.path), "member", "add", "p1234", "alice",
                       "--role", "auditor", "--reason", "audit", "--json")
    assert code == 0
    assert json.loads(out) == {**ADDED, "role": "auditor", "expires": None}


def test_a_refusal_from_the_daemon_is_one_line_and_exit_1(
    sqlite_services: Services, socket_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(_args: Any) -> Any:
        raise PermissionDenied("only the leader of p1234 may grant access", rule="A1")

    with contract_daemon(sqlite_services, socket_dir, {"member.add": refuse}) as daemon:
        code, out, err = run(capsys, "--socket", str(daemon.path), "member", "add", "p1234",
                             "alice", "--role", "member", "--reason", "x")
    assert code == 1 and "granted" not in out
    assert err.splitlines() == ["vokter: only the leader of p1234 may grant access (A1)"]


def test_a3_remove_warns_about_processes_still_holding_files_and_how_to_end_them(
    daemon: ContractDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--socket", str(daemon.path), "member", "remove", "p1234",
                         "alice", "--reason", "left the project")
    assert code == 0, err
    assert daemon.calls == [("member.remove", {"project": "p1234", "user": "alice",
                                               "reason": "left the project",
                                               "terminate": False})]
    assert out.splitlines() == [
        "ended alice's access to p1234 (effective in 8 ms)",
        "3 files handed over to the project leader",
    ]
    assert err.splitlines() == [
        "warning: 2 processes of alice still hold files of p1234 (A3):",
        "  pid 4242 R: /srv/vokter/p1234/data/cohort.csv, /srv/vokter/p1234/data/evil  [2J",
        "  pid 4250 bash: cwd:/srv/vokter/p1234/data/work",
        "  to end them, re-run with --terminate: vokter member remove p1234 alice "
        "--reason 'left the project' --terminate",
    ]


def test_a3_remove_with_terminate_names_the_ended_processes(
    sqlite_services: Services, socket_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = {"member.remove": removed(processes=HOLDERS, terminated=[4242, 4250],
                                        role="member")}
    with contract_daemon(sqlite_services, socket_dir, answers) as daemon:
        code, out, err = run(capsys, "--socket", str(daemon.path), "member", "remove",
                             "p1234", "alice", "--reason", "left", "--role", "member",
                             "--terminate")
    assert code == 0, err
    assert daemon.calls[0][1] == {"project": "p1234", "user": "alice", "role": "member",
                                  "reason": "left", "terminate": True}
    assert out.splitlines() == [
        "ended alice's member access to p1234 (effective in 8 ms)",
        "3 files handed over to the project leader",
        "ended 2 processes: 4242, 4250",
    ]
    assert err == ""


def test_a3_remove_with_terminate_warns_about_a_process_that_survived(
    sqlite_services: Services, socket_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = {"member.remove": removed(processes=HOLDERS, terminated=[4250])}
    with contract_daemon(sqlite_services, socket_dir, answers) as daemon:
        code, out, err = run(capsys, "--socket", str(daemon.path), "member", "remove",
                             "p1234", "alice", "--reason", "left", "--terminate")
    assert code == 0
    assert "ended 1 process: 4250" in out.splitlines()
    assert err.splitlines() == [
        "warning: 1 process of alice could not be ended and still holds files of p1234 (A3):",
        "  pid 4242 R: /srv/vokter/p1234/data/cohort.csv, /srv/vokter/p1234/data/evil  [2J",
    ]


def test_remove_without_processes_prints_no_warning(
    sqlite_services: Services, socket_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = {"member.remove": {**removed(processes=[], terminated=[]), "handed_over": 1}}
    with contract_daemon(sqlite_services, socket_dir, answers) as daemon:
        code, out, err = run(capsys, "--socket", str(daemon.path), "member", "remove",
                             "p1234", "alice", "--reason", "left")
    assert code == 0 and err == ""
    assert out.splitlines()[1] == "1 file handed over to the project leader"


def test_remove_json_prints_the_result_and_no_warning_text(
    daemon: ContractDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--socket", str(daemon.path), "member", "remove", "p1234",
                         "alice", "--reason", "left", "--json")
    assert code == 0 and err == ""
    assert json.loads(out) == removed(processes=HOLDERS, terminated=[])


def test_list_in_a_pipe_is_one_tab_separated_line_per_member(
    daemon: ContractDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--socket", str(daemon.path), "member", "list", "p1234")
    assert code == 0, err
    assert daemon.calls == [("member.list", {"project": "p1234"})]
    assert [line.split("\t") for line in out.splitlines()] == [
        ["alice", "member", "2026-11-01T09:00:00+00:00", "2027-01-31", "leia",
         "PhD student, cohort analysis"],
        ["bob", "key_custodian", "2026-11-02T10:00:00+00:00", "-", "leia",
         "holds the [31m linkage key"],  # other people's text cannot steer the terminal
    ]


def test_list_on_a_terminal_is_a_table_with_headings(
    daemon: ContractDaemon, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("cli.output.on_terminal", lambda: True)
    code, out, _ = run(capsys, "--socket", str(daemon.path), "member", "list", "p1234")
    assert code == 0
    heading = [cell.strip() for cell in out.splitlines()[0].split("┃")]
    assert heading == ["USER", "ROLE", "SINCE", "EXPIRES", "GRANTED-BY", "REASON"]
    assert "key_custodian" in out and "PhD student" in out and "\t" not in out
    assert "\x1b[31m" not in out


def test_list_json_and_empty_list(
    sqlite_services: Services, socket_dir: Path, daemon: ContractDaemon,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "--socket", str(daemon.path), "member", "list", "p1234", "--json")
    assert code == 0 and json.loads(out) == MEMBERS
    with contract_daemon(sqlite_services, socket_dir, {"member.list": []}) as empty:
        code, out, err = run(capsys, "--socket", str(empty.path), "member", "list", "p1234")
    assert code == 0 and out == ""
    assert err == "No one has access to p1234.\n"
