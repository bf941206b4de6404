"""vokter violations ...: the storage rules found broken, and closing them (S1-S7, D2, D5)."""

from __future__ import annotations

import click

from cli.context import CliState, pass_state
from cli.output import print_json, print_table, printable

VIOLATION_COLUMNS = [
    ("id", "ID"),
    ("project", "PROJECT"),
    ("rule", "RULE"),
    ("detected", "DETECTED"),
    ("path", "PATH"),
    ("action", "ACTION"),
    ("outcome", "OUTCOME"),
    ("status", "STATUS"),
    ("summary", "SUMMARY"),
]


@click.group()
def violations() -> None:
    """See and resolve storage violations (leaders; auditors see; root sees all)."""


@violations.command("list")
@click.argument("project_id", metavar="[PROJECT]", required=False)
@click.option("--open", "open_only", is_flag=True, help="Only violations not yet resolved.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON, with each one's details.")
@pass_state
def list_(state: CliState, project_id: str | None, open_only: bool, as_json: bool) -> None:
    """List the violations of PROJECT, or of every project you lead or audit.

    Root sees every project's, and the host's own (a portable medium, with no project).
    Summaries name rules, registers, counts and column names, never a value from a file.

    \b
    Examples:
      vokter violations list p1234 --open
      vokter violations list --json | jq '.[] | select(.rule == "D2") | .id'
    """
    rows = state.call("violations.list", project=project_id, open_only=open_only)
    if as_json:
        print_json(rows)
        return
    which = "open violations" if open_only else "violations"
    where = f" in {project_id}" if project_id else ""
    print_table(printable(rows), VIOLATION_COLUMNS, empty=f"No {which}{where}.")


@violations.command("resolve")
@click.argument("violation_id", metavar="ID", type=click.IntRange(min=1))
@click.option("--note", required=True,
              help="What was done about it (one line, at most 1000 characters); kept with "
                   "the violation and in the audit trail.")
@click.option("--json", "as_json", is_flag=True, help="Print the resolved violation as JSON.")
@pass_state
def resolve(state: CliState, violation_id: int, note: str, as_json: bool) -> None:
    """Close violation ID, saying what was done about it (the project's leader; root).

    \b
    Examples:
      vokter violations resolve 17 --note "column 'kommune' deleted; owner asked to re-deliver"
      vokter violations resolve 18 --note "USB stick removed and handed to the operator"
    """
    result = state.call("violations.resolve", id=violation_id, note=note)
    if as_json:
        print_json(result)
        return
    where = f" in {result['project']}" if result.get("project") else ""
    click.echo(f"resolved violation {result['id']} ({result['rule']}{where})")

