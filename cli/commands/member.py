"""vokter member ...: the project leader's hands on the access list (A1-A4)."""

from __future__ import annotations

import sys
from typing import Any

import click

from cli.context import CliState, pass_state
from cli.output import clean, print_json, print_table, printable, warn

ROLES = ("member", "key_custodian", "auditor")

MEMBER_COLUMNS = [
    ("user", "USER"),
    ("role", "ROLE"),
    ("granted_at", "SINCE"),
    ("expires", "EXPIRES"),
    ("granted_by", "GRANTED-BY"),
    ("reason", "REASON"),
]


def _plural(count: int, word: str) -> str:
    if count == 1:
        return f"{count} {word}"
    return f"{count} {word}{'es' if word.endswith('s') else 's'}"


@click.group()
def member() -> None:
    """Grant, end and list access to a project (project leaders; root)."""


@member.command("add")
@click.argument("project_id", metavar="PROJECT")
@click.argument("user", metavar="USER")
@click.option("--role", required=True, type=click.Choice(ROLES),
              help="What USER may do: work with the data (member), hold the linkage key "
                   "(key_custodian, S6) or review access (auditor).")
@click.option("--expires", metavar="YYYY-MM-DD",
              help="Last day of access; it ends by itself after that day (A4).")
@click.option("--reason", required=True,
              help="Why USER gets access; kept in the access list and the audit trail.")
@click.option("--json", "as_json", is_flag=True, help="Print the new grant as JSON.")
@pass_state
def add(state: CliState, project_id: str, user: str, role: str, expires: str | None,
        reason: str, as_json: bool) -> None:
    """Give USER access to PROJECT in ROLE; the ACLs follow at once.

    \b
    Examples:
      vokter member add p1234 alice --role member --expires 2027-01-31 \\
          --reason "PhD student, cohort analysis"
      vokter member add p1234 bob --role key_custodian --reason "holds the linkage key"
    """
    result = state.call("member.add", project=project_id, user=user, role=role,
                        expires=expires, reason=reason)
    if as_json:
        print_json(result)
        return
    until = f"expires {result['expires']}" if result.get("expires") else "no expiry date"
    click.echo(f"granted {result['role']} access to {result['project']} for {result['user']} "
               f"({until})")


@member.command("remove")
@click.argument("project_id", metavar="PROJECT")
@click.argument("user", metavar="USER")
@click.option("--reason", required=True,
              help="Why access ends; kept in the access list and the audit trail.")
@click.option("--role", type=click.Choice(ROLES),
              help="End only this role (default: every role USER has in PROJECT).")
@click.option("--terminate", is_flag=True,
              help="Also end USER's running processes that still hold files of PROJECT (A3).")
@click.option("--json", "as_json", is_flag=True, help="Print what happened as JSON.")
@pass_state
def remove(state: CliState, project_id: str, user: str, reason: str, role: str | None,
           terminate: bool, as_json: bool) -> None:
    """End USER's access to PROJECT; USER's files there are handed to the leader.

    Access ends at once for new opens. A file a process opened before stays readable through
    that process until it exits, so the processes still holding files of PROJECT are listed;
    --terminate ends them (SIGTERM, then SIGKILL after a grace period).

    \b
    Examples:
      vokter member remove p1234 alice --reason "left the project"
      vokter member remove p1234 alice --reason "left the project" --terminate
      vokter member remove p1234 bob --role key_custodian --reason "key handed to carol"
    """
    result = state.call("member.remove", project=project_id, user=user, role=role,
                        reason=reason, terminate=terminate)
    if as_json:
        print_json(result)
        return
    which = f"{result['role']} access" if result.get("role") else "access"
    click.echo(f"ended {result['user']}'s {which} to {result['project']} "
               f"(effective in {float(result['effective_ms']):.0f} ms)")
    click.echo(f"{_plural(int(result['handed_over']), 'file')} handed over to the project leader")
    _report_processes(result, terminate=terminate, reason=reason, role=role)


def _process_line(process: dict[str, Any]) -> str:
    paths = ", ".join(clean(str(path)) for path in process.get("paths") or []) or "-"
    return f"  pid {process['pid']} {clean(str(process['program']))}: {paths}"


def _report_processes(result: dict[str, Any], *, terminate: bool, reason: str,
                      role: str | None) -> None:
    """Say which processes still hold files: A3 counts access as ended only when none do."""
    processes: list[dict[str, Any]] = list(result.get("processes") or [])
    ended = {int(pid) for pid in result.get("terminated") or []}
    if ended:
        click.echo(f"ended {_plural(len(ended), 'process')}: "
                   + ", ".join(str(pid) for pid in sorted(ended)))
    left = [process for process in processes if int(process["pid"]) not in ended]
    if not left:
        return
    who, project = result["user"], result["project"]
    hold = "holds" if len(left) == 1 else "hold"
    if terminate:
        warn(f"{_plural(len(left), 'process')} of {who} could not be ended and still {hold} "
             f"files of {project} (A3):")
    else:
        warn(f"{_plural(len(left), 'process')} of {who} still {hold} files of {project} (A3):")
    for process in left:
        print(_process_line(process), file=sys.stderr)
    if not terminate:
        only = f" --role {role}" if role else ""
        print(f"  to end them, re-run with --terminate: vokter member remove {project} {who}"
              f"{only} --reason {_quote(reason)} --terminate", file=sys.stderr)


def _quote(text: str) -> str:
    """Quote for a shell command line a person can paste."""
    return "'" + text.replace("'", "'\\''") + "'"


@member.command("list")
@click.argument("project_id", metavar="PROJECT")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_state
def list_(state: CliState, project_id: str, as_json: bool) -> None:
    """List who has access to PROJECT now, in which role and until when.

    \b
    Examples:
      vokter member list p1234
      vokter member list p1234 --json | jq -r '.[] | select(.expires != null) | .user'
    """
    rows = state.call("member.list", project=project_id)
    if as_json:
        print_json(rows)
        return
    print_table(printable(rows), MEMBER_COLUMNS, empty=f"No one has access to {project_id}.")

