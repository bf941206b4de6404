"""Audit trail benchmark: appending and verifying events, each beside its baseline in one run.

Prints Vokter's figure, the baseline's and the ratio for:
  1. durable single commits: each event in its own transaction through ``Store.write()`` and
     ``append_event`` (hash chain, project chain, MAC, masking; SQLite WAL, synchronous=FULL)
     vs. plain INSERTs of the very same rows into the same table with the ``sqlite3`` module,
     one commit each, with the pragmas the Store sets. Goal: >= 0.5x.
  2. batched: ``append_events`` with BATCH events per transaction vs. ``executemany`` of the
     same rows, one commit per batch. Goal: >= 100,000 events/s.
  3. verify a trail of BIG events (1,000,000 by default), filled through ``append_events``:
     Vokter's verifier (every hash, link, project link and MAC) vs. an HMAC-SHA256 chain over
     the same rows computed with hashlib/hmac alone and held against its known head (one
     process; Vokter's verifier may use every core). Goal: >= 400,000 events/s.
  4. export the same trail to CSV: ``vokter audit export --format csv`` through a real vokterd
     (rows, SHA-256, fsync, signed manifest) vs. the ``sqlite3`` shell's ``.mode csv`` dump of
     the same table. Goal: <= 2x the shell's time.

Usage: .venv/bin/python bench/audit_bench.py [--single N] [--batched N] [--batch N] [--big N]
       [--full] [--profile]   (--full: long runs; --profile: where append_events spends time)
The export baseline needs the sqlite3 shell (apt-get install -y sqlite3).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import hmac
import io
import json
import logging
import pstats
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.audit.chain import EventFields
from agent.audit.keys import AuditKeys, load_or_create_audit_keys
from agent.audit.trail import append_event, append_events
from agent.audit.verify_trail import verify_trail
from agent.store import Store
from agent.store.migrate import upgrade

MAC_KEY = bytes(range(32))
BASE_TIME = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
ACTIONS = ("file.open", "file.open_denied", "member.add", "access.check", "export.request")
#: The pragmas ``agent.store.engine`` sets on every SQLite connection, for the baselines.
STORE_PRAGMAS = ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "secure_delete=ON")


def quiet_siem_feed() -> None:
    """Each committed event is also a SIEM log line; a benchmark's million would flood stdout
    (and time the terminal), so drop them before they are rendered."""
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL),
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=True,
    )


def make_events(count: int, start: int = 0) -> list[EventFields]:
    """Events shaped like a working enclave's: 40 projects, 50 users, a tenth about no project."""
    events = []
    for i in range(start, start + count):
        project = None if i % 10 == 9 else f"p{1000 + i % 40}"
        events.append(EventFields(
            time=BASE_TIME + timedelta(milliseconds=i),
            actor_uid=2000 + i % 50,
            actor=f"researcher{i % 50}",
            action=ACTIONS[i % len(ACTIONS)],
            outcome="refused" if i % 17 == 0 else "ok",
            project_id=project,
            target=None if project is None else f"/srv/vokter/{project}/data/cohort{i % 300}.csv",
            rule="A1" if i % 17 == 0 else None,
            details={"pid": 40000 + i % 9000, "program": "/usr/bin/python3", "count": 1},
        ))
    return events


def open_store(path: Path) -> Store:
    store = Store(f"sqlite:///{path}")
    upgrade(store.engine)
    return store


