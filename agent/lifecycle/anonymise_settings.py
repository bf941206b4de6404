"""What the disposal by anonymisation goes by (L6, L7): the project's anonymisation config, read
from its data zone through descriptors, and the settings each table of the zone gets from it.

Why a module apart from the run (:mod:`agent.lifecycle.anonymise_run`): these are the rules a
reader of the certificate asks about ("why was this table deleted?"), and they are decided here,
in one place, mostly as pure functions of the config, the table's columns and the policy.

The rules, where the issue leaves them open:

- The config is ``anonymisation.toml`` at the data zone's root, in the format of ``vokter
  anonymise --config`` (:mod:`agent.anonymise.config`). Its hierarchy files are named relative
  to it and must lie in the data zone: an absolute path, a ``..``, a symlink or a mount point
  on the way, or anything but a regular file refuses the whole config, as does a config that
  does not parse. A refused config is no config: every table is deleted, since none can be
  shown anonymous. Wholesale, because a config is one judgement of which columns identify;
  applying the parts that happen to be readable would anonymise by a judgement nobody made.
- One config for every table. Its names are column names across the project: a table is
  checked over the quasi-identifiers it has, drops the direct identifiers it has, and so on. A
  table holding none of the quasi-identifiers is deleted (nobody said which of its columns
  identify), and so is one lacking the person column the config names: groups must count
  persons (L7) and without that column nobody can count them.
- k is at least the policy's (a config may ask more, never less) and the share of rows
  suppressed at most the policy's: below the policy a table does not count as anonymous (L7).
- Dates are not shifted: the date secret lived in the key zone, crypto-shredded before this
  run, and shifting only the tables that fail the check would set them apart from those kept.
  The shift's serial column still names persons when the config names no ``person``.
- A table is kept as it is only when it is k-anonymous (in persons when a person column is
  named), l-diverse when the config asks it, and holds nothing ``vokter anonymise apply`` would
  remove (a direct identifier named in the config, a column of identity numbers, L6).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import polars as pl

from agent.anonymise.config import AnonymisationConfig, parse_config
from agent.anonymise.engine import check_frame
from agent.anonymise.hierarchy import parse_arx_hierarchy
from agent.anonymise.model import BUILT_IN_KINDS, BuiltInHierarchy, HierarchySpec, Settings
from agent.anonymise.report import fewest_distinct
from agent.anonymise.screening import columns_to_remove
from agent.errors import VokterError
from agent.lifecycle.removal_inventory import open_folder
from agent.policy.model import Policy

CONFIG_NAME = "anonymisation.toml"
MAX_CONFIG_BYTES = 1 << 20
MAX_HIERARCHY_BYTES = 16 << 20
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass(frozen=True)
class ZoneConfig:
    """The data zone's anonymisation config, as far as it can be used."""

    config: AnonymisationConfig | None
    #: Column -> hierarchy, every file read from inside the zone.
    hierarchies: tuple[tuple[str, HierarchySpec], ...]
    #: The config's and its hierarchy files' paths in the zone: they describe the identifiers,
    #: so they are deleted, last, once every table has its outcome; never taken for tables.
    files: tuple[str, ...]
    #: Why there is nothing to go by (no config, or a refused one); None when there is.
    refusal: str | None


class _Refusal(Exception):
    """Why a file the config depends on cannot be used; the whole config is refused."""


def read_zone_config(root_fd: int) -> ZoneConfig:
    """The config at the root of the zone open as ``root_fd``; never raises for its content."""
    try:
        text = _read_text(root_fd, [CONFIG_NAME], MAX_CONFIG_BYTES)
    except FileNotFoundError:
        return ZoneConfig(None, (), (), f"no {CONFIG_NAME} in the data zone names its "
                          "quasi-identifiers")
    except _Refusal as error:
        return ZoneConfig(None, (), (), f"{CONFIG_NAME} is refused: {error}")
    try:
        config = parse_config(text, CONFIG_NAME)
        hierarchies: list[tuple[str, HierarchySpec]] = []
        files = [CONFIG_NAME]
        for column, value in config.hierarchies:
            if value in BUILT_IN_KINDS:
                hierarchies.append((column, BuiltInHierarchy(value)))
                continue
            names = _names_in_zone(value)
            relative = "/".join(names)
            hierarchy_text = _read_text(root_fd, names, MAX_HIERARCHY_BYTES)
            hierarchies.append((column, parse_arx_hierarchy(hierarchy_text, relative)))
            files.insert(0, relative)  # hierarchies before the config: it names them
    except VokterError as error:
        why = error.message
    except FileNotFoundError as error:
        why = f"the hierarchy {error.filename} is not in the data zone"
    except _Refusal as error:
        why = str(error)
    else:
        return ZoneConfig(config, tuple(hierarchies), tuple(dict.fromkeys(files)), None)
    # Refused, it still names the identifiers: it goes last, like a usable one.
    return ZoneConfig(None, (), (CONFIG_NAME,), f"{CONFIG_NAME} is refused: {why}")


