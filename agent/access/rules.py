"""The rules a grant or a removal must satisfy (A1, A2, A4, S6), as pure functions.

The shell loads the project's current grants and the policy and passes them in as plain values;
each check either returns the cleaned value or raises a typed refusal naming the rule, before
anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from agent.errors import AlreadyExists, InvalidRequest, NotFound, RuleViolation

#: Roles granted with ``vokter member add``; the leader is named when the project is created.
GRANTABLE_ROLES = ("member", "key_custodian", "auditor")
#: Roles that open research data (the data and export zones).
DATA_ROLES = frozenset({"leader", "member"})
MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class Grant:
    """One active grant, as the rules see it."""

    user: str
    uid: int
    role: str
    expires_at: date | None = None


def check_role(role: str) -> str:
    if role not in GRANTABLE_ROLES:
        # Echo the role only when it is a plain word: never a number or a second line.
        shown = f" '{role}'" if re.fullmatch(r"[a-z_]{1,32}", role) else ""
        raise InvalidRequest(
            f"unknown role{shown}", hint="use one of: " + ", ".join(GRANTABLE_ROLES)
        )
    return role


def check_reason(reason: str | None) -> str:
    """A4: every grant and every removal says why; one line, so it reads well in a review."""
    text = (reason or "").strip()
    if not text:
        raise InvalidRequest(
            "a reason is required (A4: every grant records its reason)",
            rule="A4",
            hint="add --reason 'why this person needs access'",
        )
    if len(text) > MAX_REASON or len(text.splitlines()) > 1 or _has_control(text):
        raise InvalidRequest(
            f"the reason must be one line of at most {MAX_REASON} printable characters",
            rule="A4",
        )
    return text


def check_expiry(expires: date | None, today: date, project_end: date) -> date | None:
    """An expiry is the last day of access; it cannot lie in the past or after the project."""
    if expires is None:
        return None
    if expires < today:
        raise InvalidRequest(
            f"the expiry date {expires.isoformat()} is in the past (today is {today.isoformat()})",
            hint="give today or a later date, or remove the member instead",
        )
    if expires > project_end:
        raise InvalidRequest(
            f"the expiry date {expires.isoformat()} is after the project's end "
            f"({project_end.isoformat()}); access ends with the project anyway",
            hint="leave out --expires, or give a date up to the project's end",
        )
    return expires


def access_ends_at(expires: date) -> datetime:
    """Access lasts through the expiry day and ends at the following midnight, UTC."""
    return datetime.combine(expires + timedelta(days=1), time(0, 0), tzinfo=UTC)


def check_grant(
    grants: Sequence[Grant],
    *,
    user: str,
    uid: int,
    role: str,
    leader_uid: int | None,
    members_may_hold_key: bool,
) -> None:
    """Refuse a grant that repeats one, mixes data and key (S6), or compromises an auditor."""
    held = {g.role for g in grants if g.uid == uid}
    if leader_uid is not None and uid == leader_uid:
        held.add("leader")
    if role in held:
        raise AlreadyExists(f"{user} is already {_article(role)} of this project")
    if role == "member" and "leader" in held:
        raise AlreadyExists(f"{user} leads this project and has its data access already")
    if role == "key_custodian" and held & DATA_ROLES and not members_may_hold_key:
        raise RuleViolation(
            f"{user} has access to the research data and cannot also hold the linkage key",
            rule="S6",
            hint="appoint someone outside the project's data users as key custodian",
        )
    if role in DATA_ROLES and "key_custodian" in held and not members_may_hold_key:
        raise RuleViolation(
            f"{user} holds the linkage key and cannot also have access to the research data",
            rule="S6",
            hint="remove the key custodian role first, or choose another member",
        )
    if role == "auditor" and held:
        raise RuleViolation(
            f"{user} already takes part in this project ({', '.join(sorted(held))}) and cannot "
            "audit it",
            rule="A2",
            hint="appoint an auditor from the research-responsible institution",
        )
    if role != "auditor" and "auditor" in held:
        raise RuleViolation(
            f"{user} audits this project and cannot also be given {role} access",
            rule="A2",
            hint="an auditor reads the access list and the logs, never the data",
        )


def find_grant(grants: Iterable[Grant], *, user: str, uid: int, role: str | None) -> Grant:
    """The grant a removal names; with no role given, the user's only one."""
    mine = [g for g in grants if g.uid == uid]
    if role is not None:
        mine = [g for g in mine if g.role == role]
    if not mine:
        what = f" as {role}" if role else ""
        raise NotFound(
            f"{user} has no access{what} to this project",
            hint="see 'vokter member list PROJECT'",
        )
    if len(mine) > 1:
        roles = ", ".join(sorted(g.role for g in mine))
        raise InvalidRequest(
            f"{user} holds several roles ({roles}); say which one to remove with --role"
        )
    return mine[0]


def due_expiries(grants: Iterable[Grant], now: datetime) -> list[Grant]:
    """Grants whose last day has passed at ``now``."""
    return [g for g in grants if g.expires_at is not None and access_ends_at(g.expires_at) <= now]


def _has_control(text: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


def _article(role: str) -> str:
    name = role.replace("_", " ")
    return ("an " if name[0] in "aeiou" else "a ") + name
