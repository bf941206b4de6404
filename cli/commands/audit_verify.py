"""``vokter audit verify``: is the trail, or one project's chain, still as it was written?"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from agent.api import UsageError
from agent.api.schemas import MAX_CHECKPOINT_TEXT
from agent.errors import AuditDamaged
from cli.context import CliState, pass_state
from cli.output import print_json


def _read_checkpoint(path: Path) -> str:
    """The kept checkpoint, read here with the caller's own rights (the daemon opens nothing
    a client names)."""
    try:
        with path.open("rb") as kept:
            data = kept.read(MAX_CHECKPOINT_TEXT + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_CHECKPOINT_TEXT:
        raise UsageError(f"{path} is larger than any checkpoint; is it the right file?",
                         hint="save one with 'vokter audit checkpoint > FILE'")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not a checkpoint: not text",
                         hint="save one with 'vokter audit checkpoint > FILE'") from None


@contextmanager
def _progress_bar() -> Iterator[Callable[[int, int], None]]:
    """How far a long verification got, on stderr when it is a terminal; nothing in a pipe."""
    if not sys.stderr.isatty():
        yield lambda _done, _total: None
        return
    columns = (TextColumn("verifying"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("verify", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _when(time: str) -> str:
    return time.replace("T", " ").split(".")[0] + " UTC"


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _scope(result: dict[str, Any]) -> str:
    return "trail" if result["scope"] == "trail" else f"project {result['project']}"


def ok_line(result: dict[str, Any]) -> str:
    line = f"OK: {_plural(int(result['count']), 'event')} verified ({_scope(result)})"
    sealed = result.get("sealed")
    if sealed:
        line += f", last sealed at seq {sealed['seq']} ({_when(sealed['time'])})"
    else:
        line += ", not yet covered by any checkpoint"
    kept = result.get("kept")
    if kept and kept.get("seq"):
        line += f"; your checkpoint (seq {kept['seq']}, {_when(kept['time'])}) matches"
    return line


def damage_line(result: dict[str, Any]) -> str:
    damage = result["damage"]
    if result["scope"] == "project":
        where = f"{result['project']}'s chain is damaged"
        if damage.get("project_seq") is not None:
            where += f" at its event {damage['project_seq']}"
        if damage.get("seq") is not None:
            where += f" (trail event {damage['seq']})"
    else:
        where = "the audit trail is damaged"
        if damage.get("seq") is not None:
            where += f" at event {damage['seq']}"
    return f"{where}: {damage['kind']}: {damage['message']}"


@click.command("verify")
@click.option("--project", metavar="PROJECT",
              help="Verify this project's own chain only (its auditors may; root may any).")
@click.option("--checkpoint", "checkpoint_file", metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="Also hold the trail against a checkpoint you kept ('vokter audit "
                   "checkpoint > FILE'): only that shows the whole database replaced by an "
                   "older copy.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the result as JSON, damaged or not (exit code 1 if damaged).")
@pass_state
def verify(state: CliState, project: str | None, checkpoint_file: Path | None,
           as_json: bool) -> None:
    """Check that the audit trail is as it was written (A5).

    Every event's hash, its MAC (made with a key only the daemon holds) and its links in the
    trail and in its project's chain are checked from the first event on, and the result is
    held against the daemon's signed checkpoints and the one you kept, if given.

    Prints how many events verified and the last sealed one, or names the first damaged event
    and the kind of damage: changed, deleted, inserted, swapped, tail_cut, rolled_back,
    unsealed or forged_checkpoint (see docs/audit.md, Verifying); exit code 1 then. Root
    verifies the whole trail; a project's auditors verify that project's chain.

    \b
    Examples:
      sudo vokter audit verify
      vokter audit verify --project p1234
      vokter audit checkpoint > p1234-checkpoint.json     # keep it outside the enclave
      vokter audit verify --project p1234 --checkpoint p1234-checkpoint.json
      vokter audit verify --project p1234 --json | jq .count
    """
    text = None if checkpoint_file is None else _read_checkpoint(checkpoint_file)
    with _progress_bar() as progress:
        result = state.client().call_streaming(
            "audit.verify", on_progress=progress, project=project, checkpoint=text)
    if as_json:
        print_json(result)
    if not result["ok"]:
        raise AuditDamaged(
            damage_line(result), rule="A5",
            hint=f"{_plural(int(result['count']), 'event')} before it verified; keep this "
                 "output and your checkpoints, and see docs/audit.md, Verifying")
    if not as_json:
        click.echo(ok_line(result))
