"""Generalisation hierarchies (D3): the built-in ladders on chosen values, ARX files (all nine of
Adult's), every refusal, the tree property the search's pruning relies on, and the guess of a
column's kind."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.anonymise.hierarchy import infer_kind, ladder_for, parse_arx_hierarchy
from agent.anonymise.model import TOP, BuiltInHierarchy, Ladder
from agent.errors import InvalidRequest

ADULT = Path(__file__).resolve().parents[3] / "shared" / "data" / "adult"
ADULT_COLUMNS = ("age", "education", "marital-status", "native-country", "occupation", "race",
                 "salary-class", "sex", "workclass")


def assert_tree(ladder: Ladder) -> None:
    """Checked here independently of the parser: sharing a label at a level means sharing it
    at every level above; level 0 is the values, the top is TOP for all."""
    assert ladder.labels[0] == ladder.values
    assert ladder.labels[-1] == (TOP,) * len(ladder.values)
    assert len(ladder.level_names) == len(ladder.labels)
    assert all(len(level) == len(ladder.values) for level in ladder.labels)
    for low in range(1, ladder.height):
        for high in range(low + 1, ladder.height + 1):
            parent: dict[str | None, str | None] = {}
            for code, label in enumerate(ladder.labels[low]):
                if label is None:
                    continue
                assert parent.setdefault(label, ladder.labels[high][code]) == \
                    ladder.labels[high][code]


def built_in(kind: str, values: Sequence[str | None], column: str = "c") -> Ladder:
    ladder = ladder_for(column, BuiltInHierarchy(kind=kind), values)  # type: ignore[arg-type]
    assert_tree(ladder)
    return ladder


# --- built-in ladders, by hand ------------------------------------------------------------------


def test_d3_date_ladder_goes_month_year_decade_top() -> None:
    values = ("2019-05-17", "17.05.2019", "2019-05-17 13:45:00", None, "2020-01-01",
              "2009-12-31T23:59:59")
    ladder = built_in("date", values, "innlagt")
    assert ladder.kind == "date"
    assert ladder.column == "innlagt"
    assert ladder.level_names == ("date", "month", "year", "decade", TOP)
    assert ladder.labels == (
        values,
        ("2019-05", "2019-05", "2019-05", None, "2020-01", "2009-12"),
        ("2019", "2019", "2019", None, "2020", "2009"),
        ("2010-2019", "2010-2019", "2010-2019", None, "2020-2029", "2000-2009"),
        (TOP,) * 6,
    )


def test_d3_age_ladder_goes_five_and_ten_year_bands() -> None:
    values = ("34", "0", "150", None, "29", "35")
    ladder = built_in("age", values, "alder")
    assert ladder.level_names == ("age", "5-year band", "10-year band", TOP)
    assert ladder.labels[1:] == (
        ("30-34", "0-4", "150-154", None, "25-29", "35-39"),
        ("30-39", "0-9", "150-159", None, "20-29", "30-39"),
        (TOP,) * 6,
    )
    assert ladder.height == 3


def test_d3_municipality_ladder_goes_to_county_and_pads_three_digits() -> None:
    values = ("0301", "301", "4601", "5001", None)
    ladder = built_in("municipality", values, "kommunenr")
    assert ladder.level_names == ("municipality", "county", TOP)
    assert ladder.labels[1] == ("03", "03", "46", "50", None)


def test_d3_postal_ladder_keeps_two_digits_and_pads_numbers() -> None:
    values = ("0150", "150", "10", "9990")
    ladder = built_in("postal", values, "postnr")
    assert ladder.level_names == ("postal code", "postal area", TOP)
    assert ladder.labels[1] == ("01", "01", "00", "99")


@pytest.mark.parametrize(("kind", "first"), [("sex", "sex"), ("flat", "value")])
def test_d3_sex_and_flat_go_straight_to_top(kind: str, first: str) -> None:
    ladder = built_in(kind, ("M", "K", None))
    assert ladder.level_names == (first, TOP)
    assert ladder.labels == (("M", "K", None), (TOP, TOP, TOP))


def test_d3_a_ladder_over_no_values_is_empty_but_whole() -> None:
    ladder = built_in("date", ())
    assert ladder.labels == ((), (), (), (), ())


@pytest.mark.parametrize(("kind", "bad"), [
    ("age", "abc"), ("age", "151"), ("age", "-1"), ("age", "34.5"), ("age", ""),
    ("date", "2019-02-30"), ("date", "30.02.2019"), ("date", "2019-05-17 25:00:00"),
    ("date", "2019-5-17"), ("date", "yesterday"),
    ("municipality", "12"), ("municipality", "12345"), ("municipality", "03a1"),
    ("postal", "12345"), ("postal", "O150"),
])
def test_d3_a_value_that_does_not_fit_is_refused_naming_column_and_value(kind: str,
                                                                        bad: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        ladder_for("kolonne", BuiltInHierarchy(kind=kind), ("1", bad))  # type: ignore[arg-type]
    line = raised.value.one_line()
    assert "'kolonne'" in line
    assert repr(bad) in line
    assert f"the {kind} hierarchy" in line
    assert "--hierarchy COLUMN=FILE" in line
    assert "\n" not in line


def test_d3_misfits_are_named_three_at_most_with_a_count() -> None:
    values = ("20", "x1", "x2", "x3", "x4", "x5")
    with pytest.raises(InvalidRequest) as raised:
        ladder_for("alder", BuiltInHierarchy(kind="age"), values)
    message = raised.value.message
    assert "'x1', 'x2', 'x3' and 2 more do not fit" in message
    assert "x4" not in message


def test_d3_an_identity_number_in_a_misfit_is_masked() -> None:
    number = "01010012356"  # a valid fødselsnummer (checksums hold)
    with pytest.raises(InvalidRequest) as raised:
        ladder_for("alder", BuiltInHierarchy(kind="age"), (number,))
    assert number not in raised.value.one_line()


@given(st.lists(st.one_of(st.none(), st.integers(0, 150).map(str)), unique=True))
def test_d3_age_ladders_are_trees(values: list[str | None]) -> None:
    built_in("age", values)


@given(st.lists(st.one_of(
    st.none(),
    st.dates(date(1, 1, 1), date(9999, 12, 31)).map(date.isoformat),
    st.dates(date(1, 1, 1), date(9999, 12, 31)).map(
        lambda day: f"{day.day:02d}.{day.month:02d}.{day.year:04d}"),
    st.dates(date(1000, 1, 1), date(9999, 12, 31)).map(lambda day: f"{day} 12:00:00"),
), unique=True))
def test_d3_date_ladders_are_trees(values: list[str | None]) -> None:
    built_in("date", values)


@given(st.lists(st.integers(100, 9999).map(str), unique=True))
def test_d3_municipality_ladders_are_trees(values: list[str]) -> None:
    ladder = built_in("municipality", values)
    assert all(label == value.zfill(4)[:2] for value, label in zip(values, ladder.labels[1],
                                                                     strict=True))


# --- ARX files ----------------------------------------------------------------------------------


def adult_values(column: str) -> list[str]:
    with (ADULT / "adult.csv").open(newline="") as handle:
        return sorted({row[column] for row in csv.DictReader(handle, delimiter=";")})


@pytest.mark.parametrize("column", ADULT_COLUMNS)
def test_d3_every_adult_hierarchy_parses_as_a_tree_covering_the_data(column: str) -> None:
    path = ADULT / f"adult_hierarchy_{column}.csv"
    hierarchy = parse_arx_hierarchy(path.read_text(), str(path))
    assert hierarchy.source == str(path)
    assert len(hierarchy.rows) == len(path.read_text().splitlines())
    ladder = ladder_for(column, hierarchy, [*adult_values(column), None])
    assert ladder.kind == "file"
    assert ladder.labels[-1][-1] == TOP
    assert ladder.labels[-2][-1] is None
    assert_tree(ladder)


def test_d3_adult_age_file_ladder_by_hand() -> None:
    path = ADULT / "adult_hierarchy_age.csv"
    hierarchy = parse_arx_hierarchy(path.read_text(), "age.csv")
    ladder = ladder_for("age", hierarchy, ("39", "1"))
    assert ladder.level_names == ("value", "level 1", "level 2", "level 3", TOP)
    assert ladder.labels[1][1] == "0-4"
    assert ladder.labels[2][1] == "0-9"
    assert ladder.labels[3][1] == "0-19"
    assert ladder.labels[4] == (TOP, TOP)


def test_d3_a_file_not_ending_in_top_gets_a_top_level() -> None:
    hierarchy = parse_arx_hierarchy("a;x\r\nb;x\r\n\r\nc;y\n", "h.csv")
    assert hierarchy.rows == (("a", "x"), ("b", "x"), ("c", "y"))
    ladder = ladder_for("col", hierarchy, ("c", "a", None))
    assert ladder.level_names == ("value", "level 1", TOP)
    assert ladder.labels == (("c", "a", None), ("y", "x", None), (TOP, TOP, TOP))


def test_d3_a_value_missing_from_the_file_is_refused() -> None:
    hierarchy = parse_arx_hierarchy("a;*\nb;*\n", "h.csv")
    with pytest.raises(InvalidRequest) as raised:
        ladder_for("col", hierarchy, ("a", "zz", "b"))
    line = raised.value.one_line()
    assert "'col'" in line
    assert "'zz'" in line
    assert "h.csv" in line


@pytest.mark.parametrize(("text", "where", "problem"), [
    ("", "h.csv", "holds no values"),
    ("\n  \n", "h.csv", "holds no values"),
    ("a;x;*\nb;*\n", "h.csv line 2", "2 levels where line 1 has 3"),
    ("a\nb\n", "h.csv line 1", "without a level above"),
    ("a;x;*\nb;y;*\na;y;*\n", "h.csv line 3", "'a' is also on line 1"),
    ("a;x;P;*\nb;x;Q;*\n", "h.csv line 2", "'x' at level 1 generalises to 'Q' here but to 'P'"),
    ("a;x;*\nb;;*\n", "h.csv line 2", "level 1 is empty"),
    ("a;x;*;\n", "h.csv line 1", "level 3 is empty"),
])
def test_d3_a_broken_hierarchy_file_is_refused_with_its_line(text: str, where: str,
                                                             problem: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_arx_hierarchy(text, "h.csv")
    line = raised.value.one_line()
    assert f"hierarchy {where}: " in line
    assert problem in line
    assert raised.value.hint
    assert "\n" not in line


def test_d3_the_tree_check_looks_at_every_level() -> None:
    # Levels 1 -> 2 agree, levels 2 -> 3 do not.
    text = "a;x;P;R;*\nb;y;P;S;*\n"
    with pytest.raises(InvalidRequest, match="'P' at level 2 generalises to 'S'"):
        parse_arx_hierarchy(text, "h.csv")


def test_d3_a_byte_order_mark_is_not_part_of_the_first_value() -> None:
    hierarchy = parse_arx_hierarchy("\ufeffa;*\n", "h.csv")
    assert hierarchy.rows == (("a", "*"),)


# --- guessing the kind --------------------------------------------------------------------------


@pytest.mark.parametrize(("column", "values", "kind"), [
    ("alder", ["34", "7", None], "age"),
    ("Age", ["34"], "age"),
    ("alder_ved_diagnose", ["34"], "age"),
    ("alder", ["voksen", "barn"], "flat"),
    ("age", ["200"], "flat"),
    ("page", ["34"], "flat"),
    ("kjønn", ["M", "K"], "sex"),
    ("kjonn", ["1", "2"], "sex"),
    ("KJOENN", ["x"], "sex"),
    ("gender", ["female"], "sex"),
    ("bostedskommune", ["0301", "301"], "municipality"),
    ("knr", ["4601"], "municipality"),
    ("municipality_code", ["4601"], "municipality"),
    ("kommunenavn", ["Oslo"], "flat"),
    ("postnr", ["150", "0150"], "postal"),
    ("postal_code", ["9990"], "postal"),
    ("zip", ["5003"], "postal"),
    ("fodselsdato", ["17.05.1980"], "date"),
    ("født", ["1980-05-17"], "date"),
    ("birth_date", ["1980-05-17"], "date"),
    ("innlagt", ["2019-05-17", "2019-05-17 12:00:00", None], "date"),
    ("dato_inn", ["2019-02-30"], "flat"),
    ("fodselsaar", ["1980"], "flat"),
    ("diagnose", ["C50", "I21"], "flat"),
    ("vekt", ["70", "80"], "flat"),
    ("alder", [None], "age"),
    ("x", [], "flat"),
])
def test_d3_infer_kind_by_name_confirmed_by_values(column: str, values: list[str | None],
                                                   kind: str) -> None:
    assert infer_kind(column, values) == kind


def test_d3_an_inferred_kind_always_builds_a_ladder() -> None:
    start = date(2019, 1, 1)
    values = [(start + timedelta(days=day)).isoformat() for day in range(400)]
    kind = infer_kind("whatever", values)
    assert kind == "date"
    ladder = built_in(kind, values)
    assert len(set(ladder.labels[1])) == 14
