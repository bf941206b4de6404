"""Legal holds judged without a store (L5): what a hold must say, who may place, release and
see one, and when placing or releasing is refused."""

from __future__ import annotations

from datetime import date

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
from agent.lifecycle.holds import (
    MAX_NOTE,
    MAX_REFERENCE,
    check_line,
    check_not_held,
    check_not_standing,
    check_note,
    check_reason,
    check_reference,
    check_releasable,
    refusal,
)
from agent.lifecycle.model import HoldFacts, HoldReason
from tests.support.identity_numbers import valid_numbers

SUPERVISORY = HoldReason.SUPERVISORY_CASE


def guard(action: Action, relation: Relation, hold: int | None = None
          ) -> Refused | None:
    refused = refusal(action, relation, "p1234", rule="L5", doing="touch its legal holds",
                      who_may="root and the project's auditors place and release legal holds",
                      record=None if hold is None else f"legal hold {hold}",
                      see=Action.HOLD_LIST, listing="'vokter hold list'")
    assert refused is None or isinstance(refused, PermissionDenied | NotFound)
    return refused


def test_l5_a_reason_is_one_of_the_three_the_rule_names() -> None:
    assert [check_reason(r) for r in ("supervisory_case", " integrity_investigation ",
                                      "other")] == list(HoldReason)
    with pytest.raises(InvalidRequest) as refused:
        check_reason("lawsuit")
    assert refused.value.rule == "L5"
    assert refused.value.message == ("'lawsuit' is not a reason for a legal hold (one of "
                                     "supervisory_case, integrity_investigation, other)")


def test_l5_a_reason_echoed_back_is_shortened_and_shows_no_control_characters() -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_reason("\x1b[31m" + "x" * 100)
    assert "\x1b" not in refused.value.message
    assert "x" * 41 not in refused.value.message


@pytest.mark.parametrize("note", ["", "   ", "\t\n"])
def test_l5_a_note_is_required_to_place_and_to_release(note: str) -> None:
    for doing in ("placing", "releasing"):
        with pytest.raises(InvalidRequest) as refused:
            check_note(note, doing)
        assert refused.value.rule == "L5"
        assert refused.value.message == f"a note saying why you are {doing} the hold is required"
        assert refused.value.hint is not None and "--note" in refused.value.hint


def test_l5_a_note_is_one_printable_line_of_at_most_1000_characters() -> None:
    assert check_note("  " + "n" * MAX_NOTE + " ", "placing") == "n" * MAX_NOTE
    with pytest.raises(InvalidRequest, match="longer than 1000 characters"):
        check_note("n" * (MAX_NOTE + 1), "placing")
    for broken in ("first line\nsecond line", "bell\x07", "escape \x1b[2J"):
        with pytest.raises(InvalidRequest, match="line break or control characters"):
            check_note(broken, "placing")


def test_l5_an_identity_number_in_a_note_or_reference_is_masked_before_it_is_kept() -> None:
    [number] = valid_numbers(1, seed=9)
    assert check_note(f"concerns the person {number}", "placing") == f"concerns the person {MASK}"
    assert number not in check_reference(f"case {number[:6]} {number[6:]}")


def test_l5_the_case_reference_is_required_and_fits_its_column() -> None:
    assert check_reference(" Datatilsynet 24/01234 ") == "Datatilsynet 24/01234"
    assert check_reference("r" * MAX_REFERENCE) == "r" * MAX_REFERENCE
    with pytest.raises(InvalidRequest, match="the case reference is required"):
        check_reference(" ")
    with pytest.raises(InvalidRequest, match="longer than 200 characters"):
        check_reference("r" * (MAX_REFERENCE + 1))


def test_l5_a_line_names_what_it_is_and_the_rule_given() -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_line("", "the copy's location", limit=10, rule="L2", hint="say where")
    assert (refused.value.message, refused.value.rule, refused.value.hint) == (
        "the copy's location is required", "L2", "say where")


