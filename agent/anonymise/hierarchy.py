"""Generalisation hierarchies (D3): the built-in Norwegian ladders, custom ones in ARX's file
format, and the guess of which built-in fits a column.

Why every ladder is checked to be a tree: the lattice search prunes with monotonicity (a node
above a k-anonymous node is k-anonymous too), and that only holds when two values that share a
label at one level share it at every level above. A custom file that breaks this is refused
with the line that breaks it, rather than letting the search return a wrong optimum.

Why the values come as text: the engine spells every cell the same way whatever the file
format (ISO dates, "34" for a whole number), so one ladder serves CSV, Parquet, Stata and SPSS.

The built-ins, level by level:

- date: date -> month "2019-05" -> year "2019" -> decade "2010-2019" -> "*" (ISO dates, ISO
  date-times and dd.mm.yyyy; impossible dates are refused);
- age: whole years 0..150 -> 5-year band "30-34" -> 10-year band "30-39" -> "*";
- municipality: kommunenummer (4 digits, or 3 when a number lost its leading zero) -> county,
  its first two digits "03" -> "*";
- postal: postnummer (4 digits, or fewer when a number lost its leading zeros: 0010 is 10) ->
  its first two digits -> "*";
- sex, and flat for any other column: value -> "*".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from agent.anonymise.dates import read_date_text
from agent.anonymise.model import (
    TOP,
    BuiltInKind,
    FileHierarchy,
    HierarchySpec,
    Ladder,
)
from agent.errors import InvalidRequest

MAX_AGE = 150
_WHOLE_NUMBER = re.compile(r"^\d{1,4}$")
_HINT_GIVE = "give one with --hierarchy COLUMN=FILE"

#: A built-in's generalisation of one value: labels for levels 1.. below the top, or None
#: when the value does not fit the kind.
Generaliser = Callable[[str], tuple[str, ...] | None]


# --- ARX files --------------------------------------------------------------------------------


def _refuse_file(source: str, line: int | None, problem: str, hint: str) -> InvalidRequest:
    where = f"{source} line {line}" if line is not None else source
    return InvalidRequest(f"hierarchy {where}: {problem}", rule="D3", hint=hint)


def parse_arx_hierarchy(text: str, source: str) -> FileHierarchy:
    """A custom hierarchy from ARX's format: one ``;``-separated line per original value, one
    column per level, level 0 = the value, no header. Blank lines are skipped."""
    rows: list[tuple[str, ...]] = []
    lines: list[int] = []
    for number, line in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        if not line.strip():
            continue
        cells = tuple(line.split(";"))
        if rows and len(cells) != len(rows[0]):
            raise _refuse_file(source, number, f"{len(cells)} levels where line {lines[0]} has "
                               f"{len(rows[0])}", "give every line the same number of levels")
        if len(cells) < 2:
            raise _refuse_file(source, number, "a value without a level above it",
                               "write each value followed by its labels, separated by ';'")
        if "" in cells:
            raise _refuse_file(source, number, f"level {cells.index('')} is empty",
                               "give every level a label (remove a trailing ';')")
        rows.append(cells)
        lines.append(number)
    if not rows:
        raise _refuse_file(source, None, "the file holds no values",
                           "write one line per value: VALUE;LEVEL1;...;*")
    _check_unique_values(rows, lines, source)
    _check_tree(rows, lines, source)
    return FileHierarchy(source=source, rows=tuple(rows))


def _check_unique_values(rows: list[tuple[str, ...]], lines: list[int], source: str) -> None:
    first_line: dict[str, int] = {}
    for cells, number in zip(rows, lines, strict=True):
        earlier = first_line.setdefault(cells[0], number)
        if earlier != number:
            raise _refuse_file(source, number, f"the value {cells[0]!r} is also on line {earlier}",
                               "give each value one line")


def _check_tree(rows: list[tuple[str, ...]], lines: list[int], source: str) -> None:
    """Two values sharing a label at level i must share it at level i+1 (hence above)."""
    for level in range(1, len(rows[0]) - 1):
        parent: dict[str, tuple[str, int]] = {}
        for cells, number in zip(rows, lines, strict=True):
            label, above = cells[level], cells[level + 1]
            seen, seen_line = parent.setdefault(label, (above, number))
            if seen != above:
                raise _refuse_file(
                    source, number,
                    f"{label!r} at level {level} generalises to {above!r} here but to {seen!r} on "
                    f"line {seen_line}, so the hierarchy is not a tree",
                    f"give {label!r} one label at level {level + 1}")


# --- built-ins --------------------------------------------------------------------------------


def _date_levels(value: str) -> tuple[str, ...] | None:
    read = read_date_text(value)
    if read is None:
        return None
    day = read[0]
    decade = day.year - day.year % 10
    return f"{day.year:04d}-{day.month:02d}", f"{day.year:04d}", f"{decade:04d}-{decade + 9:04d}"


def _age(value: str) -> int | None:
    if not _WHOLE_NUMBER.match(value):
        return None
    age = int(value)
    return age if age <= MAX_AGE else None


def _age_levels(value: str) -> tuple[str, ...] | None:
    age = _age(value)
    if age is None:
        return None
    five, ten = age - age % 5, age - age % 10
    return f"{five}-{five + 4}", f"{ten}-{ten + 9}"


def _padded_digits(value: str, shortest: int) -> str | None:
    """A 4-digit code, zero-padded from ``shortest`` digits (a number lost its leading zeros)."""
    if not value.isascii() or not value.isdigit() or not shortest <= len(value) <= 4:
        return None
    return value.zfill(4)


def _municipality_levels(value: str) -> tuple[str, ...] | None:
    code = _padded_digits(value, 3)
    return None if code is None else (code[:2],)


def _postal_levels(value: str) -> tuple[str, ...] | None:
    code = _padded_digits(value, 1)
    return None if code is None else (code[:2],)


def _any_levels(value: str) -> tuple[str, ...]:
    return ()


_BUILT_INS: dict[BuiltInKind, tuple[tuple[str, ...], Generaliser, str]] = {
    # kind: (level names, generaliser, what a fitting value looks like)
    "date": (("date", "month", "year", "decade", TOP), _date_levels,
             "dates (YYYY-MM-DD, YYYY-MM-DD HH:MM:SS or dd.mm.yyyy)"),
    "age": (("age", "5-year band", "10-year band", TOP), _age_levels,
            f"whole years 0..{MAX_AGE}"),
    "municipality": (("municipality", "county", TOP), _municipality_levels,
                     "municipality numbers of 4 digits"),
    "postal": (("postal code", "postal area", TOP), _postal_levels,
               "postal codes of 4 digits"),
    "sex": (("sex", TOP), _any_levels, "any value"),
    "flat": (("value", TOP), _any_levels, "any value"),
}


def _misfits(column: str, kind: str, bad: list[str], expected: str, hint: str) -> InvalidRequest:
    shown = ", ".join(repr(value) for value in bad[:3])
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    verb = "does" if len(bad) == 1 else "do"
    return InvalidRequest(f"column {column!r}: {shown}{more} {verb} not fit the {kind} hierarchy "
                          f"({expected})", rule="D3", hint=hint)


def _assemble(column: str, kind: str, level_names: tuple[str, ...],
              values: Sequence[str | None],
              above: Sequence[tuple[str, ...] | None]) -> Ladder:
    """Levels as columns: level 0 the values, then each value's labels, the top all ``TOP``."""
    height = len(level_names) - 1
    labels: list[tuple[str | None, ...]] = [tuple(values)]
    for level in range(1, height):
        labels.append(tuple(None if row is None else row[level - 1] for row in above))
    labels.append((TOP,) * len(values))
    return Ladder(column=column, kind=kind, level_names=level_names, values=tuple(values),
                  labels=tuple(labels))


