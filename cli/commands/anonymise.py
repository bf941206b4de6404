"""``vokter anonymise``: check that a table is k-anonymous, or make it so (L6, L7, D3, D4).

These commands run in the caller's own process on files the caller can read; no daemon is
involved, and the input file is never changed. The anonymisation package (polars, pyreadstat)
is imported when a command runs, so that every other command starts as fast as before.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import click
from rich.console import Console

from agent.api import UsageError
from cli.output import on_terminal, print_json


def _names(values: Sequence[str]) -> tuple[str, ...]:
    """``--qi a --qi b`` and ``--qi a,b`` both name two columns."""
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def _share(_ctx: click.Context, _param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    text = value.strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a share: give e.g. 0.05 or 5%") from None
    if not 0.0 <= share <= 1.0:
        raise click.BadParameter(f"{value!r} is not between 0 and 1 (0% and 100%)")
    return share


def _pairs(values: Sequence[str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for value in values:
        column, sep, target = value.partition("=")
        if not sep or not column.strip() or not target.strip():
            raise UsageError(f"--hierarchy {value!r}: give COLUMN=FILE or COLUMN=KIND",
                             hint="e.g. --hierarchy age=age_hierarchy.csv or --hierarchy alder=age")
        pairs.append((column.strip(), target.strip()))
    return tuple(pairs)


@contextmanager
def _working(what: str) -> Iterator[None]:
    """A spinner on a terminal; nothing in a pipe."""
    if on_terminal():
        with Console(stderr=True).status(what):
            yield
    else:
        yield


_config_option = click.option(
    "--config", "config", metavar="FILE",
    help="The project's anonymisation config (TOML): QIs, hierarchies, k, l, limit, seed.")
_policy_option = click.option(
    "--policy", metavar="FILE", help="Take k and the limits from this policy (default: shipped).")
_qi_option = click.option(
    "--qi", "qis", multiple=True, metavar="COL",
    help="A quasi-identifier; repeat, or separate with commas.")
_k_option = click.option("--k", "k", type=int, help="Smallest group size (default: policy, 5).")
_person_option = click.option(
    "--person", metavar="COL",
    help="Count groups in persons by this column (a serial number), not in rows.")


@click.group("anonymise")
def anonymise() -> None:
    """Check that a table is k-anonymous, or make it so (L7).

    Tables are CSV, Parquet, Stata (.dta) or SPSS (.sav); the output keeps the input's
    format. Runs on files you can read, without the daemon; the input is never changed.

    \b
    Examples:
      vokter anonymise check cohort.dta --qi alder,kommune,kjonn
      vokter anonymise apply cohort.dta -o cohort-anon.dta --qi alder,kommune,kjonn \\
          --report report.json
    """


@anonymise.command("check")
@click.argument("file", type=click.Path(readable=False, path_type=Path))
@_qi_option
@_k_option
@_person_option
@_config_option
@_policy_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def check(file: Path, qis: tuple[str, ...], k: int | None, person: str | None,
          config: str | None, policy: str | None, as_json: bool) -> None:
    """Exit 0 when FILE is k-anonymous over the quasi-identifiers, 1 when it is not.

    The smallest groups are described by their size, never by their values. With --person
    (or a config's person), a group's size is its number of persons: five visits of one
    person are one person (L7).

    \b
    Examples:
      vokter anonymise check adult.csv --qi age,sex,race --k 5
      vokter anonymise check cohort.parquet --config anonymise.toml --json
    """
    from agent.api.anonymisation import Request, check_file

    request = Request(quasi_identifiers=_names(qis), k=k, person=person, config=config,
                      policy=policy)
    with _working("counting groups"):
        result = check_file(file, request)
    if as_json:
        print_json(result.to_json())
    else:
        for line in result.lines():
            click.echo(line)
    if not result.anonymous:
        sys.exit(1)


@anonymise.command("apply")
@click.argument("file", type=click.Path(readable=False, path_type=Path))
@click.option("-o", "--output", "out", required=True, metavar="OUT",
              type=click.Path(dir_okay=False, path_type=Path), help="Where to write the result.")
@_qi_option
@_k_option
@_person_option
@click.option("--max-suppression", callback=_share, metavar="P",
              help="Share of rows that may be withheld: 0.05 or 5% (default: policy).")
@click.option("--hierarchy", "hierarchies", multiple=True, metavar="COL=FILE",
              help="An ARX hierarchy file, or a built-in: date, age, municipality, postal, "
              "sex, flat.")
@click.option("--l", "l_diversity", type=int, help="Distinct sensitive values per group.")
@click.option("--sensitive", multiple=True, metavar="COL", help="Column l-diversity is about.")
@click.option("--drop", multiple=True, metavar="COL", help="A direct identifier to remove.")
@click.option("--shift-dates", multiple=True, metavar="COL",
              help="Shift this date column per person (D4).")
@click.option("--serial", metavar="COL", help="The serial-number column dates are shifted by.")
@click.option("--date-secret", metavar="FILE", help="The project's date-shift secret.")
@click.option("--max-shift-days", type=int, help="Largest shift in days (default 180).")
@click.option("--seed", type=int, help="Seed the shuffle of the output's rows.")
@_config_option
@_policy_option
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write the JSON report here.")
@click.option("--overwrite", is_flag=True, help="Replace OUT (and the report) if they exist.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def apply(file: Path, out: Path, qis: tuple[str, ...], k: int | None, person: str | None,
          max_suppression: float | None, hierarchies: tuple[str, ...], l_diversity: int | None,
          sensitive: tuple[str, ...], drop: tuple[str, ...], shift_dates: tuple[str, ...],
          serial: str | None, date_secret: str | None, max_shift_days: int | None,
          seed: int | None, config: str | None, policy: str | None, report: Path | None,
          overwrite: bool, as_json: bool) -> None:
    """Write a k-anonymous version of FILE to OUT, with as little loss as possible.

    Each quasi-identifier is generalised one level of its hierarchy at a time (date ->
    month -> year -> decade; age -> 5-year -> 10-year bands; municipality -> county; postal
    code -> first two digits; sex -> '*'; or an ARX hierarchy file); groups still smaller
    than k are suppressed, within --max-suppression. Identity-number columns and --drop
    columns are removed; the rows are shuffled.

    \b
    Examples:
      vokter anonymise apply adult.csv -o adult-anon.csv --k 5 --max-suppression 0 \\
          --qi age,sex,race --hierarchy age=adult_hierarchy_age.csv --report report.json
      vokter anonymise apply cohort.dta -o anon.dta --config anonymise.toml
      vokter anonymise apply visits.parquet -o anon.parquet --qi kommune,alder \\
          --shift-dates innlagt --serial lopenr --date-secret /secure/p1234.secret
    """
    from agent.api.anonymisation import Request, apply_file

    request = Request(
        quasi_identifiers=_names(qis), k=k, max_suppression=max_suppression,
        l_diversity=l_diversity, sensitive=_names(sensitive), hierarchies=_pairs(hierarchies),
        direct_identifiers=_names(drop), shift_dates=_names(shift_dates), serial=serial,
        date_secret=date_secret, max_shift_days=max_shift_days, seed=seed, person=person,
        config=config, policy=policy,
    )
    # wall-clock: today's date tells identity numbers (born before today) from other numbers.
    today = date.today()
    with _working("anonymising"):
        result = apply_file(file, out, request, today=today, overwrite=overwrite, report=report)
    if as_json:
        print_json(result.to_json())
        return
    click.echo(f"wrote {out}")
    for line in result.lines():
        click.echo(line)
    if report is not None:
        click.echo(f"report: {report}")


@anonymise.command("new-secret")
@click.argument("file", type=click.Path(readable=False, path_type=Path))
def new_secret(file: Path) -> None:
    """Make a project's date-shift secret (D4) in FILE, readable by you alone.

    Keep it where members cannot read it (the key zone): with the secret and the original
    dates anyone can compute each person's shift.

    \b
    Example:
      vokter anonymise new-secret /srv/projects/p1234/key/date-shift.secret
    """
    from agent.api.anonymisation import create_date_secret

    create_date_secret(file)
    click.echo(f"created {file}")