@pytest.mark.parametrize("action", [Action.HOLD_PLACE, Action.HOLD_RELEASE, Action.HOLD_LIST])
@pytest.mark.parametrize("relation", [Relation.ROOT, Relation.AUDITOR])
def test_l5_root_and_the_auditors_place_release_and_see_holds(
        action: Action, relation: Relation) -> None:
    assert guard(action, relation) is None
    assert guard(action, relation, hold=3) is None


@pytest.mark.parametrize("action", [Action.HOLD_PLACE, Action.HOLD_RELEASE])
def test_l5_the_leader_cannot_place_or_release_a_hold_and_is_told_who_may(
        action: Action) -> None:
    for hold in (None, 3):
        refused = guard(action, Relation.LEADER, hold)
        assert isinstance(refused, PermissionDenied)
        assert refused.rule == "L5"
        assert refused.message == "as leader of p1234 you may not touch its legal holds"
        assert refused.hint == "root and the project's auditors place and release legal holds"


def test_l5_the_leader_sees_the_holds() -> None:
    assert guard(Action.HOLD_LIST, Relation.LEADER) is None


@pytest.mark.parametrize("relation", [Relation.MEMBER, Relation.KEY_CUSTODIAN])
def test_l5_a_member_is_refused_the_holds_and_never_learns_a_hold_exists(
        relation: Relation) -> None:
    for action in (Action.HOLD_PLACE, Action.HOLD_LIST):
        refused = guard(action, relation)
        assert isinstance(refused, PermissionDenied) and refused.rule == "L5"
    refused = guard(Action.HOLD_RELEASE, relation, hold=3)
    assert isinstance(refused, NotFound)
    assert refused.one_line() == "no legal hold 3; see 'vokter hold list'"


def test_l5_an_outsider_learns_nothing_of_the_project() -> None:
    for action in (Action.HOLD_PLACE, Action.HOLD_LIST):
        refused = guard(action, Relation.NONE)
        assert isinstance(refused, NotFound) and refused.message == "no project p1234"
    refused = guard(Action.HOLD_RELEASE, Relation.NONE, hold=3)
    assert isinstance(refused, NotFound) and refused.message == "no legal hold 3"


def test_l5_the_same_case_cannot_be_held_twice_while_its_hold_stands() -> None:
    standing = HoldFacts(4, SUPERVISORY, "Datatilsynet 24/01234")
    with pytest.raises(AlreadyExists) as refused:
        check_not_standing([standing], SUPERVISORY, "datatilsynet  24/01234")
    assert refused.value.rule == "L5"
    assert refused.value.message.startswith("legal hold 4 (supervisory_case, ")


def test_l5_a_released_hold_another_case_or_another_reason_is_no_duplicate() -> None:
    released = HoldFacts(4, SUPERVISORY, "24/01234", released_on=date(2031, 2, 1))
    other_case = HoldFacts(5, SUPERVISORY, "24/09999")
    other_reason = HoldFacts(6, HoldReason.OTHER, "24/01234")
    check_not_standing([released, other_case, other_reason], SUPERVISORY, "24/01234")


def test_l5_a_released_hold_cannot_be_released_again() -> None:
    check_releasable(HoldFacts(7, SUPERVISORY, "24/01234"))
    with pytest.raises(InvalidRequest) as refused:
        check_releasable(HoldFacts(7, SUPERVISORY, "24/01234", released_on=date(2031, 2, 1)))
    assert refused.value.rule == "L5"
    assert refused.value.message == "legal hold 7 was already released on 2031-02-01"


def test_l5_nothing_irreversible_is_done_while_a_hold_stands() -> None:
    check_not_held(False, "p1234", "shredding its key")
    with pytest.raises(RuleViolation) as refused:
        check_not_held(True, "p1234", "shredding its key")
    assert refused.value.rule == "L5"
    assert refused.value.one_line() == (
        "p1234 is under a legal hold: shredding its key is refused until the hold is released "
        "(L5); see 'vokter hold list p1234 --open'")
