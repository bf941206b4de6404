"""vokter policy ..."""

from __future__ import annotations

from pathlib import Path

import click

from agent.api.offline import check_policy_file


@click.group()
def policy() -> None:
    """Check policy files (no daemon needed)."""


@policy.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def check(file: Path) -> None:
    """Check a policy FILE: prints OK, or every problem with its key and reason.

    \b
    Example:
      vokter policy check /etc/vokter/policies/default.toml
    """
    problems = check_policy_file(file)
    if not problems:
        click.echo("OK")
        return
    for line in problems:
        click.echo(line, err=True)
    raise click.exceptions.Exit(1)
