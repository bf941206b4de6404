"""vokter access review/check: usage errors before any request, what is sent over the wire, and
how the contract's results are shown (table, tab-separated, JSON, CSV an auditor can load)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.services import Services
from cli.main import main
from tests.cli.wire import ContractDaemon, contract_daemon

NO_DAEMON = "/nonexistent/vokterd.sock"  # a request would fail with exit 1, never 2

REVIEW: list[dict[str, Any]] = [
    {"project": "p1234", "user": "alice", "uid": 1001, "role": "member", "granted_by": "leia",
     "reason": "PhD student, cohort \"A\"", "since": "2026-01-05T09:00:00+00:00",
     "until": None, "ended_by": None, "end_reason": None, "status": "active"},
    {"project": "p1234", "user": "bob", "uid": 1002, "role": "key_custodian",
     "granted_by": "leia", "reason": "linkage key\nsecond line",
     "since": "2026-01-05T09:00:00+00:00", "until": "2026-06-30T17:00:00+00:00",
     "ended_by": "leia", "end_reason": "left, moved to Bergen", "status": "removed"},
]

CHECKED = {
    "project": "p1234", "checked": 12, "repaired": 2,
    "drift": [
        {"path": "/srv/vokter/p1234/data/cohort\n\x1b[2J.csv", "found": "user:mallory:r--",
         "set": None},
        {"path": "/srv/vokter/p1234/data", "found": ["user:alice:r-x"],
         "set": ["user:alice:rwx", "default:user:alice:rwx"]},
    ],
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@pytest.fixture
def daemon(sqlite_services: Services, socket_dir: Path) -> Iterator[ContractDaemon]:
    answers = {"access.review": REVIEW, "access.check": CHECKED}
    with contract_daemon(sqlite_services, socket_dir, answers) as running:
        yield running


@pytest.mark.parametrize("command", ["review", "check"])
def test_every_access_command_has_help_with_examples(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "access", command, "--help")
    assert code == 0 and err == ""
    assert "Examples:" in out and f"vokter access {command} p1234" in out


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["review", "p1234", "--json", "--csv"], "--json and --csv"),
        (["review", "--csv", "--json"], "--json and --csv"),
        (["check"], "PROJECT"),
        (["review", "p1", "p2"], "p2"),
    ],
)
def test_contradictory_or_incomplete_access_commands_are_usage_errors(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--socket", NO_DAEMON, "access", *argv)
    assert code == 2 and out == ""
    assert err.startswith("vokter: ") and named in err.splitlines()[0]


def test_a2_review_sends_the_project_or_nothing(
    daemon: ContractDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "--socket", str(daemon.path), "access", "review", "p1234")[0] == 0
    assert run(capsys, "--socket", str(daemon.path), "access", "review")[0] == 0
    assert daemon.calls == [("access.review", {"project": "p1234"}), ("access.review", {})]


def test_a2_review_in_a_pipe_is_one_tab_separated_line_per_grant(
    daemon: ContractDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--socket", str(daemon.path), "access", "review", "p1234")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2  # the newline inside bob's reason does not split his record
    assert lines[1].split("\t")[7] == "linkage key second line"
    assert lines[0].split("\t") == [
        "p1234", "alice", "member", "active", "2026-01-05T09:00:00+00:00", "-", "leia",
        "PhD student, cohort \"A\"", "-", "-",
    ]
    assert lines[1].split("\t")[:6] == [
        "p1234", "bob", "key_custodian", "removed", "2026-01-05T09:00:00+00:00",
        "2026-06-30T17:00:00+00:00",
    ]
    assert lines[1].split("\t")[8:] == ["leia", "left, moved to Bergen"]


def test_a2_review_on_a_terminal_is_a_table_with_headings(
    daemon: ContractDaemon, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("cli.output.on_terminal", lambda: True)
    code, out, _ = run(capsys, "--socket", str(daemon.path), "access", "review", "p1234")
    assert code == 0
    heading = [cell.strip() for cell in out.splitlines()[0].split("┃")]
    assert heading == ["PROJECT", "USER", "ROLE", "STATUS", "SINCE", "UNTIL", "GRANTED-BY",
                       "REASON", "ENDED-BY", "END-REASON"]
    assert "removed" in out and "left, moved to Bergen" in out


def test_a2_review_csv_is_read_back_whole_by_a_csv_reader(
    daemon: ContractDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--socket", str(daemon.path), "access", "review", "--csv")
    assert code == 0, err
    reader = csv.DictReader(io.StringIO(out, newline=""))
    assert reader.fieldnames == ["project", "user", "uid", "role", "status", "granted_by",
                                 "reason", "since", "until", "ended_by", "end_reason"]
    rows = list(reader)
    expected = [{key: "" if value is None else str(value) for key, value in row.items()}
                for row in REVIEW]
    assert rows == expected  # commas, quotes and a newline inside a field survive


def test_a2_review_json_and_an_empty_review(
    sqlite_services: Services, socket_dir: Path, daemon: ContractDaemon,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "--socket", str(daemon.path), "access", "review", "--json")
    assert code == 0 and json.loads(out) == REVIEW
    with contract_daemon(sqlite_services, socket_dir, {"access.review": []}) as empty:
        code, out, err = run(capsys, "--socket", str(empty.path), "access", "review", "p9")
        assert code == 0 and out == "" and err == "No one has had access to p9.\n"
        code, out, _ = run(capsys, "--socket", str(empty.path), "access", "review", "--csv")
    assert code == 0
    assert out.splitlines() == ["project,user,uid,role,status,granted_by,reason,since,until,"
                                "ended_by,end_reason"]


def test_check_reports_the_counts_and_each_drift(
    daemon: ContractDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--socket", str(daemon.path), "access", "check", "p1234")
    assert code == 0, err
    assert daemon.calls == [("access.check", {"project": "p1234"})]
    assert out.splitlines() == [
        "checked 12 entries, repaired 2",
        "/srv/vokter/p1234/data/cohort  [2J.csv: found user:mallory:r--, set none",
        "/srv/vokter/p1234/data: found user:alice:r-x, set user:alice:rwx,default:user:alice:rwx",
    ]


def test_check_json_prints_the_result(
    daemon: ContractDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--socket", str(daemon.path), "access", "check", "p1234", "--json")
    assert code == 0 and json.loads(out) == CHECKED
