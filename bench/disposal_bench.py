"""Disposal benchmark: removing a project's files with Vokter's journalled, descriptor-relative
removal (``agent.lifecycle.removal``), beside ``rm -rf`` of an identical tree, in one run.

1. Three identical trees of ``--files`` files (100,000) of a few hundred bytes to a few KiB
   each, in ``--folders`` (1,000) folders nested three deep, are made under ``--dir``
   (default /var/tmp, a real disk; /dev/shm measures the code without the disk), and
   everything is synced to disk first, so no tool pays for another's writeback.
2. Tree A: ``Removal(journal, [A], hash_files=False)``: plan (the inventory, journalled and
   fsync'd) plus run (every item removed by ``--workers`` (2) threads, progress fsync'd
   every 1,000 items). Tree B:
   ``rm -rf B/*`` (the zone root stays, as with the removal). Which goes first alternates
   between rounds (``--repeat``, a fresh pair of trees each round); the median is printed.
3. Tree C: the same removal with ``hash_files=True``: the SHA-256 of every file, taken before
   anything is removed, is what the disposal certificate lists; its cost is printed apart.
4. Every removal is followed by ``syncfs``, timed apart: what it costs to make each removal
   durable (the removal fsyncs its journal as it goes; ``rm`` leaves it all to writeback).

Goal (issue 9): the removal without hashes no slower than ``rm -rf``.

Usage: .venv/bin/python bench/disposal_bench.py [--files N] [--folders N] [--dir DIR]
       [--repeat N] [--workers N]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.lifecycle.removal import Removal  # noqa: E402

_libc = ctypes.CDLL(None, use_errno=True)


def write_tree(root: Path, files: int, folders: int, seed: int = 9) -> int:
    """``files`` files spread over ``folders`` leaf folders three levels deep (a/b/c); returns
    the bytes written. The same seed makes the same tree, byte for byte."""
    rnd = random.Random(seed)
    side = max(1, round(folders ** (1 / 3)))
    leaves = [root / f"a{i:02d}" / f"b{j:02d}" / f"c{k:02d}" for i in range(side)
              for j in range(side) for k in range(side)][:folders]
    for leaf in leaves:
        leaf.mkdir(parents=True, exist_ok=True)
    payload = rnd.randbytes(8192)
    total = 0
    for index in range(files):
        size = rnd.randint(200, 4096)
        start = rnd.randrange(8192 - size)
        (leaves[index % len(leaves)] / f"f{index:06d}.csv").write_bytes(
            payload[start:start + size])
        total += size
    return total


def sync_all(path: Path) -> float:
    """syncfs(2) of the file system holding ``path``; returns the seconds it took."""
    started = time.perf_counter()
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _libc.syncfs(fd) != 0:
            raise OSError(ctypes.get_errno(), "syncfs failed")
    finally:
        os.close(fd)
    return time.perf_counter() - started


def vokter_removal(tree: Path, journal: Path, hash_files: bool,
                   workers: int) -> tuple[float, float, int]:
    """Seconds for plan, seconds for run, and the items removed."""
    removal = Removal(journal, [tree], hash_files=hash_files)
    started = time.perf_counter()
    removal.plan()
    planned = time.perf_counter()
    report = removal.run(workers=workers)
    finished = time.perf_counter()
    if report.errors or removal.verify():
        raise SystemExit(f"the removal left something behind: {report.errors[:3]}")
    return planned - started, finished - planned, report.removed


def rm_rf(tree: Path) -> float:
    """``rm -rf`` of the tree's entries (the tree's root stays, as a zone root does)."""
    started = time.perf_counter()
    subprocess.run(["rm", "-rf", "--", *map(str, sorted(tree.iterdir()))], check=True)
    elapsed = time.perf_counter() - started
    if any(tree.iterdir()):
        raise SystemExit("rm -rf left something behind")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--folders", type=int, default=1_000)
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vokter-disposal-bench-", dir=options.dir))
    try:
        vokter, rm, plans, runs, hashed_plans, vokter_sync, rm_sync = ([] for _ in range(7))
        items = 0
        size = 0
        for round_ in range(options.repeat):
            trees = {name: work / f"{name}{round_}" for name in ("a", "b", "c")}
            made = time.perf_counter()
            for tree in trees.values():
                tree.mkdir()
                size = write_tree(tree, options.files, options.folders)
            sync_all(work)
            if round_ == 0:
                print(f"trees: 3 x {options.files} files, {size / 1e6:.0f} MB, "
                      f"{options.folders} folders, in {work} "
                      f"(made in {time.perf_counter() - made:.1f} s)")
            order = ["vokter", "rm"] if round_ % 2 == 0 else ["rm", "vokter"]
            for which in order:
                if which == "vokter":
                    plan_s, run_s, items = vokter_removal(trees["a"], work / f"j{round_}a",
                                                          False, options.workers)
                    plans.append(plan_s)
                    runs.append(run_s)
                    vokter.append(plan_s + run_s)
                    vokter_sync.append(sync_all(work))
                else:
                    rm.append(rm_rf(trees["b"]))
                    rm_sync.append(sync_all(work))
            hashed_plan, _, _ = vokter_removal(trees["c"], work / f"j{round_}c", True,
                                               options.workers)
            hashed_plans.append(hashed_plan)
            sync_all(work)

        median = statistics.median
        vokter_s, rm_s = median(vokter), median(rm)
        print(f"vokter removal (no hashes): {vokter_s:7.2f} s {options.files / vokter_s:9.0f} "
              f"files/s  (plan {median(plans):.2f} s + run {median(runs):.2f} s, "
              f"{items} items, workers: {options.workers})")
        print(f"rm -rf:                     {rm_s:7.2f} s {options.files / rm_s:9.0f} files/s")
        print(f"ratio vokter/rm: {vokter_s / rm_s:.2f} (goal <= 1.00)")
        print(f"syncfs afterwards: vokter {median(vokter_sync):.2f} s, "
              f"rm -rf {median(rm_sync):.2f} s")
        hashing = median(hashed_plans) - median(plans)
        print(f"per-file SHA-256 in the plan: +{hashing:.2f} s "
              f"(plan with hashes {median(hashed_plans):.2f} s, "
              f"{size / 1e6 / max(median(hashed_plans), 1e-9):.0f} MB/s over the whole plan)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
