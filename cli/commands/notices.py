"""``vokter notices``: what the schedule told you about your projects' ends (L1, L3)."""

from __future__ import annotations

import click

from cli.context import CliState, pass_state
from cli.output import print_json, print_table

COLUMNS = [("time", "WHEN"), ("project", "PROJECT"), ("rule", "RULE"), ("text", "NOTICE")]


@click.command("notices")
@click.option("--json", "as_json", is_flag=True, help="Print the notices as JSON.")
@pass_state
def notices(state: CliState, as_json: bool) -> None:
    """The notices about the projects you lead or audit (root: every project).

    vokterd sends each once, when its day comes: 30 days (the policy's lifecycle.notice_days)
    before a project's end and before an approved retention ends. They are in the audit
    trail and the daemon's log as well.

    \b
    Examples:
      vokter notices
      vokter notices --json | jq '.[] | select(.project == "p1234")'
    """
    rows = state.call("notices.list")
    if as_json:
        print_json(rows)
    else:
        print_table(rows, COLUMNS, empty="no notices")
