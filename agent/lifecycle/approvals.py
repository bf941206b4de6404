"""Whether one approval may be recorded for a project, judged on plain values (D1, L3, L4).

Why a pure check: an approval decides how long data outlives its project. A REK retention date
one digit off keeps health data for decades, or disposes of a clinical trial's source data
twenty years early, so every date is weighed against the project's dates and the policy here,
where a test can try each boundary without a daemon, before anything is stored.

What is refused, and why:
- D1: an unknown kind; an empty, over-long or unprintable reference; an approval that ran
  out before the project was even created (it cannot be this project's basis).
- L3: a retention date on any approval but REK's (only REK allows keeping data after the end);
  a retention date before the project's end date; one more than the policy's years (5) after
  the end date, unless the approval is a clinical trial's.
- L4: a clinical trial without its final report (or not under REK); a final report without
  the trial; a retention date before final report + the policy's years (25); a final report
  planned further in the future than the project's data may be kept at all (the end date plus
  the L3 years): that is a typing error, not a plan.
- L10: an approval for a project that is being or has been disposed of changes nothing; reuse
  needs a new project with its own REK approval.
A valid-until date before the project's end date is recorded, with a warning: the approval is
a fact on paper and belongs on record, but the project then outlives its basis (L1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from agent.audit.redact import redact_identity_numbers
from agent.errors import InvalidRequest, RuleViolation
from agent.lifecycle.decision import add_years
from agent.lifecycle.model import ApprovalFacts, ApprovalKind, State
from agent.policy.model import RetentionPolicy

MAX_REFERENCE = 200
KINDS = tuple(kind.value for kind in ApprovalKind)
#: States in which an approval can still keep or extend anything.
OPEN_STATES = (State.ACTIVE, State.ENDED, State.RETAINED)


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """An approval as someone asked to record it, before any check."""

    kind: str
    reference: str
    valid_until: date | None = None
    retention_until: date | None = None
    clinical_trial: bool = False
    final_report: date | None = None


@dataclass(frozen=True, slots=True)
class ProjectDates:
    """What the check needs of the project."""

    id: str
    state: State
    created_on: date
    end_date: date


@dataclass(frozen=True, slots=True)
class CheckedApproval:
    """An approval fit to store. For a clinical trial without a retention date given,
    ``retention_until`` is the least L4 requires: final report + the policy's years."""

    kind: ApprovalKind
    reference: str
    valid_until: date | None
    retention_until: date | None
    clinical_trial: bool
    final_report: date | None
    #: The rule the approval is recorded under: L4 for a clinical trial, L3 for a retention
    #: date, else D1.
    rule: str
    #: Things recorded as asked but worth a person's attention.
    warnings: tuple[str, ...] = ()


def check_kind(kind: str) -> ApprovalKind:
    try:
        return ApprovalKind(kind)
    except ValueError:
        raise InvalidRequest(f"'{kind[:40]}' is not a kind of approval", rule="D1",
                             hint=f"use one of {', '.join(KINDS)}") from None


def check_reference(reference: str) -> str:
    """The approval's reference as stored: trimmed, one printable line; an identity number
    typed into it by mistake is masked like everywhere else (S4)."""
    text = reference.strip()
    if not text:
        raise InvalidRequest("the reference is empty", rule="D1",
                             hint="give --ref the approval's case number, e.g. 'REK 2025/12345'")
    if len(text) > MAX_REFERENCE:
        raise InvalidRequest(f"the reference is longer than {MAX_REFERENCE} characters",
                             rule="D1")
    if not text.isprintable():
        raise InvalidRequest("the reference holds control characters or line breaks", rule="D1")
    return redact_identity_numbers(text)


def _check_state(project: ProjectDates) -> None:
    if project.state in OPEN_STATES:
        return
    raise RuleViolation(
        f"{project.id} is {project.state.value}: an approval recorded now keeps nothing",
        rule="L10",
        hint="reuse for a new purpose needs a new project with its own REK approval",
    )


def _check_valid_until(valid_until: date | None, kind: ApprovalKind,
                       project: ProjectDates) -> tuple[str, ...]:
    if valid_until is None:
        return ()
    if valid_until < project.created_on:
        raise InvalidRequest(
            f"the approval ran out on {valid_until.isoformat()}, before {project.id} was "
            f"created on {project.created_on.isoformat()}: it cannot be the project's basis",
            rule="D1", hint="check --valid-until, or record the approval that replaced it")
    if valid_until < project.end_date:
        rule = "L1" if kind is ApprovalKind.REK else "D1"
        return (f"the {kind.value} approval is valid until {valid_until.isoformat()}, before "
                f"{project.id}'s end date {project.end_date.isoformat()}: record its "
                f"renewal, or end the project earlier with 'vokter project end' ({rule})",)
    return ()


