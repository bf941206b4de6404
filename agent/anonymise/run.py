"""The shell around the engine: files in, files out, defaults from the policy (L7).

``vokter anonymise check|apply`` runs here, in the caller's own process and with the caller's
own permissions (no daemon: a member anonymises what they can read), and the project-end
lifecycle calls the same two functions. What comes from where, first found wins: the command
line, the project's anonymisation config (``--config``), the policy (k, suppression limit,
l-diversity, the identity-number share).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import TypeVar

from agent.anonymise.config import AnonymisationConfig, parse_config
from agent.anonymise.engine import anonymise_frame, check_frame
from agent.anonymise.hierarchy import parse_arx_hierarchy
from agent.anonymise.model import (
    BUILT_IN_KINDS,
    BuiltInHierarchy,
    DateShift,
    HierarchySpec,
    Settings,
)
from agent.anonymise.report import ClassSizes, Report
from agent.anonymise.secret import read_date_secret
from agent.anonymise.tables import read_table, write_table
from agent.durable import replace_durably
from agent.errors import InvalidRequest
from agent.policy.files import load_default_policy, load_policy_file
from agent.policy.model import Policy

#: Hierarchy files are a few kilobytes; the cap keeps a wrong path (a device, a dump) cheap.
MAX_HIERARCHY_BYTES = 16 << 20
MAX_CONFIG_BYTES = 1 << 20

T = TypeVar("T")


@dataclass(frozen=True)
class Request:
    """What the command line asked for; None and empty mean "not given here"."""

    quasi_identifiers: tuple[str, ...] = ()
    k: int | None = None
    max_suppression: float | None = None
    l_diversity: int | None = None
    sensitive: tuple[str, ...] = ()
    #: Column -> a built-in kind's name or a hierarchy file.
    hierarchies: tuple[tuple[str, str], ...] = ()
    direct_identifiers: tuple[str, ...] = ()
    shift_dates: tuple[str, ...] = ()
    serial: str | None = None
    date_secret: str | None = None
    max_shift_days: int | None = None
    seed: int | None = None
    config: str | None = None
    policy: str | None = None


def _read_text(path: Path, what: str, limit: int) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        raise InvalidRequest(f"{path}: cannot read the {what}: {error.strerror}",
                             hint="check the path and that you may read it") from None
    if len(data) > limit:
        raise InvalidRequest(f"{path}: larger than a {what} can be ({limit:,} bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidRequest(f"{path}: the {what} is not UTF-8 text") from None


def _policy(request: Request) -> Policy:
    if request.policy is None:
        return load_default_policy()
    return load_policy_file(Path(request.policy))


def _config(request: Request) -> tuple[AnonymisationConfig | None, Path]:
    if request.config is None:
        return None, Path.cwd()
    path = Path(request.config)
    text = _read_text(path, "anonymisation config", MAX_CONFIG_BYTES)
    return parse_config(text, str(path)), path.resolve().parent


def hierarchy_spec(value: str, base: Path) -> HierarchySpec:
    """A built-in kind by name, else an ARX hierarchy file (relative to ``base``)."""
    if value in BUILT_IN_KINDS:
        return BuiltInHierarchy(value)
    path = base / value
    return parse_arx_hierarchy(_read_text(path, "hierarchy", MAX_HIERARCHY_BYTES), str(path))


def _first(*values: T | None, default: T) -> T:
    for value in values:
        if value is not None:
            return value
    return default


def settings_for(request: Request) -> tuple[Settings, Policy]:
    """The run's settings: the command line over the config over the policy."""
    policy = _policy(request)
    config, base = _config(request)
    hierarchies: dict[str, HierarchySpec] = {}
    if config is not None:
        hierarchies |= {name: hierarchy_spec(value, base) for name, value in config.hierarchies}
    hierarchies |= {name: hierarchy_spec(value, Path.cwd()) for name, value in request.hierarchies}

    shift = config.date_shift if config is not None else None
    if shift is not None:
        # Like its hierarchy files, the config's secret file is named relative to the config.
        shift = replace(shift, secret_file=str(base / shift.secret_file))
    if request.shift_dates:
        if request.serial is None and shift is None:
            raise InvalidRequest("shifting dates needs the serial-number column", rule="D4",
                                 hint="name it with --serial COLUMN")
        if request.date_secret is None and shift is None:
            raise InvalidRequest("shifting dates needs the project's secret", rule="D4",
                                 hint="give it with --date-secret FILE "
                                 "(make one with 'vokter anonymise new-secret FILE')")
        shift = DateShift(
            columns=request.shift_dates,
            serial=request.serial or (shift.serial if shift else ""),
            secret_file=request.date_secret or (shift.secret_file if shift else ""),
            max_days=_first(request.max_shift_days, shift.max_days if shift else None,
                            default=180),
        )
    anon = policy.anonymisation
    settings = Settings(
        quasi_identifiers=request.quasi_identifiers
        or (config.quasi_identifiers if config is not None else ()),
        k=_first(request.k, config.k if config else None, default=anon.k),
        max_suppression=_first(
            request.max_suppression,
            config.max_suppression if config else None,
            default=anon.max_suppression,
        ),
        l_diversity=_first(
            request.l_diversity, config.l_diversity if config else None, default=anon.l_diversity
        ),
        sensitive=request.sensitive or (config.sensitive if config is not None else ()),
        hierarchies=tuple(hierarchies.items()),
        direct_identifiers=tuple(
            dict.fromkeys(
                [*(config.direct_identifiers if config is not None else ()),
                 *request.direct_identifiers]
            )
        ),
        date_shift=shift,
        seed=request.seed if request.seed is not None else (config.seed if config else None),
    )
    return settings, policy


