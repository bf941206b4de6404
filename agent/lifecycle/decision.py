"""What a project's end brings, and when: one pure function of the facts, the policy and the
date (L1-L9).

The scheduler, ``vokter lifecycle plan`` and the disposal run all ask :func:`decide`; none of
them reasons about dates on its own. The clock is a parameter, so a test walks a project from
its creation to decades after its end by calling it with other dates.

The dates, for a project whose end date is E (its last approved day, L1):
- E - notice days: the leader is told the end is near (L1).
- E + 1: the project ends; members lose access, the leader keeps read access, auditors keep
  the logs (L8).
- E + grace + 1: disposal is due (L2), unless REK approved keeping the data (L3) or a clinical
  trial must keep it (L4): then the project is retained until the latest such date R, the
  leader is told R - notice days before, and disposal is due on R + 1.
- Disposal anonymises or deletes as the policy says (L2, L6), or archives when a transfer
  agreement with an external archive is on record (L9); the project is closed once every
  registered copy is confirmed disposed of (L2).
An open legal hold stops every step after the end itself (L5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from agent.lifecycle.model import ApprovalFacts, ApprovalKind, ProjectFacts, State
from agent.lifecycle.states import Event, disposed
from agent.policy.model import Policy

_DAY = timedelta(days=1)


def add_years(day: date, years: int) -> date:
    """The same calendar day ``years`` later; 29 February becomes 28 February."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def current_approvals(approvals: Sequence[ApprovalFacts]) -> tuple[ApprovalFacts, ...]:
    """Each approval as last amended: REK's amendment of an approval (same kind and reference,
    recorded later) replaces it, a shorter retention included."""
    latest: dict[tuple[ApprovalKind, str], ApprovalFacts] = {}
    for approval in sorted(approvals, key=lambda item: item.id):
        latest[(approval.kind, approval.reference)] = approval
    return tuple(latest.values())


def retention_end(approvals: Sequence[ApprovalFacts], policy: Policy,
                  end_date: date | None = None) -> date | None:
    """The latest day the data must (L4) or may (L3) be kept to, None without any approval
    that keeps it past the end. With ``end_date``, a REK retention counts at most the policy's
    years after it (L3): a retention recorded before the project was ended early does not
    outgrow the rule. A clinical trial's 25 years after the final report are not capped (L4)."""
    ends: list[date] = []
    cap = None if end_date is None else add_years(end_date,
                                                  policy.retention.max_years_after_end)
    for approval in current_approvals(approvals):
        if approval.kind is not ApprovalKind.REK:
            continue
        if approval.clinical_trial and approval.final_report is not None:
            ends.append(add_years(approval.final_report,
                                  policy.retention.clinical_trial_min_years))
            if approval.retention_until is not None:
                ends.append(approval.retention_until)
        elif approval.retention_until is not None:
            ends.append(approval.retention_until if cap is None
                        else min(approval.retention_until, cap))
    return max(ends) if ends else None


def disposal_method(approvals: Sequence[ApprovalFacts], policy: Policy) -> str:
    """Archive when an agreement with an external archive is on record (L9), else the
    policy's end action (L2, L6)."""
    if any(approval.kind is ApprovalKind.TRANSFER_AGREEMENT for approval in approvals):
        return "archive"
    return policy.lifecycle.end_action


@dataclass(frozen=True, slots=True)
class Step:
    """One thing that happens, on a day (None: as soon as what it waits for is done)."""

    on: date | None
    event: Event | None
    rule: str
    words: str


@dataclass(frozen=True, slots=True)
class Notice:
    """A notice to the leader (L1, L3): ``key`` names it once, whenever it is sent."""

    key: str
    on: date
    rule: str
    words: str


@dataclass(frozen=True, slots=True)
class Plan:
    project: str
    state: State
    today: date
    #: What is due now, if anything: the event to apply (the scheduler and the run ask this).
    due: Event | None
    steps: tuple[Step, ...]
    #: Open legal holds (ids): nothing after the end happens while any stands (L5).
    held_by: tuple[int, ...]
    #: Registered copies not yet confirmed disposed of (ids): the project stays open (L2).
    copies_open: tuple[int, ...]
    method: str
    ends_on: date
    disposal_on: date | None
    retained_until: date | None
    #: Notices whose day has come and whose event is still ahead (to be sent once).
    notices_due: tuple[Notice, ...] = ()

    def lines(self) -> list[str]:
        head = f"{self.project} is {self.state.value} on {self.today.isoformat()}"
        if self.held_by:
            holds = ", ".join(f"#{hold}" for hold in self.held_by)
            head += f"; legal hold {holds} stops everything after the end (L5)"
        lines = [head]
        if self.due is not None:
            lines.append(f"due now: {self.due.value}")
        for step in self.steps:
            when = step.on.isoformat() if step.on is not None else "then"
            lines.append(f"{when}  {step.words} ({step.rule})")
        return lines


