"""Checking audit events against their chains, MACs and signed checkpoints (pure).

The verifier reads events as plain tuples in ``COLUMNS`` order, whatever they come from (a
database cursor, an export file), and stops at the first damaged one, naming it and the kind of
damage. Detection is exact: any change breaks a hash, a link, a MAC or a checkpoint. The *kind*
is the most likely explanation of what broke, worked out from what still matches (an event
whose hash fits its fields with the neighbouring sequence number was swapped with it; an event
whose hash fits but whose MAC does not was made by someone without the key).

Three modes:
- ``trail``: the whole trail in ``seq`` order, gapless from the start head;
- ``project``: one project's chain in ``project_seq`` order (what an auditor of it may see);
- ``rows``: a filtered selection (an export by user or time): each event is checked on its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from agent.audit.chain import ABSENT, FORMAT_TAG, GENESIS_HASH, HASH_ALGORITHMS, MacSealer
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


@dataclass(frozen=True, slots=True)
class Damage:
    kind: DamageKind
    seq: int | None
    message: str


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

    @property
    def ok(self) -> bool:
        return self.damage is None


def _encode(value: str | None) -> bytes:
    if value is None:
        return ABSENT
    raw = value.encode("utf-8")
    return len(raw).to_bytes(8, "big") + raw


def row_hash(row: Row, seq: int | None = None) -> str | None:
    """The hash ``row`` must carry (with another ``seq`` when asked); None for an unknown
    algorithm, which no Vokter wrote."""
    (r_seq, time, uid, actor, action, project, project_seq, target, outcome, rule, details,
     algorithm, prev, project_prev) = row[:14]
    if algorithm not in HASH_ALGORITHMS:
        return None
    payload = b"".join((
        _encode(FORMAT_TAG), _encode(algorithm), _encode(str(r_seq if seq is None else seq)),
        _encode(time), _encode(str(uid)), _encode(actor), _encode(action), _encode(project),
        _encode(None if project_seq is None else str(project_seq)), _encode(target),
        _encode(outcome), _encode(rule), _encode(details), _encode(prev), _encode(project_prev),
    ))
    return hashlib.new(algorithm, payload).hexdigest()


class ChainVerifier:
    """Feed rows in order (``feed``), then ``finish``. Stops checking at the first damage."""

    def __init__(
        self,
        mode: Mode,
        *,
        mac_key: bytes | None,
        start: ChainHead = EMPTY_CHAIN,
        project: str | None = None,
        project_starts: Mapping[str, ChainHead] | None = None,
        claims: Sequence[CheckpointClaim] = (),
    ) -> None:
        if mode == "project" and project is None:
            raise ValueError("project mode needs the project")
        self.mode = mode
        self.project = project
        self._sealer = MacSealer(mac_key) if mac_key is not None else None
        self._expected = start
        self._projects: dict[str, ChainHead] = dict(project_starts or {})
        #: whether a project's first link can be checked (its start is known)
        self._strict_projects = project_starts is not None or start.seq == 0
        self._claims = claims
        self._watch = {self._claim_seq(c) for c in claims} - {None}
        self._seen: dict[int, str] = {}
        self._last_seq = 0
        self.count = 0
        self.damage: Damage | None = None

    def _claim_seq(self, claim: CheckpointClaim) -> int | None:
        if self.mode == "trail":
            return claim.checkpoint.trail.seq
        if self.mode == "project":
            head = claim.checkpoint.projects.get(self.project or "")
            return None if head is None else head.seq
        return None

    def feed(self, rows: Iterable[Row]) -> bool:
        """Check ``rows``; False once damage is found (the rest need not be read)."""
        if self.damage is not None:
            return False
        for row in rows:
            damage = self._check(row)
            if damage is not None:
                self.damage = damage
                return False
            self.count += 1
        return True

    def _check(self, row: Row) -> Damage | None:
        seq, project, project_seq = row[0], row[5], row[6]
        digest, mac, prev, project_prev = row[14], row[15], row[12], row[13]
        position = project_seq if self.mode == "project" else seq
        expected = self._expected
        if self.mode == "project" and project != self.project:
            return Damage(DamageKind.INSERTED, seq,
                          f"event {seq} belongs to another project; it was put into this chain")
        if self.mode != "rows" and position != expected.seq + 1:
            if isinstance(position, int) and position > expected.seq + 1:
                return self._gap(seq, expected.seq + 1, position)
            return Damage(DamageKind.INSERTED, seq,
                          f"event {seq} repeats or goes back in the sequence; it was inserted")
        if self.mode == "rows" and isinstance(seq, int) and seq <= self._last_seq:
            return Damage(DamageKind.SWAPPED, seq, f"event {seq} is out of order")
        recomputed = row_hash(row)
        if recomputed != digest:
            return self._mismatch(row, seq)
        if not mac:
            return Damage(DamageKind.UNSEALED, seq,
                          f"event {seq} carries no MAC: written before sealing (schema 0001) "
                          "or inserted by hand")
        if self._sealer is not None and self._sealer.mac(digest) != mac:
            return Damage(DamageKind.INSERTED, seq,
                          f"event {seq} was not sealed with this trail's key: a forged event")
        link = project_prev if self.mode == "project" else prev
        if self.mode != "rows" and link != expected.head:
            return Damage(DamageKind.DELETED, seq,
                          f"event {seq} does not follow the event before it: events between "
                          "them were removed or replaced")
        if self.mode == "trail" and project is not None:
            known = self._projects.get(project)
            if known is None and self._strict_projects:
                known = EMPTY_CHAIN
            if known is not None:
                if project_seq != known.seq + 1:
                    return self._gap(seq, known.seq + 1, project_seq, project=project)
                if project_prev != known.head:
                    return Damage(DamageKind.DELETED, seq,
                                  f"event {seq} does not follow project {project}'s previous "
                                  "event: events between them were removed or replaced")
            self._projects[project] = ChainHead(project_seq, digest)
        self._expected = ChainHead(position, digest) if self.mode != "rows" else expected
        self._last_seq = seq
        if position in self._watch:
            self._seen[position] = digest
        return None

    def _gap(self, seq: int, missing_from: int, found: Any, project: str | None = None) -> Damage:
        where = f"project {project}'s " if project else ""
        return Damage(DamageKind.DELETED, seq,
                      f"{where}events {missing_from}..{found - 1} are missing before event {seq}"
                      if found - 1 > missing_from else
                      f"{where}event {missing_from} is missing before event {seq}")

    def _mismatch(self, row: Row, seq: Any) -> Damage:
        if isinstance(seq, int):
            for neighbour in (seq + 1, seq - 1):
                if row_hash(row, neighbour) == row[14]:
                    return Damage(DamageKind.SWAPPED, seq,
                                  f"event {seq} holds the event recorded as {neighbour}: "
                                  "two events were swapped")
        return Damage(DamageKind.CHANGED, seq,
                      f"event {seq} was changed: its fields no longer match its hash")

    def finish(self) -> VerifyResult:
        damage = self.damage
        if damage is None:
            for claim in self._claims:
                damage = self._hold_against(claim)
                if damage is not None:
                    break
        return VerifyResult(self.mode, self.count, self._expected, dict(self._projects), damage)

    def _hold_against(self, claim: CheckpointClaim) -> Damage | None:
        head: ChainHead | None
        if self.mode == "trail":
            head = claim.checkpoint.trail
        elif self.mode == "project":
            head = claim.checkpoint.projects.get(self.project or "")
        else:
            return None
        if head is None or head.seq == 0:
            return None
        whose = ("the checkpoint you kept" if claim.origin == "kept"
                 else "the daemon's last checkpoint")
        when = claim.checkpoint.time.strftime("%Y-%m-%d %H:%M:%S UTC")
        if self._expected.seq < head.seq:
            if claim.origin == "kept":
                return Damage(
                    DamageKind.ROLLED_BACK, self._expected.seq + 1,
                    f"the trail ends at event {self._expected.seq}, but {whose} ({when}) "
                    f"covers up to event {head.seq}: the database was replaced by an older "
                    "copy or its tail was cut off")
            return Damage(
                DamageKind.TAIL_CUT, self._expected.seq + 1,
                f"events {self._expected.seq + 1}..{head.seq} are missing: the tail was cut "
                f"off after {whose} ({when}) had sealed it")
        if self._seen.get(head.seq) != head.head:
            kind = DamageKind.ROLLED_BACK if claim.origin == "kept" else DamageKind.CHANGED
            return Damage(kind, head.seq,
                          f"event {head.seq} is not the one {whose} ({when}) sealed: the trail "
                          "was rewritten or replaced")
        return None
