"""What the output's metadata must not carry (L6, L7): the dictionary of a generalised column,
labels of values no row holds any more, identity numbers in any label, note or Parquet
metadata. Every file is real, made in tmp_path; what must be gone is also looked for in the
written file's bytes (uncompressed, and present in the input's bytes, so the look can fail)."""

from __future__ import annotations

import base64
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pyreadstat
import pytest

from agent.anonymise.tables import TableFile, read_table, write_table
from agent.anonymise.tables_meta import LabelledMeta, masked_bytes, value_label_texts
from agent.audit.redact import MASK
from tests.support.identity_numbers import valid_numbers

NUMBERS = valid_numbers(6, seed=8)
KOMMUNE_LABELS = {"0301": "Oslo", "1151": "Utsira", "4601": "Bergen"}
ALDER_LABELS = {18.0: "atten år", 20.0: "tjue år", 25.0: "tjuefem år"}


def meta_of(table: TableFile) -> LabelledMeta:
    assert isinstance(table.meta, LabelledMeta)
    return table.meta


def people() -> pl.DataFrame:
    return pl.DataFrame({"kommune": ["0301", "0301", "1151", "4601", "4601"],
                         "alder": [18.0, 20.0, 25.0, 20.0, 18.0],
                         "kjonn": [1.0, 2.0, 2.0, 1.0, 2.0]})


