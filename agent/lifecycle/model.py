"""The facts the project-end decision is taken on, as plain frozen values.

Why values and not rows: the decision (:mod:`agent.lifecycle.decision`) is a pure function of
the project, its approvals, holds and registered copies, the policy and the date; tests walk a
project through decades by building these values, and the shell builds them from the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class State(StrEnum):
    """Where a project is in its life (the transition table is :mod:`agent.lifecycle.states`)."""

    ACTIVE = "active"
    #: The end date has passed: members have lost access, the leader reads, auditors keep the
    #: logs (L8); disposal waits for the grace period.
    ENDED = "ended"
    #: REK approved keeping the data after the end (L3), or a clinical trial must (L4).
    RETAINED = "retained"
    #: The disposal run has started and is resumed until it completes.
    DISPOSING = "disposing"
    ANONYMISED = "anonymised"
    DELETED = "deleted"
    #: Transferred to an approved external archive, then deleted locally (L9).
    ARCHIVED = "archived"
    #: Disposed of, and every registered copy confirmed disposed of (L2).
    CLOSED = "closed"


class ApprovalKind(StrEnum):
    """D1: the project's legal basis."""

    REK = "rek"
    DPIA = "dpia"
    DISPENSATION = "dispensation"
    FOLKEREGISTER = "folkeregister"
    PROCESSOR_AGREEMENT = "processor_agreement"
    TRANSFER_AGREEMENT = "transfer_agreement"


class HoldReason(StrEnum):
    """L5: why nothing may be disposed of."""

    SUPERVISORY_CASE = "supervisory_case"
    INTEGRITY_INVESTIGATION = "integrity_investigation"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class ApprovalFacts:
    id: int
    kind: ApprovalKind
    reference: str
    valid_until: date | None = None
    #: REK: the data may be kept until this date (at most the policy's years after the end, L3).
    retention_until: date | None = None
    clinical_trial: bool = False
    #: Clinical trials: the final report's date; source data is kept at least 25 years (L4).
    final_report: date | None = None


@dataclass(frozen=True, slots=True)
class HoldFacts:
    id: int
    reason: HoldReason
    reference: str
    #: None while the hold stands.
    released_on: date | None = None

    @property
    def open(self) -> bool:
        return self.released_on is None


@dataclass(frozen=True, slots=True)
class CopyFacts:
    id: int
    location: str
    disposed_confirmed: bool = False


@dataclass(frozen=True, slots=True)
class ProjectFacts:
    id: str
    end_date: date
    state: State
    approvals: tuple[ApprovalFacts, ...] = ()
    holds: tuple[HoldFacts, ...] = ()
    copies: tuple[CopyFacts, ...] = ()
