"""Bad input and unsafe output for the table readers and writer (L7, issue 8 point 9): an
unreadable input is one clear line and changes nothing; the input is never the output; a
failed write leaves nothing half written. Every file here is real, made in tmp_path."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import polars as pl
import pyreadstat
import pytest

from agent.anonymise.tables import read_table, write_table
from agent.errors import AlreadyExists, Failed, InvalidRequest


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def stata_file(tmp_path: Path) -> Path:
    path = tmp_path / "survey.dta"
    pyreadstat.write_dta(pl.DataFrame({"sex": [1, 2, 2], "kommune": ["0301", "1103", "5001"]}),
                         path, variable_value_labels={"sex": {1: "Mann", 2: "Kvinne"}},
                         file_label="Helseundersøkelsen 2020")
    return path


# --- unreadable input: one line, nothing changed ----------------------------------------------


def unreadable_inputs(tmp_path: Path) -> dict[str, Path]:
    cases = {
        "empty.csv": b"",
        "garbage.csv": bytes(range(256)) * 4,
        "short_row.csv": b"a;b;c\n1;2;3\n4;5\n",
        "long_row.csv": b"a;b\n1;2\n3;4;5\n",
        "blank_line.csv": b"a;b\n1;2\n\n3;4\n",
        "quoted_short_row.csv": b'a;b\n"1;x";2\n"3"\n',
        "twice.csv": b"a;a\n1;2\n",
        "table.parquet": b"a;b\n1;2\n",
        "truncated.parquet": b"PAR1" + b"\x00" * 64,
        "wrong_magic.dta": b"PAR1 not stata at all",
        "truncated.dta": b"<stata_dta><header><release>118</release>",
        "wrong_magic.sav": b"<stata_dta>",
        "truncated.sav": b"$FL2@(#) IBM SPSS STATISTICS",
        "parquet_named.csv": b"PAR1\x00\x00",
        "table.xlsx": b"PK\x03\x04",
        "no_extension": b"a;b\n1;2\n",
    }
    paths = {}
    for name, data in cases.items():
        path = tmp_path / "inputs" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        paths[name] = path
    return paths


def test_l7_every_unreadable_input_is_one_clear_line_and_changes_nothing(tmp_path: Path) -> None:
    paths = unreadable_inputs(tmp_path)
    paths["missing.csv"] = tmp_path / "inputs" / "missing.csv"
    paths["folder.csv"] = tmp_path / "inputs" / "folder.csv"
    paths["folder.csv"].mkdir()
    os.mkfifo(tmp_path / "inputs" / "pipe.csv")
    paths["pipe.csv"] = tmp_path / "inputs" / "pipe.csv"
    before = {p: digest(p) for p in paths.values() if p.is_file()}
    listing = sorted(os.listdir(tmp_path / "inputs"))
    for name, path in paths.items():
        with pytest.raises(InvalidRequest) as caught:
            read_table(path)
        line = caught.value.one_line()
        assert "\n" not in line and str(path) in line, name
        assert "Traceback" not in line
    assert {p: digest(p) for p in before} == before
    assert sorted(os.listdir(tmp_path / "inputs")) == listing


def test_l7_unreadable_input_says_which_record_is_wrong(tmp_path: Path) -> None:
    paths = unreadable_inputs(tmp_path)
    with pytest.raises(InvalidRequest, match="record 3 has 2 fields, the header has 3"):
        read_table(paths["short_row.csv"])
    with pytest.raises(InvalidRequest, match="record 3 has 1 fields, the header has 2"):
        read_table(paths["quoted_short_row.csv"])
    with pytest.raises(InvalidRequest, match="not a CSV, Parquet, Stata or SPSS file"):
        read_table(paths["garbage.csv"])


# --- the input is never the output; nothing is half written -----------------------------------


def test_l7_output_that_is_the_input_is_refused_by_any_name(stata_file: Path,
                                                          tmp_path: Path) -> None:
    source = read_table(stata_file)
    before = digest(stata_file)
    (tmp_path / "link.dta").symlink_to(stata_file)
    os.link(stata_file, tmp_path / "hard.dta")
    for out in (stata_file, tmp_path / "link.dta", tmp_path / "hard.dta",
                tmp_path / "." / stata_file.name):
        for overwrite in (False, True):
            with pytest.raises(InvalidRequest, match="that is the input file"):
                write_table(source, source.frame.head(1), out, overwrite=overwrite)
    assert digest(stata_file) == before
    assert read_table(stata_file).frame.equals(source.frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hard.dta", "link.dta", "survey.dta"]


def test_l7_existing_output_is_refused_unless_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b"a,b\n1,2\n3,4\n")
    source = read_table(path)
    out = tmp_path / "out.csv"
    out.write_bytes(b"precious\n")
    with pytest.raises(AlreadyExists):
        write_table(source, source.frame, out)
    assert out.read_bytes() == b"precious\n"
    write_table(source, source.frame.head(1), out, overwrite=True)
    assert out.read_bytes() == b"a,b\n1,2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]


def test_l7_failed_write_leaves_output_as_it_was_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes("by\nBodø\n".encode("latin-1"))
    source = read_table(path)
    out = tmp_path / "out.csv"
    out.write_bytes(b"precious\n")
    with pytest.raises(InvalidRequest, match="no spelling in the input's encoding latin-1"):
        write_table(source, pl.DataFrame({"by": ["Ωmega"]}), out, overwrite=True)
    stata = tmp_path / "in.dta"
    pyreadstat.write_dta(pl.DataFrame({"x": [1, 2]}), stata)
    unwritable = pl.DataFrame({"x y": [1, 2]})  # Stata names hold no spaces
    with pytest.raises(Failed, match="could not be written as Stata"):
        write_table(read_table(stata), unwritable, tmp_path / "new.dta")
    assert out.read_bytes() == b"precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "in.dta", "out.csv"]


def test_l7_output_mode_follows_the_umask_and_bad_folders_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b"a\n1\n")
    source = read_table(path)
    previous = os.umask(0o027)
    try:
        write_table(source, source.frame, tmp_path / "out.csv")
    finally:
        os.umask(previous)
    assert (tmp_path / "out.csv").stat().st_mode & 0o777 == 0o640
    with pytest.raises(InvalidRequest, match="does not exist"):
        write_table(source, source.frame, tmp_path / "nowhere" / "out.csv")
    with pytest.raises(InvalidRequest, match="a folder"):
        write_table(source, source.frame, tmp_path, overwrite=True)
    assert tmp_path.is_dir()