def _check_final_report(request: ApprovalRequest, kind: ApprovalKind, project: ProjectDates,
                        retention: RetentionPolicy, today: date) -> date | None:
    final = request.final_report
    if not request.clinical_trial:
        if final is not None:
            raise InvalidRequest("a final report date belongs to a clinical trial", rule="L4",
                                 hint="give --clinical-trial too, or leave --final-report out")
        return None
    if kind is not ApprovalKind.REK:
        raise InvalidRequest(f"a clinical trial is recorded on its REK approval, not on a "
                             f"{kind.value} approval", rule="L4", hint="use --kind rek")
    if final is None:
        raise InvalidRequest("a clinical trial needs the date of its final report", rule="L4",
                             hint="give --final-report DATE: the source data is kept at least "
                                  f"{retention.clinical_trial_min_years} years after it")
    latest = add_years(project.end_date, retention.max_years_after_end)
    if final > today and final > latest:
        raise InvalidRequest(
            f"the final report on {final.isoformat()} is planned after "
            f"{latest.isoformat()}, the last day {project.id}'s data may be kept "
            f"({retention.max_years_after_end} years after its end "
            f"{project.end_date.isoformat()})",
            rule="L4", hint="check --final-report; move the end date first if the trial "
                            "runs longer")
    return final


def _check_retention(request: ApprovalRequest, kind: ApprovalKind, final: date | None,
                     project: ProjectDates, retention: RetentionPolicy) -> date | None:
    asked = request.retention_until
    if asked is not None and kind is not ApprovalKind.REK:
        raise InvalidRequest(f"only a REK approval allows keeping data after the end, not a "
                             f"{kind.value} approval", rule="L3",
                             hint="leave --retention-until out, or use --kind rek")
    if asked is not None and asked < project.end_date:
        raise InvalidRequest(
            f"the retention date {asked.isoformat()} is before {project.id}'s end date "
            f"{project.end_date.isoformat()}: retention is how long data is kept after the end",
            rule="L3", hint="to end the project earlier, run 'vokter project end'")
    if final is not None:
        years = retention.clinical_trial_min_years
        least = add_years(final, years)
        if asked is None:
            return least
        if asked < least:
            raise RuleViolation(
                f"a clinical trial keeps its source data at least {years} years after the "
                f"final report ({final.isoformat()}): {asked.isoformat()} is before "
                f"{least.isoformat()}", rule="L4",
                hint=f"give --retention-until {least.isoformat()} or later, or leave it out")
        # L4: contracts and the regulations may require longer; the L3 cap does not apply.
        return asked
    if asked is None:
        return None
    years = retention.max_years_after_end
    latest = add_years(project.end_date, years)
    if asked > latest:
        raise RuleViolation(
            f"REK may allow at most {years} years after the end "
            f"({project.end_date.isoformat()}): {asked.isoformat()} is beyond "
            f"{latest.isoformat()}", rule="L3")
    return asked


def check_approval(request: ApprovalRequest, project: ProjectDates,
                   retention: RetentionPolicy, today: date) -> CheckedApproval:
    """The approval as it will be stored, or the refusal naming the rule it breaks."""
    _check_state(project)
    kind = check_kind(request.kind)
    reference = check_reference(request.reference)
    warnings = _check_valid_until(request.valid_until, kind, project)
    final = _check_final_report(request, kind, project, retention, today)
    retention_until = _check_retention(request, kind, final, project, retention)
    rule = "L4" if final is not None else "L3" if retention_until is not None else "D1"
    return CheckedApproval(kind=kind, reference=reference, valid_until=request.valid_until,
                           retention_until=retention_until,
                           clinical_trial=request.clinical_trial, final_report=final,
                           rule=rule, warnings=warnings)


def same_as(checked: CheckedApproval, existing: Sequence[ApprovalFacts]) -> ApprovalFacts | None:
    """An approval already on record with the same kind, reference and dates: recording it
    twice is a slip. The same reference with other dates is an amendment, and is recorded."""
    for facts in existing:
        if (facts.kind, facts.reference, facts.valid_until, facts.retention_until,
                facts.clinical_trial, facts.final_report) == (
                checked.kind, checked.reference, checked.valid_until, checked.retention_until,
                checked.clinical_trial, checked.final_report):
            return facts
    return None
