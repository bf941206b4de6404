"""CSV, TSV and text files (S4): the identity-number column is found and counted whatever the
delimiter, quoting or encoding; bank account numbers and random 11-digit numbers are not one;
and a large file is read as a stream."""

from __future__ import annotations

import csv
import os
import random
import tracemalloc
from pathlib import Path

from agent.storage.evidence import scan_text
from agent.storage.formats import Table, column_names, read_content
from tests.storage.formats.support import (
    TODAY,
    accounts,
    numbers,
    opened,
    random_eleven,
    text_of,
    verdicts,
)


def write_rows(path: Path, rows: list[list[str]], *, delimiter: str = ",",
               encoding: str = "utf-8", quoting: int = csv.QUOTE_MINIMAL) -> Path:
    with path.open("w", newline="", encoding=encoding) as out:
        csv.writer(out, delimiter=delimiter, quoting=quoting).writerows(rows)
    return path


def columns_file(path: Path, count: int = 300, **options: object) -> Path:
    rnd = random.Random(7)
    rows = [["fnr", "kontonr", "tilfeldig", "hba1c"]]
    rows += [list(r) for r in zip(numbers(count, 1), accounts(count, 2), random_eleven(count, 3),
                                  [str(rnd.randint(30, 90)) for _ in range(count)], strict=True)]
    return write_rows(path, rows, **options)  # type: ignore[arg-type]


def test_s4_csv_identity_column_is_found_and_counted_and_its_neighbours_are_not(
        tmp_path: Path) -> None:
    path = columns_file(tmp_path / "uttrekk.csv")
    verdict = verdicts(path)[""]
    assert verdict.identity_columns == ("fnr",)
    assert verdict.rows == 300
    fnr, konto, tilfeldig, _ = verdict.columns
    assert fnr.valid == fnr.non_empty == 300
    assert konto.share < 0.2 and tilfeldig.share < 0.05


def test_s4_csv_with_semicolons_quotes_and_newlines_in_cells(tmp_path: Path) -> None:
    people = numbers(50, 4)
    rows = [["id;person", "kommentar", "fnr"]]
    rows += [[f"{i};x", 'sa "hei"\npå to linjer, og; mer', n] for i, n in enumerate(people)]
    path = write_rows(tmp_path / "semikolon.csv", rows, delimiter=";", encoding="utf-8-sig",
                      quoting=csv.QUOTE_ALL)
    with opened(path) as fd:
        [table] = read_content(fd, path.name)
        assert isinstance(table, Table)
        assert table.header == ("id;person", "kommentar", "fnr")  # no byte-order mark
        first = next(table.rows())
    assert first == ("0;x", 'sa "hei"\npå to linjer, og; mer', people[0])
    verdict = verdicts(path)[""]
    assert (verdict.identity_columns, verdict.rows) == (("fnr",), 50)


def test_s4_tsv_and_a_txt_that_parses_as_a_table(tmp_path: Path) -> None:
    tsv = columns_file(tmp_path / "uttrekk.tsv", delimiter="\t")
    piped = columns_file(tmp_path / "uttrekk.txt", delimiter="|")
    for path in (tsv, piped):
        verdict = verdicts(path)[""]
        assert verdict.identity_columns == ("fnr",), path.name
        assert verdict.rows == 300


def test_s4_rows_are_read_afresh_on_each_call_and_the_descriptor_is_left_alone(
        tmp_path: Path) -> None:
    path = columns_file(tmp_path / "to-ganger.csv", count=20)
    with opened(path) as fd:
        [table] = read_content(fd, path.name)
        assert isinstance(table, Table)
        first, second = table.rows(), table.rows()
        interleaved = list(zip(first, second, strict=True))  # two readers, one descriptor
        assert len(interleaved) == 20 and all(a == b for a, b in interleaved)
        assert os.lseek(fd, 0, os.SEEK_CUR) == 0
    with opened(path) as fd:
        assert column_names(fd, path.name) == (("", ("fnr", "kontonr", "tilfeldig", "hba1c")),)


def test_s4_prose_in_a_txt_is_text_and_its_single_hits_are_counted(tmp_path: Path) -> None:
    a, b = numbers(2, 5)
    path = tmp_path / "notat.txt"
    path.write_text(f"Pasienten med nummer {a} ringte.\nOgså {b[:6]} {b[6:]}, se journal.\n")
    text = text_of(path)
    assert scan_text([text], today=TODAY).hits == 2


def test_s4_latin1_text_is_read(tmp_path: Path) -> None:
    [a] = numbers(1, 6)
    path = tmp_path / "gammel.txt"
    path.write_bytes(f"Blåbærsyltetøy og æøå: {a}\n".encode("latin-1"))
    text = text_of(path)
    assert "Blåbærsyltetøy" in text
    assert scan_text([text], today=TODAY).hits == 1


def test_s4_latin1_csv_header_is_decoded(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    rows = [["fødselsnr", "størrelse"]] + [[n, "1"] for n in numbers(30, 8)]
    write_rows(path, rows, delimiter=";", encoding="latin-1")
    with opened(path) as fd:
        assert column_names(fd, path.name) == (("", ("fødselsnr", "størrelse")),)
    assert verdicts(path)[""].identity_columns == ("fødselsnr",)


def test_s4_binary_of_no_known_format_is_nothing_to_judge(tmp_path: Path) -> None:
    path = tmp_path / "bilde.csv"
    path.write_bytes(random.Random(9).randbytes(4096))
    with opened(path) as fd:
        assert read_content(fd, path.name) == []
        assert column_names(fd, path.name) == ()


def test_s4_a_50_mb_csv_is_streamed_in_memory_far_below_its_size(tmp_path: Path) -> None:
    path = tmp_path / "stor.csv"
    people = numbers(1000, 10)
    filler = "x" * 60
    with path.open("w", newline="") as out:
        out.write("fnr,beskrivelse,verdi\n")
        row = 0
        while out.tell() < 50 * 1024 * 1024:
            out.writelines(f"{people[(row + i) % 1000]},{filler},{i}\n" for i in range(10_000))
            row += 10_000
    size = path.stat().st_size
    tracemalloc.start()
    try:
        with opened(path) as fd:
            [table] = read_content(fd, path.name)
            assert isinstance(table, Table)
            count = sum(1 for _ in table.rows())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == row
    assert peak < size // 10, f"peak {peak} bytes for a {size}-byte file"


def test_s4_utf16_unicode_text_from_excel_is_a_table(tmp_path: Path) -> None:
    people = numbers(40, 11)
    path = write_rows(tmp_path / "unicode-tekst.txt", [["løpenr", "fnr"]] +
                      [[str(i), p] for i, p in enumerate(people)], delimiter="\t",
                      encoding="utf-16")
    with opened(path) as fd:
        assert column_names(fd, path.name) == (("", ("løpenr", "fnr")),)
    verdict = verdicts(path)[""]
    assert (verdict.identity_columns, verdict.rows) == (("fnr",), 40)
