"""The optimal generalisation: a pruned search of the lattice (L7, D3).

A *node* gives each quasi-identifier a level of its hierarchy (0 = the values as they are).
A node *satisfies* the constraints when, after suppressing every equivalence class smaller than
k (or with fewer than l distinct sensitive values), at most ``max_suppressed_rows`` rows are
suppressed. Because the hierarchies are trees, generalising merges classes and never splits
them, so satisfying is *monotone*: every node above a satisfying node satisfies, every node
below a failing one fails. That is what lets the search tag whole regions of the lattice from
one check, as Flash and Incognito do, instead of checking every node.

**Information loss** is Iyengar's Loss Metric over the generalisation: a cell whose value is
generalised to a label covering ``m`` of the column's ``D`` distinct values costs
``(m - 1) / (D - 1)``; the loss is the mean over all quasi-identifier cells, 0 for the original
data and 1 when every quasi-identifier is ``*``. It grows with every level, so the optimum (the
satisfying node of least loss; ties go to the fewest levels, then the lowest levels in column
order) is always *minimal*: lowering any one column's level makes it fail. Suppression is bounded
by the limit, not traded against generalisation (Samarati's formulation), which is what keeps
that guarantee.

The strategy: nodes are visited in order of loss. An unresolved node is resolved with Flash's
path check: a chain of unresolved nodes upward from it (each step the cheapest generalisation),
binary-searched for the lowest satisfying node, each check tagging its up-set or down-set. The
first node found satisfying in loss order is the optimum, since every node before it failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from agent.anonymise.classes import FrequencySet, Ladders, Verdict, judge
from agent.errors import InvalidRequest

#: A lattice larger than this is refused: name fewer quasi-identifiers or shorter hierarchies.
MAX_NODES = 2_000_000

_UNKNOWN, _PASS, _FAIL = 0, 1, -1


@dataclass(frozen=True)
class Criteria:
    k: int
    max_suppressed_rows: int
    #: The least number of distinct values per class of each of the frequency set's counted
    #: columns (l for a sensitive column, k for the person column).
    minimums: tuple[int, ...] = ()


@dataclass(frozen=True)
class SearchResult:
    levels: tuple[int, ...]
    verdict: Verdict
    loss: float
    #: Nodes whose classes were counted; the rest were tagged by monotonicity or not needed.
    nodes_checked: int
    nodes_total: int


def _cell_costs(ladders: Ladders, q: int, level: int) -> npt.NDArray[np.float64]:
    """The Loss Metric of each level-0 value of column ``q`` generalised to ``level``."""
    labels = ladders.maps[q][level]
    distinct = labels.size
    if distinct <= 1:
        return np.zeros(distinct, dtype=np.float64)
    covered = np.bincount(labels, minlength=ladders.cards[q][level])[labels]
    return (covered - 1) / (distinct - 1)


def loss_tables(frequencies: FrequencySet, ladders: Ladders) -> tuple[npt.NDArray[np.float64], ...]:
    """Per quasi-identifier, the Loss Metric of each level averaged over the table's rows."""
    rows = max(frequencies.rows, 1)
    tables: list[npt.NDArray[np.float64]] = []
    for q, maps in enumerate(ladders.maps):
        per_value = np.bincount(
            frequencies.codes[q], weights=frequencies.counts, minlength=maps[0].size
        )
        tables.append(np.array(
            [float(per_value @ _cell_costs(ladders, q, level)) / rows for level in range(len(maps))]
        ))
    return tuple(tables)


def loss_with_suppression(
    frequencies: FrequencySet, ladders: Ladders, levels: Sequence[int], verdict: Verdict
) -> float:
    """The loss a reader of the output bears: the Loss Metric of the cells written, and every
    cell of a suppressed row counted as lost (1). The search minimises the generalisation's loss
    under the suppression bound; this is the figure that also prices what was left out."""
    rows = frequencies.rows
    if rows == 0 or not levels:
        return 0.0
    kept = frequencies.counts * ~verdict.suppressed
    written = sum(
        float(kept @ _cell_costs(ladders, q, level)[frequencies.codes[q]])
        for q, level in enumerate(levels)
    )
    return (written + verdict.suppressed_rows * len(levels)) / (rows * len(levels))


