"""What a storage rule found, and what the policy says to do about it: plain values.

A ``Finding`` is the whole of a decision's answer (the rule, the thing, the response), so the
shell that carries it out and records it needs nothing else. Its ``summary`` and ``details``
carry counts and column names only: they go into the violation table and the audit trail, and
no value read from a file may ever reach either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType


class Response(StrEnum):
    """What the daemon does about a finding; the policy chooses among those a rule allows."""

    #: S4: seal the file in place with the project's key (#6's encrypt-in-place).
    ENCRYPT = "encrypt"
    #: S4, S7: move the file into the project's quarantine, out of the members' reach.
    QUARANTINE = "quarantine"
    #: S5: move a linkage key into the key zone, sealed.
    MOVE_TO_KEY_ZONE = "move_to_key_zone"
    #: S2: detach a portable medium from the host.
    UNMOUNT = "unmount"
    #: Record and tell; touch nothing.
    ALERT = "alert"


class Outcome(StrEnum):
    DONE = "done"
    FAILED = "failed"
    #: Nothing was to be done (``Response.ALERT``).
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    #: What was found: "identity_numbers", "linkage_key", "portable_medium", "copy",
    #: "unapproved_variables", "deidentified_linkage", "project_file_on_medium".
    kind: str
    #: None for what concerns the host, not a project (a portable medium itself).
    project: str | None
    path: str
    #: "data", "key", "export", "quarantine", or None outside the zones.
    zone: str | None
    #: Which state of the thing was judged: one finding per state while it stays open.
    fingerprint: str
    response: Response
    #: For people: counts, column names, the register; never a value from the file.
    summary: str
    details: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class ActionResult:
    outcome: Outcome
    #: What happened, for people ("encrypted in place", "moved to /z/p1/quarantine/x.csv").
    note: str = ""


NOTHING_DONE = ActionResult(Outcome.NONE, "alert only: nothing was changed")
