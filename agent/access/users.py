"""The system's user database, at the edge. Names are looked up once per request; the uid the
kernel gives for a caller is the identity, the name is only for people."""

from __future__ import annotations

import pwd
from dataclasses import dataclass

from agent.errors import NotFound


@dataclass(frozen=True, slots=True)
class UnixUser:
    name: str
    uid: int
    gid: int


def lookup_user(name: str) -> UnixUser:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise NotFound(
            f"there is no Unix account named '{name}'",
            hint="check the spelling, or create the account first (useradd)",
        ) from None
    return UnixUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def name_of_uid(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid{uid}"