def generalised(frame: pl.DataFrame) -> pl.DataFrame:
    """Municipality to county, age to the lower bound of its 5-year band: same types."""
    return frame.with_columns(pl.col("kommune").str.slice(0, 2),
                              (pl.col("alder") // 5 * 5).alias("alder"))


def assert_gone(texts: list[str], source: Path, out: Path) -> None:
    before, after = source.read_bytes(), out.read_bytes()
    for text in texts:
        assert text.encode() in before, text
        assert text.encode() not in after, text


def arrow_schema(path: Path) -> bytes:
    return base64.b64decode(pq.read_metadata(path).metadata[b"ARROW:schema"])


# --- a generalised column keeps its variable label only (L7) ----------------------------------


def test_l7_generalised_spss_columns_keep_their_variable_labels_only(tmp_path: Path) -> None:
    path = tmp_path / "people.sav"
    pyreadstat.write_sav(
        people(), path, column_labels={"kommune": "Bostedskommune", "alder": "Alder"},
        variable_value_labels={"kommune": KOMMUNE_LABELS, "alder": ALDER_LABELS,
                               "kjonn": {1.0: "Mann", 2.0: "Kvinne"}},
        missing_ranges={"kommune": ["9999"], "alder": [{"lo": 900.0, "hi": 999.0}]},
        variable_measure={"kommune": "nominal", "alder": "scale", "kjonn": "nominal"},
        variable_display_width={"kommune": 12}, variable_format={"alder": "F3.0"})
    source = read_table(path)
    out = tmp_path / "out.sav"
    assert write_table(source, generalised(source.frame), out,
                       generalised=("kommune", "alder")) == 0
    after = meta_of(read_table(out))
    assert dict(after.column_labels) == {"kommune": "Bostedskommune", "alder": "Alder"}
    assert {c: dict(v) for c, v in after.value_labels.items()} == \
           {"kjonn": {1.0: "Mann", 2.0: "Kvinne"}}
    assert dict(after.missing_ranges) == {}
    assert dict(after.measures) == {"kjonn": "nominal"}
    assert after.formats["kommune"] == "A2"
    assert after.formats["alder"] != "F3.0"
    assert_gone(["Oslo", "Utsira", "atten år", "9999"], path, out)


def test_l7_generalised_stata_columns_keep_their_variable_labels_only(tmp_path: Path) -> None:
    path = tmp_path / "people.dta"
    pyreadstat.write_dta(
        people(), path, column_labels={"kommune": "Bostedskommune", "alder": "Alder"},
        variable_value_labels={"alder": ALDER_LABELS, "kjonn": {1: "Mann", 2: "Kvinne"}},
        variable_format={"kommune": "%-9s", "alder": "%3.0f", "kjonn": "%8.0g"})
    source = read_table(path)
    out = tmp_path / "out.dta"
    assert write_table(source, generalised(source.frame), out,
                       generalised=["kommune", "alder"]) == 0
    result = read_table(out)
    after = meta_of(result)
    assert result.frame.equals(generalised(source.frame))
    assert dict(after.column_labels) == {"kommune": "Bostedskommune", "alder": "Alder"}
    assert {c: dict(v) for c, v in after.value_labels.items()} == {"kjonn": {1: "Mann",
                                                                              2: "Kvinne"}}
    # a text format as wide as the county numbers; the age band loses the age's format
    assert after.formats["kommune"] == "%2s"
    assert after.formats["alder"] != "%3.0f"
    assert after.formats["kjonn"] == "%8.0g"
    assert_gone(["atten år", "tjue år"], path, out)


def test_l7_generalised_parquet_column_loses_its_field_metadata(tmp_path: Path) -> None:
    table = people().to_arrow()
    fields = [field.with_metadata({b"label": f"label of {field.name}".encode()})
              for field in table.schema]
    path = tmp_path / "people.parquet"
    pq.write_table(table.cast(pa.schema(fields, metadata={b"origin": b"helse"})), path)
    source = read_table(path)
    out = tmp_path / "out.parquet"
    assert write_table(source, generalised(source.frame), out, generalised={"kommune"}) == 0
    written = pq.read_schema(out)
    assert written.field("kommune").metadata is None
    assert written.field("kjonn").metadata == {b"label": b"label of kjonn"}
    # alder is not named as generalised, and its type is unchanged: it keeps its metadata
    assert written.field("alder").metadata == {b"label": b"label of alder"}
    assert written.metadata == {b"origin": b"helse"}


# --- labels of values no row holds any more are not written (L7) ------------------------------


@pytest.mark.parametrize("suffix", [".dta", ".sav"])
def test_l7_labels_of_suppressed_values_are_not_written(suffix: str, tmp_path: Path) -> None:
    """Stata: an ``encode``d municipality (codes with the names as labels); SPSS: the
    municipality numbers with the names as labels. Utsira's rows are suppressed; Bodø never
    occurred."""
    path = tmp_path / f"people{suffix}"
    if suffix == ".dta":
        frame = people().with_columns(pl.col("kommune").replace_strict(
            {"0301": 1, "1151": 2, "4601": 3}, return_dtype=pl.Int32))
        labels: dict[object, str] = {1: "Oslo", 2: "Utsira", 3: "Bergen", 4: "Bodø"}
        pyreadstat.write_dta(frame, path, variable_value_labels={"kommune": labels})
        utsira: object = 2
        kept = {1: "Oslo", 3: "Bergen"}
    else:
        labels = {**KOMMUNE_LABELS, "1804": "Bodø"}
        pyreadstat.write_sav(people(), path, variable_value_labels={"kommune": labels})
        utsira, kept = "1151", {"0301": "Oslo", "4601": "Bergen"}
    source = read_table(path)
    out = tmp_path / f"out{suffix}"
    suppressed = source.frame.filter(pl.col("kommune") != utsira)
    assert suppressed.height == 4
    assert write_table(source, suppressed, out) == 0
    after = meta_of(read_table(out))
    assert dict(after.value_labels["kommune"]) == kept
    assert_gone(["Utsira", "Bodø"], path, out)


def test_l7_parquet_categories_of_suppressed_values_are_not_written(tmp_path: Path) -> None:
    """An Enum (written by polars, its categories in the field metadata) and an arrow
    dictionary column: both keep only the values that occur."""
    path = tmp_path / "people.parquet"
    names = ["Oslo", "Utsira", "Bergen", "Bodø"]
    frame = pl.DataFrame({"by": ["Oslo", "Utsira", "Bergen", "Oslo"],
                          "fylke": ["Oslo", "Rogaland", "Vestland", "Oslo"]},
                         schema={"by": pl.Enum(names), "fylke": pl.Utf8})
    table = frame.to_arrow()
    table = table.set_column(1, "fylke", table.column("fylke").dictionary_encode())
    pq.write_table(table, path, compression="none")
    source = read_table(path)
    assert source.frame.schema["by"] == pl.Enum(names)
    out = tmp_path / "out.parquet"
    suppressed = source.frame.filter(pl.col("by") != "Utsira")
    assert write_table(source, suppressed, out) == 0
    result = read_table(out).frame
    assert result.schema["by"] == pl.Enum(["Oslo", "Bergen"])
    assert result.get_column("by").cast(pl.Utf8).to_list() == ["Oslo", "Bergen", "Oslo"]
    assert pa.types.is_dictionary(pq.read_schema(out).field("fylke").type)
    assert_gone(["Utsira", "Bodø", "Rogaland"], path, out)


# --- identity numbers in metadata are masked and counted (L6) ---------------------------------


def encoded_fnr() -> pl.DataFrame:
    """What Stata's ``encode fnr, gen(pid)`` leaves: codes, the numbers now their labels."""
    return pl.DataFrame({"pid": [1.0, 2.0, 3.0], "kommune": ["0301", "1151", "4601"]})


@pytest.mark.parametrize("suffix", [".dta", ".sav"])
def test_l6_identity_numbers_in_labels_and_notes_are_masked_and_counted(
        suffix: str, tmp_path: Path) -> None:
    a, b, c, label, column, note = NUMBERS
    path = tmp_path / f"extract{suffix}"
    dictionary: dict[str, object] = {
        "file_label": f"Uttrekk {label}",
        "column_labels": {"pid": f"Løpenummer fra {column}", "kommune": "Bostedskommune"},
        "variable_value_labels": {"pid": {1.0: a, 2.0: b, 3.0: c}},
    }
    if suffix == ".dta":
        pyreadstat.write_dta(encoded_fnr(), path, **dictionary)  # type: ignore[arg-type]
        expected = 5
    else:
        split = f"{note[:6]} {note[6:]}"  # the 6+5 spelling is masked too
        pyreadstat.write_sav(encoded_fnr(), path, note=[f"Kontroll {split}", "bølge 3"],
                             **dictionary)  # type: ignore[arg-type]
        expected = 6
    source = read_table(path)
    assert dict(value_label_texts(source.meta)) == {"pid": (a, b, c)}
    out = tmp_path / f"out{suffix}"
    assert write_table(source, source.frame, out) == expected
    after = meta_of(read_table(out))
    assert after.file_label == f"Uttrekk {MASK}"
    assert dict(after.column_labels) == {"pid": f"Løpenummer fra {MASK}",
                                         "kommune": "Bostedskommune"}
    assert dict(after.value_labels["pid"]) == {1: MASK, 2: MASK, 3: MASK}
    if suffix == ".sav":
        assert after.notes == (f"Kontroll {MASK}", "bølge 3")
    raw = out.read_bytes()
    for number in NUMBERS if suffix == ".sav" else NUMBERS[:5]:
        assert number.encode() not in raw
        assert f"{number[:6]} {number[6:]}".encode() not in raw
    assert_gone([a, b, c, label, column], path, out)


def test_l6_identity_numbers_in_parquet_metadata_are_masked_and_counted(tmp_path: Path) -> None:
    a, b, c, *_ = NUMBERS
    table = encoded_fnr().to_arrow()
    fields = [field.with_metadata({b"label": f"fra {c}".encode(), b"unit": b"kode"})
              if field.name == "pid" else field for field in table.schema]
    metadata = {b"origin": f"uttrekk {a}".encode(), b"place": f"Tromsø {b}".encode(),
                b"plain": b"helse"}
    path = tmp_path / "extract.parquet"
    pq.write_table(table.cast(pa.schema(fields, metadata=metadata)), path, compression="none")
    source = read_table(path)
    assert dict(value_label_texts(source.meta)) == {}
    out = tmp_path / "out.parquet"
    assert write_table(source, source.frame, out) == 3
    written = pq.read_schema(out)
    assert written.metadata == {b"origin": f"uttrekk {MASK}".encode(),
                                b"place": f"Tromsø {MASK}".encode(),
                                b"plain": b"helse"}
    assert written.field("pid").metadata == {b"label": f"fra {MASK}".encode(), b"unit": b"kode"}
    assert_gone([a, b], path, out)
    # field metadata is stored inside the base64 of the serialised arrow schema
    assert c.encode() in arrow_schema(path) and c.encode() not in arrow_schema(out)


def test_l6_csv_has_no_metadata_to_mask(tmp_path: Path) -> None:
    path = tmp_path / "plain.csv"
    path.write_bytes(b"pid;kommune\n1;0301\n")
    source = read_table(path)
    assert dict(value_label_texts(source.meta)) == {}
    assert write_table(source, source.frame, tmp_path / "out.csv") == 0


def test_l6_metadata_bytes_that_are_not_utf8_are_masked_as_latin1() -> None:
    """polars refuses such a Parquet file, but the writer's masking must not depend on it."""
    a, b, *_ = NUMBERS
    values = {b"latin": f"Tromsø {a}".encode("latin-1"), b"utf8": f"Tromsø {b}".encode(),
              b"binary": bytes(range(256))}
    masked, count = masked_bytes(values)
    assert count == 2
    assert masked == {b"latin": f"Tromsø {MASK}".encode("latin-1"),
                      b"utf8": f"Tromsø {MASK}".encode(), b"binary": bytes(range(256))}
