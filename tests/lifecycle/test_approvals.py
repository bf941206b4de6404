"""Whether an approval may be recorded (D1, L3, L4, L10), on plain values with hand-computed
dates: every refusal names its rule, every boundary day is tried on both sides."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from agent.api.schemas import ApprovalAddArgs, parse_args
from agent.errors import InvalidRequest, Refused, RuleViolation, UsageError
from agent.lifecycle.approvals import (
    ApprovalRequest,
    CheckedApproval,
    ProjectDates,
    check_approval,
    same_as,
)
from agent.lifecycle.model import ApprovalFacts, ApprovalKind, State
from agent.policy import load_default_policy
from agent.policy.model import RetentionPolicy
from cli.commands.approval import iso_day
from tests.support.identity_numbers import some

RETENTION = load_default_policy().retention  # 5 years after the end (L3), 25 after (L4)
TODAY = date(2026, 11, 24)
PROJECT = ProjectDates(id="p1234", state=State.ACTIVE, created_on=date(2026, 3, 1),
                       end_date=date(2029, 12, 31))


def check(project: ProjectDates = PROJECT, retention: RetentionPolicy = RETENTION,
          today: date = TODAY, **given: Any) -> CheckedApproval:
    asked: dict[str, Any] = {"kind": "rek", "reference": "REK 2025/12345", **given}
    return check_approval(ApprovalRequest(**asked), project, retention, today)


def refusal(error: type[Refused] = InvalidRequest, **given: Any) -> Refused:
    with pytest.raises(error) as raised:
        check(**given)
    return raised.value


def test_the_default_policy_is_the_one_these_dates_were_computed_for() -> None:
    assert (RETENTION.max_years_after_end, RETENTION.clinical_trial_min_years) == (5, 25)


# --- D1: kind and reference ------------------------------------------------------------------


@pytest.mark.parametrize("kind", [kind.value for kind in ApprovalKind])
def test_d1_every_kind_of_approval_is_recorded(kind: str) -> None:
    checked = check(kind=kind)
    assert checked.kind is ApprovalKind(kind)
    assert (checked.retention_until, checked.clinical_trial, checked.rule) == (None, False, "D1")


def test_d1_an_unknown_kind_is_refused_naming_the_kinds() -> None:
    error = refusal(kind="ethics")
    assert error.rule == "D1"
    assert error.one_line() == ("'ethics' is not a kind of approval (D1); use one of rek, dpia, "
                                "dispensation, folkeregister, processor_agreement, "
                                "transfer_agreement")


def test_d1_the_reference_is_trimmed_and_may_hold_200_characters() -> None:
    assert check(reference="  REK 2025/12345 ").reference == "REK 2025/12345"
    assert check(reference="R" * 200).reference == "R" * 200
    error = refusal(reference="R" * 201)
    assert (error.rule, error.message) == ("D1", "the reference is longer than 200 characters")


@pytest.mark.parametrize("reference", ["", "   ", "\t"])
def test_d1_an_empty_reference_is_refused(reference: str) -> None:
    error = refusal(reference=reference)
    assert (error.rule, error.message) == ("D1", "the reference is empty")


@pytest.mark.parametrize("reference", ["REK 2025/1\nREK 2025/2", "REK\x1b[31m 2025/1",
                                       "REK\t2025/1"])
def test_d1_a_reference_with_control_characters_is_refused(reference: str) -> None:
    error = refusal(reference=reference)
    assert error.rule == "D1" and "control characters" in error.message


def test_s4_an_identity_number_typed_as_the_reference_is_never_stored() -> None:
    number = some(12, 3, 85)
    checked = check(reference=f"REK {number}")
    assert number not in checked.reference and checked.reference == "REK [id-number]"


# --- D1, L1: valid until -----------------------------------------------------------------


def test_d1_an_approval_that_ran_out_before_the_project_was_created_is_refused() -> None:
    error = refusal(valid_until=date(2026, 2, 28))
    assert error.rule == "D1"
    assert error.message == ("the approval ran out on 2026-02-28, before p1234 was created on "
                             "2026-03-01: it cannot be the project's basis")
    assert check(valid_until=date(2026, 3, 1)).valid_until == date(2026, 3, 1)


def test_l1_a_rek_approval_ending_before_the_end_date_is_recorded_with_a_warning() -> None:
    checked = check(valid_until=date(2029, 12, 30))
    assert checked.valid_until == date(2029, 12, 30)
    assert checked.warnings == (
        "the rek approval is valid until 2029-12-30, before p1234's end date 2029-12-31: "
        "record its renewal, or end the project earlier with 'vokter project end' (L1)",)
    assert check(kind="dpia", valid_until=date(2027, 1, 1)).warnings[0].endswith("(D1)")
    assert check(valid_until=date(2029, 12, 31)).warnings == ()


# --- L3: REK retention after the end ---------------------------------------------------------


def test_l3_rek_retention_up_to_five_years_after_the_end_is_recorded() -> None:
    checked = check(retention_until=date(2034, 12, 31))
    assert (checked.retention_until, checked.rule) == (date(2034, 12, 31), "L3")
    assert check(retention_until=date(2029, 12, 31)).retention_until == date(2029, 12, 31)


def test_l3_rek_retention_beyond_five_years_is_refused() -> None:
    error = refusal(RuleViolation, retention_until=date(2035, 1, 1))
    assert error.rule == "L3"
    assert error.one_line() == ("REK may allow at most 5 years after the end (2029-12-31): "
                                "2035-01-01 is beyond 2034-12-31 (L3)")


def test_l3_five_years_after_a_leap_day_end_is_the_28th_of_february() -> None:
    leap = ProjectDates(id="p1234", state=State.ACTIVE, created_on=date(2023, 1, 1),
                        end_date=date(2024, 2, 29))
    assert check(project=leap, retention_until=date(2029, 2, 28)).retention_until == date(
        2029, 2, 28)
    error = refusal(RuleViolation, project=leap, retention_until=date(2029, 3, 1))
    assert error.one_line() == ("REK may allow at most 5 years after the end (2024-02-29): "
                                "2029-03-01 is beyond 2029-02-28 (L3)")


def test_l3_the_cap_is_the_policys() -> None:
    three = RetentionPolicy(max_years_after_end=3, clinical_trial_min_years=25)
    assert check(retention=three, retention_until=date(2032, 12, 31)).retention_until == date(
        2032, 12, 31)
    error = refusal(RuleViolation, retention=three, retention_until=date(2033, 1, 1))
    assert error.message.startswith("REK may allow at most 3 years after the end")


def test_l3_a_retention_date_before_the_end_date_is_refused() -> None:
    error = refusal(retention_until=date(2029, 12, 30))
    assert error.rule == "L3"
    assert error.message == ("the retention date 2029-12-30 is before p1234's end date "
                             "2029-12-31: retention is how long data is kept after the end")


@pytest.mark.parametrize("kind", [k.value for k in ApprovalKind if k is not ApprovalKind.REK])
def test_l3_only_rek_allows_keeping_data_after_the_end(kind: str) -> None:
    error = refusal(kind=kind, retention_until=date(2030, 12, 31))
    assert error.rule == "L3"
    assert error.message == (f"only a REK approval allows keeping data after the end, not a "
                             f"{kind} approval")


# --- L4: clinical trials ---------------------------------------------------------------------


def test_l4_a_clinical_trial_keeps_source_data_25_years_after_the_final_report() -> None:
    checked = check(clinical_trial=True, final_report=date(2030, 6, 30))
    assert (checked.clinical_trial, checked.final_report) == (True, date(2030, 6, 30))
    assert (checked.retention_until, checked.rule) == (date(2055, 6, 30), "L4")


def test_l4_25_years_after_a_leap_day_final_report_is_the_28th_of_february() -> None:
    checked = check(clinical_trial=True, final_report=date(2028, 2, 29))
    assert checked.retention_until == date(2053, 2, 28)


def test_l4_a_retention_date_before_final_report_plus_25_years_is_refused() -> None:
    error = refusal(RuleViolation, clinical_trial=True, final_report=date(2030, 6, 30),
                    retention_until=date(2055, 6, 29))
    assert error.rule == "L4"
    assert error.message == ("a clinical trial keeps its source data at least 25 years after "
                             "the final report (2030-06-30): 2055-06-29 is before 2055-06-30")
    assert check(clinical_trial=True, final_report=date(2030, 6, 30),
                 retention_until=date(2055, 6, 30)).retention_until == date(2055, 6, 30)


def test_l4_the_l3_cap_does_not_bound_a_clinical_trial() -> None:
    checked = check(clinical_trial=True, final_report=date(2030, 6, 30),
                    retention_until=date(2070, 1, 1))
    assert (checked.retention_until, checked.rule) == (date(2070, 1, 1), "L4")


def test_l4_the_minimum_years_are_the_policys() -> None:
    fifteen = RetentionPolicy(max_years_after_end=5, clinical_trial_min_years=15)
    checked = check(retention=fifteen, clinical_trial=True, final_report=date(2030, 6, 30))
    assert checked.retention_until == date(2045, 6, 30)


def test_l4_a_clinical_trial_needs_its_final_report_and_rek() -> None:
    error = refusal(clinical_trial=True)
    assert (error.rule, error.message) == ("L4", "a clinical trial needs the date of its final "
                                                 "report")
    error = refusal(kind="dpia", clinical_trial=True, final_report=date(2030, 6, 30))
    assert error.rule == "L4" and "REK approval" in error.message


def test_l4_a_final_report_without_a_clinical_trial_is_refused() -> None:
    error = refusal(final_report=date(2030, 6, 30))
    assert (error.rule, error.message) == ("L4", "a final report date belongs to a clinical "
                                                 "trial")


def test_l4_a_final_report_planned_after_the_data_may_be_kept_at_all_is_refused() -> None:
    """End 2029-12-31 + 5 years (L3) = 2034-12-31: a report planned later is a typing error."""
    assert check(clinical_trial=True,
                 final_report=date(2034, 12, 31)).retention_until == date(2059, 12, 31)
    error = refusal(clinical_trial=True, final_report=date(2035, 1, 1))
    assert error.rule == "L4"
    assert error.message == ("the final report on 2035-01-01 is planned after 2034-12-31, the "
                             "last day p1234's data may be kept (5 years after its end "
                             "2029-12-31)")


def test_l4_a_final_report_already_written_is_a_fact_whatever_its_date() -> None:
    """A trial run before the project came to the enclave; and a report written long after
    an early end: both happened, and L4 counts from them."""
    earlier = check(clinical_trial=True, final_report=date(2015, 5, 4))
    assert earlier.retention_until == date(2040, 5, 4)
    ended = ProjectDates(id="p1234", state=State.ENDED, created_on=date(2015, 1, 1),
                         end_date=date(2019, 12, 31))
    late = check(project=ended, clinical_trial=True, final_report=date(2026, 6, 1))
    assert late.retention_until == date(2051, 6, 1)


# --- L10: a disposed project -----------------------------------------------------------------


@pytest.mark.parametrize("state", [State.DISPOSING, State.ANONYMISED, State.DELETED,
                                   State.ARCHIVED, State.CLOSED])
def test_l10_no_approval_is_recorded_for_a_project_disposed_of(state: State) -> None:
    gone = ProjectDates(id="p1234", state=state, created_on=date(2020, 1, 1),
                        end_date=date(2025, 12, 31))
    error = refusal(RuleViolation, project=gone, retention_until=date(2026, 12, 31))
    assert error.rule == "L10"
    assert error.message == f"p1234 is {state.value}: an approval recorded now keeps nothing"


@pytest.mark.parametrize("state", [State.ENDED, State.RETAINED])
def test_l3_an_ended_or_retained_project_may_still_get_a_retention_approval(
    state: State,
) -> None:
    ended = ProjectDates(id="p1234", state=state, created_on=date(2020, 1, 1),
                         end_date=date(2025, 12, 31))
    assert check(project=ended, retention_until=date(2030, 12, 31)).retention_until == date(
        2030, 12, 31)


# --- D1: the same approval twice -----------------------------------------------------------


def test_d1_the_same_approval_twice_is_found_an_amendment_is_not() -> None:
    on_record = ApprovalFacts(id=7, kind=ApprovalKind.REK, reference="REK 2025/12345",
                              retention_until=date(2032, 12, 31))
    assert same_as(check(retention_until=date(2032, 12, 31)), [on_record]) == on_record
    assert same_as(check(retention_until=date(2034, 12, 31)), [on_record]) is None
    assert same_as(check(kind="dpia"), [on_record]) is None


# --- D1: dates are real days -----------------------------------------------------------------


@pytest.mark.parametrize("field", ["valid_until", "retention_until", "final_report"])
def test_d1_an_impossible_date_is_refused_by_the_schema(field: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_args(ApprovalAddArgs, {"project": "p1234", "kind": "rek", "reference": "R",
                                     field: "2026-02-30"})
    assert raised.value.message == f"{field}: '2026-02-30' is not a real date (YYYY-MM-DD)"
    parsed = parse_args(ApprovalAddArgs, {"project": "p1234", "kind": "rek", "reference": "R",
                                          field: "2028-02-29"})
    assert getattr(parsed, field) == date(2028, 2, 29)


@pytest.mark.parametrize("written", ["2026-02-30", "2026-13-01", "31.12.2029", "2029-12-31x",
                                     "20291231", ""])
def test_d1_the_cli_refuses_an_impossible_date_before_asking_the_daemon(written: str) -> None:
    with pytest.raises(UsageError) as raised:
        iso_day("--valid-until", written)
    assert raised.value.message == (f"--valid-until: '{written}' is not a real date "
                                    "(YYYY-MM-DD)")
    assert iso_day("--valid-until", "2029-12-31") == "2029-12-31"
    assert iso_day("--valid-until", None) is None
