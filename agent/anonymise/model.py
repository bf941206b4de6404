"""The values the anonymisation rooms hand each other.

Why a room of its own: the hierarchy parser, the lattice search, the table adapters and the
CLI are written and tested apart; these frozen values are the contract between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: The built-in generalisation ladders (D3) and the fallback for a column without one.
BuiltInKind = Literal["date", "age", "municipality", "postal", "sex", "flat"]
BUILT_IN_KINDS: tuple[BuiltInKind, ...] = ("date", "age", "municipality", "postal", "sex", "flat")

#: The label every hierarchy ends in: the value withheld altogether.
TOP = "*"


@dataclass(frozen=True, slots=True)
class FileHierarchy:
    """A custom hierarchy in ARX's format: one row per original value, one column per level
    (level 0 = the value itself), read from ``source``."""

    source: str
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class BuiltInHierarchy:
    kind: BuiltInKind


HierarchySpec = FileHierarchy | BuiltInHierarchy


@dataclass(frozen=True, slots=True)
class Ladder:
    """One quasi-identifier's generalisation, over the values present in the data.

    ``values`` are the distinct level-0 values as text (None = missing); their index is the
    value's code. ``labels[level][code]`` is that value generalised to ``level``;
    ``labels[0] == values`` and the last level is ``TOP`` for every present value. A ladder is a
    tree: two values that share a label at one level share it at every level above, which is
    what makes the search's pruning (monotonicity) sound.
    """

    column: str
    #: A built-in kind, or "file" for a custom hierarchy.
    kind: str
    #: Human names of the levels, e.g. ("value", "month", "year", "decade", "*").
    level_names: tuple[str, ...]
    values: tuple[str | None, ...]
    labels: tuple[tuple[str | None, ...], ...]

    @property
    def height(self) -> int:
        """The highest level (``TOP``); a node's level for this column runs 0..height."""
        return len(self.labels) - 1


@dataclass(frozen=True, slots=True)
class DateShift:
    """D4: every date column named here is shifted per person by an offset derived from the
    person's serial number with the project's secret."""

    columns: tuple[str, ...]
    serial: str
    secret_file: str
    #: Offsets fall in [-max_days, -1] or [1, max_days]: never zero, never beyond this.
    max_days: int = 180


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything one anonymisation run needs, from the command line or a project's config."""

    quasi_identifiers: tuple[str, ...]
    k: int
    max_suppression: float = 0.0
    #: Distinct l-diversity over ``sensitive``; 0 turns it off.
    l_diversity: int = 0
    sensitive: tuple[str, ...] = ()
    #: Column name -> hierarchy; a QI not named here gets an inferred built-in one.
    hierarchies: tuple[tuple[str, HierarchySpec], ...] = ()
    #: Removed outright (L6); identity-number columns are found and removed as well.
    direct_identifiers: tuple[str, ...] = ()
    #: The column naming the person a row is about (a serial number). With it, every group
    #: must hold k *persons* (L7), not k rows: five visits of one person are one person.
    #: None falls back to the date shift's serial column, if any.
    person: str | None = None
    date_shift: DateShift | None = None
    #: Seeds the shuffle of the output's rows (so row order cannot link back); None = random.
    seed: int | None = None
