"""Equivalence classes of a table under one generalisation, counted fast (L7).

Why a room of its own: the lattice search asks "which rows fall into classes smaller than k?"
hundreds of times. Each question is answered here on the table's *frequency set* (one row per
distinct combination of quasi-identifier values, with its count), with integer codes and numpy,
never on the table itself. The search (:mod:`agent.anonymise.search`) decides what to ask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from agent.anonymise.model import Ladder

Codes = npt.NDArray[np.int64]

#: Mixed-radix keys stay below this; past it the key is re-numbered densely first.
_KEY_LIMIT = 1 << 62
#: Class sizes are counted with bincount when the key space is at most this large.
_BINCOUNT_LIMIT = 1 << 20


def dense_codes(key: Codes) -> tuple[Codes, int]:
    """Renumber arbitrary int64 keys as 0..m-1 (m = distinct keys), keeping equal keys equal."""
    uniques, inverse = np.unique(key, return_inverse=True)
    return inverse.astype(np.int64, copy=False), int(uniques.size)


def combine(columns: Sequence[Codes], cards: Sequence[int]) -> tuple[Codes, int]:
    """One integer per row that is equal exactly when every column is equal.

    Columns hold codes 0..card-1. The key is mixed-radix while it fits in 63 bits and is
    renumbered densely whenever the next column would overflow it.
    """
    if not columns:
        raise ValueError("no columns to combine")
    key = columns[0].astype(np.int64, copy=True)
    space = max(int(cards[0]), 1)
    for column, card in zip(columns[1:], cards[1:], strict=True):
        card = max(int(card), 1)
        if space * card >= _KEY_LIMIT:
            key, space = dense_codes(key)
        key *= card
        key += column
        space *= card
    return key, space


def class_of(key: Codes, space: int) -> tuple[Codes, int]:
    """Dense class numbers for keys; bincount-friendly keys are used as they are."""
    if space <= max(_BINCOUNT_LIMIT, 2 * key.size):
        return key, space
    return dense_codes(key)


@dataclass(frozen=True)
class Ladders:
    """The quasi-identifiers' ladders as lookup arrays: ``maps[q][level][code]`` is the label
    number of level-0 value ``code`` at ``level``; ``cards[q][level]`` counts those labels."""

    maps: tuple[tuple[Codes, ...], ...]
    cards: tuple[tuple[int, ...], ...]
    heights: tuple[int, ...]

    @classmethod
    def of(cls, ladders: Sequence[Ladder]) -> Ladders:
        maps: list[tuple[Codes, ...]] = []
        cards: list[tuple[int, ...]] = []
        for ladder in ladders:
            per_level: list[Codes] = []
            counts: list[int] = []
            for labels in ladder.labels:
                numbers: dict[str | None, int] = {}
                per_level.append(
                    np.fromiter(
                        (numbers.setdefault(label, len(numbers)) for label in labels),
                        dtype=np.int64,
                        count=len(labels),
                    )
                )
                counts.append(len(numbers))
            maps.append(tuple(per_level))
            cards.append(tuple(counts))
        return cls(tuple(maps), tuple(cards), tuple(ladder.height for ladder in ladders))


@dataclass(frozen=True)
class FrequencySet:
    """The table reduced to its distinct rows: ``codes[q]`` are the level-0 codes of each
    distinct combination, ``counts`` how many rows hold it, and ``distinct[s]`` the codes of
    the columns whose distinct values per class are counted (sensitive columns for
    l-diversity, the person column for k persons); they are part of the combination."""

    codes: tuple[Codes, ...]
    counts: npt.NDArray[np.int64]
    distinct: tuple[Codes, ...]
    distinct_cards: tuple[int, ...]
    #: For each row of the table, the index of its combination.
    row_combination: Codes

    @property
    def rows(self) -> int:
        return int(self.counts.sum())

    @classmethod
    def of(
        cls,
        qi_codes: Sequence[Codes],
        qi_cards: Sequence[int],
        distinct_codes: Sequence[Codes] = (),
        distinct_cards: Sequence[int] = (),
    ) -> FrequencySet:
        columns = [*qi_codes, *distinct_codes]
        key, _ = combine(columns, [*qi_cards, *distinct_cards])
        _, first, inverse, counts = np.unique(
            key, return_index=True, return_inverse=True, return_counts=True
        )
        q = len(qi_codes)
        return cls(
            codes=tuple(column[first] for column in columns[:q]),
            counts=counts.astype(np.int64),
            distinct=tuple(column[first] for column in columns[q:]),
            distinct_cards=tuple(int(card) for card in distinct_cards),
            row_combination=inverse.astype(np.int64, copy=False),
        )


@dataclass(frozen=True)
class Verdict:
    """One generalisation judged: which combinations must be suppressed, and the figures."""

    suppressed: npt.NDArray[np.bool_]
    suppressed_rows: int
    #: The smallest class that is kept (0 when every row is suppressed or the table is empty).
    smallest_class: int
    #: Sizes of the classes kept, for the report; never their values.
    kept_classes: int


def judge(
    frequencies: FrequencySet,
    ladders: Ladders,
    node: Sequence[int],
    *,
    k: int,
    minimums: Sequence[int] = (),
) -> Verdict:
    """Classes of ``node``; a class smaller than k, or with fewer distinct values in one of
    the counted columns than its minimum (``minimums[s]`` for ``frequencies.distinct[s]``: l
    for a sensitive column, k for the person column), is suppressed whole."""
    columns = [
        ladders.maps[q][level][frequencies.codes[q]] for q, level in enumerate(node)
    ]
    cards = [ladders.cards[q][level] for q, level in enumerate(node)]
    if columns:
        key, space = combine(columns, cards)
        classes, space = class_of(key, space)
    else:
        classes, space = np.zeros(frequencies.counts.size, dtype=np.int64), 1
    sizes = np.bincount(classes, weights=frequencies.counts, minlength=space)
    failing = sizes < k
    counted = zip(frequencies.distinct, frequencies.distinct_cards, minimums, strict=True)
    for codes, card, minimum in counted:
        pairs = np.unique(classes * max(card, 1) + codes) // max(card, 1)
        failing |= np.bincount(pairs, minlength=space) < minimum
    suppressed = failing[classes]
    present = sizes > 0
    kept = present & ~failing
    return Verdict(
        suppressed=suppressed,
        suppressed_rows=int(frequencies.counts[suppressed].sum()),
        smallest_class=int(sizes[kept].min()) if kept.any() else 0,
        kept_classes=int(kept.sum()),
    )
