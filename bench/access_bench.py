"""Access enforcement: grant, revoke and the gate's cost per open, against setfacl and no gate.

Run as root: ``.venv/bin/python bench/access_bench.py [--files 100000] [--opens 20000]``.
Builds two identical zones of N files in nested folders (one for Vokter, one for setfacl),
creates a throwaway Unix user, and prints, in one run:

- grant: Vokter's ACL pass over the zone vs ``setfacl -R -m u:USER:rwX``;
- revoke: time until the removal is effective (new gate view + zone root ACL), Vokter's full
  clean-up pass, vs ``setfacl -R -x u:USER``;
- gate: per-open latency (p50, p99) of a member's process opening zone files with the gate on
  vs off, and the gate's decisions per second.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.access.enforce import apply_acl_plan, apply_zone_root
from agent.access.gate import AccessGate
from agent.access.live import GateViewHolder
from agent.access.plan import ProjectZones, build_gate_view, plan_access
from agent.access.rules import Grant

OPENER = r"""
import os, sys, time, json
paths = [l.rstrip("\n") for l in open(sys.argv[1])]
samples = []
for p in paths:
    t = time.perf_counter_ns()
    fd = os.open(p, os.O_RDONLY)
    samples.append(time.perf_counter_ns() - t)
    os.close(fd)
print(json.dumps(samples))
"""


def build_tree(zone: Path, files: int) -> list[str]:
    """files spread over 100 folders x 10 subfolders (about 100 files per leaf folder)."""
    paths: list[str] = []
    per_leaf = max(1, files // 1000)
    count = 0
    for a in range(100):
        for b in range(10):
            leaf = zone / f"d{a:03d}" / f"s{b}"
            leaf.mkdir(parents=True, exist_ok=True)
            for c in range(per_leaf):
                if count >= files:
                    break
                path = leaf / f"f{c:04d}.csv"
                path.write_bytes(b"id,value\n")
                paths.append(str(path))
                count += 1
    return paths


def timed(action: object) -> float:
    start = time.perf_counter()
    action()  # type: ignore[operator]
    return time.perf_counter() - start


def percentile(samples: list[int], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--opens", type=int, default=20_000)
    options = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root (it creates a user and sets ACLs)", file=sys.stderr)
        return 2

    root = Path(tempfile.mkdtemp(prefix="vokter-bench-", dir="/var/tmp"))
    root.chmod(0o755)
    user = f"vkbench{os.getpid()}"
    subprocess.run(["useradd", "--no-create-home", "--user-group", user], check=True)
    uid = pwd.getpwnam(user).pw_uid
    try:
        ours, theirs = root / "p1" / "data", root / "p2" / "data"
        for zone in (ours, theirs):
            zone.parent.mkdir(mode=0o711)
            zone.mkdir(mode=0o700)
        t = time.perf_counter()
        paths = build_tree(ours, options.files)
        build_tree(theirs, options.files)
        print(f"tree: {len(paths):,} files in ~1,100 folders, twice "
              f"({time.perf_counter() - t:.1f} s to build)")

        project = ProjectZones("p1", None, str(ours), str(root / "p1" / "key"),
                               str(root / "p1" / "export"), str(root / "p1" / "quarantine"))
        for extra in ("key", "export", "quarantine"):
            (root / "p1" / extra).mkdir(mode=0o700)
        with_user = plan_access(project, [Grant(user, uid, "member")])
        without = plan_access(project, [])

        grant_ours = timed(lambda: [apply_zone_root(z) for z in with_user.zones]
                           and apply_acl_plan(with_user))
        grant_setfacl = timed(lambda: subprocess.run(
            ["setfacl", "-R", "-m", f"u:{user}:rwX", "-m", f"d:u:{user}:rwX", str(theirs)],
            check=True))

        views = GateViewHolder(build_gate_view([with_user]))
        gate = AccessGate(views, on_denied=lambda _d: None, on_attrib=lambda _p, _pid: None,
                          on_problem=lambda _k, _d: None)
        gate.start()
        try:
            sample = paths[:: max(1, len(paths) // options.opens)][: options.opens]
            listing = root / "opens.txt"
            listing.write_text("\n".join(sample) + "\n")
            listing.chmod(0o644)

            def opens() -> list[int]:
                out = subprocess.run(
                    ["runuser", "-u", user, "--", sys.executable, "-c", OPENER, str(listing)],
                    check=True, capture_output=True, text=True)
                return list(json.loads(out.stdout))

            opens()  # warm the page cache and the dentry cache
            before = gate.decisions
            t = time.perf_counter()
            on = opens()
            elapsed = time.perf_counter() - t
            decided = gate.decisions - before

            revoke_start = time.perf_counter()
            views.publish(build_gate_view([without]))
            for zone in without.zones:
                apply_zone_root(zone)
            revoke_effective = time.perf_counter() - revoke_start
            revoke_full = timed(lambda: apply_acl_plan(without))
        finally:
            gate.stop()
        for zone in with_user.zones:
            apply_zone_root(zone)
        apply_acl_plan(with_user)
        off = opens()
        revoke_setfacl = timed(lambda: subprocess.run(
            ["setfacl", "-R", "-x", f"u:{user}", "-x", f"d:u:{user}", str(theirs)],
            check=True))

        n = len(paths)
        print(f"\ngrant one member ({n:,} files)")
        print(f"  vokter ACL pass           {grant_ours:8.3f} s")
        print(f"  setfacl -R -m u:USER:rwX  {grant_setfacl:8.3f} s   "
              f"ratio vokter/setfacl {grant_ours / grant_setfacl:.2f}")
        print(f"\nrevoke one member ({n:,} files)")
        print(f"  effective (gate view + zone roots) {revoke_effective * 1000:8.2f} ms"
              "   goal < 50 ms")
        print(f"  full clean-up ACL pass             {revoke_full:8.3f} s")
        print(f"  setfacl -R -x u:USER               {revoke_setfacl:8.3f} s   "
              f"ratio effective/setfacl {revoke_effective / revoke_setfacl:.4f}, "
              f"clean-up/setfacl {revoke_full / revoke_setfacl:.2f}")
        p50_on, p99_on = percentile(on, 0.50), percentile(on, 0.99)
        p50_off, p99_off = percentile(off, 0.50), percentile(off, 0.99)
        print(f"\nopen() by a member, {len(on):,} opens")
        print(f"  gate on   p50 {p50_on:7.1f} us   p99 {p99_on:7.1f} us")
        print(f"  gate off  p50 {p50_off:7.1f} us   p99 {p99_off:7.1f} us")
        print(f"  gate overhead p50 {p50_on - p50_off:6.1f} us (goal < 100 us), "
              f"ratio on/off p50 {p50_on / p50_off:.1f}")
        print(f"  gate decisions/s {decided / elapsed:,.0f} (single opener process)")
    finally:
        subprocess.run(["userdel", user], check=False)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