def plain_db(path: Path) -> sqlite3.Connection:
    """A database with Vokter's schema (same table, same indexes), opened as the Store opens
    its connections, for the plain-INSERT baselines."""
    open_store(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    for pragma in STORE_PRAGMAS:
        db.execute(f"PRAGMA {pragma}")
    return db


def stored_rows(path: Path) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The rows Vokter stored, exactly as stored, for the baseline to insert again."""
    with sqlite3.connect(path) as db:
        cursor = db.execute("SELECT * FROM audit_event ORDER BY seq")
        return [c[0] for c in cursor.description], cursor.fetchall()


def insert_sql(columns: Sequence[str]) -> str:
    """The column names are the table's own (read from its cursor), never input."""
    names, marks = ", ".join(columns), ", ".join("?" for _ in columns)
    return f"INSERT INTO audit_event ({names}) VALUES ({marks})"  # noqa: S608


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def report(title: str, ours: float, base: float, unit: str, goal: str, met: bool) -> None:
    print(f"\n{title}")
    print(f"  vokter    {ours:12,.0f} {unit}")
    print(f"  baseline  {base:12,.0f} {unit}")
    print(f"  ratio     {ours / base:12.2f} x baseline   goal {goal}: "
          f"{'met' if met else 'NOT met'}")


# --- 1. durable single commits ------------------------------------------------------------


def durable_single(root: Path, events: Sequence[EventFields], rounds: int) -> tuple[float, float]:
    """Seconds Vokter and the baseline spend on the same events, one commit each.

    A commit's cost is mostly the fsync, and the disk's speed drifts while other work runs, so
    the two take turns: Vokter appends a slice, the baseline inserts the rows Vokter just
    stored, and so on, and both totals span the same stretch of time."""
    store = open_store(root / "single.db")
    plain = plain_db(root / "single-plain.db")
    stored = sqlite3.connect(root / "single.db")
    ours = base = 0.0
    try:
        cursor = stored.execute("SELECT * FROM audit_event LIMIT 0")
        sql = insert_sql([c[0] for c in cursor.description])
        done = 0
        for part in batches(events, max(1, len(events) // rounds)):
            start = time.perf_counter()
            for fields in part:
                with store.write() as session:
                    append_event(session, fields, mac_key=MAC_KEY)
            ours += time.perf_counter() - start
            rows = stored.execute("SELECT * FROM audit_event WHERE seq > ? ORDER BY seq",
                                  (done,)).fetchall()
            done += len(rows)
            start = time.perf_counter()
            for row in rows:
                plain.execute("BEGIN")
                plain.execute(sql, row)
                plain.execute("COMMIT")
            base += time.perf_counter() - start
    finally:
        stored.close()
        plain.close()
        store.close()
    return ours, base


# --- 2. batched -----------------------------------------------------------------------------


def batches(events: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for first in range(0, len(events), size):
        yield events[first:first + size]


def append_batched(path: Path, events: Sequence[EventFields], size: int) -> float:
    store = open_store(path)
    try:
        start = time.perf_counter()
        for batch in batches(events, size):
            with store.write() as session:
                append_events(session, batch, mac_key=MAC_KEY)
        return time.perf_counter() - start
    finally:
        store.close()


def insert_batched_baseline(
    path: Path, columns: list[str], rows: list[tuple[Any, ...]], size: int
) -> float:
    db = plain_db(path)
    sql = insert_sql(columns)
    try:
        start = time.perf_counter()
        for batch in batches(rows, size):
            db.execute("BEGIN")
            db.executemany(sql, batch)
            db.execute("COMMIT")
        return time.perf_counter() - start
    finally:
        db.close()


def profile_append_events(path: Path, events: Sequence[EventFields], size: int) -> None:
    """Where batched appending spends its time: cProfile, the top functions by own time."""
    store = open_store(path)
    profiler = cProfile.Profile()
    gc.disable()  # a collection under cProfile inside SQLAlchemy's compiled rows crashed here
    try:
        profiler.enable()
        for batch in batches(events, size):
            with store.write() as session:
                append_events(session, batch, mac_key=MAC_KEY)
        profiler.disable()
    finally:
        gc.enable()
        store.close()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(20)
    stats.sort_stats("cumulative").print_stats("trail.py|chain.py|redact.py|engine.py", 12)
    print(f"\nprofile of append_events, {len(events):,} events in batches of {size:,}")
    print(out.getvalue())


# --- 3. verify 1,000,000 events --------------------------------------------------------------


def fill_trail(path: Path, count: int, mac_key: bytes, batch: int = 10_000) -> float:
    """A SQLite trail of ``count`` chained events sealed with ``mac_key``, written through
    append_events."""
    store = open_store(path)
    try:
        start = time.perf_counter()
        for first in range(0, count, batch):
            with store.write() as session:
                append_events(session, make_events(min(batch, count - first), first),
                              mac_key=mac_key)
        return time.perf_counter() - start
    finally:
        store.close()


def baseline_chain(path: Path, key: bytes) -> Callable[[], int]:
    """An HMAC-SHA256 chain over the stored rows with hashlib/hmac alone: each link is the
    HMAC of the previous link and the row's fields. Its head is computed once here; the
    returned check recomputes the chain from the database and holds it against that head."""

    def chain() -> tuple[int, bytes]:
        link, count = b"\0" * 32, 0
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            for row in db.execute("SELECT * FROM audit_event ORDER BY seq"):
                payload = "\x1f".join("" if v is None else str(v) for v in row).encode()
                link = hmac.new(key, link + payload, hashlib.sha256).digest()
                count += 1
        return count, link

    _, head = chain()

    def check() -> int:
        count, link = chain()
        if not hmac.compare_digest(link, head):
            raise AssertionError("the baseline chain does not reach its head")
        return count

    return check


def verify_with_vokter(path: Path, keys: AuditKeys, key_store: Path) -> int:
    """What ``vokter audit verify`` does: every hash, trail link, project link and MAC, held
    against the checkpoints there are (none yet: the trail was written outside a daemon)."""
    store = Store(f"sqlite:///{path}")
    try:
        result = verify_trail(store, keys, key_store)
    finally:
        store.close()
    if not result.ok:
        raise AssertionError(f"the benchmark trail does not verify: {result.damage}")
    return result.count


# --- 4. export 1,000,000 events to CSV --------------------------------------------------------


def export_with_vokter(root: Path, path: Path, key_store: Path, out: Path) -> tuple[int, float]:
    """``vokter audit export --format csv`` through a real vokterd on the trail, timed once the
    daemon has sealed it (a running daemon has; the first seal verifies the whole trail)."""
    config = root / "vokter.toml"
    config.write_text(
        f'state_dir = "{root}/state"\nsocket_path = "{root}/run/vokterd.sock"\n'
        f'key_store = "{key_store}"\nzones_dir = "{root}/zones"\n'
        f'database_url = "sqlite:///{path}"\nrequest_timeout = 300\n')
    bin_dir = Path(sys.executable).parent
    vokter = [str(bin_dir / "vokter"), "--config", str(config)]
    with (root / "vokterd.log").open("ab") as log:
        daemon = subprocess.Popen([str(bin_dir / "vokterd"), "--config", str(config)],
                                  stdout=log, stderr=log)
    try:
        sealed_through = sealed_count(path)
        deadline = time.monotonic() + 600
        while sealed_count(path) <= sealed_through or subprocess.run(
                [*vokter, "status"], capture_output=True).returncode != 0:
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"vokterd did not seal the trail; see {root}/vokterd.log")
            time.sleep(0.5)
        start = time.perf_counter()
        done = subprocess.run([*vokter, "audit", "export", "--format", "csv", "-o", str(out),
                               "--json"], capture_output=True, text=True, check=True)
        elapsed = time.perf_counter() - start
        return int(json.loads(done.stdout)["count"]), elapsed
    finally:
        daemon.terminate()
        daemon.wait(timeout=120)


def sealed_count(path: Path) -> int:
    """The newest checkpoint's sequence number in the trail at ``path`` (0: none)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        row = db.execute("SELECT max(seq) FROM audit_checkpoint").fetchone()
    return int(row[0] or 0)


def export_with_sqlite3_shell(path: Path, out: Path) -> float:
    """The baseline of an export: the sqlite3 shell's CSV dump of the same table, in order."""
    script = (f".headers on\n.mode csv\n.output {out}\n"
              "SELECT * FROM audit_event ORDER BY seq;\n.output stdout\n")
    start = time.perf_counter()
    subprocess.run(["sqlite3", "-readonly", str(path)], input=script, text=True, check=True)
    return time.perf_counter() - start


def timed(action: Callable[[], int]) -> tuple[int, float]:
    start = time.perf_counter()
    count = action()
    return count, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=2_000,
                        help="events appended one durable commit each (default 2,000)")
    parser.add_argument("--batched", type=int, default=200_000,
                        help="events appended in batches (default 200,000)")
    parser.add_argument("--batch", type=int, default=1_000, help="events per batch (1,000)")
    parser.add_argument("--big", type=int, default=1_000_000,
                        help="events in the trail verified and exported (default 1,000,000)")
    parser.add_argument("--full", action="store_true",
                        help="long runs: 10,000 single, 1,000,000 batched, 1,000,000 big")
    parser.add_argument("--profile", action="store_true",
                        help="also profile append_events (cProfile) and print where time goes")
    options = parser.parse_args()
    if options.full:
        options.single, options.batched, options.big = 10_000, 1_000_000, 1_000_000
    if shutil.which("sqlite3") is None:
        print("the export baseline needs the sqlite3 shell: apt-get install -y sqlite3",
              file=sys.stderr)
        return 2
    quiet_siem_feed()
    root = Path(tempfile.mkdtemp(prefix="vokter-audit-bench-", dir="/var/tmp"))
    try:
        print(f"audit benchmark in {root} (SQLite WAL, synchronous=FULL)")
        ours, base = durable_single(root, make_events(options.single), rounds=10)
        report(f"durable single commits ({options.single:,} events, one transaction each)",
               rate(options.single, ours), rate(options.single, base), "events/s",
               ">= 0.5x", base / ours >= 0.5)

        events = make_events(options.batched)
        ours = append_batched(root / "batched.db", events, options.batch)
        columns, rows = stored_rows(root / "batched.db")
        base = insert_batched_baseline(root / "batched-plain.db", columns, rows, options.batch)
        report(f"batched ({options.batched:,} events, {options.batch:,} per transaction)",
               rate(options.batched, ours), rate(options.batched, base), "events/s",
               ">= 100,000 events/s", rate(options.batched, ours) >= 100_000)
        del events, rows
        if options.profile:
            profile_append_events(root / "profiled.db", make_events(20 * options.batch),
                                  options.batch)

        big, key_store = root / "big.db", root / "keystore"
        keys = load_or_create_audit_keys(key_store)
        filled = fill_trail(big, options.big, keys.mac_key)
        print(f"\n(filled a trail of {options.big:,} events through append_events in "
              f"{filled:.1f} s, {rate(options.big, filled):,.0f} events/s)")
        baseline_check = baseline_chain(big, keys.mac_key)  # also warms the page cache
        count, ours = timed(lambda: verify_with_vokter(big, keys, key_store))
        base_count, base = timed(baseline_check)
        assert count == base_count == options.big, (count, base_count)
        report(f"verify {options.big:,} events (hash, links, project links, MAC)",
               rate(count, ours), rate(count, base), "events/s",
               ">= 400,000 events/s", rate(count, ours) >= 400_000)

        exported, ours = export_with_vokter(root, big, key_store, root / "export.csv")
        (root / "export.csv").unlink()
        base = export_with_sqlite3_shell(big, root / "dump.csv")
        report(f"export {exported:,} events to CSV (vokter audit export; sqlite3 shell "
               ".mode csv)", rate(exported, ours), rate(exported, base), "events/s",
               "<= 2x the shell's time", ours <= 2 * base)
        print(f"  time      vokter {ours:.2f} s, sqlite3 shell {base:.2f} s "
              f"({ours / base:.1f}x the shell's time)")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