def _names_in_zone(value: str) -> list[str]:
    """A hierarchy path's components, refused unless it stays below the config's folder."""
    if value.startswith("/"):
        raise _Refusal(f"the hierarchy {value!r} is an absolute path; name it relative to "
                       f"{CONFIG_NAME}, inside the data zone")
    names = [name for name in value.split("/") if name not in ("", ".")]
    if ".." in names or not names:
        raise _Refusal(f"the hierarchy {value!r} leaves the data zone")
    return names


def _read_text(root_fd: int, names: list[str], limit: int) -> str:
    """A small text file at ``names`` below ``root_fd``: every folder opened without following
    a symlink or crossing a mount, the file itself opened without following one, and refused
    unless it is a regular file. FileNotFoundError when it is not there."""
    shown = "/".join(names)
    opened: list[int] = []
    try:
        folder = root_fd
        for name in names[:-1]:
            try:
                folder = open_folder(name, folder)
            except FileNotFoundError:
                raise FileNotFoundError(2, "no such folder", shown) from None
            except OSError as error:
                raise _Refusal(f"{shown}: the folder {name!r} on its way is a symlink, a mount "
                               f"point or no folder ({error.strerror})") from None
            opened.append(folder)
        try:
            fd = os.open(names[-1], _READ_FLAGS, dir_fd=folder)
        except FileNotFoundError:
            raise FileNotFoundError(2, "no such file", shown) from None
        except OSError as error:
            raise _Refusal(f"{shown} cannot be opened without following a symlink "
                           f"({error.strerror})") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise _Refusal(f"{shown} is not a regular file")
            data = os.pread(fd, limit + 1, 0)
        finally:
            os.close(fd)
    finally:
        for fd in opened:
            os.close(fd)
    if len(data) > limit:
        raise _Refusal(f"{shown} is larger than {limit:,} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _Refusal(f"{shown} is not UTF-8 text") from None


# --- each table's settings (pure) -------------------------------------------------------------


def table_settings(zone: ZoneConfig, columns: Sequence[str], policy: Policy) -> Settings | str:
    """The settings the table with ``columns`` is checked and anonymised with, or why it cannot
    be shown anonymous (it is then deleted)."""
    config = zone.config
    if config is None:
        return zone.refusal or f"no {CONFIG_NAME}"
    present = set(columns)
    quasi = tuple(name for name in config.quasi_identifiers if name in present)
    if not quasi:
        return "no quasi-identifiers named for it: none of the config's are among its columns"
    person = config.person
    if person is None and config.date_shift is not None:
        person = config.date_shift.serial
    if person is not None and person not in present:
        return f"no column {person!r} to count persons by (L7)"
    sensitive = tuple(name for name in config.sensitive if name in present)
    anon = policy.anonymisation
    return Settings(
        quasi_identifiers=quasi,
        k=max(config.k or anon.k, anon.k),
        max_suppression=min(anon.max_suppression if config.max_suppression is None
                            else config.max_suppression, anon.max_suppression),
        l_diversity=(config.l_diversity if config.l_diversity is not None
                     else anon.l_diversity) if sensitive else 0,
        sensitive=sensitive,
        hierarchies=tuple((name, spec) for name, spec in zone.hierarchies if name in quasi),
        direct_identifiers=tuple(name for name in config.direct_identifiers if name in present),
        person=person,
        date_shift=None,
        seed=config.seed,
    )


def anonymous_as_it_is(frame: pl.DataFrame, settings: Settings, *, today: date, share: float,
                       value_labels: Mapping[str, Sequence[str]] | None) -> int | None:
    """The k the table reaches as it is (its smallest class, in persons when a person column is
    named; 0 for a table without rows) when it may be kept unchanged; None when it must be
    anonymised. Raises what the engine raises for a table it cannot take (L6 refusals)."""
    if columns_to_remove(frame, settings, today=today, share=share, value_labels=value_labels):
        return None
    quasi = settings.quasi_identifiers
    sizes = check_frame(frame, quasi, settings.k, person=settings.person)
    if not sizes.anonymous:
        return None
    if settings.l_diversity and any(fewest_distinct(frame, quasi, name) < settings.l_diversity
                                    for name in settings.sensitive):
        return None
    if settings.person is not None:
        return fewest_distinct(frame, quasi, settings.person)
    return sizes.smallest
