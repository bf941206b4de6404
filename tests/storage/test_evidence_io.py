"""Gathering the evidence about one open file (S4, S5): the quick check that spares clean files
any parsing, the formats it cannot see into, a damaged file read as raw bytes, a sealed file."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from agent.crypto.keyset import Keyset, new_keyset
from agent.crypto.stream_io import encrypt_stream
from agent.crypto.wrapping import file_associated_data
from agent.storage.evidence_io import Gathered, gather
from tests.support.identity_numbers import valid_numbers as numbers

TODAY = date(2026, 11, 23)




def judged(folder: Path, name: str, content: bytes, keyset: Keyset | None = None) -> Gathered:
    path = folder / name
    path.write_bytes(content)
    fd = os.open(path, os.O_RDONLY)
    try:
        return gather(fd, project="p1", zone="data", path=str(path), info=os.fstat(fd),
                      keyset=lambda: keyset, today=TODAY, share=0.9)
    finally:
        os.close(fd)


def test_s4_a_file_with_no_candidate_at_all_is_judged_without_parsing(tmp_path: Path) -> None:
    clean = b"lopenr;vekt;dato\n" + b"".join(f"{i};{i % 90}.5;2020-01-0{i % 9 + 1}\n".encode()
                                             for i in range(5000))
    found = judged(tmp_path, "clean.csv", clean)
    assert found.quick and found.evidence.tables == () and found.evidence.text_hits == 0


def test_s4_an_identity_column_in_a_large_csv_is_found_from_its_first_rows(tmp_path: Path) -> None:
    rows = [f"{n};{i % 90}" for i, n in enumerate(numbers(3000, 1))]
    found = judged(tmp_path, "cohort.csv", ("fnr;vekt\n" + "\n".join(rows) + "\n").encode())
    [table] = found.evidence.tables
    assert table.identity_columns == ("fnr",) and not table.complete


def test_s4_utf16_text_is_parsed_though_the_quick_check_cannot_read_it(tmp_path: Path) -> None:
    text = "fnr\tvekt\n" + "".join(f"{n}\t70\n" for n in numbers(30, 2))
    found = judged(tmp_path, "export.tsv", text.encode("utf-16"))
    assert not found.quick
    assert [t.identity_columns for t in found.evidence.tables] == [("fnr",)]


def test_s4_a_damaged_parquet_file_is_read_as_raw_bytes(tmp_path: Path) -> None:
    table = pa.table({"fnr": numbers(50, 3), "x": list(range(50))})
    whole = tmp_path / "whole.parquet"
    pq.write_table(table, whole, compression="none")
    found = judged(tmp_path, "broken.parquet", whole.read_bytes()[:-40])
    assert found.fallback.startswith("parquet")
    assert found.evidence.text_hits > 0  # uncompressed strings still show their digits


def test_s3_a_file_sealed_with_the_project_key_is_not_read_further(tmp_path: Path) -> None:
    keyset = new_keyset(segment_size=4096)
    plain, sealed = tmp_path / "plain", tmp_path / "sealed"
    plain.write_bytes(("fnr\n" + "\n".join(numbers(40, 4)) + "\n").encode())
    with plain.open("rb") as src, sealed.open("wb") as dst:
        encrypt_stream(src.fileno(), dst.fileno(), keyset.primary, file_associated_data("p1"))
    assert judged(tmp_path, "c.csv.tink", sealed.read_bytes(), keyset).evidence.sealed
    other = new_keyset(segment_size=4096)
    assert not judged(tmp_path, "c.csv.tink", sealed.read_bytes(), other).evidence.sealed
