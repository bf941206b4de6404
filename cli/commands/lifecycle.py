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


@lifecycle.command("run")
@click.argument("project_id", metavar="[PROJECT]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
@pass_state
def run(state: CliState, project_id: str | None, as_json: bool) -> None:
    """Carry out now whatever the project-end schedule has due (root).

    The daemon does this by itself every day, at each project's dates, and at start for days
    it was down; this is the same sweep, on demand: projects past their end date end,
    retention begins, notices go to leaders, disposed projects close.

    \b
    Examples:
      sudo vokter lifecycle run
      sudo vokter lifecycle run p1234 --json
    """
    results = state.call("lifecycle.run", project=project_id)
    if as_json:
        print_json(results)
        return
    for result in results:
        done = ", ".join(result["applied"]) or "nothing due"
        line = f"{result['project']}: {done}; now {result['state']}"
        if result["notices"]:
            line += f"; notified: {', '.join(result['notices'])}"
        if result["held"]:
            line += "; held (L5)"
        if result["waiting"]:
            line += f"; due: {result['waiting']}"
        click.echo(line)
