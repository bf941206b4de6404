"""Registered copies judged without a store (L2): what a registration must say, who may make
and confirm one, and when registering or confirming is refused."""

from __future__ import annotations

import pytest

from agent.access.permissions import Action, Relation
from agent.audit.redact import MASK
from agent.errors import (
    AlreadyExists,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    Refused,
    RuleViolation,
)
from agent.lifecycle.copies import (
    MAX_LOCATION,
    MAX_NOTE,
    WHO_REGISTERS,
    check_confirmable,
    check_location,
    check_not_registered,
    check_note,
    check_registrable,
)
from agent.lifecycle.holds import refusal
from agent.lifecycle.model import CopyFacts, State
from tests.support.identity_numbers import valid_numbers

TAPE = "UiO backup tape T-0042"


def guard(action: Action, relation: Relation, copy: int | None = None
          ) -> Refused | None:
    refused = refusal(action, relation, "p1234", rule="L2", doing="register its copies",
                      who_may=WHO_REGISTERS,
                      record=None if copy is None else f"registered copy {copy}",
                      see=Action.COPY_LIST, listing="'vokter copy list PROJECT'")
    assert refused is None or isinstance(refused, PermissionDenied | NotFound)
    return refused


def test_l2_a_location_is_required_one_line_and_fits_its_column() -> None:
    assert check_location(f"  {TAPE} ") == TAPE
    assert check_location("l" * MAX_LOCATION) == "l" * MAX_LOCATION
    with pytest.raises(InvalidRequest) as refused:
        check_location("")
    assert (refused.value.message, refused.value.rule) == ("the copy's location is required",
                                                           "L2")
    with pytest.raises(InvalidRequest, match="longer than 4096 characters"):
        check_location("l" * (MAX_LOCATION + 1))
    with pytest.raises(InvalidRequest, match="line break"):
        check_location("Haukeland\nK. Berg")


def test_l2_a_note_is_required_for_the_copy_and_for_its_disposal() -> None:
    for doing in ("the copy", "its disposal"):
        with pytest.raises(InvalidRequest) as refused:
            check_note(" ", doing)
        assert refused.value.rule == "L2"
        assert refused.value.message == f"a note on {doing} is required"
    assert check_note("n" * MAX_NOTE, "the copy") == "n" * MAX_NOTE
    with pytest.raises(InvalidRequest, match="longer than 1000 characters"):
        check_note("n" * (MAX_NOTE + 1), "the copy")


def test_l2_an_identity_number_in_a_location_or_note_is_masked() -> None:
    [number] = valid_numbers(1, seed=10)
    assert check_location(f"/backup/{number}.csv") == f"/backup/{MASK}.csv"
    assert number not in check_note(f"sent for {number}", "the copy")


def test_l2_a_copy_still_kept_cannot_be_registered_twice() -> None:
    kept = CopyFacts(2, TAPE)
    with pytest.raises(AlreadyExists) as refused:
        check_not_registered([kept], "uio BACKUP tape  T-0042")
    assert refused.value.rule == "L2"
    assert refused.value.message == "copy 2 at that location is already registered"


def test_l2_a_new_copy_where_an_old_one_was_disposed_of_is_a_new_copy() -> None:
    check_not_registered([CopyFacts(2, TAPE, disposed_confirmed=True),
                          CopyFacts(3, "Haukeland")], TAPE)


def test_l2_a_disposal_is_confirmed_once() -> None:
    check_confirmable(CopyFacts(2, TAPE))
    with pytest.raises(InvalidRequest) as refused:
        check_confirmable(CopyFacts(2, TAPE, disposed_confirmed=True))
    assert refused.value.rule == "L2"
    assert refused.value.message == "copy 2 was already confirmed disposed of"


@pytest.mark.parametrize("relation", [Relation.ROOT, Relation.LEADER])
def test_l2_root_and_the_leader_register_and_confirm_copies(relation: Relation) -> None:
    for action in (Action.COPY_ADD, Action.COPY_CONFIRM, Action.COPY_LIST):
        assert guard(action, relation) is None
        assert guard(action, relation, copy=2) is None


def test_l2_an_auditor_sees_the_copies_but_registers_and_confirms_none() -> None:
    assert guard(Action.COPY_LIST, Relation.AUDITOR) is None
    for action in (Action.COPY_ADD, Action.COPY_CONFIRM):
        refused = guard(action, Relation.AUDITOR, copy=2)
        assert isinstance(refused, PermissionDenied) and refused.rule == "L2"
        assert refused.hint == WHO_REGISTERS


def test_l2_a_member_asking_for_a_copy_by_number_is_told_it_does_not_exist() -> None:
    refused = guard(Action.COPY_CONFIRM, Relation.MEMBER, copy=2)
    assert isinstance(refused, NotFound)
    assert refused.one_line() == "no registered copy 2; see 'vokter copy list PROJECT'"
    listing = guard(Action.COPY_LIST, Relation.MEMBER)
    assert isinstance(listing, PermissionDenied) and listing.rule == "L2"


@pytest.mark.parametrize("state", [s for s in State if s is not State.CLOSED])
def test_l2_a_copy_found_late_is_registered_in_any_state_short_of_closed(state: State) -> None:
    check_registrable("p1234", state)


def test_l2_a_closed_project_registers_no_copy_nothing_would_track() -> None:
    with pytest.raises(RuleViolation) as refused:
        check_registrable("p1234", State.CLOSED)
    assert refused.value.rule == "L2"
    assert refused.value.message.startswith("p1234 is closed: every registered copy was "
                                            "confirmed disposed of")
