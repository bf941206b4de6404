"""Storage-rules benchmark: how fast Vokter judges a tree of research files, beside grep, and
how soon after a file's close the daemon has acted on it, in one run.

1. A tree of ``--files`` files (10,000) and ``--size-mib`` MiB (1 GiB) is generated: clean
   data tables (numbers, dates, codes, decimals; no identity numbers), tables with an identity-
   number column, linkage keys (identity number + serial number), and free-text notes, some
   with a stray identity number. Every file is in the page cache for every tool alike.
2. The scan: Vokter's detection (``agent.storage.evidence_io.gather`` + the pure rules, what
   ``vokter scan`` runs on each file) over the whole tree, in a process of its own; then
   ``grep -rcE '[0-9]{11}'`` over the same tree, which counts candidate lines and validates
   nothing. MB/s and files/s, median of ``--repeat`` runs each, and the ratio.
3. The whole ``vokter scan`` through a real vokterd (policy: alert, so the tree stays as it
   is), recording every violation in the audit trail: the figure a user sees.
4. Latency: a real vokterd watching a project's data zone while ``--rate`` (200) new files a
   second are written into it for ``--seconds``; for each file that must be acted on (an
   identity-number table: encrypted in place), the time from its writer's close to the
   violation's record, p50 and p99.

Goals (issue 7): scan at least half of grep's MB/s; p99 latency under 1 s.

Usage: .venv/bin/python bench/scan_bench.py [--files N] [--size-mib N] [--repeat N]
       [--dir DIR] [--rate N] [--seconds N] [--skip-daemon]
Root is needed for items 3 and 4 (a real daemon makes its zones as root).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.daemon import RunningDaemon, ok  # noqa: E402
from tests.support.identity_numbers import some  # noqa: E402

MIB = 1024 * 1024
PROJECT = "p9902"
KOMMUNER = ["0301", "1103", "4601", "5001", "1804", "3024", "3301", "4204", "1506", "5501"]


# --- the tree ---------------------------------------------------------------------------------


def identity_numbers(count: int, rnd: random.Random) -> list[str]:
    return [some(rnd.randint(1, 28), rnd.randint(1, 12), rnd.randint(0, 99),
                 start=rnd.randint(0, 400)) for _ in range(count)]


def clean_rows(rnd: random.Random, count: int) -> list[str]:
    return [f"{rnd.randint(1, 10**6)};{rnd.randint(1920, 2024)}-{rnd.randint(1, 12):02d}-"
            f"{rnd.randint(1, 28):02d};{rnd.choice(KOMMUNER)};{rnd.random() * 200:.3f};"
            f"{rnd.choice('MK')};E{rnd.randint(10, 14)}.{rnd.randint(0, 9)};"
            f"{rnd.randint(0, 99999)}" for _ in range(count)]


def write_tree(root: Path, files: int, total: int, seed: int = 7) -> dict[str, int]:
    """Files of varied sizes summing to about ``total`` bytes: 80 % clean tables, 10 %
    identity-number tables, 5 % linkage keys, 5 % notes (a third of them with a number)."""
    rnd = random.Random(seed)
    numbers = identity_numbers(5000, rnd)
    pool = clean_rows(rnd, 20000)
    weights = [rnd.lognormvariate(0, 1) for _ in range(files)]
    scale = total / sum(weights)
    kinds = {"clean": 0, "identity": 0, "linkage": 0, "note": 0}
    for index, weight in enumerate(weights):
        size = max(200, int(weight * scale))
        folder = root / f"d{index % 100:02d}"
        folder.mkdir(exist_ok=True)
        roll = rnd.random()
        if roll < 0.80:
            kind, header, rows = "clean", "lopenr;fodt;kommune;vekt;kjonn;diagnose;kode", pool
        elif roll < 0.90:
            kind, header = "identity", "fnr;fodt;kommune;vekt;kjonn;diagnose;kode"
            rows = [f"{numbers[i % 5000]};{row.split(';', 1)[1]}" for i, row in
                    enumerate(pool[:2000])]
        elif roll < 0.95:
            kind, header = "linkage", "fnr;lopenr"
            rows = [f"{n};{100000 + i}" for i, n in enumerate(numbers)]
        else:
            kind, header = "note", ""
            words = ["pasienten", "ble", "kontaktet", "om", "skjema", "og", "svarte",
                     "innen", "fristen"]
            rows = [" ".join(rnd.choice(words) for _ in range(12)) for _ in range(200)]
            if rnd.random() < 1 / 3:
                rows[rnd.randrange(200)] += f" (ref {rnd.choice(numbers)})"
        kinds[kind] += 1
        start = rnd.randrange(len(rows))
        body, length = [header] if header else [], len(header)
        while length < size:
            line = rows[start % len(rows)]
            start += 1
            body.append(line)
            length += len(line) + 1
            if kind == "linkage" and start % len(rows) == 0:
                break  # a key pairs each person once
        suffix = ".txt" if kind == "note" else ".csv"
        (folder / f"f{index:05d}{suffix}").write_text("\n".join(body) + "\n")
    return kinds


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


# --- the scan ---------------------------------------------------------------------------------

_DETECT = r"""
import os, sys, time, json
from datetime import date
sys.path.insert(0, sys.argv[2])
from agent.crypto.keyset import new_keyset
from agent.policy import load_default_policy
from agent.storage.evidence_io import gather
from agent.storage.rules import judge_file
policy = load_default_policy().storage
keyset = new_keyset()
today = date.today()  # wall-clock: the benchmark's own day, as the daemon's clock would give
found = {}
started = time.perf_counter()
for folder, _, names in os.walk(sys.argv[1]):
    for name in names:
        path = os.path.join(folder, name)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            info = os.fstat(fd)
            evidence = gather(fd, project="p1", zone="data", path=path, info=info,
                              keyset=lambda: keyset, today=today,
                              share=policy.identifier_column_share)
            for finding in judge_file(evidence.evidence, policy):
                found[finding.kind] = found.get(finding.kind, 0) + 1
        finally:
            os.close(fd)
