"""The lattice search (L7, D3): hand-computed optima, minimality, and agreement with checking
every node, on small tables and on Adult."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.anonymise.classes import FrequencySet, Ladders, judge
from agent.anonymise.columns import factorise
from agent.anonymise.hierarchy import ladder_for, parse_arx_hierarchy
from agent.anonymise.model import Ladder
from agent.anonymise.search import Criteria, SearchResult, lattice, loss_tables, search

ADULT = Path(__file__).resolve().parents[3] / "shared" / "data" / "adult"
ADULT_QIS = ("age", "education", "marital-status", "native-country", "race", "salary-class",
             "sex", "workclass")


def ladder(column: str, values: Sequence[str], levels: Sequence[dict[str, str]]) -> Ladder:
    """A ladder over ``values`` whose level i+1 maps each value through ``levels[i]``."""
    labels = [tuple(values)]
    for mapping in levels:
        labels.append(tuple(mapping[value] for value in values))
    names = tuple(str(i) for i in range(len(labels)))
    return Ladder(column, "file", names, tuple(values), tuple(labels))


def run(rows: Sequence[Sequence[str]], ladders: Sequence[Ladder], k: int,
        suppressed: int = 0, minimum: int = 0,
        counted: Sequence[str] = ()) -> tuple[SearchResult | None, FrequencySet, Ladders]:
    """Search ``rows``; with ``counted`` (one value per row), every class also needs
    ``minimum`` distinct values of it (l-diversity, or k persons)."""
    codes = [
        np.array([ladder.values.index(row[q]) for row in rows], dtype=np.int64)
        for q, ladder in enumerate(ladders)
    ]
    extra, cards, minimums = [], [], ()
    if counted:
        values = sorted(set(counted))
        extra = [np.array([values.index(value) for value in counted], dtype=np.int64)]
        cards, minimums = [len(values)], (minimum,)
    frequencies = FrequencySet.of(codes, [len(ladder.values) for ladder in ladders], extra,
                                  cards)
    arrays = Ladders.of(ladders)
    criteria = Criteria(k, suppressed, minimums)
    return search(frequencies, arrays, criteria), frequencies, arrays


AGES = ["21", "22", "23", "31", "32", "33"]
DECADE = {age: age[0] + "0s" for age in AGES}
STAR_AGE = {age: "*" for age in AGES}
SEXES = ["M", "F"]
STAR_SEX = {"M": "*", "F": "*"}
SIX = [("21", "M"), ("22", "F"), ("23", "M"), ("31", "F"), ("32", "M"), ("33", "F")]


def six_ladders() -> list[Ladder]:
    return [ladder("age", AGES, [DECADE, STAR_AGE]), ladder("sex", SEXES, [STAR_SEX])]


def test_l7_hand_computed_optimum_prefers_the_least_loss_not_the_fewest_levels() -> None:
    # k = 3, nothing suppressed: (age decade, sex *) and (age *, sex) both give groups of 3.
    # Loss Metric: a decade covers 3 of 6 ages, (3-1)/(6-1) = 0.4; '*' covers all, 1.0.
    # (1, 1) loses (0.4 + 1.0) / 2 = 0.7; (2, 0) loses (1.0 + 0.0) / 2 = 0.5: the optimum.
    result, _, _ = run(SIX, six_ladders(), k=3)
    assert result is not None
    assert result.levels == (2, 0)
    assert result.loss == pytest.approx(0.5)
    assert result.verdict.suppressed_rows == 0
    assert result.verdict.smallest_class == 3


def test_l7_suppression_within_the_limit_buys_a_lower_node() -> None:
    # k = 2 with 2 rows allowed: (decade, sex) leaves (20s,F) and (30s,M) as groups of 1;
    # suppressing those 2 rows satisfies at loss (0.4 + 0) / 2 = 0.2.
    result, _, _ = run(SIX, six_ladders(), k=2, suppressed=2)
    assert result is not None
    assert result.levels == (1, 0)
    assert result.loss == pytest.approx(0.2)
    assert result.verdict.suppressed_rows == 2
    # One row fewer allowed and that node no longer satisfies.
    tighter, _, _ = run(SIX, six_ladders(), k=2, suppressed=1)
    assert tighter is not None and tighter.levels != (1, 0)


def test_l7_no_node_satisfies_when_the_table_is_smaller_than_k() -> None:
    result, _, _ = run(SIX, six_ladders(), k=7)
    assert result is None


def test_l7_l_diversity_generalises_further_than_k_alone() -> None:
    # With k = 3, (age *, sex) is optimal; but the men all share diagnosis A, so 2-diversity
    # needs the women and men together: (age decade, sex *) or above.
    diagnoses = ["A", "B", "A", "C", "A", "B"]
    alone, _, _ = run(SIX, six_ladders(), k=3)
    diverse, _, _ = run(SIX, six_ladders(), k=3, minimum=2, counted=diagnoses)
    assert alone is not None and alone.levels == (2, 0)
    assert diverse is not None and diverse.levels == (1, 1)


def brute_force(frequencies: FrequencySet, arrays: Ladders,
                criteria: Criteria) -> tuple[int, ...] | None:
    """The optimum by checking every node: least loss, then fewest levels, then lowest."""
    losses = loss_tables(frequencies, arrays)
    best: tuple[float, int, tuple[int, ...]] | None = None
    for node in lattice(arrays.heights):
        levels = tuple(int(level) for level in node)
        verdict = judge(frequencies, arrays, levels, k=criteria.k,
                        minimums=criteria.minimums)
        if verdict.suppressed_rows > criteria.max_suppressed_rows:
            continue
        loss = round(sum(losses[q][level] for q, level in enumerate(levels)) / len(levels), 12)
        key = (loss, sum(levels), levels)
        if best is None or key < best:
            best = key
    return None if best is None else best[2]


def satisfies(frequencies: FrequencySet, arrays: Ladders, levels: tuple[int, ...],
              criteria: Criteria) -> bool:
    verdict = judge(frequencies, arrays, levels, k=criteria.k, minimums=criteria.minimums)
    return verdict.suppressed_rows <= criteria.max_suppressed_rows


def assert_minimal(frequencies: FrequencySet, arrays: Ladders, levels: tuple[int, ...],
                   criteria: Criteria) -> None:
    """No node one level lower in any column satisfies the constraints."""
    for q, level in enumerate(levels):
        if level > 0:
            lower = (*levels[:q], level - 1, *levels[q + 1:])
            assert not satisfies(frequencies, arrays, lower, criteria), (levels, lower)


@st.composite
def tables(
    draw: st.DrawFn,
) -> tuple[list[tuple[str, ...]], list[Ladder], Criteria, tuple[str, ...]]:
    columns = draw(st.integers(1, 3))
    ladders = []
    for q in range(columns):
        width = draw(st.integers(1, 6))
        values = [f"v{q}_{i}" for i in range(width)]
        # A random tree: each level groups the previous level's labels into fewer labels.
        levels: list[dict[str, str]] = []
        current = {value: value for value in values}
        for depth in range(draw(st.integers(1, 3))):
            labels = sorted(set(current.values()))
            groups = draw(st.integers(1, len(labels)))
            parent = {label: f"g{q}_{depth}_{draw(st.integers(0, groups - 1))}"
                      for label in labels}
            current = {value: parent[current[value]] for value in values}
            levels.append(dict(current))
        levels.append({value: "*" for value in values})
        ladders.append(ladder(f"c{q}", values, levels))
    rows = draw(st.lists(st.tuples(*[st.sampled_from(ladder.values) for ladder in ladders]),
                         min_size=1, max_size=40))
    k = draw(st.integers(2, 6))
    allowed = draw(st.integers(0, len(rows)))
    # Half the cases also count distinct values of a further column per class: l-diversity
    # of a sensitive column, or k persons with a person column (the same check).
    counted = draw(st.one_of(st.just(()), st.lists(st.sampled_from("abcde"),
                                                      min_size=len(rows), max_size=len(rows))))
    minimum = draw(st.integers(2, 4)) if counted else 0
    return rows, ladders, Criteria(k, allowed, (minimum,) if counted else ()), tuple(counted)


@settings(max_examples=150, deadline=None)
@given(tables())
def test_l7_search_finds_the_brute_force_optimum_and_it_is_minimal(
    case: tuple[list[tuple[str, ...]], list[Ladder], Criteria, tuple[str, ...]],
) -> None:
    rows, ladders, criteria, counted = case
    minimum = criteria.minimums[0] if criteria.minimums else 0
    result, frequencies, arrays = run(rows, ladders, criteria.k, criteria.max_suppressed_rows,
                                      minimum, counted)
    expected = brute_force(frequencies, arrays, criteria)
    if expected is None:
        assert result is None
        return
    assert result is not None
    assert result.levels == expected
    assert_minimal(frequencies, arrays, result.levels, criteria)


def adult() -> tuple[FrequencySet, Ladders]:
    import polars as pl

    frame = pl.read_csv(ADULT / "adult.csv", separator=";", infer_schema=False)
    ladders, codes = [], []
    for name in ADULT_QIS:
        text = (ADULT / f"adult_hierarchy_{name}.csv").read_text()
        factorised = factorise(frame[name])
        spec = parse_arx_hierarchy(text, f"adult_hierarchy_{name}.csv")
        ladders.append(ladder_for(name, spec, factorised.values))
        codes.append(factorised.codes)
    frequencies = FrequencySet.of(codes, [len(item.values) for item in ladders])
    return frequencies, Ladders.of(ladders)


def test_l7_adult_optimum_is_minimal_and_found_without_checking_the_whole_lattice() -> None:
    frequencies, arrays = adult()
    criteria = Criteria(5, 0)
    result = search(frequencies, arrays, criteria)
    assert result is not None
    assert result.nodes_total == 4320
    assert result.verdict.suppressed_rows == 0
    assert result.verdict.smallest_class >= 5
    assert_minimal(frequencies, arrays, result.levels, criteria)
    # Monotonicity did the work: far fewer checks than nodes (Flash checks ~115 here).
    assert result.nodes_checked < result.nodes_total // 10


def test_l7_adult_optimum_agrees_with_checking_every_node() -> None:
    frequencies, arrays = adult()
    criteria = Criteria(5, 0)
    result = search(frequencies, arrays, criteria)
    assert result is not None
    assert result.levels == brute_force(frequencies, arrays, criteria)


def test_l7_lattice_has_one_row_per_combination_of_levels() -> None:
    nodes = lattice((2, 1))
    assert sorted(map(tuple, nodes.tolist())) == list(itertools.product(range(3), range(2)))
