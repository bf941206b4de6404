"""Checking audit events against their chains, MACs and signed checkpoints (pure).

The verifier reads events as plain tuples in ``COLUMNS`` order, whatever they come from (a
database cursor, an export file), and stops at the first damaged one, naming it and the kind of
damage. Detection is exact: any change breaks a hash, a link, a MAC or a checkpoint. The *kind*
is the most likely explanation of what broke, worked out from what still matches (an event
whose hash fits its fields with another sequence number was moved there; an event whose hash
fits but whose MAC does not was made by someone without the key). Telling some kinds apart
needs the event after the damaged one (was the event after a forged one left as it was, or
renumbered?), so the verifier looks one row ahead once, on damage only.

Three modes:
- ``trail``: the whole trail in ``seq`` order, gapless from the start head;
- ``project``: one project's chain in ``project_seq`` order (what an auditor of it may see);
- ``rows``: a filtered selection (an export by user or time): each event is checked on its own.

Speed matters (a trail grows by millions of events), so intact events go through one tight
loop (``agent.audit.fastcheck``); the first event it cannot vouch for is checked again here,
slowly and exactly, and only that path decides what the damage is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, Literal

from agent.audit.chain import GENESIS_HASH, MacSealer, mac_pads
from agent.audit.checkpoint import ChainHead
from agent.audit.fastcheck import END, FastState, run_fast
from agent.audit.verdict import (
    COLUMNS,
    EMPTY_CHAIN,
    CheckpointClaim,
    Damage,
    DamageKind,
    Mode,
    Progress,
    Row,
    VerifyResult,
    claim_head,
    row_hash,
)

# The values a verification yields live in agent.audit.verdict; they are named here too, as
# they always were.
__all__ = [
    "COLUMNS", "EMPTY_CHAIN", "ChainVerifier", "CheckpointClaim", "Damage", "DamageKind",
    "Mode", "Progress", "Row", "VerifyResult", "claim_head", "row_hash",
]

#: How far from its place an event that fits another sequence number is looked for. Only on
#: damage: at most twice this many hashes, a few milliseconds.
MOVE_WINDOW = 2048


@dataclass(frozen=True, slots=True)
class _Suspect:
    """Damage whose kind depends on the row after it."""

    row: Row
    position: int
    #: "forged": the hash fits, the MAC does not; "moved": the hash fits sequence ``moved_from``
    why: Literal["forged", "moved"]
    moved_from: int = 0


class ChainVerifier:
    """Feed rows in order (``feed``, as often as needed), then ``finish``. Stops checking at
    the first damage."""

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
        self._start = start
        self._claims = tuple(claims)
        watch = {head.seq for head in (claim_head(c, mode, project) for c in claims) if head}
        self._state = FastState(
            by_project=mode == "project",
            project=project,
            position=start.seq,
            head=start.head,
            heads={name: [h.seq, h.head] for name, h in (project_starts or {}).items()},
            # a project's first link can be checked only if its start is known
            strict=project_starts is not None or start.seq == 0,
            pads=mac_pads(mac_key) if mac_key is not None else None,
            watch=sorted(s for s in watch if s > start.seq),
        )
        self._last_seq = 0
        self._suspect: _Suspect | None = None
        self.damage: Damage | None = None

    @property
    def count(self) -> int:
        return self._state.count

    def progress(self) -> Progress:
        state = self._state
        return Progress(
            self._start, ChainHead(state.position, state.head), state.count,
            self.damage is not None or self._suspect is not None,
            {name: ChainHead(h[0], h[1]) for name, h in state.heads.items()},
            dict(state.firsts), dict(state.seen),
        )

    @classmethod
    def joined(
        cls, parts: Sequence[Progress], *, mac_key: bytes | None,
        claims: Sequence[CheckpointClaim] = (),
    ) -> ChainVerifier | None:
        """A trail verifier that has verified ``parts`` (consecutive stretches from the first
        event, each verified from the stored hash of the event before it), ready to ``finish``;
        None unless they join up exactly: each stretch undamaged, starting at the verified end
        of the one before, and each project's chain going on across them. Only a plain "intact"
        can be joined; anything else is for a verifier reading the trail in one piece."""
        verifier = cls("trail", mac_key=mac_key, claims=claims)
        state = verifier._state
        heads: dict[str, list[Any]] = {}
        for part in parts:
            if part.damaged or part.start != ChainHead(state.position, state.head):
                return None
            for project, (project_seq, link) in part.firsts.items():
                seq, head = heads.get(project, (0, GENESIS_HASH))
                if project_seq != seq + 1 or link != head:
                    return None
            heads.update({name: [h.seq, h.head] for name, h in part.heads.items()})
            state.position, state.head = part.last.seq, part.last.head
            state.count += part.count
            state.seen.update(part.seen)
        state.heads = heads
        return verifier

    def feed(self, rows: Iterable[Row]) -> bool:
        """Check ``rows``; False once damage is found (the rest need not be read)."""
        if self.damage is not None:
            return False
        state = self._state
        stream: Iterator[Row] = iter(rows)
        while True:
            if self._suspect is not None:
                following = next(stream, END)
                if following is END:
                    return True
                self.damage = self._settle(self._suspect, following)
                return False
            row = next(stream, END) if self.mode == "rows" else run_fast(state, stream)
            if row is END:
                return True
            verdict = self._check(row)
            if verdict is None:
                state.count += 1
            elif isinstance(verdict, Damage):
                self.damage = verdict
                return False
            else:
                self._suspect = verdict

    def feed_all(self, rows: Iterable[Row], report: Callable[[int], None] | None = None,
                 every: int = 50_000) -> None:
        """``feed`` all of ``rows``, telling ``report`` how many verified every ``every`` rows
        (a long verification keeps its client informed, and its connection alive)."""
        if report is None:
            self.feed(rows)
            return
        stream = iter(rows)
        while True:
            chunk = list(islice(stream, every))
            if not chunk or not self.feed(chunk):
                return
            report(self.count)

    # --- the exact check of one row --------------------------------------------------------

    def _at(self, position: Any, seq: Any, kind: DamageKind, message: str) -> Damage:
        """Damage at ``position`` of this chain (in project mode a project's own number, with
        the trail's ``seq`` where it is known)."""
        where = position if isinstance(position, int) else None
        if self.mode == "project":
            return Damage(kind, seq if isinstance(seq, int) else None, message, where)
        return Damage(kind, where, message)

    def _check(self, row: Row) -> Damage | _Suspect | None:
        state = self._state
        try:
            seq, project, project_seq = row[0], row[5], row[6]
            prev, project_prev, digest, mac = row[12], row[13], row[14], row[15]
        except (IndexError, TypeError):
            return Damage(DamageKind.CHANGED, None, "a row that is not an audit event")
        position = project_seq if self.mode == "project" else seq
        name = self._name(seq, position)
        if self.mode == "project" and project != self.project:
            return self._at(position, seq, DamageKind.INSERTED,
                            f"{name} belongs to another project; it was put into this chain")
        if self.mode != "rows" and position != state.position + 1:
            if isinstance(position, int) and position > state.position + 1:
                return self._gap(state.position + 1, position, seq)
            return self._at(position, seq, DamageKind.INSERTED,
                            f"{name} repeats or goes back in the sequence; it was inserted")
        if self.mode == "rows" and isinstance(seq, int) and seq <= self._last_seq:
            return Damage(DamageKind.SWAPPED, seq, f"event {seq} is out of order")
        if row_hash(row) != digest:
            return self._mismatch(row, position)
        if not mac:
            return self._at(position, seq, DamageKind.UNSEALED,
                            f"{name} carries no MAC: written before sealing (schema 0001) "
                            "or inserted by hand")
        if self._sealer is not None and self._sealer.mac(digest) != mac:
            if self.mode == "rows":
                return self._forged(row, position)
            return _Suspect(row, position, "forged")
        link = project_prev if self.mode == "project" else prev
        if self.mode != "rows" and link != state.head:
            return self._at(position, seq, DamageKind.DELETED,
                            f"{name} does not follow the event before it: events between "
                            "them were removed or replaced")
        if self.mode == "trail" and project is not None:
            known = state.heads.get(project)
            if known is None and state.strict:
                known = [0, GENESIS_HASH]
            elif known is None:
                state.firsts[project] = (project_seq, project_prev)
            if known is not None:
                if project_seq != known[0] + 1:
                    return self._gap(known[0] + 1, project_seq, seq, project=project)
                if project_prev != known[1]:
                    return Damage(DamageKind.DELETED, seq,
                                  f"event {seq} does not follow project {project}'s previous "
                                  "event: events between them were removed or replaced")
            state.heads[project] = [project_seq, digest]
        if self.mode != "rows":
            state.advance(position, digest)
        self._last_seq = seq
        return None

    def _name(self, seq: Any, position: Any) -> str:
        if self.mode == "project":
            return f"{self.project}'s event {position} (trail event {seq})"
        return f"event {seq}"

    def _gap(self, missing: int, found: Any, seq: Any, project: str | None = None) -> Damage:
        where = f"project {project}'s " if project else ""
        if self.mode == "project":
            where = f"{self.project}'s "
        what = (f"{where}events {missing}..{found - 1} are missing" if found - 1 > missing
                else f"{where}event {missing} is missing")
        message = f"{what} (the chain goes on at trail event {seq})"
        if self.mode == "project":
            return Damage(DamageKind.DELETED, None, message, missing)
        if project is not None:
            return Damage(DamageKind.DELETED, seq, message)
        return Damage(DamageKind.DELETED, missing, message)

    def _forged(self, row: Row, position: Any) -> Damage:
        return self._at(position, row[0], DamageKind.INSERTED,
                        f"{self._name(row[0], position)} was not sealed with this trail's key: "
                        "a forged event")

    def _mismatch(self, row: Row, position: Any) -> Damage | _Suspect:
        seq = row[0]
        moved_from = _fits_elsewhere(row, seq)
        name = self._name(seq, position)
        if moved_from is None:
            return self._at(position, seq, DamageKind.CHANGED,
                            f"{name} was changed: its fields no longer match its hash")
        if self.mode == "trail":
            return _Suspect(row, position, "moved", moved_from)
        return self._at(position, seq, DamageKind.SWAPPED,
                        f"{name} holds the event recorded as trail event {moved_from}: "
                        "events were swapped")

    # --- telling kinds apart with the row after the damage ---------------------------------

    def _valid_alone(self, row: Row, position: int) -> bool:
        """Is ``row`` a sound event at ``position``, whatever came before it?"""
        try:
            at = row[6] if self.mode == "project" else row[0]
            digest, mac = row[14], row[15]
        except (IndexError, TypeError):
            return False
        if at != position or row_hash(row) != digest:
            return False
        return self._sealer is None or (bool(mac) and self._sealer.mac(digest) == mac)

    def _settle(self, suspect: _Suspect, following: Row | None) -> Damage:
        row, position = suspect.row, suspect.position
        seq, name = row[0], self._name(row[0], position)
        if suspect.why == "forged":
            link = 13 if self.mode == "project" else 12
            if (following is not None and self._valid_alone(following, position + 1)
                    and following[link] != row[14]):
                return self._at(position, seq, DamageKind.CHANGED,
                                f"{name} was changed and its hash made to fit, but its MAC "
                                "does not match: changed by someone without the key")
            return self._forged(row, position)
        moved_from = suspect.moved_from
        if moved_from < seq:
            if following is not None and _fits(following, following[0] - 1):
                return self._at(position, seq, DamageKind.INSERTED,
                                f"{name} is a copy of event {moved_from}: it was inserted and "
                                "the events after it renumbered")
            return self._at(position, seq, DamageKind.CHANGED,
                            f"{name} was replaced by a copy of event {moved_from}")
        if following is None or _fits(following, following[0] + moved_from - seq):
            what = (f"event {seq} was" if moved_from == seq + 1
                    else f"events {seq}..{moved_from - 1} were")
            return Damage(DamageKind.DELETED, seq,
                          f"{what} removed and the events after renumbered to close the gap")
        return Damage(DamageKind.SWAPPED, seq,
                      f"event {seq} holds the event recorded as {moved_from}: the two were "
                      "swapped")

    # --- checkpoints -------------------------------------------------------------------------

    def finish(self) -> VerifyResult:
        if self.damage is None and self._suspect is not None:
            self.damage = self._settle(self._suspect, None)
            self._suspect = None
        damage, sealed = self.damage, None
        if damage is None:
            for claim in self._claims:
                damage = self._hold_against(claim)
                if damage is not None:
                    damage = dataclasses.replace(damage, checkpoint=claim.checkpoint)
                    break
                if _newer(claim, sealed, self.mode, self.project):
                    sealed = claim
        state = self._state
        return VerifyResult(
            self.mode, state.count, ChainHead(state.position, state.head),
            {name: ChainHead(h[0], h[1]) for name, h in state.heads.items()},
            damage, sealed, self.project,
        )

    def _hold_against(self, claim: CheckpointClaim) -> Damage | None:
        head = claim_head(claim, self.mode, self.project)
        if head is None or head.seq == 0 or head.seq < self._start.seq:
            return None
        state = self._state
        whose = ("the checkpoint you kept" if claim.origin == "kept"
                 else "the daemon's last checkpoint")
        when = claim.checkpoint.time.strftime("%Y-%m-%d %H:%M:%S UTC")
        kind = DamageKind.ROLLED_BACK if claim.origin == "kept" else DamageKind.TAIL_CUT
        if state.position < head.seq:
            first = state.position + 1
            if claim.origin == "kept":
                message = (f"the chain ends at event {state.position}, but {whose} ({when}) "
                           f"covers up to event {head.seq}: the database was replaced by an "
                           "older copy or its tail was cut off")
            else:
                message = (f"events {first}..{head.seq} are missing: the tail was cut off "
                           f"after {whose} ({when}) had sealed it")
            return self._at(first, None, kind, message)
        sealed = self._start.head if head.seq == self._start.seq else state.seen.get(head.seq)
        if sealed != head.head:
            return self._at(head.seq, None, kind,
                            f"event {head.seq} is not the one {whose} ({when}) sealed: the "
                            "trail was cut back or replaced and written on since")
        return None


def _newer(claim: CheckpointClaim, than: CheckpointClaim | None, mode: Mode,
           project: str | None) -> bool:
    head = claim_head(claim, mode, project)
    if head is None or head.seq == 0:
        return False
    if than is None:
        return True
    other = claim_head(than, mode, project)
    assert other is not None
    return (head.seq, claim.checkpoint.time) > (other.seq, than.checkpoint.time)


def _fits(row: Row, seq: int) -> bool:
    try:
        return bool(row_hash(row, seq) == row[14])
    except (IndexError, TypeError):
        return False


def _fits_elsewhere(row: Row, seq: Any) -> int | None:
    """The sequence number ``row``'s hash was made with, if it is near ``seq``."""
    if not isinstance(seq, int):
        return None
    for distance in range(1, MOVE_WINDOW + 1):
        for candidate in (seq + distance, seq - distance):
            if candidate > 0 and _fits(row, candidate):
                return candidate
    return None
