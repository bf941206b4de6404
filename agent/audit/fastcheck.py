"""The verifier's hot loop: vouches for intact events quickly, and hands back the first one it
cannot vouch for, to be checked exactly (pure).

Why it is a loop of its own: verifying a million events is mostly Python overhead, not hashing.
So the loop keeps its state in locals, builds each event's encoding as one string with
precomputed length prefixes (one ``encode``, one hash call), and feeds the raw digest to the
HMAC pads instead of converting hex twice.

It only ever says "intact": the encoding it builds is byte for byte the one
:func:`agent.audit.chain.encode_fields` makes whenever every field is ASCII (latin-1 and UTF-8
agree there). A text field holding anything else (a name, a path, whatever a client sent),
an unusual algorithm, a long field, a value of an odd type, any link, hash or MAC that does not
match: the row goes back to ``ChainVerifier._check``, which is exact and names the damage.
The fields Vokter only ever writes as ASCII (times, numbers, hashes) need no such test: a stored
value that is not ASCII encodes to bytes no ASCII original had, so its hash cannot match.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.audit.chain import FORMAT_TAG, HASH_ALGORITHMS, mac_pads

#: What ``run_fast`` returns when the rows ran out.
END: Any = object()
#: Length prefixes (8 bytes, big-endian) as latin-1 text, for fields shorter than this.
_PREFIXED = 4096
_PREFIX = [n.to_bytes(8, "big").decode("latin-1") for n in range(_PREFIXED)]
_ABSENT = "\xff" * 8


def _field(text: str) -> str:
    return _PREFIX[len(text)] + text


#: Per algorithm: the encoded format tag and algorithm name every event starts with, and the
#: hash constructor.
_ALGORITHMS: dict[str, tuple[str, Callable[[bytes], Any]]] = {
    name: (_field(FORMAT_TAG) + _field(name), getattr(hashlib, name))
    for name in HASH_ALGORITHMS
}


@dataclass(slots=True)
class FastState:
    """Where a chain stands: shared by the hot loop and the exact check."""

    by_project: bool
    project: str | None
    #: the last verified position (``seq``, or ``project_seq`` in project mode) and its hash
    position: int
    head: str
    #: trail mode: each project's last verified [project_seq, hash]
    heads: dict[str, list[Any]]
    strict: bool
    pads: tuple[Any, Any] | None
    #: positions whose hash a checkpoint claims, ascending; ``seen`` collects their hashes
    watch: Sequence[int]
    watch_index: int = 0
    seen: dict[int, str] = field(default_factory=dict)
    count: int = 0
    #: not strict: each project's first [project_seq, project_prev_hash], its start unknown
    firsts: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def advance(self, position: int, digest: str) -> None:
        self.position, self.head = position, digest
        if self.watch_index < len(self.watch) and self.watch[self.watch_index] == position:
            self.seen[position] = digest
            self.watch_index += 1


def run_fast(state: FastState, rows: Iterator[Any]) -> Any:
    """Verify rows while they are plainly intact; return the first that is not (or END)."""
    by_project, project_name, strict = state.by_project, state.project, state.strict
    position, head, heads, count = state.position, state.head, state.heads, state.count
    watch, watch_index = state.watch, state.watch_index
    next_watch = watch[watch_index] if watch_index < len(watch) else -1
    check_mac = state.pads is not None
    inner, outer = state.pads if state.pads is not None else mac_pads(b"")
    prefix, absent, algorithms, genesis = _PREFIX, _ABSENT, _ALGORITHMS, "0" * 64
    stopped: Any = END
    for row in rows:
        try:
            (seq, time, uid, actor, action, project, project_seq, target, outcome, rule,
             details, algorithm, prev, project_prev, digest, mac) = row
            start, hasher = algorithms[algorithm]
            if by_project:
                if project != project_name or project_seq != position + 1 or (
                        project_prev != head):
                    stopped = row
                    break
                at = project_seq
                chain = None
            else:
                if seq != position + 1 or prev != head:
                    stopped = row
                    break
                at = seq
                chain = None if project is None else heads.get(project)
                if project is not None and (
                        (chain is None and strict and (project_seq != 1 or project_prev != genesis))
                        or (chain is not None and (project_seq != chain[0] + 1
                                                   or project_prev != chain[1]))):
                    stopped = row
                    break
            if not (actor.isascii() and action.isascii() and outcome.isascii()
                    and details.isascii() and (project is None or project.isascii())
                    and (target is None or target.isascii())
                    and (rule is None or rule.isascii())):
                stopped = row
                break
            number, user = str(seq), str(uid)
            if project_seq is None:
                in_project = absent
            else:
                in_project = str(project_seq)
                in_project = prefix[len(in_project)] + in_project
            payload = (
                f"{start}{prefix[len(number)]}{number}{prefix[len(time)]}{time}"
                f"{prefix[len(user)]}{user}{prefix[len(actor)]}{actor}"
                f"{prefix[len(action)]}{action}"
                f"{absent if project is None else prefix[len(project)] + project}{in_project}"
                f"{absent if target is None else prefix[len(target)] + target}"
                f"{prefix[len(outcome)]}{outcome}"
                f"{absent if rule is None else prefix[len(rule)] + rule}"
                f"{prefix[len(details)]}{details}{prefix[len(prev)]}{prev}"
                f"{absent if project_prev is None else prefix[len(project_prev)] + project_prev}"
            ).encode("latin-1")
            raw = hasher(payload).digest()
            if raw.hex() != digest:
                stopped = row
                break
            if check_mac:
                inner_state = inner.copy()
                inner_state.update(raw)
                outer_state = outer.copy()
                outer_state.update(inner_state.digest())
                if outer_state.hexdigest() != mac:
                    stopped = row
                    break
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, UnicodeError):
            stopped = row
            break
        if project is not None and not by_project:
            if chain is None:
                heads[project] = [project_seq, digest]
                if not strict:
                    state.firsts[project] = (project_seq, project_prev)
            else:
                chain[0], chain[1] = project_seq, digest
        position, head = at, digest
        if at == next_watch:
            state.seen[at] = digest
            watch_index += 1
            next_watch = watch[watch_index] if watch_index < len(watch) else -1
        count += 1
    state.position, state.head, state.count, state.watch_index = position, head, count, watch_index
    return stopped
