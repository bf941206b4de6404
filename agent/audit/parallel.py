"""Verifying a long SQLite trail on every core.

Checking an event needs nothing but the event and the stored hash of the one before it, so a
long trail splits into stretches verified side by side: this process takes the first, fresh
interpreters (spawned, never forked from the threaded daemon) the others, each reading the
database file read-only. The stretches are joined only if they join up exactly
(``ChainVerifier.joined``); whatever does not, damage included, is left to the one-piece
verification, which alone names damage. So the split can make verifying faster, never less
exact.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing
from pathlib import Path

import structlog

from agent.audit.chain import GENESIS_HASH
from agent.audit.checkpoint import ChainHead
from agent.audit.rows import CHUNK, chain_sql
from agent.audit.verify import ChainVerifier, CheckpointClaim, Progress, VerifyResult

log = structlog.get_logger("vokterd.audit")

#: Fewer events per stretch than this are verified sooner than another interpreter starts.
MIN_STRETCH = 150_000
_STRETCH_SQL = chain_sql("sqlite", '"seq" BETWEEN :first AND :last', '"seq"')


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def stretches(last: int, parts: int) -> list[tuple[int, int]]:
    """1..last in ``parts`` consecutive stretches, the first a little longer: it starts at
    once, the others only when their interpreter is up."""
    first = last // parts + last // (parts * 20)
    rest = last - first
    bounds = [(1, first)]
    for n in range(parts - 1):
        start = first + rest * n // (parts - 1) + 1
        bounds.append((start, first + rest * (n + 1) // (parts - 1)))
    return bounds


def verify_stretch(
    uri: str, mac_key: bytes, first: int, last: int, claims: Sequence[CheckpointClaim],
    report: Callable[[int], None] | None = None,
) -> Progress:
    """Events ``first``..``last``, from the stored hash of the event before them (in a worker;
    only this process's own stretch ``report``s how far it got)."""
    with closing(sqlite3.connect(uri, uri=True)) as db:
        before = GENESIS_HASH
        if first > 1:
            row = db.execute("SELECT hash FROM audit_event WHERE seq = ?", (first - 1,)).fetchone()
            before = row[0] if row is not None and isinstance(row[0], str) else ""
        verifier = ChainVerifier("trail", mac_key=mac_key, start=ChainHead(first - 1, before),
                                 claims=claims)
        cursor = db.cursor()
        cursor.arraysize = CHUNK
        verifier.feed_all(cursor.execute(_STRETCH_SQL, {"first": first, "last": last}), report)
        return verifier.progress()


def verify_in_stretches(
    path: Path, mac_key: bytes, claims: Sequence[CheckpointClaim], *,
    processes: int | None = None, min_stretch: int = MIN_STRETCH,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyResult | None:
    """The whole trail in the SQLite file ``path``, verified in stretches; None when it is too
    short to gain from it, or anything at all is not plainly intact."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:
        (last,) = db.execute("SELECT max(seq) FROM audit_event").fetchone()
    if not isinstance(last, int):
        return None
    parts = min(processes or cores(), last // min_stretch)
    if parts < 2:
        return None
    bounds = stretches(last, parts)
    try:
        with ProcessPoolExecutor(max_workers=parts - 1,
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            others = [pool.submit(verify_stretch, uri, mac_key, first, end, claims)
                      for first, end in bounds[1:]]
            mine = bounds[0][1]
            report = None if progress is None else (
                lambda count: progress(count * last // mine, last))
            done = [verify_stretch(uri, mac_key, *bounds[0], claims, report)]
            done += [future.result() for future in others]
    except (OSError, RuntimeError) as error:  # no processes to be had: one piece will do
        log.warning("audit_verify_single_process", error=type(error).__name__)
        return None
    verifier = ChainVerifier.joined(done, mac_key=mac_key, claims=claims)
    if verifier is None:
        return None
    result = verifier.finish()
    return result if result.ok else None
