"""Reading and writing the four table formats (L7, issue 8 point 1): the output keeps the
input's format, types and labels wherever they still describe the column. Bad input and unsafe
output are in test_tables_safety.py, what must not leak through the metadata in
test_tables_leaks.py. Every file here is real, made in tmp_path."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pyreadstat
import pytest

from agent.anonymise.tables import TableFile, read_table, write_table
from agent.anonymise.tables_meta import DelimitedMeta, LabelledMeta, ParquetMeta

ADULT = Path(__file__).resolve().parents[3] / "shared" / "data" / "adult" / "adult.csv"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def survey() -> pl.DataFrame:
    """Codes with value labels, a number, municipality text with leading zeros, a date, a
    datetime and missing values in each."""
    return pl.DataFrame({
        "serial": [1, 2, 3, 4],
        "sex": [1, 2, 2, None],
        "income": [410.5, None, 388.25, 520.0],
        "kommune": ["0301", "1103", None, "5001"],
        "born": [dt.date(1980, 1, 2), None, dt.date(1999, 12, 31), dt.date(1975, 6, 1)],
        "seen": [dt.datetime(2020, 1, 1, 12, 30), dt.datetime(2021, 5, 5), None,
                 dt.datetime(2022, 2, 2, 8, 0)],
    })


SURVEY_DICTIONARY = {
    "file_label": "Helseundersøkelsen 2020",
    "column_labels": {"sex": "Kjønn", "income": "Inntekt (kNOK)", "kommune": "Bostedskommune",
                      "born": "Fødselsdato"},
}


@pytest.fixture
def stata_file(tmp_path: Path) -> Path:
    path = tmp_path / "survey.dta"
    pyreadstat.write_dta(survey(), path, variable_value_labels={"sex": {1: "Mann", 2: "Kvinne"}},
                         variable_format={"income": "%9.2f"}, **SURVEY_DICTIONARY)
    return path


@pytest.fixture
def spss_file(tmp_path: Path) -> Path:
    path = tmp_path / "survey.sav"
    pyreadstat.write_sav(survey(), path,
                         variable_value_labels={"sex": {1.0: "Mann", 2.0: "Kvinne"}},
                         variable_measure={"sex": "nominal", "income": "scale"},
                         missing_ranges={"income": [{"lo": 900.0, "hi": 999.0}]},
                         variable_format={"income": "F10.2"}, note="survey wave 3",
                         **SURVEY_DICTIONARY)
    return path


@pytest.fixture
def parquet_file(tmp_path: Path) -> Path:
    table = survey().to_arrow()
    fields = [field.with_metadata({b"label": b"Bostedskommune"}) if field.name == "kommune"
              else field for field in table.schema]
    table = table.cast(pa.schema(fields, metadata={b"origin": b"helseundersokelsen"}))
    path = tmp_path / "survey.parquet"
    pq.write_table(table, path, compression="snappy")
    return path


def anonymised(frame: pl.DataFrame) -> pl.DataFrame:
    """What the engine hands the writer: the serial dropped, a row suppressed, rows reordered,
    sex generalised to text labels, dates shifted by ten days (same type)."""
    return (frame.drop("serial").head(3).reverse()
            .with_columns(pl.lit("*").alias("sex"),
                          pl.col("born") + pl.duration(days=10)))


def meta_of(table: TableFile) -> LabelledMeta:
    assert isinstance(table.meta, LabelledMeta)
    return table.meta


# --- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["stata_file", "spss_file", "parquet_file"])
def test_l7_round_trip_keeps_frame_types_and_dictionary(fixture: str, tmp_path: Path,
                                                        request: pytest.FixtureRequest) -> None:
    source_path: Path = request.getfixturevalue(fixture)
    source = read_table(source_path)
    out = tmp_path / f"out{source_path.suffix}"
    assert write_table(source, source.frame, out) == 0
    again = read_table(out)
    assert again.format == source.format
    assert again.frame.schema == source.frame.schema
    assert again.frame.equals(source.frame)
    if isinstance(source.meta, LabelledMeta):
        ours, theirs = meta_of(again), meta_of(source)
        assert ours.file_label == theirs.file_label == "Helseundersøkelsen 2020"
        assert dict(ours.column_labels) == dict(theirs.column_labels)
        assert {c: dict(v) for c, v in ours.value_labels.items()} == \
               {c: dict(v) for c, v in theirs.value_labels.items()}
        assert dict(ours.formats) == dict(theirs.formats)
        assert dict(ours.missing_ranges) == dict(theirs.missing_ranges)
        assert dict(ours.measures) == dict(theirs.measures)
        assert ours.notes == theirs.notes
    else:
        assert isinstance(source.meta, ParquetMeta) and isinstance(again.meta, ParquetMeta)
        assert pq.read_schema(out).equals(pq.read_schema(source_path), check_metadata=True)
        assert again.meta.compression == "snappy"


def test_l7_stata_and_spss_dates_and_missing_values_read_as_polars_types(
        stata_file: Path, spss_file: Path) -> None:
    for path in (stata_file, spss_file):
        frame = read_table(path).frame
        assert frame.schema["born"] == pl.Date
        assert isinstance(frame.schema["seen"], pl.Datetime)
        assert frame["born"].to_list()[:3] == [dt.date(1980, 1, 2), None, dt.date(1999, 12, 31)]
        assert frame["kommune"].to_list() == ["0301", "1103", None, "5001"]
        assert frame["income"].null_count() == 1


def test_l7_spss_user_missing_values_read_as_null_and_definitions_kept(tmp_path: Path) -> None:
    path = tmp_path / "wave.sav"
    pyreadstat.write_sav(pl.DataFrame({"answer": [1.0, 99.0, 2.0]}), path,
                         missing_ranges={"answer": [99.0]},
                         variable_value_labels={"answer": {1.0: "Ja", 99.0: "Vil ikke svare"}})
    source = read_table(path)
    assert source.frame["answer"].to_list() == [1.0, None, 2.0]
    assert write_table(source, source.frame, tmp_path / "out.sav") == 0
    _, declared = pyreadstat.read_sav(tmp_path / "out.sav", metadataonly=True, user_missing=True)
    assert declared.missing_ranges == {"answer": [{"lo": 99.0, "hi": 99.0}]}
    # 99 was read as null, so no row of the output holds it and its label is not written
    assert declared.variable_value_labels == {"answer": {1.0: "Ja"}}


def test_l7_zsav_stays_compressed_and_pandas_made_stata_reads(tmp_path: Path) -> None:
    zsav = tmp_path / "survey.zsav"
    pyreadstat.write_sav(survey(), zsav, compress=True)
    source = read_table(zsav)
    write_table(source, source.frame, tmp_path / "out.zsav")
    assert (tmp_path / "out.zsav").read_bytes()[:4] == b"$FL3"
    assert read_table(tmp_path / "out.zsav").frame.equals(source.frame)

    made_by_pandas = tmp_path / "old.dta"
    pd.DataFrame({"grp": pd.Series([1, 2, 1], dtype="int8"), "name": ["a", "b", "c"]}).to_stata(
        made_by_pandas, write_index=False, version=117, variable_labels={"grp": "Gruppe"},
        value_labels={"grp": {1: "Kontroll", 2: "Tiltak"}})
    source = read_table(made_by_pandas)
    write_table(source, source.frame, tmp_path / "old_out.dta")
    assert (tmp_path / "old_out.dta").read_bytes().startswith(
        b"<stata_dta><header><release>117</release>")
    again = read_table(tmp_path / "old_out.dta")
    assert again.frame.equals(source.frame)
    assert dict(meta_of(again).value_labels["grp"]) == {1: "Kontroll", 2: "Tiltak"}
    assert dict(meta_of(again).column_labels) == {"grp": "Gruppe"}


@pytest.mark.parametrize("fixture", ["stata_file", "spss_file"])
def test_l7_table_without_rows_keeps_its_column_types(
        fixture: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    source = read_table(request.getfixturevalue(fixture))
    out = tmp_path / ("none" + Path(source.path).suffix)
    write_table(source, source.frame.head(0), out)
    assert read_table(out).frame.schema == source.frame.schema


# --- transformed frames ------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["stata_file", "spss_file"])
def test_l7_output_keeps_value_labels_of_untouched_columns_only(
        fixture: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    source_path: Path = request.getfixturevalue(fixture)
    source = read_table(source_path)
    out = tmp_path / f"anonymised{source_path.suffix}"
    frame = anonymised(source.frame)
    write_table(source, frame, out)
    result = read_table(out)
    assert result.frame.columns == ["sex", "income", "kommune", "born", "seen"]
    assert result.frame.equals(frame)
    assert result.frame.schema["sex"] == pl.Utf8
    assert result.frame.schema["born"] == pl.Date
    assert result.frame.schema["income"] == source.frame.schema["income"]
    before, after = meta_of(source), meta_of(result)
    # sex: now text labels; keeps its variable label, loses its value labels and number format
    assert after.column_labels["sex"] == "Kjønn"
    assert "sex" in before.value_labels and "sex" not in after.value_labels
    assert after.formats["sex"] != before.formats["sex"]
    # untouched and shifted columns keep their variable label and display format
    for column in ("income", "kommune", "born"):
        assert after.column_labels[column] == before.column_labels[column]
    for column in ("income", "born", "seen"):
        assert after.formats[column] == before.formats[column]
    assert "serial" not in after.formats
    assert after.file_label == before.file_label
    if source.format == "spss":
        assert dict(after.missing_ranges) == {"income": ((900.0, 999.0),)}
        assert dict(after.measures) == {"income": "scale"}


def test_l7_output_keeps_parquet_metadata_of_untouched_columns(parquet_file: Path,
                                                               tmp_path: Path) -> None:
    source = read_table(parquet_file)
    out = tmp_path / "anonymised.parquet"
    frame = anonymised(source.frame).with_columns(pl.lit("03").alias("kommune"))
    write_table(source, frame, out)
    written = pq.read_schema(out)
    assert written.metadata == {b"origin": b"helseundersokelsen"}
    assert written.field("income").type == pa.float64()
    assert written.field("born").type == pa.date32()
    assert written.field("kommune").metadata == {b"label": b"Bostedskommune"}
    assert read_table(out).frame.equals(frame)


def test_l7_parquet_written_by_pandas_drops_pandas_metadata_only_when_columns_change(
        tmp_path: Path) -> None:
    path = tmp_path / "pandas.parquet"
    pd.DataFrame({"age": [31, 47], "zip": ["0150", "5003"]}).to_parquet(path, index=False)
    source = read_table(path)
    write_table(source, source.frame, tmp_path / "same.parquet")
    assert b"pandas" in (pq.read_schema(tmp_path / "same.parquet").metadata or {})
    write_table(source, source.frame.drop("zip"), tmp_path / "fewer.parquet")
    assert b"pandas" not in (pq.read_schema(tmp_path / "fewer.parquet").metadata or {})
    assert pd.read_parquet(tmp_path / "fewer.parquet").columns.tolist() == ["age"]


# --- CSV: exact text ---------------------------------------------------------------------------


def test_l7_adult_csv_is_written_back_byte_identical(tmp_path: Path) -> None:
    source = read_table(ADULT)
    assert isinstance(source.meta, DelimitedMeta)
    assert (source.meta.delimiter, source.meta.line_terminator) == (";", "\r\n")
    assert set(source.frame.schema.values()) == {pl.Utf8}
    assert source.frame.height == 30162
    write_table(source, source.frame, tmp_path / "adult.csv")
    assert digest(tmp_path / "adult.csv") == digest(ADULT)


def test_l7_csv_text_is_kept_exactly_with_quoting_only_where_needed(tmp_path: Path) -> None:
    text = ('kommune;vekt;merknad;tom\n'
            '0301;5,0;"sa ""nei""";\n'
            '1103;0012;"to;felt";""\n'
            '5001; 7 ;"linje\nskift";x\n')
    path = tmp_path / "input.csv"
    path.write_text(text, encoding="utf-8")
    source = read_table(path)
    assert source.frame.rows() == [("0301", "5,0", 'sa "nei"', None),
                                   ("1103", "0012", "to;felt", ""),
                                   ("5001", " 7 ", "linje\nskift", "x")]
    write_table(source, source.frame, tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text(encoding="utf-8") == text
    write_table(source, source.frame.select("kommune", "vekt").slice(0, 2),
                tmp_path / "part.csv")
    assert (tmp_path / "part.csv").read_bytes() == b"kommune;vekt\n0301;5,0\n1103;0012\n"


@pytest.mark.parametrize(("encoding", "name"), [("latin-1", "data.txt"), ("utf-8-sig", "data.csv"),
                                                ("utf-16", "data.tsv")])
def test_l7_csv_keeps_encoding_and_delimiter(encoding: str, name: str, tmp_path: Path) -> None:
    delimiter = "\t" if name.endswith(".tsv") else ","
    text = delimiter.join(["fylke", "navn"]) + "\n" + delimiter.join(["03", "Bærum"]) + "\n"
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    source = read_table(path)
    assert source.frame.rows() == [("03", "Bærum")]
    assert isinstance(source.meta, DelimitedMeta)
    assert (source.meta.encoding, source.meta.delimiter) == (encoding, delimiter)
    write_table(source, source.frame, tmp_path / ("out_" + name))
    assert (tmp_path / ("out_" + name)).read_bytes() == path.read_bytes()


def test_l7_latin1_beyond_the_sniffed_sample_is_read_as_latin1(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_bytes(b"a;b\n" + b"x;y\n" * 40_000 + "Tromsø;z\n".encode("latin-1"))
    source = read_table(path)
    assert source.frame["a"][-1] == "Tromsø"
    write_table(source, source.frame, tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_bytes() == path.read_bytes()


def test_l7_header_only_csv_reads_as_empty_table(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_bytes(b"kommune;alder\n")
    source = read_table(path)
    assert source.frame.columns == ["kommune", "alder"] and source.frame.height == 0
