"""Exit codes and the wire form of errors, and how the CLI turns errors into one line.

The exit codes are a contract (DESIGN.md, "Interfaces that are contracts"): 0 ok, 1 refused or
failed with a clear message, 2 usage error. Errors cross the socket as JSON and must come back
as the same class, with the same message, rule ID and hint.
"""

from __future__ import annotations

import json

import pytest

import agent.errors as errors
from agent.errors import (
    AlreadyExists,
    AnonymisationImpossible,
    AuditDamaged,
    AuditUnavailable,
    ConfigError,
    DaemonUnreachable,
    DecryptionFailed,
    Failed,
    InvalidRequest,
    KeyDestroyed,
    KeyStoreUnavailable,
    NotFound,
    PermissionDenied,
    PolicyInvalid,
    ProtocolError,
    Refused,
    RuleViolation,
    StoreError,
    UsageError,
    VokterError,
    error_from_wire,
)
from cli.main import main

#: Every concrete error, with the exit code and outcome it must carry. Written out on purpose:
#: a new error class makes ``test_every_error_class_is_pinned`` fail until it is added here.
EXPECTED: dict[type[VokterError], tuple[int, str]] = {
    Refused: (1, "refused"),
    PermissionDenied: (1, "refused"),
    NotFound: (1, "refused"),
    AlreadyExists: (1, "refused"),
    InvalidRequest: (1, "refused"),
    RuleViolation: (1, "refused"),
    PolicyInvalid: (1, "refused"),
    ProtocolError: (1, "refused"),
    DecryptionFailed: (1, "refused"),
    KeyDestroyed: (1, "refused"),
    AnonymisationImpossible: (1, "refused"),
    Failed: (1, "failed"),
    AuditUnavailable: (1, "failed"),
    AuditDamaged: (1, "failed"),
    KeyStoreUnavailable: (1, "failed"),
    StoreError: (1, "failed"),
    ConfigError: (1, "failed"),
    DaemonUnreachable: (1, "failed"),
    UsageError: (2, "refused"),
}

SIMPLE = [cls for cls in EXPECTED if cls is not PolicyInvalid]


