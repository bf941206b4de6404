"""Registered copies (L2), judged without the store: what a registration must say and when
registering or confirming one is refused.

Why copies are registered at all: data handed to another institution or written to a backup
tape is outside every zone the disposal run can reach, yet the project's duty to dispose of it
stands. The project is therefore not closed until each registered copy is confirmed disposed
of, by a person who says so in a note the trail keeps.
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.errors import AlreadyExists, InvalidRequest, RuleViolation
from agent.lifecycle.holds import check_line, same_text
from agent.lifecycle.model import CopyFacts, State

COPY_REGISTERED = "copy.registered"
COPY_DISPOSED = "copy.disposed"
#: The column's width (``registered_copy.location``): room for a path or an address.
MAX_LOCATION = 4096
MAX_NOTE = 1000
WHO_REGISTERS = "root and the project's leader register copies and confirm their disposal"
WHO_SEES = "root, the project's leader and its auditors see its registered copies"


def check_location(value: str) -> str:
    """Where the copy is, as a person would find it again: an institution, a tape's label."""
    return check_line(value, "the copy's location", limit=MAX_LOCATION, rule="L2",
                      hint="say where it is kept, e.g. --location 'UiO backup tape T-0042'")


def check_note(value: str, doing: str) -> str:
    return check_line(value, f"a note on {doing}", limit=MAX_NOTE, rule="L2",
                      hint="add --note saying who holds it, or who disposed of it and how")


def check_not_registered(copies: Iterable[CopyFacts], location: str) -> None:
    """A copy still kept at ``location`` is that copy: registering it twice would ask for two
    confirmations of one disposal. Once disposed of, a new copy there is a new copy."""
    for copy in copies:
        if not copy.disposed_confirmed and same_text(copy.location, location):
            raise AlreadyExists(f"copy {copy.id} at that location is already registered",
                                rule="L2", hint="see 'vokter copy list'")


def check_registrable(project_id: str, state: State) -> None:
    """A closed project was closed because every copy was confirmed disposed of: nothing
    tracks a copy registered after that, so the registration is refused rather than
    recorded where no step of the end will ever ask for its disposal again."""
    if state is State.CLOSED:
        raise RuleViolation(
            f"{project_id} is closed: every registered copy was confirmed disposed of, and no "
            "copy is registered after that", rule="L2",
            hint="a copy found after the close is an incident: report it to the data "
                 "protection officer")


def check_confirmable(copy: CopyFacts) -> None:
    if copy.disposed_confirmed:
        raise InvalidRequest(f"copy {copy.id} was already confirmed disposed of", rule="L2",
                             hint="see 'vokter copy list'")
