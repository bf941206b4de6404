"""vokter copy ...: copies of a project's data kept outside the enclave, and their disposal (L2)."""

from __future__ import annotations

import click

from cli.context import CliState, pass_state
from cli.output import clean, print_json, print_table, printable

COPY_COLUMNS = [
    ("id", "ID"),
    ("location", "LOCATION"),
    ("status", "STATUS"),
    ("registered", "REGISTERED"),
    ("registered_by", "REGISTERED-BY"),
    ("disposed_confirmed", "DISPOSED"),
    ("disposed_confirmed_by", "CONFIRMED-BY"),
    ("note", "NOTE"),
]
COPY_TIMES = ("registered", "disposed_confirmed")
#: The same bound as the database's key, so click refuses what the daemon would.
MAX_ID = 2**63 - 1


@click.group("copy")
def copy_group() -> None:
    """Register copies kept outside the enclave and confirm their disposal (L2; leaders).

    A project is not closed until every registered copy is confirmed disposed of.
    """


@copy_group.command("add")
@click.argument("project_id", metavar="PROJECT")
@click.option("--location", required=True, metavar="TEXT",
              help="Where the copy is kept: another institution, a backup tape's label.")
@click.option("--note", required=True,
              help="Who holds it and why (one line, at most 1000 characters).")
@click.option("--json", "as_json", is_flag=True, help="Print the registered copy as JSON.")
@pass_state
def add(state: CliState, project_id: str, location: str, note: str, as_json: bool) -> None:
    """Register a copy of PROJECT's data kept outside the enclave.

    \b
    Examples:
      vokter copy add p1234 --location "UiO backup tape T-0042" \\
          --note "nightly backup, kept 10 years by USIT"
      vokter copy add p1234 --location "Haukeland University Hospital, K. Berg" \\
          --note "co-investigator's copy under the data processor agreement"
    """
    result = state.call("copy.add", project=project_id, location=location, note=note)
    if as_json:
        print_json(result)
        return
    click.echo(f"registered copy {result['id']} of {result['project']} at "
               f"{clean(result['location'])}: {result['project']} is not closed until it "
               "is confirmed disposed of (L2)")


@copy_group.command("confirm-disposed")
@click.argument("copy_id", metavar="COPY_ID", type=click.IntRange(min=1, max=MAX_ID))
@click.option("--note", required=True,
              help="Who disposed of it, how and when (one line, at most 1000 characters).")
@click.option("--json", "as_json", is_flag=True, help="Print the confirmed copy as JSON.")
@pass_state
def confirm_disposed(state: CliState, copy_id: int, note: str, as_json: bool) -> None:
    """Confirm that registered copy COPY_ID was disposed of (once; the leader or root).

    \b
    Examples:
      vokter copy confirm-disposed 2 --note "tape T-0042 degaussed by USIT, receipt 2031-118"
      vokter copy confirm-disposed 3 --note "K. Berg's deletion statement of 4 April on file"
    """
    result = state.call("copy.confirm", id=copy_id, note=note)
    if as_json:
        print_json(result)
        return
    click.echo(f"confirmed copy {result['id']} of {result['project']} at "
               f"{clean(result['location'])} disposed of")


@copy_group.command("list")
@click.argument("project_id", metavar="PROJECT")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON, with each one's notes.")
@pass_state
def list_(state: CliState, project_id: str, as_json: bool) -> None:
    """List PROJECT's registered copies, kept or disposed of.

    \b
    Examples:
      vokter copy list p1234
      vokter copy list p1234 --json | jq '[.[] | select(.status == "kept")] | length'
    """
    rows = state.call("copy.list", project=project_id)
    if as_json:
        print_json(rows)
        return
    print_table(printable(rows, COPY_TIMES), COPY_COLUMNS,
                empty=f"No copies of {project_id} registered.")

