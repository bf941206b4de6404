"""What a verification of the audit trail says, as plain values (pure).

The kinds of damage and where it is, the checkpoints held against, the result, and the one
function every verifier shares: the hash an event's row must carry. Kept apart from the walk
along the chains (``agent.audit.verify``) so that readers of results (the daemon's operation,
the export checker, benchmarks) need not know how they were found.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from agent.audit.chain import GENESIS_HASH, HASH_ALGORITHMS, event_hash
from agent.audit.checkpoint import ChainHead, Checkpoint

COLUMNS = (
    "seq", "time", "actor_uid", "actor", "action", "project_id", "project_seq", "target",
    "outcome", "rule", "details", "hash_alg", "prev_hash", "project_prev_hash", "hash", "mac",
)
#: An event as the verifier reads it: ``COLUMNS`` in order, ``time`` already canonical text.
Row = Sequence[Any]
Mode = Literal["trail", "project", "rows"]
#: Where every chain starts: nothing before it.
EMPTY_CHAIN = ChainHead(0, GENESIS_HASH)


class DamageKind(StrEnum):
    CHANGED = "changed"
    DELETED = "deleted"
    INSERTED = "inserted"
    SWAPPED = "swapped"
    TAIL_CUT = "tail_cut"
    ROLLED_BACK = "rolled_back"
    UNSEALED = "unsealed"
    #: A checkpoint in the database or the key store that this trail's key did not sign.
    FORGED_CHECKPOINT = "forged_checkpoint"


@dataclass(frozen=True, slots=True)
class Damage:
    """The first damage found. ``seq`` is the trail's number of the first damaged event (for
    removed events: the first one missing), None where only a project's numbering is known;
    ``project_seq`` is that event's number in its project's chain, in project mode."""

    kind: DamageKind
    seq: int | None
    message: str
    project_seq: int | None = None
    #: For a tail cut or rollback: the checkpoint the events fell short of.
    checkpoint: Checkpoint | None = None


@dataclass(frozen=True, slots=True)
class CheckpointClaim:
    """A checkpoint to hold the events against, and whose it is (for the message)."""

    checkpoint: Checkpoint
    origin: Literal["kept", "daemon"]


@dataclass(frozen=True, slots=True)
class VerifyResult:
    mode: Mode
    count: int
    last: ChainHead
    projects: Mapping[str, ChainHead] = field(default_factory=dict)
    damage: Damage | None = None
    #: The newest checkpoint the events were held against and matched (None: none covered them).
    sealed: CheckpointClaim | None = None
    project: str | None = None

    @property
    def ok(self) -> bool:
        return self.damage is None

    @property
    def sealed_head(self) -> ChainHead | None:
        """The head ``sealed`` vouches for, numbered as this chain is (a project's own seq)."""
        if self.sealed is None:
            return None
        return claim_head(self.sealed, self.mode, self.project)


def claim_head(claim: CheckpointClaim, mode: Mode, project: str | None) -> ChainHead | None:
    if mode == "trail":
        return claim.checkpoint.trail
    if mode == "project":
        return claim.checkpoint.projects.get(project or "")
    return None


def row_hash(row: Row, seq: int | None = None) -> str | None:
    """The hash ``row`` must carry (with another ``seq`` when asked); None for an unknown
    algorithm, which no Vokter wrote, or for values of a type no Vokter stores."""
    try:
        (r_seq, time, uid, actor, action, project, project_seq, target, outcome, rule, details,
         algorithm, prev, project_prev) = row[:14]
        if algorithm not in HASH_ALGORITHMS:
            return None
        return event_hash(
            algorithm=algorithm, seq=r_seq if seq is None else seq, time=time, actor_uid=uid,
            actor=actor, action=action, project_id=project, project_seq=project_seq,
            target=target, outcome=outcome, rule=rule, details=details, prev_hash=prev,
            project_prev_hash=project_prev,
        )
    except (TypeError, ValueError, AttributeError):
        return None


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a trail verifier got over one stretch of the trail: what is needed to join it
    with the stretches around it (``ChainVerifier.joined``)."""

    start: ChainHead
    last: ChainHead
    count: int
    damaged: bool
    heads: Mapping[str, ChainHead]
    #: each project's first (project_seq, project_prev_hash) in the stretch, if it began there
    #: unchecked because the stretch did not know the project's head before it
    firsts: Mapping[str, tuple[Any, Any]]
    seen: Mapping[int, str]

