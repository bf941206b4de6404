"""vokter access ...: the auditor's view of who has or had access (A2), and the ACL check."""

from __future__ import annotations

import csv
import sys
from typing import Any

import click

from cli.context import CliState, pass_state
from cli.output import clean, print_json, print_table, printable

REVIEW_COLUMNS = [
    ("project", "PROJECT"),
    ("user", "USER"),
    ("role", "ROLE"),
    ("status", "STATUS"),
    ("since", "SINCE"),
    ("until", "UNTIL"),
    ("granted_by", "GRANTED-BY"),
    ("reason", "REASON"),
    ("ended_by", "ENDED-BY"),
    ("end_reason", "END-REASON"),
]

#: Every field of a review row, in this order, is a CSV column: the export is the whole record.
CSV_FIELDS = ["project", "user", "uid", "role", "status", "granted_by", "reason", "since",
              "until", "ended_by", "end_reason"]


@click.group()
def access() -> None:
    """Review who has or had access, and check the ACLs on disk against the access list."""


@access.command("review")
@click.argument("project_id", metavar="[PROJECT]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Write CSV with a header line to stdout.")
@pass_state
def review(state: CliState, project_id: str | None, as_json: bool, as_csv: bool) -> None:
    """Everyone who has or had access to PROJECT (default: every project you may review).

    Removed and expired grants stay listed with who ended them and why, so an auditor sees
    the whole history of access, not only today's list (A2).

    \b
    Examples:
      vokter access review p1234
      vokter access review --csv > access-review.csv
      vokter access review p1234 --json | jq '.[] | select(.status == "active")'
    """
    if as_json and as_csv:
        raise click.UsageError("--json and --csv cannot be used together")
    rows = state.call("access.review", project=project_id)
    if as_json:
        print_json(rows)
    elif as_csv:
        _write_csv(rows)
    else:
        where = project_id or "any project you may review"
        print_table(printable(rows), REVIEW_COLUMNS,
                    empty=f"No one has had access to {where}.")


def _write_csv(rows: list[dict[str, Any]]) -> None:
    """Proper CSV (quoted as needed, empty for none), so spreadsheets and scripts read it."""
    writer = csv.DictWriter(sys.stdout, fieldnames=CSV_FIELDS, extrasaction="ignore",
                            lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row.get(key) is None else row[key] for key in CSV_FIELDS})


def _acl_text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, list | tuple):
        return ",".join(clean(str(entry)) for entry in value) or "none"
    return clean(str(value)) or "none"


@access.command("check")
@click.argument("project_id", metavar="PROJECT")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_state
def check(state: CliState, project_id: str, as_json: bool) -> None:
    """Compare PROJECT's ACLs on disk with its access list and repair any drift.

    Each entry that differed is listed with what was found and what was set, so a change made
    behind the daemon's back (setfacl, chmod) is visible, not only undone.

    \b
    Examples:
      vokter access check p1234
      vokter access check p1234 --json | jq '.drift[].path'
    """
    result = state.call("access.check", project=project_id)
    if as_json:
        print_json(result)
        return
    click.echo(f"checked {result['checked']} entries, repaired {result['repaired']}")
    for drift in result.get("drift") or []:
        path = clean(str(drift["path"]))
        click.echo(f"{path}: found {_acl_text(drift.get('found'))}, "
                   f"set {_acl_text(drift.get('set'))}")