def _climb(
    values: Sequence[str | None], generalise: Callable[[str], tuple[str, ...] | None]
) -> tuple[list[tuple[str, ...] | None], list[str]]:
    """Each value's labels above level 0 (None for a missing value), and the values that do
    not fit."""
    above: list[tuple[str, ...] | None] = []
    bad: list[str] = []
    for value in values:
        labels = None if value is None else generalise(value)
        if value is not None and labels is None:
            bad.append(value)
        above.append(labels)
    return above, bad


def _built_in_ladder(column: str, kind: BuiltInKind, values: Sequence[str | None]) -> Ladder:
    level_names, generalise, expected = _BUILT_INS[kind]
    above, bad = _climb(values, generalise)
    if bad:
        raise _misfits(column, kind, bad, expected, _HINT_GIVE)
    return _assemble(column, kind, level_names, values, above)


def _file_ladder(column: str, spec: FileHierarchy, values: Sequence[str | None]) -> Ladder:
    by_value = {row[0]: row[1:] for row in spec.rows}
    ends_in_top = all(row[-1] == TOP for row in spec.rows)
    above, bad = _climb(values, by_value.get)
    if bad:
        raise _misfits(column, "file", bad, f"missing from {spec.source}",
                       f"add them to {spec.source}, or {_HINT_GIVE}")
    # A file whose last level is not "*" for every value gets a "*" level of its own, so every
    # ladder ends in the value withheld altogether.
    depth = len(spec.rows[0]) if ends_in_top else len(spec.rows[0]) + 1
    level_names = ("value", *(f"level {level}" for level in range(1, depth - 1)), TOP)
    return _assemble(column, "file", level_names, values, above)


