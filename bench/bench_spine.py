"""Spine benchmark: the cost of an audited write and of a request through vokterd.

Prints, in one run, Vokter's figures beside a baseline and the ratio:
  1. audit events appended, one transaction each (hash chain + SQLModel, SQLite WAL, fsync)
     vs. plain rows inserted with Python's sqlite3, one transaction each, same pragmas;
  2. `status` requests through a real vokterd over its Unix socket (connect, SO_PEERCRED,
     JSON, schema validation, dispatch) vs. a bare Unix-socket echo server with the same framing.
Usage: .venv/bin/python bench/bench_spine.py [--events N] [--requests N]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from agent.api.client import VokterClient
from agent.api.protocol import decode_body, read_frame, send_frame
from agent.audit.chain import EventFields
from agent.audit.trail import append_event
from agent.store import Store
from agent.store.migrate import upgrade


def bench_audit(root: Path, count: int) -> float:
    store = Store(f"sqlite:///{root / 'audit.db'}")
    upgrade(store.engine)
    start = time.perf_counter()
    for i in range(count):
        with store.write() as session:
            append_event(session, EventFields(
                time=datetime.now(UTC), actor_uid=0, actor="root", action="bench.event",
                outcome="ok", project_id="p1", target=f"file{i}", details={"i": i}),
                mac_key=bytes(32))
    elapsed = time.perf_counter() - start
    store.close()
    return count / elapsed


def bench_sqlite_baseline(root: Path, count: int) -> float:
    db = sqlite3.connect(root / "plain.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, time TEXT, actor TEXT, action TEXT, "
               "project TEXT, target TEXT, details TEXT)")
    start = time.perf_counter()
    for i in range(count):
        db.execute("BEGIN")
        db.execute("INSERT INTO t VALUES (?,?,?,?,?,?,?)",
                   (i, datetime.now(UTC).isoformat(), "root", "bench.event", "p1", f"file{i}",
                    f'{{"i":{i}}}'))
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return count / elapsed


def _timed_calls(call: object, count: int) -> tuple[float, float, float]:
    latencies = []
    start = time.perf_counter()
    for _ in range(count):
        t0 = time.perf_counter()
        call()  # type: ignore[operator]
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    latencies.sort()
    return count / elapsed, statistics.median(latencies) * 1e3, latencies[int(count * 0.99)] * 1e3


def bench_daemon(root: Path, count: int) -> tuple[float, float, float]:
    config = root / "vokter.toml"
    config.write_text(f'state_dir = "{root}/state"\nsocket_path = "{root}/run/s.sock"\n'
                      f'key_store = "{root}/keys"\nzones_dir = "{root}/zones"\n')
    vokterd = Path(sys.executable).with_name("vokterd")
    process = subprocess.Popen([str(vokterd), "--config", str(config)],
                               stderr=subprocess.DEVNULL)
    client = VokterClient(root / "run" / "s.sock")
    try:
        for _ in range(300):
            try:
                client.call("status")
                break
            except Exception:
                time.sleep(0.1)
        return _timed_calls(lambda: client.call("status"), count)
    finally:
        process.terminate()
        process.wait(timeout=30)


def bench_echo_baseline(root: Path, count: int) -> tuple[float, float, float]:
    path = root / "echo.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(64)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                message = decode_body(read_frame(conn, 5.0))
                send_frame(conn, {"ok": True, "result": message})

    threading.Thread(target=serve, daemon=True).start()

    def call() -> None:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(path))
            send_frame(sock, {"v": 1, "op": "status", "args": {}})
            decode_body(read_frame(sock, 5.0))

    try:
        return _timed_calls(call, count)
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=2000)
    options = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="vokter-bench-"))
    try:
        audited = bench_audit(root, options.events)
        plain = bench_sqlite_baseline(root, options.events)
        print(f"audit append     : {audited:9.0f} events/s (hash-chained, one transaction each)")
        print(f"baseline sqlite3 : {plain:9.0f} rows/s   (plain INSERT, one transaction each)")
        print(f"ratio            : {audited / plain:9.2f} x baseline")
        rate, p50, p99 = bench_daemon(root, options.requests)
        base_rate, base_p50, base_p99 = bench_echo_baseline(root, options.requests)
        print(f"vokterd status   : {rate:9.0f} req/s  p50 {p50:.2f} ms  p99 {p99:.2f} ms")
        print(f"baseline echo    : {base_rate:9.0f} req/s  p50 {base_p50:.2f} ms  "
              f"p99 {base_p99:.2f} ms (bare Unix socket, same framing)")
        print(f"ratio            : {rate / base_rate:9.2f} x baseline throughput")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
