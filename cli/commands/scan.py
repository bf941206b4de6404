"""``vokter scan``: every file of a project's zones judged against the storage rules now."""

from __future__ import annotations

import click

from cli.context import CliState, pass_state
from cli.files import progress_bar
from cli.output import print_json


@click.command("scan")
@click.argument("project")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_state
def scan(state: CliState, project: str, as_json: bool) -> None:
    """Judge every file of PROJECT's data, key and export zones against the storage rules.

    The daemon does this by itself for every file written (within a second of its close), at
    start, and after the kernel lost events; run it after restoring files from a backup, or
    to see that a project is clean. Files breaking a rule are handled as the policy says
    (encrypted in place, quarantined, moved to the key zone, or only reported) and each
    becomes a violation: see 'vokter violations list PROJECT'. Root and the project's
    leader may scan.

    \b
    Examples:
      vokter scan p1234
      vokter scan p1234 --json | jq .violations
    """
    with progress_bar("scanning") as progress:
        result = state.client().call_streaming("storage.scan", project=project,
                                               on_progress=progress)
    if as_json:
        print_json(result)
        return
    found = len(result["violations"])
    click.echo(f"scanned {result['files']} files of {result['project']} in "
               f"{result['seconds']} s: {result['findings']} finding(s), {found} new "
               f"violation(s)" + (f", {result['skipped']} skipped" if result["skipped"] else ""))
    if found:
        click.echo(f"see: vokter violations list {result['project']} --open")