def _same_file(one: Path, other: Path) -> bool:
    try:
        return one.resolve() == other.resolve() or os.path.samefile(one, other)
    except OSError:
        return False


def _check_report_path(report: Path, source: Path, out: Path, *, overwrite: bool) -> None:
    """The report never lands on the input or the output, not even with --overwrite."""
    if _same_file(report, source) or _same_file(report, out):
        raise InvalidRequest(f"{report}: the report cannot replace the input or the output",
                             hint="name another file for --report")
    if report.exists() and not overwrite:
        raise InvalidRequest(f"{report}: exists already",
                             hint="choose another name for the report or pass --overwrite")


def check_file(path: Path, request: Request) -> ClassSizes:
    settings, _ = settings_for(request)
    if not settings.quasi_identifiers:
        raise InvalidRequest("no quasi-identifiers named", hint="name them with --qi COLUMN")
    table = read_table(path)
    return check_frame(table.frame, settings.quasi_identifiers, settings.k)


def apply_file(
    path: Path,
    out: Path,
    request: Request,
    *,
    today: date,
    overwrite: bool = False,
    report: Path | None = None,
) -> Report:
    """Anonymise ``path`` into ``out`` (same format); the input is never changed."""
    settings, policy = settings_for(request)
    if report is not None:
        _check_report_path(report, path, out, overwrite=overwrite)
    secret = (
        read_date_secret(Path(settings.date_shift.secret_file))
        if settings.date_shift is not None
        else None
    )
    table = read_table(path)
    result = anonymise_frame(
        table.frame,
        settings,
        date_secret=secret,
        today=today,
        identity_share=policy.storage.identifier_column_share,
        policy_k=policy.anonymisation.k,
    )
    write_table(table, result.frame, out, overwrite=overwrite)
    if report is not None:
        data = json.dumps(
            {"input": str(path), "output": str(out), **result.report.to_json()}, indent=2
        )
        folder = report.resolve().parent
        replace_durably(folder, report.name, (data + "\n").encode(), mode=0o644)
    return result.report