def _all_error_classes() -> set[type[VokterError]]:
    found: set[type[VokterError]] = set()
    todo = [VokterError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__ == errors.__name__:
                found.add(sub)
                todo.append(sub)
    return found


def test_every_error_class_is_pinned() -> None:
    assert _all_error_classes() == set(EXPECTED)


def test_exit_code_constants_match_the_contract() -> None:
    assert (errors.EXIT_OK, errors.EXIT_REFUSED, errors.EXIT_USAGE) == (0, 1, 2)


@pytest.mark.parametrize("cls", list(EXPECTED), ids=lambda c: c.__name__)
def test_exit_code_and_outcome_of_each_error_class(cls: type[VokterError]) -> None:
    if cls is PolicyInvalid:
        error: VokterError = PolicyInvalid([("storage.x", "unknown key")])
    else:
        error = cls("something")
    assert (error.exit_code, error.outcome) == EXPECTED[cls]
    assert error.to_wire()["exit"] == EXPECTED[cls][0]


def test_refused_and_failed_families() -> None:
    for cls in (PermissionDenied, NotFound, AlreadyExists, InvalidRequest, RuleViolation,
                PolicyInvalid, ProtocolError):
        assert issubclass(cls, Refused)
    for cls in (AuditUnavailable, StoreError, ConfigError, DaemonUnreachable):
        assert issubclass(cls, Failed)
    assert not issubclass(UsageError, Refused | Failed)


@pytest.mark.parametrize("cls", SIMPLE, ids=lambda c: c.__name__)
def test_wire_round_trip_keeps_type_message_rule_and_hint(cls: type[VokterError]) -> None:
    sent = cls("the key zone lies inside the data zone", rule="S5", hint="use --key-dir")
    wire = json.loads(json.dumps(sent.to_wire()))  # as it crosses the socket
    back = error_from_wire(wire)
    assert type(back) is cls
    assert (back.message, back.rule, back.hint) == (sent.message, "S5", "use --key-dir")
    assert back.exit_code == sent.exit_code
    assert back.one_line() == sent.one_line()


@pytest.mark.parametrize("cls", SIMPLE, ids=lambda c: c.__name__)
def test_wire_round_trip_without_rule_or_hint(cls: type[VokterError]) -> None:
    back = error_from_wire(json.loads(json.dumps(cls("plain").to_wire())))
    assert type(back) is cls
    assert (back.message, back.rule, back.hint) == ("plain", None, None)


def test_policy_invalid_keeps_every_issue_across_the_wire() -> None:
    issues = [("storage.key_separation", "must be one of ..."), ("audit.hash", "unknown (A2)")]
    sent = PolicyInvalid(issues, source="/etc/vokter/policies/site.toml")
    back = error_from_wire(json.loads(json.dumps(sent.to_wire())))
    assert type(back) is PolicyInvalid
    assert isinstance(back, PolicyInvalid)
    assert back.issues == issues
    assert back.message == sent.message
    assert back.message.startswith("/etc/vokter/policies/site.toml: storage.key_separation")
    assert "(and 1 more)" in back.message
    assert back.hint == sent.hint and back.hint is not None
    assert back.exit_code == 1


def test_policy_invalid_ignores_malformed_issues_from_the_wire() -> None:
    back = error_from_wire({"type": "PolicyInvalid", "message": "m",
                            "issues": [["a", "b"], ["only one"], "text", ["x", "y", "z"]]})
    assert isinstance(back, PolicyInvalid)
    assert back.issues == [("a", "b")]


@pytest.mark.parametrize("name", ["NoSuchError", "", "KeyError", "object", None])
def test_unknown_wire_type_becomes_failed(name: str | None) -> None:
    back = error_from_wire({"type": name, "message": "odd", "rule": "L3", "hint": "h"})
    assert type(back) is Failed
    assert (back.message, back.rule, back.hint, back.exit_code) == ("odd", "L3", "h", 1)


def test_wire_error_without_message_still_reads_as_a_sentence() -> None:
    back = error_from_wire({})
    assert type(back) is Failed
    assert back.message and "error" in back.message


def test_one_line_is_a_single_line_with_message_rule_and_hint() -> None:
    error = RuleViolation("end date\n2020-01-01   is\tin the past", rule="L1",
                          hint="give the end date\nof the REK approval")
    line = error.one_line()
    assert "\n" not in line and "\t" not in line and "  " not in line
    assert line == ("end date 2020-01-01 is in the past (L1); "
                    "give the end date of the REK approval")


@pytest.mark.parametrize(
    "message",
    ["the key zone lies inside the data zone", "the key zone lies inside the data zone (S5)"],
)
def test_one_line_names_the_rule_id_once(message: str) -> None:
    line = InvalidRequest(message, rule="S5", hint="give each zone its own directory").one_line()
    assert line.count("S5") == 1
    assert "(S5)" in line


def test_one_line_without_rule_has_no_empty_parentheses() -> None:
    assert Failed("broken").one_line() == "broken"
    assert "()" not in Failed("broken", hint="retry").one_line()


def test_messages_are_kept_in_repr_and_str() -> None:
    error = NotFound("no project p9")
    assert str(error) == "no project p9"
    assert "NotFound" in repr(error) and "p9" in repr(error)


# --- the CLI: errors become one line and an exit code, never a traceback ----------------------


def _stderr_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert 'File "' not in err
    return err.splitlines()


def _assert_one_error_line(lines: list[str]) -> str:
    """Exactly one 'vokter: ...' line; the only other line allowed is the '--help' pointer."""
    assert lines, "nothing on stderr"
    assert lines[0].startswith("vokter: ")
    for extra in lines[1:]:
        assert extra.startswith("Try 'vokter") and extra.endswith("--help' for help."), lines
    return lines[0]


@pytest.fixture(autouse=True)
def _no_config_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOKTER_CONFIG", raising=False)


def test_cli_unknown_option_is_usage_error_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--no-such-option", "status"]) == 2
    line = _assert_one_error_line(_stderr_lines(capsys))
    assert "--no-such-option" in line


def test_cli_missing_title_is_usage_error_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--socket", "/nonexistent/x.sock", "project", "create", "p1234",
                 "--leader", "root", "--end-date", "2030-01-01"])
    assert code == 2  # refused by the parser, before any attempt to reach the daemon
    line = _assert_one_error_line(_stderr_lines(capsys))
    assert "--title" in line
    assert "not running" not in line


def test_cli_unknown_command_is_usage_error_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    assert "no-such-command" in _assert_one_error_line(_stderr_lines(capsys))


def test_cli_daemon_not_running_exit_1_with_what_to_do(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--socket", "/nonexistent/x.sock", "status"]) == 1
    lines = _stderr_lines(capsys)
    assert len(lines) == 1
    line = lines[0]
    assert line.startswith("vokter: ")
    assert "vokterd is not running" in line
    assert "/nonexistent/x.sock" in line
    assert "systemctl" in line or "vokterd --config" in line


def test_an_identity_number_in_a_message_or_hint_is_masked_for_every_error() -> None:
    from agent.errors import InvalidRequest

    error = InvalidRequest("'01019912345' is not a project id", hint="not 010199 12345 either")
    assert "01019912345" not in error.one_line()
    assert "12345" not in str(error.to_wire())
    assert error.message == "'[id-number]' is not a project id"
