"""vokter approval ...: a project's legal basis on record (D1), and how long REK lets its data
stay after the end (L3, L4). Root records; the leader and the auditors list."""

from __future__ import annotations

from datetime import date
from typing import Any

import click

from agent.api import UsageError
from agent.lifecycle.model import ApprovalKind
from cli.context import CliState, pass_state
from cli.output import clean, print_json, print_table, printable, warn

KINDS = tuple(kind.value for kind in ApprovalKind)

APPROVAL_COLUMNS = [
    ("id", "ID"),
    ("kind", "KIND"),
    ("reference", "REFERENCE"),
    ("valid_until", "VALID-UNTIL"),
    ("retention_until", "RETENTION-UNTIL"),
    ("clinical_trial", "CLINICAL-TRIAL"),
    ("final_report", "FINAL-REPORT"),
    ("recorded_by", "RECORDED-BY"),
    ("recorded_at", "RECORDED"),
]


def iso_day(option: str, value: str | None) -> str | None:
    """A real calendar day written YYYY-MM-DD, or a usage error naming the option: an
    impossible date (2026-02-30) never reaches the daemon."""
    if value is None:
        return None
    try:
        if len(value) != 10:
            raise ValueError
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise UsageError(f"{option}: '{value[:40]}' is not a real date (YYYY-MM-DD)") from None


@click.group()
def approval() -> None:
    """Record and list a project's approvals: REK, DPIA, dispensations, agreements (D1)."""


@approval.command("add")
@click.argument("project_id", metavar="PROJECT")
@click.option("--kind", required=True, type=click.Choice(KINDS),
              help="rek (the ethics committee), dpia, dispensation (from the duty of "
                   "confidentiality), folkeregister (the population register), "
                   "processor_agreement or transfer_agreement (to an external archive, L9).")
@click.option("--ref", "reference", required=True, metavar="REF",
              help="The approval's reference or case number, e.g. 'REK 2025/12345'.")
@click.option("--valid-until", metavar="YYYY-MM-DD", help="The last day the approval holds.")
@click.option("--retention-until", metavar="YYYY-MM-DD",
              help="REK only: keep the data until this day after the project's end; at most "
                   "the policy's years (5) after the end date (L3).")
@click.option("--clinical-trial", is_flag=True,
              help="A clinical trial of medicines: the source data is kept at least the "
                   "policy's years (25) after --final-report (L4).")
@click.option("--final-report", metavar="YYYY-MM-DD",
              help="The clinical trial's final report (with --clinical-trial).")
@click.option("--json", "as_json", is_flag=True, help="Print the recorded approval as JSON.")
@pass_state
def add(state: CliState, project_id: str, kind: str, reference: str, valid_until: str | None,
        retention_until: str | None, clinical_trial: bool, final_report: str | None,
        as_json: bool) -> None:
    """Record an approval of PROJECT (root). Its dates are checked against the project's end
    date and the policy; without a retention date the data is disposed of after the end.

    \b
    Examples:
      sudo vokter approval add p1234 --kind rek --ref "REK 2025/12345" \\
          --valid-until 2029-12-31 --retention-until 2034-12-31
      sudo vokter approval add p1234 --kind rek --ref "REK 2025/23456" --clinical-trial \\
          --final-report 2030-06-30
      sudo vokter approval add p1234 --kind dpia --ref "DPIA-2025-17"
    """
    result = state.call(
        "approval.add", project=project_id, kind=kind, reference=reference,
        valid_until=iso_day("--valid-until", valid_until),
        retention_until=iso_day("--retention-until", retention_until),
        clinical_trial=clinical_trial, final_report=iso_day("--final-report", final_report))
    if as_json:
        print_json(result)
        return
    recorded = result["approval"]
    line = (f"recorded {recorded['kind']} approval {recorded['id']} of {recorded['project']} "
            f"({clean(recorded['reference'])})")
    if recorded.get("retention_until"):
        line += f": data kept until {recorded['retention_until']} ({result['rule']})"
    click.echo(line)
    for warning in result.get("warnings") or []:
        warn(str(warning))


@approval.command("list")
@click.argument("project_id", metavar="PROJECT")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_state
def list_(state: CliState, project_id: str, as_json: bool) -> None:
    """List PROJECT's approvals (root, the leader, auditors).

    \b
    Examples:
      vokter approval list p1234
      vokter approval list p1234 --json | jq -r '.[] | select(.kind == "rek") | .reference'
    """
    rows = state.call("approval.list", project=project_id)
    if as_json:
        print_json(rows)
        return
    print_table(_printable(rows), APPROVAL_COLUMNS,
                empty=f"No approvals recorded in {project_id}.")


def _printable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**row, "clinical_trial": "yes" if row["clinical_trial"] else "no"}
            for row in printable(rows)]
