"""Parquet, Stata and SPSS files (S4): identity numbers stored as text, integers or doubles
are found and counted; their neighbours are not identity columns; a damaged file raises
UnreadableFile naming the format and no number."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pyreadstat
import pytest

from agent.storage.formats import UnreadableFile, column_names, columnar, read_content
from tests.storage.formats.support import (
    accounts,
    holds_no_identity_number,
    numbers,
    opened,
    random_eleven,
    verdicts,
)

COUNT = 250


def frame(seed: int) -> dict[str, list[object]]:
    rnd = random.Random(seed)
    return {
        "fnr": [float(n) for n in numbers(COUNT, seed)],
        "kontonr": [float(n) for n in accounts(COUNT, seed + 1)],
        "tilfeldig": [float(n) for n in random_eleven(COUNT, seed + 2)],
        "hba1c": [rnd.uniform(30, 90) for _ in range(COUNT)],
        "kjonn": [rnd.choice(["K", "M", ""]) for _ in range(COUNT)],
    }


def assert_only_fnr(path: Path) -> None:
    verdict = verdicts(path)[""]
    assert verdict.identity_columns == ("fnr",)
    assert verdict.rows == COUNT
    fnr, konto, tilfeldig, hba1c, _ = verdict.columns
    assert fnr.valid == fnr.non_empty == COUNT
    assert konto.share < 0.2 and tilfeldig.share < 0.05 and hba1c.valid == 0


def test_s4_parquet_by_row_groups_as_strings_and_integers(tmp_path: Path) -> None:
    data = frame(1)
    as_text = pa.table({**data, "fnr": [f"{int(v):011d}" for v in data["fnr"]]})
    as_integers = pa.table({**data, "fnr": pa.array([int(v) for v in data["fnr"]], pa.int64()),
                            "kontonr": pa.array([int(v) for v in data["kontonr"]], pa.int64())})
    for name, table in (("tekst.parquet", as_text), ("heltall.parquet", as_integers),
                        ("egentlig-parquet.csv", as_text)):  # content decides, not the name
        path = tmp_path / name
        pq.write_table(table, path, row_group_size=60)
        assert_only_fnr(path)
        with opened(path) as fd:
            assert column_names(fd, path.name) == (("", tuple(data)),)


@pytest.mark.parametrize("version", [8, 12, 15])
def test_s4_stata_identity_numbers_stored_as_doubles_come_out_whole(
        tmp_path: Path, version: int) -> None:
    path = tmp_path / f"uttrekk{version}.dta"
    pyreadstat.write_dta(pd.DataFrame(frame(2)), str(path), version=version)
    assert_only_fnr(path)
    with opened(path) as fd:
        [table] = read_content(fd, path.name)
        first = next(table.rows())  # type: ignore[union-attr]
    assert first[0] == str(int(frame(2)["fnr"][0]))  # "12345678901", not "1.2345678901e10"


@pytest.mark.parametrize("name", ["uttrekk.sav", "komprimert.zsav"])
def test_s4_spss_files_plain_and_compressed(tmp_path: Path, name: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / name
    pyreadstat.write_sav(pd.DataFrame(frame(3)), str(path), compress=name.endswith(".zsav"))
    monkeypatch.setattr(columnar, "BATCH_ROWS", 100)  # several chunks, one cut mid-file
    assert_only_fnr(path)


def test_s4_a_truncated_parquet_file_is_unreadable_and_the_error_names_no_number(
        tmp_path: Path) -> None:
    data = frame(4)
    people = [f"{int(v):011d}" for v in data["fnr"]]
    path = tmp_path / "avkuttet.parquet"
    pq.write_table(pa.table({**data, "fnr": people}), path, row_group_size=50)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    with opened(path) as fd, pytest.raises(UnreadableFile) as raised:
        for content in read_content(fd, path.name):
            list(content.rows())  # type: ignore[union-attr]
    message = str(raised.value)
    assert message.startswith("parquet: ")
    assert holds_no_identity_number(message, people)


def test_s4_a_truncated_stata_file_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "avkuttet.dta"
    pyreadstat.write_dta(pd.DataFrame(frame(5)), str(path))
    path.write_bytes(path.read_bytes()[:2000])
    with opened(path) as fd, pytest.raises(UnreadableFile, match=r"^stata: "):
        for content in read_content(fd, path.name):
            list(content.rows())  # type: ignore[union-attr]
