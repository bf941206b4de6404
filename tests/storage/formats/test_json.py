"""JSON and JSON Lines (S4): records are tables judged by column, any other JSON is text whose
string and number leaves give single hits; a file named .json that is not JSON is unreadable,
a text that merely starts with a bracket is text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.storage.evidence import scan_text
from agent.storage.formats import Table, UnreadableFile, column_names, jsondoc, read_content
from tests.storage.formats.support import (
    TODAY,
    accounts,
    holds_no_identity_number,
    numbers,
    opened,
    text_of,
    verdicts,
)


def records(count: int, seed: int) -> list[dict[str, object]]:
    people, konto = numbers(count, seed), accounts(count, seed + 1)
    return [{"fnr": int(p), "kontonr": k, "svar": {"ja": True}, "vekt": 70.5}
            for p, k in zip(people, konto, strict=True)]


def test_s4_a_json_array_of_objects_is_a_table(tmp_path: Path) -> None:
    rows = records(200, 1)
    rows[5]["senere"] = "kommer for sent"  # keys after the first objects still count ...
    path = tmp_path / "uttrekk.json"
    path.write_text(json.dumps(rows, indent=2))
    verdict = verdicts(path)[""]
    assert verdict.identity_columns == ("fnr",)  # numbers that lost a leading zero included
    assert verdict.rows == 200 and verdict.columns[0].valid == 200
    with opened(path) as fd:
        assert column_names(fd, path.name) == (("", ("fnr", "kontonr", "svar", "vekt",
                                                     "senere")),)


def test_s4_a_json_array_is_streamed_across_read_windows(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    rows = records(60, 2)
    path = tmp_path / "smale-vinduer.json"
    path.write_text(json.dumps(rows))
    monkeypatch.setattr(jsondoc, "CHUNK_CHARS", 7)  # numbers and objects cut by every read
    with opened(path) as fd:
        [table] = read_content(fd, path.name)
        assert isinstance(table, Table)
        read = list(table.rows())
    assert [r[0] for r in read] == [str(r["fnr"]) for r in rows]
    assert read[0][2:] == ('{"ja":true}', "70.5")


def test_s4_json_lines_of_objects_is_a_table(tmp_path: Path) -> None:
    rows = records(150, 3)
    for name in ("logg.jsonl", "logg.json"):  # the content says JSON Lines, not the name
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")
        verdict = verdicts(path)[""]
        assert (verdict.identity_columns, verdict.rows) == (("fnr",), 150), name


def test_s4_nested_json_is_text_of_its_leaves(tmp_path: Path) -> None:
    a, b, c = numbers(3, 4)
    document = {"studie": "x", "deltakere": [{"id": a, "notat": f"bror {b}"}],
                "konto": int(accounts(1, 5)[0]), c: "a key is not a leaf"}
    path = tmp_path / "dokument.json"
    path.write_text(json.dumps(document))
    assert scan_text([text_of(path)], today=TODAY).hits == 2
    array = tmp_path / "liste.json"
    array.write_text(json.dumps([[a, 1], [int(b), 2]]))
    assert scan_text([text_of(array)], today=TODAY).hits == 2
    for written in (path, array):
        with opened(written) as fd:
            assert column_names(fd, written.name) == ()


def test_s4_a_file_named_json_that_is_not_json_is_unreadable_naming_no_number(
        tmp_path: Path) -> None:
    people = numbers(2, 6)
    path = tmp_path / "ødelagt.json"
    path.write_text(f'[{{"fnr": "{people[0]}"}}, {{"fnr": {people[1]} oops')
    with opened(path) as fd, pytest.raises(UnreadableFile, match=r"^json: ") as raised:
        for table in read_content(fd, path.name):
            list(table.rows())  # type: ignore[union-attr]
    assert holds_no_identity_number(str(raised.value), people)
    lines = tmp_path / "ødelagt.jsonl"
    lines.write_text(f'{{"fnr": "{people[0]}"}}\n{{"fnr": {people[1]}\n')
    with opened(lines) as fd, pytest.raises(UnreadableFile, match=r"^json lines: line 2 "):
        for table in read_content(fd, lines.name):
            list(table.rows())  # type: ignore[union-attr]


def test_s4_text_that_only_starts_like_json_is_text(tmp_path: Path) -> None:
    [person] = numbers(1, 7)
    path = tmp_path / "server.log"
    path.write_text(f"[2026-11-23 10:00] oppslag på {person}\n{{ikke json}}\n")
    assert scan_text([text_of(path)], today=TODAY).hits == 1
    with opened(path) as fd:
        assert column_names(fd, path.name) == ()