print(json.dumps({"seconds": time.perf_counter() - started, "found": found}))
"""


def detect_once(tree: Path) -> tuple[float, dict[str, int]]:
    out = subprocess.run([sys.executable, "-c", _DETECT, str(tree), str(ROOT)], check=True,
                         capture_output=True, text=True).stdout
    result = json.loads(out)
    return float(result["seconds"]), dict(result["found"])


def grep_once(tree: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["grep", "-rcE", "[0-9]{11}", str(tree)], stdout=subprocess.DEVNULL,
                   check=False)
    return time.perf_counter() - started


def warm(tree: Path) -> None:
    subprocess.run(["cat", *map(str, tree.rglob("*.csv"))], stdout=subprocess.DEVNULL,
                   check=False)
    subprocess.run(["cat", *map(str, tree.rglob("*.txt"))], stdout=subprocess.DEVNULL,
                   check=False)


# --- the daemon -------------------------------------------------------------------------------


def alert_policy(folder: Path) -> str:
    folder.mkdir(exist_ok=True)
    text = (ROOT / "policies" / "default.toml").read_text()
    text = text.replace('identifiable_action = "encrypt"', 'identifiable_action = "alert"')
    (folder / "default.toml").write_text(text)
    return f'policies_dir = "{folder}"\n'


def daemon_scan(work: Path, tree: Path, repeat: int) -> list[float]:
    """``vokter scan`` of a project whose data zone holds the tree (policy: alert)."""
    root = work / "scan-enclave"
    root.mkdir()
    daemon = RunningDaemon(root, extra_config=alert_policy(root / "alert-policies"))
    daemon.start()
    try:
        ok(daemon.vokter("project", "create", PROJECT, "--title", "Bench", "--leader", "root",
                         "--end-date", "2031-01-01"))
        data = daemon.zones_dir / PROJECT / "data"
        daemon.stop()  # the tree arrives while it is down: the start scan judges it once
        shutil.copytree(tree, data / "tree")
        daemon.start()
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            status = json.loads(ok(daemon.vokter("status", "--json")))
            if status["storage"]["full_scans"] >= 1 and status["storage"]["pending"] == 0:
                break
            time.sleep(0.5)
        times = []
        for _ in range(repeat):
            result = json.loads(ok(daemon.vokter("scan", PROJECT, "--json", timeout=3600)))
            times.append(float(result["seconds"]))
        return times
    finally:
        daemon.stop()


def latency(work: Path, rate: int, seconds: int) -> list[float]:
    """Close-to-record latency of identity-number tables written at ``rate`` files/s."""
    root = work / "latency-enclave"
    root.mkdir()
    daemon = RunningDaemon(root)
    daemon.start()
    rnd = random.Random(3)
    numbers = identity_numbers(400, rnd)
    identity = ("fnr;vekt;kommune;kjonn\n" + "".join(
        f"{n};{rnd.random() * 200:.1f};{rnd.choice(KOMMUNER)};{rnd.choice('MK')}\n"
        for n in numbers)).encode()
    clean = ("lopenr;vekt;kommune\n" + "\n".join(clean_rows(rnd, 400))).encode()
    closed: dict[str, float] = {}
    try:
        ok(daemon.vokter("project", "create", PROJECT, "--title", "Bench", "--leader", "root",
                         "--end-date", "2031-01-01"))
        data = daemon.zones_dir / PROJECT / "data"
        total = rate * seconds
        started = time.time()  # wall-clock: compared with the daemon's record times
        for index in range(total):
            due = started + index / rate
            pause = due - time.time()  # wall-clock: pacing the writer
            if pause > 0:
                time.sleep(pause)
            path = data / f"f{index:05d}.csv"
            payload = identity if index % 5 == 0 else clean
            with path.open("wb") as handle:
                handle.write(payload)
            if index % 5 == 0:
                closed[str(path)] = time.time()  # wall-clock: the close, as the daemon sees it
        deadline = time.monotonic() + 120
        recorded: dict[str, float] = {}
        while time.monotonic() < deadline and len(recorded) < len(closed):
            time.sleep(0.5)
            with sqlite3.connect(f"file:{daemon.state_dir / 'vokter.db'}?mode=ro",
                                 uri=True) as db:
                for path, detected in db.execute("SELECT path, detected_at FROM violation"):
                    when = datetime.fromisoformat(detected).replace(tzinfo=UTC)
                    recorded[path] = when.timestamp()
    finally:
        daemon.stop()
    return [recorded[path] - close for path, close in closed.items() if path in recorded]


# --- the run ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default="/var/tmp")
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--skip-daemon", action="store_true")
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vokter-scan-bench-", dir=options.dir))
    work.chmod(0o755)
    try:
        tree = work / "tree"
        tree.mkdir()
        started = time.perf_counter()
        kinds = write_tree(tree, options.files, options.size_mib * MIB)
        size = tree_bytes(tree)
        print(f"tree: {options.files} files, {size / MIB:.0f} MiB in {tree} "
              f"({', '.join(f'{v} {k}' for k, v in kinds.items())}; "
              f"made in {time.perf_counter() - started:.0f} s)")
        warm(tree)
        detections = [detect_once(tree) for _ in range(options.repeat)]
        greps = [grep_once(tree) for _ in range(options.repeat)]
        vokter_s = statistics.median(t for t, _ in detections)
        grep_s = statistics.median(greps)
        mbs = size / 1e6
        print(f"vokter detection: {mbs / vokter_s:8.1f} MB/s {options.files / vokter_s:8.0f} "
              f"files/s  (found {detections[0][1]})")
        print(f"grep -rcE:        {mbs / grep_s:8.1f} MB/s {options.files / grep_s:8.0f} "
              f"files/s  (validates nothing)")
        print(f"ratio vokter/grep: {grep_s / vokter_s:.2f} (goal >= 0.5)")
        if options.skip_daemon:
            return
        scans = daemon_scan(work, tree, options.repeat)
        scan_s = statistics.median(scans)
        print(f"vokter scan via vokterd (recording): {mbs / scan_s:8.1f} MB/s "
              f"{options.files / scan_s:8.0f} files/s; ratio to grep {grep_s / scan_s:.2f}")
        waits = sorted(latency(work, options.rate, options.seconds))
        if waits:
            p50 = waits[len(waits) // 2]
            p99 = waits[min(len(waits) - 1, int(len(waits) * 0.99))]
            print(f"close-to-action latency at {options.rate} files/s: p50 {p50 * 1000:.0f} ms, "
                  f"p99 {p99 * 1000:.0f} ms, max {waits[-1] * 1000:.0f} ms over {len(waits)} "
                  f"files acted on (goal p99 < 1000 ms)")
        else:
            print("latency: no file was acted on")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
