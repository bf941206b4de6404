"""vokter dataset ...: delivered datasets and the variables the project was approved for (D2).

The delivered file is opened here, with the user's own rights, and passed to the daemon as a
descriptor: vokterd never opens a path a client names. The approved-variables file is read
here too, and only the names travel.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import click

from agent.api import UsageError, VokterError
from cli.context import CliState, pass_state
from cli.files import open_own
from cli.output import clean, print_json, print_table, warn

DATASET_COLUMNS = [
    ("id", "ID"),
    ("source", "SOURCE"),
    ("path", "PATH"),
    ("approved", "APPROVED"),
    ("held", "COLUMNS"),
    ("unapproved", "UNAPPROVED"),
    ("added_by", "ADDED-BY"),
    ("added", "ADDED"),
]
#: A variables file is a list of names; anything this large is the wrong file.
MAX_VARIABLES_BYTES = 4 * 1024 * 1024
_DELIMITED_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t"}


def parse_variables(text: str, name: str = "") -> list[str]:
    """The variable names in a --variables file.

    Either one name per line ('#' starts a comment; blank lines are skipped), or the first
    line of a CSV/TSV file: its header names the variables (a .csv, .tsv or .tab file, or a
    first line holding a tab, ';' or ','). Names keep their spelling, trimmed.
    """
    lines = [line.split("#", 1)[0].strip() for line in text.lstrip("\ufeff").splitlines()]
    meaningful = [line for line in lines if line]
    if not meaningful:
        return []
    first = meaningful[0]
    by_suffix = _DELIMITED_SUFFIXES.get(Path(name).suffix.lower())
    seen = next((d for d in ("\t", ";", ",") if d in first), None)
    if by_suffix is None and seen is None:
        return meaningful
    delimiter = by_suffix if by_suffix is not None and by_suffix in first else seen or by_suffix
    assert delimiter is not None
    header = next(csv.reader([first], delimiter=delimiter), [])
    return [cell.strip() for cell in header if cell.strip()]


def _read_variables(path: Path) -> list[str]:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_VARIABLES_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except OSError as error:
        raise VokterError(f"{path}: {error.strerror or error}") from None
    if len(data) > MAX_VARIABLES_BYTES:
        raise UsageError(f"{path} is larger than {MAX_VARIABLES_BYTES // (1024 * 1024)} MiB: "
                         "not a list of variable names")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text") from None
    return parse_variables(text, path.name)


@click.group()
def dataset() -> None:
    """Record delivered datasets and their approved variables (D2; leaders and root)."""


@dataset.command("add")
@click.argument("project_id", metavar="PROJECT")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--source", required=True, metavar="REGISTER",
              help="The register or owner that delivered it, e.g. NPR, SSB, NOIS (D5 keeps "
                   "de-identified registers apart).")
@click.option("--variables", "variables_file", required=True, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="The approved variables, as the source names them: one per line ('#' "
                   "comments), or a CSV/TSV whose first line names them.")
@click.option("--json", "as_json", is_flag=True, help="Print the recorded dataset as JSON.")
@pass_state
def add(state: CliState, project_id: str, path: Path, source: str, variables_file: Path,
        as_json: bool) -> None:
    """Record PATH, in PROJECT's data zone, as a dataset delivered from REGISTER.

    Columns of PATH outside the approved list are a D2 violation at once, and so are they in
    any file later derived from PATH.

    \b
    Examples:
      vokter dataset add p1234 /srv/vokter/p1234/data/npr_2025.csv --source NPR \\
          --variables approved_npr.txt
      vokter dataset add p1234 /srv/vokter/p1234/data/nois.sav --source NOIS \\
          --variables application_nois.csv --json
    """
    variables = _read_variables(variables_file)
    fd = open_own(path)
    try:
        result = state.client().call_streaming("dataset.add", fds=[fd], project=project_id,
                                               source=source, variables=variables)
    finally:
        os.close(fd)
    if as_json:
        print_json(result)
        return
    recorded = result["dataset"]
    click.echo(f"recorded dataset {recorded['id']} of {recorded['project']} from "
               f"{clean(recorded['source'])}: {len(recorded['variables'])} approved variables, "
               f"{len(recorded['columns'])} columns")
    unapproved: list[str] = list(result.get("unapproved") or [])
    if unapproved:
        ids = ", ".join(str(i) for i in result.get("violations") or [])
        which = f" (violation {ids})" if ids else ""
        warn(f"{len(unapproved)} column(s) outside the approved variables{which} (D2): "
             + clean(", ".join(unapproved)))


@dataset.command("list")
@click.argument("project_id", metavar="PROJECT")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_state
def list_(state: CliState, project_id: str, as_json: bool) -> None:
    """List PROJECT's delivered datasets with their approved and unapproved columns.

    \b
    Examples:
      vokter dataset list p1234
      vokter dataset list p1234 --json | jq -r '.[] | select(.unapproved != []) | .path'
    """
    rows = state.call("dataset.list", project=project_id)
    if as_json:
        print_json(rows)
        return
    print_table(_printable(rows), DATASET_COLUMNS, empty=f"No datasets recorded in {project_id}.")



def _printable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A row per dataset: the lists of variables and columns as counts (there may be
    thousands), the unapproved columns by name."""
    return [{"id": row["id"], "source": clean(str(row["source"])),
             "path": clean(str(row["path"])), "approved": len(row["variables"]),
             "held": len(row["columns"]),
             "unapproved": [clean(str(name)) for name in row["unapproved"]],
             "added_by": row["added_by"], "added": row["added"]} for row in rows]
