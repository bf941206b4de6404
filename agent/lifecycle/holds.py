"""Legal holds (L5), judged without the store: what a hold must say, who may touch it, and
when placing or releasing one is refused.

Why a hold says so much: it stops a disposal the law would otherwise require, so whoever reads
the trail years later must see why (the reason), on what authority (the case reference) and
who said so (a note, required both to place and to release). Why the leader is kept out of
placing and releasing: the leader may be the one under investigation; root and the project's
auditors act, the leader only sees that a hold stands.
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.access.permissions import Action, Relation, hides_existence, may
from agent.audit.redact import redact_identity_numbers
from agent.errors import (
    AlreadyExists,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    Refused,
    RuleViolation,
)
from agent.lifecycle.model import HoldFacts, HoldReason

HOLD_PLACED = "hold.placed"
HOLD_RELEASED = "hold.released"
MAX_NOTE = 1000
#: The column's width (``legal_hold.reference``): a case number, a journal reference.
MAX_REFERENCE = 200
REASONS = ", ".join(reason.value for reason in HoldReason)
WHO_PLACES = "root and the project's auditors place and release legal holds"
WHO_SEES = "root, the project's leader and its auditors see its legal holds"


def check_line(text: str, what: str, *, limit: int, rule: str, hint: str | None = None) -> str:
    """A required line of free text (a note, a reference, a location), trimmed.

    One printable line, because it is shown in listings and the trail one record a line; any
    identity number in it is masked before it is stored, as everywhere the daemon records text
    (S4). Registered copies use it for their location and notes too."""
    cleaned = text.strip()
    if not cleaned:
        raise InvalidRequest(f"{what} is required", rule=rule, hint=hint)
    if len(cleaned) > limit:
        raise InvalidRequest(f"{what} is longer than {limit} characters", rule=rule,
                             hint="keep it to one line; the documents themselves stay on file")
    if not cleaned.isprintable():
        raise InvalidRequest(f"{what} holds a line break or control characters", rule=rule,
                             hint="write it as one line of plain text")
    return redact_identity_numbers(cleaned)


def check_reason(value: str) -> HoldReason:
    try:
        return HoldReason(value.strip())
    except ValueError:
        shown = "".join(ch if ch.isprintable() else "?" for ch in value[:40])
        raise InvalidRequest(f"'{shown}' is not a reason for a legal hold (one of {REASONS})",
                             rule="L5") from None


def check_reference(value: str) -> str:
    return check_line(value, "the case reference", limit=MAX_REFERENCE, rule="L5",
                      hint="give the supervisory or investigation case's number with --ref")


def check_note(value: str, doing: str) -> str:
    """Why the hold is placed, or why it may be released: the trail's answer to "who said so"."""
    return check_line(value, f"a note saying why you are {doing} the hold", limit=MAX_NOTE,
                      rule="L5", hint="add --note with who asked for it and why")


def refusal(action: Action, relation: Relation, project_id: str, *, rule: str, doing: str,
            who_may: str, record: str | None = None, see: Action | None = None,
            listing: str = "the project's listing") -> Refused | None:
    """Why a caller with ``relation`` to ``project_id`` may not do ``action``; None if they may.

    ``record`` names a record asked for by its number ("legal hold 3"): a caller who may not
    even ``see`` such records is told it does not exist, so a hold's existence (an
    investigation, perhaps of them) does not leak by its number. Outsiders learn nothing of
    the project either. Registered copies are guarded the same way."""
    if may(action, relation):
        return None
    if record is not None and (see is None or not may(see, relation)):
        return NotFound(f"no {record}", hint=f"see {listing}")
    if hides_existence(relation):
        return NotFound(f"no project {project_id}", hint="see 'vokter project list'")
    who = relation.value.replace("_", " ")
    return PermissionDenied(f"as {who} of {project_id} you may not {doing}", rule=rule,
                            hint=who_may)


def check_not_standing(holds: Iterable[HoldFacts], reason: HoldReason, reference: str) -> None:
    """One open hold per case: placing the same case's hold twice is a slip, and two would
    need two releases to lift what is one decision."""
    for hold in holds:
        if hold.open and hold.reason is reason and same_text(hold.reference, reference):
            raise AlreadyExists(f"legal hold {hold.id} ({reason.value}, {hold.reference}) "
                                "already stands", rule="L5", hint="see 'vokter hold list'")


def check_not_held(held: bool, project_id: str, act: str) -> None:
    """Nothing that cannot be undone happens while a hold stands (L5): a destroyed key or a
    copy confirmed gone is evidence the case may still need. ``act`` names what was asked
    ("shredding its key")."""
    if held:
        raise RuleViolation(f"{project_id} is under a legal hold: {act} is refused until the "
                            "hold is released", rule="L5",
                            hint=f"see 'vokter hold list {project_id} --open'")


def check_releasable(hold: HoldFacts) -> None:
    if not hold.open:
        assert hold.released_on is not None
        raise InvalidRequest(f"legal hold {hold.id} was already released on "
                             f"{hold.released_on.isoformat()}", rule="L5",
                             hint="a new hold is placed with 'vokter hold place'")


def same_text(one: str, other: str) -> bool:
    """Compared as people type: case and spacing do not make a new case (or a new place)."""
    return " ".join(one.split()).casefold() == " ".join(other.split()).casefold()
