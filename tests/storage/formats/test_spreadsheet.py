"""Excel workbooks (S4): every sheet is a table judged on its own; identity numbers typed as
numbers (a lost leading zero included) or as text are found; a broken workbook raises
UnreadableFile naming no number; a zip that is not a workbook is nothing to judge."""

from __future__ import annotations

import zipfile
from pathlib import Path

import openpyxl
import pytest

from agent.storage.formats import UnreadableFile, column_names, read_content
from tests.storage.formats.support import (
    accounts,
    holds_no_identity_number,
    numbers,
    opened,
    verdicts,
)


def workbook(path: Path, people: list[str]) -> Path:
    book = openpyxl.Workbook()
    personer = book.active
    assert personer is not None
    personer.title = "personer"
    personer.append(["fnr", "kontonr", "alder"])
    for person, account in zip(people, accounts(len(people), 2), strict=True):
        personer.append([int(person), account, 40])  # a number: leading zeros are lost
    prover = book.create_sheet("prøver")
    prover.append(["prøve-id", "verdi", None, None])  # trailing empty header cells
    for i in range(len(people)):
        prover.append([f"PR{i:05d}", i / 3])
    prover.append([])
    kontakt = book.create_sheet("kontakt")
    kontakt.append(["navn", "personnummer"])
    for person in people[:40]:
        kontakt.append(["Ola", person])  # text
    book.save(path)
    return path


def test_s4_each_sheet_of_a_workbook_is_judged_on_its_own(tmp_path: Path) -> None:
    people = numbers(120, 1)
    assert any(p.startswith("0") for p in people)
    path = workbook(tmp_path / "uttrekk.xlsx", people)
    found = verdicts(path)
    assert list(found) == ["personer", "prøver", "kontakt"]
    assert found["personer"].identity_columns == ("fnr",)
    assert found["personer"].columns[0].valid == 120
    assert found["personer"].columns[1].share < 0.2
    assert found["prøver"].identity_columns == ()
    assert found["prøver"].rows == 120  # the empty last row is not a row
    assert (found["kontakt"].identity_columns, found["kontakt"].rows) == (("personnummer",), 40)
    with opened(path) as fd:
        assert column_names(fd, path.name) == (
            ("personer", ("fnr", "kontonr", "alder")),
            ("prøver", ("prøve-id", "verdi")),
            ("kontakt", ("navn", "personnummer")))


def test_s4_a_broken_workbook_is_unreadable_and_the_error_names_no_number(
        tmp_path: Path) -> None:
    people = numbers(300, 3)
    path = workbook(tmp_path / "ødelagt.xlsx", people)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) * 2 // 3])
    with opened(path) as fd, pytest.raises(UnreadableFile) as raised:
        read_content(fd, path.name)
    assert str(raised.value).startswith(("zip: ", "excel: "))
    assert holds_no_identity_number(str(raised.value), people)

    damaged = tmp_path / "feil-inni.xlsx"
    with zipfile.ZipFile(workbook(tmp_path / "hel.xlsx", people)) as source, \
            zipfile.ZipFile(damaged, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename.startswith("xl/worksheets/"):
                data = data[: len(data) // 2]  # cut XML in the middle of a row
            target.writestr(item, data)
    with opened(damaged) as fd, pytest.raises(UnreadableFile, match=r"^excel: ") as raised:
        for table in read_content(fd, damaged.name):
            list(table.rows())  # type: ignore[union-attr]
    assert holds_no_identity_number(str(raised.value), people)


def test_s4_a_zip_that_is_not_a_workbook_is_nothing_to_judge(tmp_path: Path) -> None:
    path = tmp_path / "arkiv.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("word/document.xml", "<w:document/>")
    with opened(path) as fd:
        assert read_content(fd, path.name) == []
        assert column_names(fd, path.name) == ()
