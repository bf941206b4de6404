"""vokter dataset: reading the approved-variables file (one name a line, or a CSV/TSV header),
and the usage errors that stop a request before it is sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.commands.dataset import parse_variables
from cli.main import main

NO_DAEMON = "/nonexistent/vokterd.sock"  # a request would fail with exit 1, never 2


def test_d2_one_name_a_line_with_comments_and_blank_lines() -> None:
    text = "# NPR, application 2026-03\n\nlopenr\n  diagnose  \nkommune # approved later\n\n"
    assert parse_variables(text) == ["lopenr", "diagnose", "kommune"]


def test_d2_names_keep_their_spelling_and_a_byte_order_mark_is_not_a_name() -> None:
    assert parse_variables("\ufeffLøpenr\nKJØNN\n") == ["Løpenr", "KJØNN"]


def test_d2_a_csv_or_tsv_first_line_names_the_variables() -> None:
    assert parse_variables("lopenr,diagnose,kommune\n1,K35,0301\n", "a.csv") == [
        "lopenr", "diagnose", "kommune"]
    assert parse_variables("lopenr\tdiagnose\n1\tK35\n", "a.tsv") == ["lopenr", "diagnose"]
    assert parse_variables("lopenr;diagnose\n1;K35\n", "a.csv") == ["lopenr", "diagnose"]
    assert parse_variables('"lopenr","dato, innlagt"\n', "a.csv") == ["lopenr", "dato, innlagt"]


def test_d2_a_first_line_with_delimiters_is_a_header_whatever_the_file_is_called() -> None:
    assert parse_variables("# from the application\nlopenr; diagnose ;;\n1;2\n") == [
        "lopenr", "diagnose"]


def test_d2_a_one_column_csv_is_its_first_line_only() -> None:
    assert parse_variables("lopenr\n1\n2\n", "a.csv") == ["lopenr"]


def test_d2_a_file_of_comments_names_nothing() -> None:
    assert parse_variables("# nothing yet\n\n   \n") == []
    assert parse_variables("") == []


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["--socket", NO_DAEMON, *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_d2_a_missing_or_non_utf8_variables_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    delivered = tmp_path / "npr.csv"
    delivered.write_text("lopenr;diagnose\n")
    code, _, err = _run(capsys, "dataset", "add", "p1234", str(delivered), "--source", "NPR",
                        "--variables", str(tmp_path / "missing.txt"))
    assert code == 2 and err.strip() == f"vokter: {tmp_path / 'missing.txt'}: no such file"
    latin = tmp_path / "latin.txt"
    latin.write_bytes("kjønn\n".encode("latin-1"))
    code, _, err = _run(capsys, "dataset", "add", "p1234", str(delivered), "--source", "NPR",
                        "--variables", str(latin))
    assert code == 2 and err.strip() == f"vokter: {latin} is not UTF-8 text"


def test_d2_source_and_variables_are_required(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "dataset", "add", "p1234", "/x.csv", "--variables", "/v.txt")
    assert code == 2 and "--source" in err
    code, _, err = _run(capsys, "dataset", "add", "p1234", "/x.csv", "--source", "NPR")
    assert code == 2 and "--variables" in err


def test_d2_the_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("add", "list"):
        code, out, _ = _run(capsys, "dataset", command, "--help")
        assert code == 0 and "Examples:" in out and f"vokter dataset {command} p1234" in out
