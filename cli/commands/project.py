"""vokter project ..."""

from __future__ import annotations

import sys
from typing import Any

import click

from cli.context import CliState, pass_state
from cli.output import print_fields, print_json, print_table, warn

PROJECT_COLUMNS = [
    ("project", "PROJECT"),
    ("title", "TITLE"),
    ("leader", "LEADER"),
    ("end_date", "END DATE"),
    ("state", "STATE"),
]


@click.group()
def project() -> None:
    """Create and inspect research projects."""


@project.command("create")
@click.argument("project_id", metavar="PROJECT")
@click.option("--title", required=True, help="What the project is, in a few words.")
@click.option("--leader", required=True, help="Unix user name of the project leader.")
@click.option("--end-date", required=True, metavar="YYYY-MM-DD",
              help="End date of the REK approval (L1).")
@click.option("--data-dir", metavar="DIR", help="Data zone (default <zones_dir>/PROJECT/data).")
@click.option("--key-dir", metavar="DIR",
              help="Key zone for the linkage key, ideally on another file system (S5).")
@click.option("--export-dir", metavar="DIR",
              help="Export zone (default <zones_dir>/PROJECT/export).")
@click.option("--json", "as_json", is_flag=True, help="Print the new project as JSON.")
@pass_state
def create(state: CliState, project_id: str, title: str, leader: str, end_date: str,
           data_dir: str | None, key_dir: str | None, export_dir: str | None,
           as_json: bool) -> None:
    """Create PROJECT and its zones (root only).

    \b
    Example:
      vokter project create p1234 --title "Diabetes and income" \\
          --leader alice --end-date 2029-12-31 --key-dir /srv/vokter-keys/p1234
    """
    result = state.call("project.create", project=project_id, title=title, leader=leader,
                        end_date=end_date, data_dir=data_dir, key_dir=key_dir,
                        export_dir=export_dir)
    if as_json:
        print_json(result)
    else:
        click.echo(f"Created project {result['project']} ({result['title']}), "
                   f"leader {result['leader']}, ends {result['end_date']}.")
        _print_zones(result)
    for message in result.get("warnings", []):
        warn(message)


def _print_zones(view: dict[str, Any]) -> None:
    print_fields([(f"{name} zone", path) for name, path in view["zones"].items()])


@project.command("show")
@click.argument("project_id", metavar="PROJECT")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_state
def show(state: CliState, project_id: str, as_json: bool) -> None:
    """Show one project you lead, belong to or audit.

    \b
    Example:
      vokter project show p1234
    """
    view = state.call("project.show", project=project_id)
    if as_json:
        print_json(view)
        return
    print_fields([
        ("project", view["project"]),
        ("title", view["title"]),
        ("leader", view["leader"]),
        ("end date", view["end_date"]),
        ("state", view["state"]),
        ("policy", view["policy"]),
        ("active members", view["members"]),
        ("created", f"{view['created_at']} by {view['created_by']}"),
    ])
    _print_zones(view)


@project.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_state
def list_(state: CliState, as_json: bool) -> None:
    """List the projects you may see (root: all; others: those they lead or belong to).

    \b
    Example:
      vokter project list --json | jq -r '.[].project'
    """
    rows = state.call("project.list")
    if as_json:
        print_json(rows)
        return
    print_table(rows, PROJECT_COLUMNS, empty="No projects you can see.")


@project.command("shred-key")
@click.argument("project_id", metavar="PROJECT")
@click.option("--yes", is_flag=True,
              help="Confirm without a prompt (required when not on a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print what happened as JSON.")
@pass_state
def shred_key(state: CliState, project_id: str, yes: bool, as_json: bool) -> None:
    """Destroy PROJECT's keyset for good (root only; S3, crypto-shredding).

    Every file encrypted under it becomes unreadable, for everyone, wherever its copies are.
    This cannot be undone. On a terminal you type the project's id to confirm; elsewhere
    pass --yes. See docs/keys.md for what else must go (backups holding the wrapped key).

    \b
    Examples:
      sudo vokter project shred-key p1234
      sudo vokter project shred-key p1234 --yes --json
    """
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError(
                "shred-key destroys the project's key for good: pass --yes to confirm "
                "when not on a terminal")
        typed = click.prompt(
            f"This destroys the key of {project_id}; files encrypted under it become "
            "unreadable for good. Type the project id to confirm", default="",
            show_default=False)
        if typed.strip() != project_id:
            raise click.UsageError("the id typed does not match: nothing was destroyed")
    result = state.call("project.shred_key", project=project_id, confirm=project_id)
    if as_json:
        print_json(result)
        return
    click.echo(f"destroyed the key of {result['project']} at {result['destroyed_at']}: files "
               "encrypted under it can no longer be decrypted")
    if not result.get("purged", True):
        warn("the database could not yet clear the old row versions from its files; "
             "see docs/keys.md")


@project.command("end")
@click.argument("project_id", metavar="PROJECT")
@click.option("--on", "on", metavar="YYYY-MM-DD",
              help="The first day without access (default: today, at once).")
@click.option("--yes", is_flag=True,
              help="Confirm ending today without a prompt (required when not on a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_state
def end(state: CliState, project_id: str, on: str | None, yes: bool, as_json: bool) -> None:
    """End PROJECT early, or move its end later (root or the leader; L1).

    Ending takes access away at once: members and key custodians lose it, the leader keeps
    reading the data zone, auditors keep the logs (L8); disposal follows after the grace
    period, or after the retention REK approved. A later end needs a REK approval on record
    that covers it ('vokter approval add').

    Ending today takes everyone's access away at once, and only a REK approval recorded by
    root undoes it: on a terminal you type the project's id to confirm; elsewhere pass --yes.

    \b
    Examples:
      vokter project end p1234
      vokter project end p1234 --yes --json
      vokter project end p1234 --on 2027-03-01
    """
    if on is None and not yes:
        if not sys.stdin.isatty():
            raise click.UsageError(
                "ending a project takes access away at once: pass --yes to confirm when not "
                "on a terminal")
        typed = click.prompt(
            f"This ends {project_id} now: members and key custodians lose access, the leader "
            "only reads. Type the project id to confirm", default="", show_default=False)
        if typed.strip() != project_id:
            raise click.UsageError("the id typed does not match: nothing was ended")
    result = state.call("project.end", project=project_id, on=on)
    if as_json:
        print_json(result)
        return
    click.echo(f"{result['project']} is {result['state']}; its last day is "
               f"{result['end_date']}.")
    if result["state"] != "active":
        click.echo(f"see what follows: vokter lifecycle plan {result['project']}")
