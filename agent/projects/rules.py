"""Pure checks on a new project: its id, title, end date and where its zones go.

The zones plan is decided here, from plain paths, so that every rule about it (absolute paths,
no '..', zones distinct and not nested in each other, the key zone apart from the data: S5) is
tested without touching a disk.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from agent.errors import InvalidRequest, RuleViolation

PROJECT_ID_RE = re.compile(r"^p[0-9]{1,9}$")
USER_NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\$?$")
MAX_TITLE = 200
ZONE_NAMES = ("data", "key", "export", "quarantine")


@dataclass(frozen=True, slots=True)
class ZonePlan:
    project_dir: str
    data: str
    key: str
    export: str
    quarantine: str

    def zones(self) -> dict[str, str]:
        return {"data": self.data, "key": self.key, "export": self.export,
                "quarantine": self.quarantine}


def check_project_id(project: str) -> str:
    if not PROJECT_ID_RE.fullmatch(project):
        raise InvalidRequest(
            f"'{project[:40]}' is not a project id",
            hint="project ids are 'p' followed by 1 to 9 digits, e.g. p1234",
        )
    return project


def check_user_name(user: str) -> str:
    if not USER_NAME_RE.fullmatch(user):
        raise InvalidRequest(f"'{user[:40]}' is not a valid Unix user name")
    return user


def check_title(title: str) -> str:
    cleaned = " ".join(title.split())
    if not cleaned:
        raise InvalidRequest("the title is empty", hint="give --title a short description")
    if len(cleaned) > MAX_TITLE:
        raise InvalidRequest(f"the title is longer than {MAX_TITLE} characters")
    if any(unicodedata.category(ch) == "Cc" for ch in title if ch not in "\t\n"):
        raise InvalidRequest("the title contains control characters")
    return cleaned


#: No REK approval runs longer; a date beyond is a typing error (9999-12-31), and the
#: retention and notice dates computed from it must stay within the calendar.
MAX_PROJECT_YEARS = 100


def check_end_date(end_date: date, today: date) -> date:
    """A project is approved until its end date (L1); creating one already ended is a mistake."""
    if end_date < today:
        raise RuleViolation(
            f"end date {end_date.isoformat()} is in the past (today is {today.isoformat()})",
            rule="L1",
            hint="give the end date of the REK approval",
        )
    if end_date.year > today.year + MAX_PROJECT_YEARS:
        raise InvalidRequest(
            f"end date {end_date.isoformat()} is more than {MAX_PROJECT_YEARS} years away",
            rule="L1",
            hint="give the end date of the REK approval",
        )
    return end_date


def _clean_absolute(path: str, what: str) -> str:
    if not path.startswith("/"):
        raise InvalidRequest(f"{what} '{path[:200]}' must be an absolute path")
    if "\x00" in path or any(part == ".." for part in path.split("/")):
        raise InvalidRequest(f"{what} '{path[:200]}' must not contain '..'")
    # normpath keeps a leading '//', which Linux reads as '/': fold it, or '//data' and '/data'
    # would look like different places (and S5 nesting checks could be walked around).
    cleaned = "/" + posixpath.normpath(path).lstrip("/")
    if cleaned == "/":
        raise InvalidRequest(f"{what} cannot be the root directory")
    return cleaned


def _inside(child: str, parent: str) -> bool:
    return child == parent or child.startswith(parent.rstrip("/") + "/")


def plan_zones(
    project: str,
    zones_dir: str,
    data_dir: str | None = None,
    key_dir: str | None = None,
    export_dir: str | None = None,
) -> ZonePlan:
    """Where each zone of a project lives: ``<zones_dir>/<project>/<zone>`` unless given."""
    base = posixpath.join(_clean_absolute(zones_dir, "zones_dir"), project)
    plan = ZonePlan(
        project_dir=base,
        data=_clean_absolute(data_dir, "--data-dir") if data_dir else f"{base}/data",
        key=_clean_absolute(key_dir, "--key-dir") if key_dir else f"{base}/key",
        export=_clean_absolute(export_dir, "--export-dir") if export_dir else f"{base}/export",
        quarantine=f"{base}/quarantine",
    )
    zones = plan.zones()
    for name, path in zones.items():
        for other, other_path in zones.items():
            if name != other and _inside(path, other_path):
                rule = "S5" if {name, other} == {"data", "key"} else None
                raise RuleViolation(
                    f"the {name} zone {path} lies inside the {other} zone {other_path}",
                    rule=rule,
                    hint="give each zone its own directory",
                )
    return plan
