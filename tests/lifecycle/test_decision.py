"""The project-end decision (L1-L9) walked through years with dates, not clocks: every branch
of issue 9's point 8 on the pure function, with hand-computed dates."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from agent.errors import RuleViolation
from agent.lifecycle.decision import Plan, add_years, decide, retention_end
from agent.lifecycle.model import (
    ApprovalFacts,
    ApprovalKind,
    CopyFacts,
    HoldFacts,
    HoldReason,
    ProjectFacts,
    State,
)
from agent.lifecycle.states import TRANSITIONS, Event, advance
from agent.policy import load_default_policy

POLICY = load_default_policy()  # grace 14 days, notice 30 days, anonymise, 5 / 25 years
END = date(2029, 12, 31)


def project(state: State = State.ACTIVE, **given: object) -> ProjectFacts:
    return ProjectFacts(id="p1234", end_date=END, state=state, **given)  # type: ignore[arg-type]


def walk(facts: ProjectFacts, until: date) -> list[tuple[date, Event]]:
    """Apply each due event on the day it is due, as the daily sweep would, until ``until``."""
    happened: list[tuple[date, Event]] = []
    day = date(2029, 1, 1)
    while day <= until:
        plan = decide(facts, POLICY, day)
        if plan.due is not None:
            target = advance(facts.state, plan.due, held=bool(plan.held_by)).target
            happened.append((day, plan.due))
            facts = ProjectFacts(facts.id, facts.end_date, target, facts.approvals,
                                 facts.holds, facts.copies)
            if target is State.DISPOSING:  # the run completes the same day
                method = {"anonymise": Event.ANONYMISED, "delete": Event.DELETED,
                          "archive": Event.ARCHIVED}[plan.method]
                facts = ProjectFacts(facts.id, facts.end_date, advance(facts.state, method,
                                     held=False).target, facts.approvals, facts.holds,
                                     facts.copies)
                happened.append((day, method))
            continue
        day += timedelta(days=1)
    return happened


def rek(retention: date | None = None, **given: object) -> ApprovalFacts:
    return ApprovalFacts(1, ApprovalKind.REK, "2024/12345", retention_until=retention,
                         **given)  # type: ignore[arg-type]


def test_l1_l2_without_approval_the_project_ends_then_is_disposed_after_the_grace() -> None:
    happened = walk(project(), date(2030, 3, 1))
    assert happened == [
        (date(2030, 1, 1), Event.END),
        (date(2030, 1, 15), Event.DISPOSE),  # 14 days of grace after the end date
        (date(2030, 1, 15), Event.ANONYMISED),
        (date(2030, 1, 15), Event.CLOSE),
    ]


def test_l1_the_leader_is_told_thirty_days_before_the_end() -> None:
    plan = decide(project(), POLICY, date(2029, 6, 1))
    assert plan.steps[0].on == date(2029, 12, 1) and plan.steps[0].rule == "L1"
    assert plan.due is None


def test_l3_rek_retention_of_three_years_retains_then_disposes() -> None:
    facts = project(approvals=(rek(date(2032, 12, 31)),))
    happened = walk(facts, date(2033, 3, 1))
    assert happened[:2] == [(date(2030, 1, 1), Event.END), (date(2030, 1, 15), Event.RETAIN)]
    assert happened[2] == (date(2033, 1, 1), Event.DISPOSE)
    plan = decide(facts, POLICY, date(2031, 1, 1))
    assert plan.retained_until == date(2032, 12, 31) and plan.disposal_on == date(2033, 1, 1)


def test_l4_a_clinical_trial_keeps_its_data_25_years_after_the_final_report() -> None:
    trial = rek(clinical_trial=True, final_report=date(2030, 6, 30))
    assert retention_end((trial,), POLICY) == date(2055, 6, 30)
    plan = decide(project(State.RETAINED, approvals=(trial,)), POLICY, date(2055, 6, 30))
    assert plan.due is None
    assert decide(project(State.RETAINED, approvals=(trial,)), POLICY,
                  date(2055, 7, 1)).due is Event.DISPOSE


def test_l5_a_hold_stops_everything_after_the_end_until_released() -> None:
    hold = HoldFacts(7, HoldReason.SUPERVISORY_CASE, "Datatilsynet 24/01")
    held = project(State.ENDED, holds=(hold,))
    assert decide(held, POLICY, date(2035, 1, 1)).due is None
    assert decide(held, POLICY, date(2035, 1, 1)).held_by == (7,)
    with pytest.raises(RuleViolation) as caught:
        advance(State.ENDED, Event.DISPOSE, held=True)
    assert caught.value.rule == "L5"
    released = project(State.ENDED, holds=(HoldFacts(7, HoldReason.SUPERVISORY_CASE, "x",
                                                     released_on=date(2035, 1, 1)),))
    assert decide(released, POLICY, date(2035, 1, 2)).due is Event.DISPOSE


def test_l5_a_hold_does_not_stop_the_end_itself() -> None:
    hold = HoldFacts(1, HoldReason.INTEGRITY_INVESTIGATION, "x")
    assert decide(project(holds=(hold,)), POLICY, date(2030, 1, 1)).due is Event.END


def test_l1_a_daemon_down_on_the_day_catches_up_at_the_next_start() -> None:
    # Nothing ran for months: the first decision after start says what is due at once.
    assert decide(project(), POLICY, date(2030, 5, 1)).due is Event.END
    assert decide(project(State.ENDED), POLICY, date(2030, 5, 1)).due is Event.DISPOSE


def test_l2_the_project_stays_open_until_every_copy_is_confirmed_disposed() -> None:
    copies = (CopyFacts(3, "UiB backup"), CopyFacts(4, "tape", disposed_confirmed=True))
    plan = decide(project(State.DELETED, copies=copies), POLICY, date(2031, 1, 1))
    assert plan.due is None and plan.copies_open == (3,)
    done = (CopyFacts(3, "UiB backup", True), copies[1])
    assert decide(project(State.DELETED, copies=done), POLICY, date(2031, 1, 1)).due is Event.CLOSE


def test_l9_a_transfer_agreement_makes_the_disposal_an_archiving() -> None:
    transfer = ApprovalFacts(2, ApprovalKind.TRANSFER_AGREEMENT, "Sikt 2029/7")
    plan = decide(project(approvals=(transfer,)), POLICY, date(2029, 6, 1))
    assert plan.method == "archive"
    assert any(step.event is Event.ARCHIVED for step in plan.steps)


def test_l10_a_disposed_project_cannot_be_reopened() -> None:
    for state in (State.ANONYMISED, State.DELETED, State.ARCHIVED, State.CLOSED):
        with pytest.raises(RuleViolation) as caught:
            advance(state, Event.EXTEND, held=False)
        assert caught.value.rule == "L10"


def test_l1_only_the_table_s_transitions_happen() -> None:
    for state in State:
        for event in Event:
            if (state, event) in TRANSITIONS:
                assert advance(state, event, held=False).target is TRANSITIONS[
                    (state, event)].target
            else:
                with pytest.raises(RuleViolation):
                    advance(state, event, held=False)


def test_the_plan_reads_as_dated_steps_with_their_rules() -> None:
    plan: Plan = decide(project(approvals=(rek(date(2031, 6, 30)),)), POLICY, date(2029, 6, 1))
    text = "\n".join(plan.lines())
    assert "2030-01-01  the project ends" in text and "(L1, L8)" in text
    assert "2030-01-15  the data is retained as approved, until 2031-06-30 (L3, L4)" in text
    assert "2031-07-01  disposal (anonymise)" in text


def test_leap_day_plus_years_is_the_28th() -> None:
    assert add_years(date(2024, 2, 29), 5) == date(2029, 2, 28)
    assert add_years(date(2024, 2, 29), 4) == date(2028, 2, 29)


def test_l1_l3_notices_fall_due_from_their_day_until_the_event() -> None:
    assert decide(project(), POLICY, date(2029, 11, 30)).notices_due == ()
    due = decide(project(), POLICY, date(2029, 12, 1)).notices_due
    assert [notice.key for notice in due] == ["end:2029-12-31"] and due[0].rule == "L1"
    assert decide(project(), POLICY, date(2029, 12, 31)).notices_due != ()
    kept = project(State.RETAINED, approvals=(rek(date(2032, 12, 31)),))
    assert [n.key for n in decide(kept, POLICY, date(2032, 12, 15)).notices_due] == [
        "retention:2032-12-31"]


def test_l3_a_retention_outgrowing_an_early_end_is_cut_to_five_years() -> None:
    # Recorded when the end was 2030-12-31; the project was then ended on 2025-12-31.
    approvals = (rek(date(2035, 12, 31)),)
    assert retention_end(approvals, POLICY, date(2025, 12, 31)) == date(2030, 12, 31)
    assert retention_end(approvals, POLICY, date(2030, 12, 31)) == date(2035, 12, 31)


def test_l3_rek_s_amendment_replaces_the_approval_even_when_it_shortens_retention() -> None:
    first = ApprovalFacts(1, ApprovalKind.REK, "2024/12345", retention_until=date(2033, 12, 31))
    amended = ApprovalFacts(2, ApprovalKind.REK, "2024/12345", retention_until=date(2031, 6, 30))
    other = ApprovalFacts(3, ApprovalKind.REK, "2025/999", retention_until=date(2030, 6, 30))
    assert retention_end((first, amended), POLICY, END) == date(2031, 6, 30)
    assert retention_end((first, amended, other), POLICY, END) == date(2031, 6, 30)


def test_an_end_date_far_away_is_refused_before_it_can_overflow_the_calendar() -> None:
    from agent.errors import InvalidRequest
    from agent.projects.rules import check_end_date

    with pytest.raises(InvalidRequest):
        check_end_date(date(9999, 12, 31), date(2026, 11, 24))
    assert check_end_date(date(2100, 1, 1), date(2026, 11, 24)) == date(2100, 1, 1)
    plan = decide(ProjectFacts("p1", date(2126, 11, 24), State.ACTIVE), POLICY,
                  date(2026, 11, 24))
    assert plan.disposal_on is not None
