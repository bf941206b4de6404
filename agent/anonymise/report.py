"""What a check or an anonymisation tells its reader: sizes and levels, never values (L7).

The smallest classes are described by how large they are and how many there are; naming their
values would point at the very people the check found exposed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

LOSS_MEASURE = (
    "Loss Metric (Iyengar 2002): a cell generalised to a label covering m of its column's D "
    "distinct values costs (m-1)/(D-1); the mean over all quasi-identifier cells, "
    "0 = the original values, 1 = every quasi-identifier '*'"
)


@dataclass(frozen=True)
class ClassSizes:
    """The equivalence classes of a table over its quasi-identifiers, by size."""

    k: int
    rows: int
    classes: int
    #: The size of the smallest class (0 for an empty table).
    smallest: int
    #: (size, number of classes of that size) for every size below k, smallest first.
    small: tuple[tuple[int, int], ...]
    rows_in_small: int

    @property
    def anonymous(self) -> bool:
        return self.rows_in_small == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "anonymous": self.anonymous,
            "rows": self.rows,
            "classes": self.classes,
            "smallest_class": self.smallest,
            "rows_in_small_classes": self.rows_in_small,
            "small_classes": [{"size": size, "classes": count} for size, count in self.small],
        }

    def lines(self) -> list[str]:
        if self.anonymous:
            return [
                f"{self.k}-anonymous: {self.rows:,} rows in {self.classes:,} classes, "
                f"the smallest of {self.smallest:,}"
            ]
        small = sum(count for _, count in self.small)
        described = ", ".join(
            f"{count:,} of size {size}" for size, count in self.small[:5]
        ) + (", ..." if len(self.small) > 5 else "")
        return [
            f"not {self.k}-anonymous: {self.rows_in_small:,} of {self.rows:,} rows fall in "
            f"{small:,} classes smaller than {self.k} (L7)",
            f"smallest classes: {described}",
        ]


def class_sizes(
    frame: pl.DataFrame, quasi_identifiers: Sequence[str], k: int, *, person: str | None = None
) -> ClassSizes:
    """One group-by count over the quasi-identifiers (missing values form their own class);
    a class's size is its rows, or its distinct persons when a person column is named."""
    if frame.height == 0:
        return ClassSizes(k, 0, 0, 0, (), 0)
    groups = frame.group_by(list(quasi_identifiers))
    if person is None:
        classes = groups.len().select(pl.col("len").alias("size"), pl.col("len").alias("rows"))
    else:
        classes = groups.agg(pl.col(person).n_unique().alias("size"), pl.len().alias("rows"))
    small_classes = classes.filter(pl.col("size") < k)
    histogram = small_classes["size"].value_counts(sort=False)
    small = tuple(sorted((int(size), int(count)) for size, count in histogram.iter_rows()))
    return ClassSizes(
        k=k,
        rows=frame.height,
        classes=classes.height,
        smallest=int(classes["size"].min()),  # type: ignore[arg-type]
        small=small,
        rows_in_small=int(small_classes["rows"].sum()),
    )


def fewest_distinct(frame: pl.DataFrame, quasi_identifiers: Sequence[str], column: str) -> int:
    """The fewest distinct values of ``column`` in any class (persons, or sensitive values)."""
    if frame.height == 0:
        return 0
    per_class = frame.group_by(list(quasi_identifiers)).agg(pl.col(column).n_unique())
    return int(per_class[column].min())  # type: ignore[arg-type]


@dataclass(frozen=True)
class Report:
    """The JSON report of ``vokter anonymise apply`` (and of the lifecycle's anonymisation)."""

    k: int
    k_reached: int
    l_diversity: int
    max_suppression: float
    rows: int
    rows_out: int
    suppressed_rows: int
    #: Quasi-identifier -> level chosen (0 = original values).
    levels: dict[str, int]
    level_names: dict[str, str]
    hierarchies: dict[str, str]
    loss: float
    classes: int
    removed_columns: dict[str, str]
    shifted_columns: list[str]
    nodes_checked: int
    nodes_total: int
    policy_k: int
    #: The loss the search minimised: the generalisation's alone (``loss`` also prices the
    #: suppressed rows' cells as lost).
    generalisation_loss: float = 0.0
    #: The column groups were counted in persons by, if any (L7).
    person: str | None = None
    #: Quasi-identifiers written at a level above 0 (their values are labels now).
    generalised: tuple[str, ...] = ()
    #: Labels and other metadata strings in which identity numbers were masked on writing.
    masked_metadata: int = 0
    loss_measure: str = field(default=LOSS_MEASURE)

    @property
    def meets_policy(self) -> bool:
        return self.k >= self.policy_k

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["generalised"] = list(self.generalised)
        data["meets_policy"] = self.meets_policy
        return data

    def lines(self) -> list[str]:
        levels = ", ".join(
            f"{name} {level} ({self.level_names[name]})" for name, level in self.levels.items()
        )
        unit = "rows" if self.person is None else f"persons ({self.person})"
        smallest = (
            f"every class holds at least {self.k_reached:,} {unit} (k = {self.k})"
            if self.rows_out
            else "the table has no rows"
        )
        lines = [
            f"{self.rows_out:,} of {self.rows:,} rows written, "
            f"{self.suppressed_rows:,} suppressed; {smallest}",
            f"levels: {levels}",
            f"loss {self.loss:.4f} with suppressed rows counted as lost, "
            f"{self.generalisation_loss:.4f} from generalising alone (0 = original values, "
            f"1 = all '*'); {self.nodes_checked:,} of {self.nodes_total:,} generalisations checked",
        ]
        if self.removed_columns:
            removed = ", ".join(f"{name} ({why})" for name, why in self.removed_columns.items())
            lines.append(f"removed: {removed}")
        if self.masked_metadata:
            lines.append(f"identity numbers masked in {self.masked_metadata} label(s) (L6)")
        if self.shifted_columns:
            lines.append(f"dates shifted per person (D4): {', '.join(self.shifted_columns)}")
        if not self.meets_policy:
            lines.append(
                f"warning: k = {self.k} is below the policy's k = {self.policy_k}: "
                "the output does not count as anonymous (L7)"
            )
        return lines