def lattice(heights: Sequence[int]) -> npt.NDArray[np.int64]:
    """Every node, one row each, as levels per quasi-identifier."""
    total = 1
    for height in heights:
        total *= height + 1
    if total > MAX_NODES:
        raise InvalidRequest(
            f"the hierarchies give {total:,} combinations of levels, more than {MAX_NODES:,}",
            rule="L7",
            hint="name fewer quasi-identifiers or give hierarchies with fewer levels",
        )
    grids = np.indices([height + 1 for height in heights], dtype=np.int64)
    return grids.reshape(len(heights), -1).T.copy()


class _Lattice:
    """The mutable bookkeeping of one search: every node's status, tagged by monotonicity."""

    def __init__(self, heights: Sequence[int], losses: Sequence[npt.NDArray[np.float64]]) -> None:
        self.heights = np.asarray(heights, dtype=np.int64)
        self.nodes = lattice(heights)
        count = len(heights)
        self.loss: npt.NDArray[np.float64] = np.zeros(len(self.nodes), dtype=np.float64)
        for q in range(count):
            self.loss += losses[q][self.nodes[:, q]]
        if count:
            self.loss /= count
        strides = np.ones(count, dtype=np.int64)
        for q in range(count - 2, -1, -1):
            strides[q] = strides[q + 1] * (heights[q + 1] + 1)
        self.strides = strides
        # Visit order: least loss, then fewest levels, then lowest levels in column order.
        keys = [self.nodes[:, q] for q in range(count - 1, -1, -1)]
        self.order = np.lexsort([*keys, self.nodes.sum(axis=1), np.round(self.loss, 12)])
        self.rank = np.empty_like(self.order)
        self.rank[self.order] = np.arange(self.order.size)
        self.status = np.zeros(len(self.nodes), dtype=np.int8)

    def tag(self, index: int, satisfied: bool) -> None:
        node = self.nodes[index]
        above_or_below = self.nodes >= node if satisfied else self.nodes <= node
        region = above_or_below.all(axis=1)
        self.status[region & (self.status == _UNKNOWN)] = _PASS if satisfied else _FAIL

    def path_up(self, start: int) -> list[int]:
        """A chain of unresolved nodes from ``start`` upward, each step the cheapest one."""
        path = [start]
        current = start
        while True:
            node = self.nodes[current]
            steps = [
                current + int(self.strides[q])
                for q in range(len(node))
                if node[q] < self.heights[q]
            ]
            open_steps = [step for step in steps if self.status[step] == _UNKNOWN]
            if not open_steps:
                return path
            current = min(open_steps, key=lambda step: int(self.rank[step]))
            path.append(current)


def search(frequencies: FrequencySet, ladders: Ladders, criteria: Criteria) -> SearchResult | None:
    """The optimal node, or None when even the top of every hierarchy fails."""
    losses = loss_tables(frequencies, ladders)
    space = _Lattice(ladders.heights, losses)
    verdicts: dict[int, Verdict] = {}

    def satisfied(index: int) -> bool:
        verdict = judge(
            frequencies,
            ladders,
            tuple(int(level) for level in space.nodes[index]),
            k=criteria.k,
            minimums=criteria.minimums,
        )
        verdicts[index] = verdict
        return verdict.suppressed_rows <= criteria.max_suppressed_rows

    top = len(space.nodes) - 1
    if not satisfied(top):
        return None
    space.tag(top, True)
    chosen = top
    for index in space.order:
        index = int(index)
        if space.status[index] == _UNKNOWN:
            path = space.path_up(index)
            low, high = 0, len(path) - 1
            while low <= high:
                middle = (low + high) // 2
                verdict_pass = satisfied(path[middle])
                space.tag(path[middle], verdict_pass)
                if verdict_pass:
                    high = middle - 1
                else:
                    low = middle + 1
        if space.status[index] == _PASS:
            chosen = index
            break
    if chosen not in verdicts:
        satisfied(chosen)
    levels = tuple(int(level) for level in space.nodes[chosen])
    return SearchResult(
        levels=levels,
        verdict=verdicts[chosen],
        loss=float(space.loss[chosen]),
        nodes_checked=len(verdicts),
        nodes_total=len(space.nodes),
    )
