"""Where a run's settings come from, first found wins: the command line, the project's
anonymisation config (``--config``), the policy (k, suppression limit, l-diversity).

Why apart from the run: this is where the files a run depends on besides the table are read
(the config, hierarchy files; the date secret's path is resolved), and the run must know them
all, so that it never writes its output or report over one of them.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from agent.anonymise.config import AnonymisationConfig, parse_config
from agent.anonymise.hierarchy import parse_arx_hierarchy
from agent.anonymise.model import (
    BUILT_IN_KINDS,
    BuiltInHierarchy,
    DateShift,
    HierarchySpec,
    Settings,
)
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
    person: str | None = None
    config: str | None = None
    policy: str | None = None


@dataclass(frozen=True)
class Resolved:
    settings: Settings
    policy: Policy
    #: Every file the run reads besides the table: the config, hierarchy files, the secret.
    inputs: tuple[Path, ...]


def _read_text(path: Path, what: str, limit: int) -> str:
    """A small text file, opened without blocking (a FIFO named by mistake must not hang the
    command) and refused unless it is a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise InvalidRequest(f"{path}: cannot read the {what}: {error.strerror}",
                             hint="check the path and that you may read it") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InvalidRequest(f"{path}: the {what} is not a regular file")
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        raise InvalidRequest(f"{path}: cannot read the {what}: {error.strerror}") from None
    finally:
        os.close(fd)
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


def hierarchy_spec(value: str, base: Path, inputs: list[Path]) -> HierarchySpec:
    """A built-in kind by name, else an ARX hierarchy file (relative to ``base``)."""
    if value in BUILT_IN_KINDS:
        return BuiltInHierarchy(value)
    path = base / value
    inputs.append(path)
    return parse_arx_hierarchy(_read_text(path, "hierarchy", MAX_HIERARCHY_BYTES), str(path))


def _first(*values: T | None, default: T) -> T:
    for value in values:
        if value is not None:
            return value
    return default


def settings_for(request: Request) -> Resolved:
    """The run's settings: the command line over the config over the policy."""
    policy = _policy(request)
    config, base = _config(request)
    inputs = [] if request.config is None else [Path(request.config)]
    hierarchies: dict[str, HierarchySpec] = {}
    if config is not None:
        hierarchies |= {
            name: hierarchy_spec(value, base, inputs) for name, value in config.hierarchies
        }
    hierarchies |= {
        name: hierarchy_spec(value, Path.cwd(), inputs) for name, value in request.hierarchies
    }

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
        person=request.person or (config.person if config is not None else None),
    )
    if settings.max_suppression > anon.max_suppression:
        raise InvalidRequest(
            f"suppressing up to {settings.max_suppression:.1%} of rows is more than the policy "
            f"allows ({anon.max_suppression:.1%}, anonymisation.max_suppression)",
            rule="L7",
            hint="generalise instead: allow less suppression, or name fewer quasi-identifiers",
        )
    if shift is not None:
        inputs.append(Path(shift.secret_file))
    return Resolved(settings, policy, tuple(inputs))
