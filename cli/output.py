"""How answers reach people: rich tables on a terminal, plain tab-separated lines in a pipe,
JSON with ``--json``. Errors go to stderr as one line."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text


def on_terminal() -> bool:
    return sys.stdout.isatty()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]],
                empty: str) -> None:
    """``columns`` are (key, heading) pairs."""
    if not rows:
        print(empty, file=sys.stderr if not on_terminal() else sys.stdout)
        return
    if on_terminal():
        table = Table(show_edge=False, header_style="bold")
        for _, heading in columns:
            table.add_column(heading)
        for row in rows:
            # Cells are other people's text (reasons, file names): never rich markup.
            table.add_row(*(Text(_cell(row.get(key))) for key, _ in columns))
        Console().print(table)
        return
    for row in rows:
        print("\t".join(_one_line(_cell(row.get(key))) for key, _ in columns))


def clean(text: str) -> str:
    """Text other people wrote (reasons, notes, file names, program names) must not break a
    record over lines or send control sequences to the reader's terminal."""
    return "".join(ch if ch.isprintable() else " " for ch in text)


def minute(moment: str) -> str:
    """An ISO time to the minute, as people read it in a table; the JSON keeps it whole."""
    return moment[:16].replace("T", " ")


def printable(rows: Sequence[Mapping[str, Any]], times: Sequence[str] = ()
              ) -> list[dict[str, Any]]:
    """Rows as a table shows them: every text cleaned, the ``times`` columns to the minute."""
    return [{key: minute(value) if key in times and isinstance(value, str)
             else clean(value) if isinstance(value, str) else value
             for key, value in row.items()} for row in rows]


def _one_line(text: str) -> str:
    """A record per line in a pipe: no tab or line break inside a cell can split it."""
    return " ".join(text.replace("\t", " ").splitlines())


def print_fields(fields: Sequence[tuple[str, Any]]) -> None:
    """A record as 'name: value' lines; aligned on a terminal, plain in a pipe."""
    width = max((len(name) for name, _ in fields), default=0)
    for name, value in fields:
        label = f"{name}:".ljust(width + 1) if on_terminal() else f"{name}:"
        print(f"{label} {_cell(value)}")


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def error_line(message: str) -> None:
    print(f"vokter: {message}", file=sys.stderr)
