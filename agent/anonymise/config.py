"""A project's anonymisation config: which columns identify, how to generalise them, how many
rows may be given up, and how to shift dates. Pure: text in, value or refusal out.

The format (TOML; every key optional, unknown keys refused so that a typo never passes)::

    quasi_identifiers = ["alder", "kommune", "kjonn", "yrke"]
    k = 5                      # every equivalence class at least this large (L7), at least 2
    max_suppression = 0.02     # share of rows that may be withheld, 0..1
    l_diversity = 2            # distinct sensitive values per class, at least 2 (0 = off)
    sensitive = ["diagnose"]   # the columns l_diversity is about; required with it
    direct_identifiers = ["navn", "telefon"]   # removed outright (L6)
    seed = 42                  # shuffles the output's rows reproducibly, 0 .. 2**64-1
    person = "lopenr"          # count groups in persons by this column, not in rows (L7)

    [hierarchies]              # column = a built-in kind or an ARX hierarchy file (D3)
    alder = "age"              # date, age, municipality, postal, sex, flat
    yrke = "hierarkier/yrke.csv"   # anything else is a path, kept as written

    [dates]                    # shift every date of a person by one offset (D4)
    columns = ["fodt", "innlagt"]
    serial = "lopenr"          # the column holding the person's serial number
    secret_file = "/srv/vokter/p1/date-secret"
    max_shift_days = 180       # offsets in [-180, -1] or [1, 180]; 1..3650

A path that happens to be a built-in's name is written ``./age``. Why the paths are kept as
written: resolving them against the config file's folder is I/O, and belongs to the caller.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any

from agent.anonymise.dates import MAX_SHIFT_DAYS
from agent.anonymise.model import BUILT_IN_KINDS, DateShift
from agent.errors import InvalidRequest

#: Real configs are a few hundred bytes; the cap keeps a pathological input cheap.
MAX_TEXT_CHARS = 1 << 20
MAX_SEED = 2**64 - 1
_TOP_KEYS = frozenset({"quasi_identifiers", "k", "max_suppression", "l_diversity", "sensitive",
                       "direct_identifiers", "seed", "person", "hierarchies", "dates"})
_DATE_KEYS = frozenset({"columns", "serial", "secret_file", "max_shift_days"})
_DATE_REQUIRED = ("columns", "serial", "secret_file")


@dataclass(frozen=True, slots=True)
class AnonymisationConfig:
    quasi_identifiers: tuple[str, ...]
    k: int | None
    max_suppression: float | None
    l_diversity: int | None
    sensitive: tuple[str, ...]
    direct_identifiers: tuple[str, ...]
    seed: int | None
    #: Column -> a built-in kind's name or a hierarchy file's path, as written.
    hierarchies: tuple[tuple[str, str], ...]
    date_shift: DateShift | None
    #: The column naming persons: groups are then counted in persons (L7).
    person: str | None = None


def _shown(value: object) -> str:
    """A value in a refusal: its repr, short enough for one line."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class _Source:
    """Makes the one-line refusals, all naming the file and the key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def refuse(self, key: str, problem: str, hint: str, rule: str | None = None
               ) -> InvalidRequest:
        return InvalidRequest(f"{self.source}: {key}: {problem}", rule=rule, hint=hint)


def _integer(src: _Source, table: dict[str, Any], key: str, name: str) -> int | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise src.refuse(name, f"{_shown(value)} is not a whole number", f"write {name} = 5")
    return value


def _names(src: _Source, table: dict[str, Any], key: str, name: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip()
                                              for item in value):
        raise src.refuse(name, "must be an array of column names",
                         f'write {name} = ["column", ...]')
    twice = sorted({item for item in value if value.count(item) > 1})
    if twice:
        raise src.refuse(name, f"{twice[0]!r} is named twice", "name each column once")
    return tuple(value)


def _string(src: _Source, table: dict[str, Any], key: str, name: str) -> str:
    value = table[key]
    if not isinstance(value, str) or not value.strip():
        raise src.refuse(name, "must be a non-empty string", f'write {name} = "..."')
    return value


def _check_unknown(src: _Source, table: dict[str, Any], known: frozenset[str],
                   prefix: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise src.refuse(f"{prefix}{unknown[0]}", "unknown key",
                         f"known keys: {', '.join(sorted(known))}")


def _suppression(src: _Source, table: dict[str, Any]) -> float | None:
    value = table.get("max_suppression")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise src.refuse("max_suppression", f"{_shown(value)} is not a number",
                         "write max_suppression = 0.05 for 5 %")
    if not 0.0 <= value <= 1.0:
        raise src.refuse("max_suppression", f"{value} is outside 0..1",
                         "write a share: 0.05 for 5 %", rule="L7")
    return float(value)


def _hierarchies(src: _Source, table: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    value = table.get("hierarchies", {})
    if not isinstance(value, dict):
        raise src.refuse("hierarchies", "must be a table", 'write [hierarchies] alder = "age"')
    pairs: list[tuple[str, str]] = []
    for column, spec in value.items():
        if not isinstance(spec, str) or not spec.strip():
            raise src.refuse(f"hierarchies.{column}", "must be a built-in kind or a file path",
                             f"built-in kinds: {', '.join(BUILT_IN_KINDS)}", rule="D3")
        pairs.append((column, spec))
    return tuple(pairs)


def _date_shift(src: _Source, table: dict[str, Any]) -> DateShift | None:
    value = table.get("dates")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise src.refuse("dates", "must be a table", '[dates] columns = ["fodt"] ...', rule="D4")
    _check_unknown(src, value, _DATE_KEYS, "dates.")
    for key in _DATE_REQUIRED:
        if key not in value:
            raise src.refuse(f"dates.{key}", "missing", f"date shifting needs {key}", rule="D4")
    columns = _names(src, value, "columns", "dates.columns")
    if not columns:
        raise src.refuse("dates.columns", "names no column", "name the date columns", rule="D4")
    serial = _string(src, value, "serial", "dates.serial")
    if serial in columns:
        raise src.refuse("dates.serial", f"{serial!r} is also a date column",
                         "name the serial-number column", rule="D4")
    secret_file = _string(src, value, "secret_file", "dates.secret_file")
    max_days = _integer(src, value, "max_shift_days", "dates.max_shift_days")
    if max_days is None:
        return DateShift(columns=columns, serial=serial, secret_file=secret_file)
    if not 1 <= max_days <= MAX_SHIFT_DAYS:
        raise src.refuse("dates.max_shift_days", f"{max_days} is outside 1..{MAX_SHIFT_DAYS}",
                         "shift by at most ten years", rule="D4")
    return DateShift(columns=columns, serial=serial, secret_file=secret_file, max_days=max_days)


def _parse_toml(src: _Source, text: str) -> dict[str, Any]:
    if len(text) > MAX_TEXT_CHARS:
        raise src.refuse("file", f"longer than {MAX_TEXT_CHARS} characters",
                         "an anonymisation config is a few lines")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        # The message carries "(at line N, column M)".
        raise InvalidRequest(f"{src.source}: not valid TOML: {error}",
                             hint="fix the line named") from None


def parse_config(text: str, source: str) -> AnonymisationConfig:
    """The config in ``text`` (read from ``source``, named in every refusal)."""
    src = _Source(source)
    table = _parse_toml(src, text)
    _check_unknown(src, table, _TOP_KEYS, "")
    quasi = _names(src, table, "quasi_identifiers", "quasi_identifiers")
    sensitive = _names(src, table, "sensitive", "sensitive")
    direct = _names(src, table, "direct_identifiers", "direct_identifiers")
    k = _integer(src, table, "k", "k")
    if k is not None and k < 2:
        raise src.refuse("k", f"{k} is below 2", "every class must hold at least 2 rows; "
                         "5 is the usual choice", rule="L7")
    l_diversity = _integer(src, table, "l_diversity", "l_diversity")
    if l_diversity is not None and l_diversity != 0:
        if l_diversity < 2:
            raise src.refuse("l_diversity", f"{l_diversity} is below 2",
                             "write 2 or more, or 0 to turn it off")
        if not sensitive:
            raise src.refuse("l_diversity", "needs sensitive columns",
                             'name them: sensitive = ["diagnose"]')
    seed = _integer(src, table, "seed", "seed")
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise src.refuse("seed", f"{seed} is outside 0..2**64-1", "write seed = 42")
    for column in quasi:
        if column in direct:
            raise src.refuse("direct_identifiers", f"{column!r} is also a quasi-identifier",
                             "a direct identifier is removed; name it in one list", rule="L6")
        if column in sensitive:
            raise src.refuse("sensitive", f"{column!r} is also a quasi-identifier",
                             "name it in one list")
    person = _string(src, table, "person", "person") if "person" in table else None
    if person is not None and (person in quasi or person in sensitive):
        raise src.refuse("person", f"{person!r} is also a quasi-identifier or sensitive",
                         "the person column only counts persons; name it in one place",
                         rule="L7")
    for column in sensitive:
        if column in direct:
            raise src.refuse("sensitive", f"{column!r} is also a direct identifier",
                             "a direct identifier is removed; name it in one list", rule="L6")
    return AnonymisationConfig(
        quasi_identifiers=quasi,
        k=k,
        max_suppression=_suppression(src, table),
        l_diversity=l_diversity,
        sensitive=sensitive,
        direct_identifiers=direct,
        seed=seed,
        person=person,
        hierarchies=_hierarchies(src, table),
        date_shift=_date_shift(src, table),
    )
