"""vokter violations: usage errors stop a request before it is sent, and the help shows
examples. What the daemon answers is tested in tests/storage/test_violation_ops.py."""

from __future__ import annotations

import pytest

from cli.main import main

NO_DAEMON = "/nonexistent/vokterd.sock"  # a request would fail with exit 1, never 2


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["--socket", NO_DAEMON, *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.mark.parametrize("bad", ["seven", "0", "-3"])
def test_violations_a_violation_id_is_a_positive_number(bad: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "violations", "resolve", bad, "--note", "fixed")
    assert code == 2 and err.startswith("vokter: ")


def test_violations_resolving_needs_a_note(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "violations", "resolve", "7")
    assert code == 2 and "--note" in err


def test_violations_a_request_that_cannot_reach_the_daemon_exits_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = _run(capsys, "violations", "list", "--open")
    assert code == 1 and len(err.splitlines()) == 1 and "vokterd is not running" in err


def test_violations_the_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("list", "resolve"):
        code, out, _ = _run(capsys, "violations", command, "--help")
        assert code == 0 and "Examples:" in out and f"vokter violations {command}" in out
