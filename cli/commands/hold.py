"""vokter hold ...: legal holds that stop a project's disposal until released (L5)."""

from __future__ import annotations

import click

from agent.api.schemas import HOLD_REASONS
from cli.context import CliState, pass_state
from cli.output import clean, print_json, print_table, printable

HOLD_COLUMNS = [
    ("id", "ID"),
    ("project", "PROJECT"),
    ("reason", "REASON"),
    ("reference", "REFERENCE"),
    ("status", "STATUS"),
    ("placed", "PLACED"),
    ("placed_by", "PLACED-BY"),
    ("released", "RELEASED"),
    ("released_by", "RELEASED-BY"),
    ("note", "NOTE"),
]
HOLD_TIMES = ("placed", "released")
#: The same bound as the database's key, so click refuses what the daemon would.
MAX_ID = 2**63 - 1


@click.group()
def hold() -> None:
    """Place, release and list legal holds (L5; root and the project's auditors).

    While a hold stands, nothing of the project is disposed of: it freezes every state after
    active. The project's leader sees its holds but can neither place nor release one.
    """


@hold.command("place")
@click.argument("project_id", metavar="PROJECT")
@click.option("--reason", required=True, type=click.Choice(HOLD_REASONS),
              help="Why the data must be kept.")
@click.option("--ref", "reference", required=True, metavar="REF",
              help="The case's reference, e.g. the supervisory authority's case number.")
@click.option("--note", required=True,
              help="Who asked for the hold and why (one line, at most 1000 characters).")
@click.option("--json", "as_json", is_flag=True, help="Print the placed hold as JSON.")
@pass_state
def place(state: CliState, project_id: str, reason: str, reference: str, note: str,
          as_json: bool) -> None:
    """Place a legal hold on PROJECT, in whatever state it is.

    \b
    Examples:
      vokter hold place p1234 --reason supervisory_case --ref "Datatilsynet 24/01234" \\
          --note "inspection announced by letter of 3 March"
      vokter hold place p1234 --reason integrity_investigation --ref "UiO-GF 2026/17" \\
          --note "research integrity committee, case opened 12 May"
    """
    result = state.call("hold.place", project=project_id, reason=reason, reference=reference,
                        note=note)
    if as_json:
        print_json(result)
        return
    click.echo(f"placed legal hold {result['id']} on {result['project']} "
               f"({result['reason']}, {clean(result['reference'])}): nothing of "
               f"{result['project']} is disposed of until it is released (L5)")


@hold.command("release")
@click.argument("hold_id", metavar="HOLD_ID", type=click.IntRange(min=1, max=MAX_ID))
@click.option("--note", required=True,
              help="Why the hold may be lifted (one line, at most 1000 characters).")
@click.option("--json", "as_json", is_flag=True, help="Print the released hold as JSON.")
@pass_state
def release(state: CliState, hold_id: int, note: str, as_json: bool) -> None:
    """Release legal hold HOLD_ID; the project's end goes on from where it was frozen.

    \b
    Examples:
      vokter hold release 3 --note "Datatilsynet closed case 24/01234 on 2 June"
      vokter hold list p1234 --open --json | jq '.[].id'
    """
    result = state.call("hold.release", id=hold_id, note=note)
    if as_json:
        print_json(result)
        return
    click.echo(f"released legal hold {result['id']} on {result['project']} "
               f"({result['reason']}, {clean(result['reference'])})")


@hold.command("list")
@click.argument("project_id", metavar="[PROJECT]", required=False)
@click.option("--open", "open_only", is_flag=True, help="Only holds that still stand.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON, with each one's notes.")
@pass_state
def list_(state: CliState, project_id: str | None, open_only: bool, as_json: bool) -> None:
    """List the legal holds of PROJECT, or of every project you lead or audit (root: all).

    \b
    Examples:
      vokter hold list p1234
      vokter hold list --open --json | jq -r '.[] | "\\(.project) \\(.reference)"'
    """
    rows = state.call("hold.list", project=project_id, open_only=open_only)
    if as_json:
        print_json(rows)
        return
    which = "standing legal holds" if open_only else "legal holds"
    where = f" on {project_id}" if project_id else ""
    print_table(printable(rows, HOLD_TIMES), HOLD_COLUMNS, empty=f"No {which}{where}.")

