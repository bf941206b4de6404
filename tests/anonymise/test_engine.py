"""Anonymising a table (L6, L7, D4), over frames: every output re-checked by pycanon, an
independent k-anonymity checker, and bad settings refused before anything is computed."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.anonymise.engine import anonymise_frame, check_frame
from agent.anonymise.model import BuiltInHierarchy, DateShift, Settings
from agent.errors import AnonymisationImpossible, InvalidRequest
from tests.support.anonymity import fewest_persons, independent_k, independent_l
from tests.support.identity_numbers import valid_numbers

TODAY = date(2026, 11, 24)
SECRET = bytes(range(32))


def cohort(rows: int = 400) -> pl.DataFrame:
    """A register extract: ages, municipalities, postal codes, sex, a diagnosis, a value."""
    kommuner = ["0301", "1103", "4601", "5001", "1804", "3024", "3301", "4204"]
    return pl.DataFrame({
        "lopenr": [str(1000 + i) for i in range(rows)],
        "alder": [18 + (i * 7) % 70 for i in range(rows)],
        "kommune": [kommuner[(i * 3) % len(kommuner)] for i in range(rows)],
        "postnr": [f"{(i * 13) % 97:02d}{(i * 5) % 10}0" for i in range(rows)],
        "kjonn": ["M" if i % 3 else "K" for i in range(rows)],
        "diagnose": [["E10", "E11", "I21", "J45"][(i * 11) % 4] for i in range(rows)],
        "verdi": [float(i) / 3 for i in range(rows)],
    })


def run(frame: pl.DataFrame, value_labels: dict[str, list[str]] | None = None,
        **given: object) -> tuple[pl.DataFrame, dict[str, object]]:
    base: dict[str, object] = {"quasi_identifiers": ("alder", "kommune", "postnr", "kjonn"),
                               "k": 5, "seed": 7}
    base.update(given)
    result = anonymise_frame(frame, Settings(**base),  # type: ignore[arg-type]
                             date_secret=SECRET, today=TODAY, identity_share=0.9, policy_k=5,
                             value_labels=value_labels)
    return result.frame, result.report.to_json()


def test_l7_output_is_k_anonymous_by_an_independent_checker() -> None:
    out, report = run(cohort())
    qis = ["alder", "kommune", "postnr", "kjonn"]
    assert independent_k(out, qis) >= 5
    assert report["k_reached"] == independent_k(out, qis)
    assert report["rows_out"] == out.height == 400 - report["suppressed_rows"]
    assert set(report["levels"]) == set(qis)  # type: ignore[arg-type]
    assert 0.0 < report["loss"] <= 1.0  # type: ignore[operator]


def test_l7_untouched_columns_keep_their_values_and_types() -> None:
    frame = cohort()
    out, report = run(frame, max_suppression=0.0)
    assert out.schema["verdi"] == pl.Float64
    assert sorted(out["verdi"].to_list()) == sorted(frame["verdi"].to_list())
    levels = report["levels"]
    assert isinstance(levels, dict)
    for name, level in levels.items():
        if level == 0:
            assert out.schema[name] == frame.schema[name]
        else:
            assert out.schema[name] == pl.Utf8


def test_l7_rows_are_shuffled_reproducibly_by_the_seed() -> None:
    frame = cohort()
    first, _ = run(frame, seed=1)
    again, _ = run(frame, seed=1)
    other, _ = run(frame, seed=2)
    assert first.equals(again)
    assert not first.equals(other)
    assert first["lopenr"].to_list() != sorted(first["lopenr"].to_list())


def test_l7_check_describes_small_classes_by_size_only() -> None:
    frame = cohort(40)
    result = check_frame(frame, ["alder", "kjonn"], 5)
    assert not result.anonymous
    assert result.rows_in_small == sum(size * count for size, count in result.small)
    text = " ".join(result.lines())
    for value in ("0301", "K", "E10"):
        assert value not in text.split()
    assert check_frame(frame, ["kjonn"], 5).anonymous


def test_l7_impossible_request_is_refused_with_what_to_do() -> None:
    with pytest.raises(AnonymisationImpossible) as caught:
        run(cohort(4), k=5, max_suppression=0.0)
    assert caught.value.rule == "L7"
    assert "fewer than k = 5" in caught.value.one_line()


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ({"k": 1}, "k = 1"),
        ({"quasi_identifiers": ("alder", "fodselsdato")}, "'fodselsdato'"),
        ({"quasi_identifiers": ("alder", "alder")}, "twice"),
        ({"l_diversity": 2}, "sensitive column"),
        ({"sensitive": ("alder",)}, "two roles"),
        ({"max_suppression": 1.5}, "between 0 and 1"),
    ],
)
def test_l7_bad_settings_are_refused_in_one_line(given: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        run(cohort(), **given)
    line = caught.value.one_line()
    assert words in line and "\n" not in line


def test_l7_value_missing_from_a_hierarchy_is_refused() -> None:
    frame = cohort().with_columns(pl.Series("alder", ["ukjent"] * 400))
    with pytest.raises(InvalidRequest) as caught:
        run(frame, hierarchies=(("alder", BuiltInHierarchy("age")),))
    assert "alder" in caught.value.one_line()


def test_l6_identity_number_column_is_removed_and_named_columns_dropped() -> None:
    frame = cohort(200).with_columns(pl.Series("fnr", valid_numbers(200, seed=3)))
    out, report = run(frame, direct_identifiers=("lopenr",))
    assert "fnr" not in out.columns and "lopenr" not in out.columns
    removed = report["removed_columns"]
    assert isinstance(removed, dict) and set(removed) == {"fnr", "lopenr"}


def test_l6_a_few_identity_numbers_in_a_kept_column_refuse_the_run() -> None:
    notes = ["ok"] * 198 + valid_numbers(2, seed=4)
    frame = cohort(200).with_columns(pl.Series("merknad", notes))
    with pytest.raises(InvalidRequest) as caught:
        run(frame)
    line = caught.value.one_line()
    assert "merknad" in line and "--drop merknad" in line
    for number in valid_numbers(2, seed=4):
        assert number not in line


def test_l6_identity_numbers_cannot_be_a_quasi_identifier() -> None:
    frame = cohort(200).with_columns(pl.Series("fnr", valid_numbers(200, seed=5)))
    with pytest.raises(InvalidRequest, match="cannot be a quasi-identifier"):
        run(frame, quasi_identifiers=("alder", "fnr"))


def test_d4_dates_are_shifted_per_person_before_generalising() -> None:
    frame = cohort(300).with_columns(
        pl.Series("innlagt", [date(2020, 1, 1) + timedelta(days=i) for i in range(300)]),
        pl.Series("utskrevet", [date(2020, 1, 11) + timedelta(days=i) for i in range(300)]),
    )
    shift = DateShift(("innlagt", "utskrevet"), "lopenr", "unused", 30)
    out, report = run(frame, date_shift=shift, max_suppression=0.0)
    assert report["shifted_columns"] == ["innlagt", "utskrevet"]
    before = dict(zip(frame["lopenr"], frame["innlagt"], strict=True))
    stays = out.select("lopenr", (pl.col("utskrevet") - pl.col("innlagt")).dt.total_days())
    assert set(stays["utskrevet"].to_list()) == {10}
    moved = [(day - before[serial]).days for serial, day in zip(out["lopenr"], out["innlagt"],
                                                                   strict=True)]
    assert all(1 <= abs(offset) <= 30 for offset in moved)


@st.composite
def frames(draw: st.DrawFn) -> tuple[pl.DataFrame, int, float]:
    """Ages as floats (whole, fractional, NaN, missing, huge), municipalities, sex with '*'
    as a real value, dates and datetimes with fractions of a second."""
    rows = draw(st.integers(1, 60))

    def column(values: st.SearchStrategy[object]) -> list[object]:
        return draw(st.lists(values, min_size=rows, max_size=rows))

    ages = column(st.one_of(st.integers(0, 99).map(float), st.sampled_from(
        [None, float("nan"), 1e20, 3e20, 30.5, -0.0])))
    frame = pl.DataFrame(
        {
            "alder": ages,
            "kommune": column(st.sampled_from(["0301", "0302", "1103", "1108", "4601", None])),
            "kjonn": column(st.sampled_from(["M", "K", "*", None])),
            "innlagt": column(st.dates(date(2019, 1, 1), date(2021, 12, 31))),
            "tid": column(st.sampled_from([
                datetime(2020, 1, 1, 10, 0, 0, 100_000), datetime(2020, 1, 1, 10, 0, 0),
                datetime(2020, 1, 1, 10, 0, 0, 200_000), None])),
        },
        schema={"alder": pl.Float64, "kommune": pl.Utf8, "kjonn": pl.Utf8,
                "innlagt": pl.Date, "tid": pl.Datetime("us")},
    )
    return frame, draw(st.integers(2, 6)), draw(st.sampled_from([0.0, 0.05, 0.2, 0.5, 1.0]))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames())
def test_l7_any_input_is_made_k_anonymous_or_refused(case: tuple[pl.DataFrame, int, float]) -> None:
    frame, k, limit = case
    qis = ["alder", "kommune", "kjonn", "innlagt", "tid"]
    hierarchies = (("alder", BuiltInHierarchy("flat")), ("tid", BuiltInHierarchy("flat")))
    try:
        out, report = run(frame, quasi_identifiers=tuple(qis), k=k, max_suppression=limit,
                          hierarchies=hierarchies)
    except AnonymisationImpossible:
        # Refused only when even every column at '*' leaves fewer than k rows: then nothing
        # can be written without suppressing every row.
        assert frame.height < k
        return
    allowed = min(int(limit * frame.height + 1e-9), frame.height - 1)
    assert report["suppressed_rows"] <= allowed  # type: ignore[operator]
    assert out.height >= 1
    assert independent_k(out, qis) >= k


def test_l7_l_diversity_holds_by_the_independent_checker() -> None:
    out, report = run(cohort(), l_diversity=3, sensitive=("diagnose",))
    assert report["l_diversity"] == 3
    assert independent_l(out, ["alder", "kommune", "postnr", "kjonn"], ["diagnose"]) >= 3


def test_l6_an_identity_number_in_free_text_refuses_the_run() -> None:
    number = valid_numbers(1, seed=6)[0]
    notes = ["ringte tilbake"] * 199 + [f"ringte {number} i dag"]
    with pytest.raises(InvalidRequest) as caught:
        run(cohort(200).with_columns(pl.Series("merknad", notes)))
    line = caught.value.one_line()
    assert "merknad" in line and "1 identity numbers" in line and number not in line


def test_l6_value_labels_that_are_identity_numbers_make_a_direct_identifier() -> None:
    numbers = valid_numbers(3, seed=7)
    frame = cohort(300).with_columns(pl.Series("pid", [1 + i % 3 for i in range(300)]))
    _, report = run(frame, value_labels={"pid": numbers})
    removed = report["removed_columns"]
    assert isinstance(removed, dict)
    assert removed["pid"] == "its value labels are identity numbers (L6)"


@pytest.mark.parametrize("dtype", [pl.List(pl.Int64), pl.Binary])
def test_l6_columns_of_lists_or_bytes_are_refused_unless_dropped(dtype: pl.DataType) -> None:
    values = [[i] for i in range(400)] if dtype == pl.List(pl.Int64) else [b"\xff"] * 400
    frame = cohort().with_columns(pl.Series("rest", values, dtype=dtype))
    with pytest.raises(InvalidRequest) as caught:
        run(frame)
    assert "--drop rest" in caught.value.one_line()
    out, _ = run(frame, direct_identifiers=("rest",))
    assert "rest" not in out.columns


def test_l7_groups_count_persons_not_rows() -> None:
    # Five visits of one person share all their quasi-identifiers: 5 rows, 1 person.
    rows = [(f"p{person}", 40 + person % 2, "0301") for person in range(20) for _ in range(5)]
    frame = pl.DataFrame(rows, schema=["lopenr", "alder", "kommune"], orient="row")
    by_rows, _ = run(frame, quasi_identifiers=("alder", "kommune"), k=5, max_suppression=0.0,
                     hierarchies=(("alder", BuiltInHierarchy("age")),))
    assert by_rows["alder"].dtype == pl.Int64  # 5 rows per class already
    by_persons, report = run(frame, quasi_identifiers=("alder", "kommune"), k=5,
                             max_suppression=0.0, person="lopenr",
                             hierarchies=(("alder", BuiltInHierarchy("age")),))
    assert report["person"] == "lopenr"
    assert fewest_persons(by_persons, ["alder", "kommune"], "lopenr") >= 5
    assert report["k_reached"] == fewest_persons(by_persons, ["alder", "kommune"], "lopenr")


def test_l7_check_counts_persons_when_named() -> None:
    rows = [(f"p{person}", 40 + person, "0301") for person in range(4) for _ in range(5)]
    frame = pl.DataFrame(rows, schema=["lopenr", "alder", "kommune"], orient="row")
    assert check_frame(frame, ["alder", "kommune"], 5).anonymous
    by_persons = check_frame(frame, ["alder", "kommune"], 5, person="lopenr")
    assert not by_persons.anonymous and by_persons.small == ((1, 4),)
    assert by_persons.rows_in_small == 20


def test_l7_every_row_is_never_suppressed_and_suppression_is_priced_in_the_loss() -> None:
    frame = pl.DataFrame({"alder": list(range(20, 30)), "verdi": list(range(10))})
    out, report = run(frame, quasi_identifiers=("alder",), k=5, max_suppression=1.0,
                      hierarchies=(("alder", BuiltInHierarchy("age")),))
    assert out.height >= 5 and report["rows_out"] == out.height
    assert report["loss"] >= report["generalisation_loss"]  # type: ignore[operator]
    some, priced = run(cohort(), max_suppression=0.2)
    if priced["suppressed_rows"]:
        assert priced["loss"] > priced["generalisation_loss"]  # type: ignore[operator]
    none, exact = run(cohort(), max_suppression=0.0)
    assert exact["loss"] == exact["generalisation_loss"]
    del some, none


def test_l7_instants_a_fraction_of_a_second_apart_stay_apart() -> None:
    times = [datetime(2020, 1, 1, 10, 0, 0, 100_000), datetime(2020, 1, 1, 10, 0, 0, 200_000)]
    frame = pl.DataFrame({"tid": times * 3, "x": list(range(6))})
    out, report = run(frame, quasi_identifiers=("tid",), k=3, max_suppression=0.0,
                      hierarchies=(("tid", BuiltInHierarchy("flat")),))
    assert report["levels"] == {"tid": 0} and out.height == 6


def test_l6_a_table_with_a_column_per_person_is_refused() -> None:
    number = valid_numbers(1, seed=10)[0]
    frame = cohort().with_columns(pl.Series(number, [1.0] * 400))
    with pytest.raises(InvalidRequest) as caught:
        run(frame)
    assert "column name(s)" in caught.value.one_line() and number not in caught.value.one_line()
