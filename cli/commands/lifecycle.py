"""``vokter lifecycle``: what a project's end brings, and when (L1-L9)."""

from __future__ import annotations

import click

from cli.context import CliState, pass_state
from cli.output import print_json


@click.group()
def lifecycle() -> None:
    """A project's end: the plan of what happens when, and why."""


@lifecycle.command("plan")
@click.argument("project_id", metavar="PROJECT")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@pass_state
def plan(state: CliState, project_id: str, as_json: bool) -> None:
    """Show what PROJECT's end brings: each step, its date and the rule behind it.

    The leader, the project's auditors and root may see it. A legal hold stops every step
    after the end itself (L5); registered copies keep the project open until each is
    confirmed disposed of (L2).

    \b
    Examples:
      vokter lifecycle plan p1234
      vokter lifecycle plan p1234 --json | jq .steps
    """
    result = state.call("lifecycle.plan", project=project_id)
    if as_json:
        print_json(result)
        return
    for line in result["lines"]:
        click.echo(line)