def ladder_for(column: str, spec: HierarchySpec, values: Sequence[str | None]) -> Ladder:
    """The ladder of ``column`` over its distinct values (in the given order; None = missing,
    which stays None below the top). A value that does not fit is refused, naming it."""
    if isinstance(spec, FileHierarchy):
        return _file_ladder(column, spec, values)
    return _built_in_ladder(column, spec.kind, values)


# --- guessing the kind -------------------------------------------------------------------------


def _name_kind(column: str) -> BuiltInKind | None:
    """The kind a column's name suggests (Norwegian or English), before looking at values."""
    name = column.strip().lower()
    words = [word for word in re.split(r"[^0-9a-zæøå]+", name) if word]
    if any(word in ("alder", "age") for word in words):
        return "age"
    if any(word in ("kjonn", "kjønn", "kjoenn", "sex", "gender") for word in words):
        return "sex"
    if ("kommune" in name or "knr" in words
            or any(word.startswith("municipal") for word in words)):
        return "municipality"
    if ("postnr" in name or "postnummer" in name
            or any(word.startswith(("postal", "zip")) for word in words)):
        return "postal"
    if (any(part in name for part in ("dato", "født", "fodt", "foedt", "birth"))
            or any(word.startswith("date") or word.endswith("date") for word in words)):
        return "date"
    return None


def _fits(kind: BuiltInKind, present: Sequence[str]) -> bool:
    generalise = _BUILT_INS[kind][1]
    return all(generalise(value) is not None for value in present)


def infer_kind(column: str, values: Sequence[str | None]) -> BuiltInKind:
    """The built-in for a column without a hierarchy: by its name, confirmed by its values (a
    column named alder holding text is no age); a column of only ISO dates is a date whatever
    its name (dd.mm.yyyy counts too: flattening dates to "*" would lose them needlessly);
    anything else is flat (value -> "*")."""
    present = [value for value in values if value is not None]
    by_name = _name_kind(column)
    if by_name is not None and _fits(by_name, present):
        return by_name
    if present and all(read_date_text(value) is not None for value in present):
        return "date"
    return "flat"