def decide(facts: ProjectFacts, policy: Policy, today: date) -> Plan:
    """The project's plan on ``today``: what is due now, and every step still to come."""
    cycle = policy.lifecycle
    ends_on = facts.end_date + _DAY
    grace_over = facts.end_date + timedelta(days=cycle.grace_days) + _DAY
    kept_to = retention_end(facts.approvals, policy, facts.end_date)
    retained = kept_to is not None and kept_to >= grace_over
    disposal_on = (kept_to + _DAY) if retained and kept_to is not None else grace_over
    held = tuple(hold.id for hold in facts.holds if hold.open)
    copies_open = tuple(copy.id for copy in facts.copies if not copy.disposed_confirmed)
    method = disposal_method(facts.approvals, policy)

    steps = _future(facts.state, today, ends_on=ends_on, grace_over=grace_over,
                    kept_to=kept_to if retained else None, disposal_on=disposal_on,
                    method=method, copies_open=copies_open, notice_days=cycle.notice_days,
                    end_date=facts.end_date)
    due = _due(facts.state, today, ends_on=ends_on, grace_over=grace_over, retained=retained,
               disposal_on=disposal_on, held=bool(held), copies_open=copies_open)
    notices = _notices(facts, today, notice_days=cycle.notice_days,
                       kept_to=kept_to if retained else None, held=bool(held))
    return Plan(project=facts.id, state=facts.state, today=today, due=due, steps=steps,
                held_by=held, copies_open=copies_open, method=method, ends_on=ends_on,
                disposal_on=None if disposed(facts.state) else disposal_on,
                retained_until=kept_to if retained else None, notices_due=notices)


def _notices(facts: ProjectFacts, today: date, *, notice_days: int,
             kept_to: date | None, held: bool) -> tuple[Notice, ...]:
    """The leader hears of the end, and of the retention's end, ``notice_days`` before."""
    due: list[Notice] = []
    before = timedelta(days=notice_days)
    if facts.state is State.ACTIVE and facts.end_date - before <= today <= facts.end_date:
        due.append(Notice(f"end:{facts.end_date.isoformat()}", facts.end_date - before, "L1",
                          f"{facts.id} ends after {facts.end_date.isoformat()}: members lose "
                          "access, and the data is disposed of unless REK approved keeping it"))
    if (kept_to is not None and facts.state in (State.ACTIVE, State.ENDED, State.RETAINED)
            and kept_to - before <= today <= kept_to):
        then = ("a legal hold stands: nothing is disposed of until it is released" if held
                else "then the data is disposed of")
        due.append(Notice(f"retention:{kept_to.isoformat()}", kept_to - before, "L3",
                          f"the approved retention of {facts.id} ends after "
                          f"{kept_to.isoformat()}; {then}"))
    return tuple(due)


def _due(state: State, today: date, *, ends_on: date, grace_over: date, retained: bool,
         disposal_on: date, held: bool, copies_open: tuple[int, ...]) -> Event | None:
    if state is State.ACTIVE:
        return Event.END if today >= ends_on else None
    if held:
        return None
    if state is State.ENDED:
        if today >= disposal_on:
            return Event.DISPOSE
        return Event.RETAIN if retained and today >= grace_over else None
    if state is State.RETAINED:
        return Event.DISPOSE if today >= disposal_on else None
    if state in (State.ANONYMISED, State.DELETED, State.ARCHIVED):
        return None if copies_open else Event.CLOSE
    return None


_METHOD_WORDS = {
    "anonymise": "the linkage key and key zone are crypto-shredded, the tables checked for "
                 "k-anonymity and anonymised or deleted where they fail (L6, L7)",
    "delete": "the project's keyset is crypto-shredded and every file of every zone removed",
    "archive": "the data is transferred to the external archive, then deleted locally (L9)",
}
_METHOD_EVENT = {"anonymise": Event.ANONYMISED, "delete": Event.DELETED,
                 "archive": Event.ARCHIVED}


def _future(state: State, today: date, *, ends_on: date, grace_over: date,
            kept_to: date | None, disposal_on: date, method: str,
            copies_open: tuple[int, ...], notice_days: int, end_date: date) -> tuple[Step, ...]:
    """Every step still ahead of ``state``, in order."""
    steps: list[Step] = []
    if state is State.ACTIVE:
        notice = end_date - timedelta(days=notice_days)
        if today <= notice:
            steps.append(Step(notice, None, "L1",
                              f"the leader is told the project ends on {end_date.isoformat()}"))
        steps.append(Step(ends_on, Event.END, "L1, L8",
                          "the project ends: members lose access, the leader keeps read "
                          "access, auditors keep the logs"))
    if state in (State.ACTIVE, State.ENDED) and kept_to is not None:
        steps.append(Step(grace_over, Event.RETAIN, "L3, L4",
                          f"the data is retained as approved, until {kept_to.isoformat()}"))
    if state in (State.ACTIVE, State.ENDED, State.RETAINED) and kept_to is not None:
        notice = kept_to - timedelta(days=notice_days)
        if today <= notice:
            steps.append(Step(notice, None, "L3",
                              f"the leader is told the retention ends on {kept_to.isoformat()}"))
    if state in (State.ACTIVE, State.ENDED, State.RETAINED):
        steps.append(Step(disposal_on, Event.DISPOSE, "L2",
                          f"disposal ({method}): {_METHOD_WORDS[method]}"))
    if state in (State.ACTIVE, State.ENDED, State.RETAINED, State.DISPOSING):
        steps.append(Step(None, _METHOD_EVENT[method], "L2",
                          f"the project is {_METHOD_EVENT[method].value}; a certificate of "
                          "disposal is signed"))
    if state is not State.CLOSED:
        waiting = (f" once copies {', '.join(f'#{copy}' for copy in copies_open)} are "
                   "confirmed disposed of") if copies_open else ""
        steps.append(Step(None, Event.CLOSE, "L2", f"the project is closed{waiting}"))
    return tuple(steps)
