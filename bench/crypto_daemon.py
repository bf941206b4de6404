"""The crypto benchmark's run through a real vokterd: ``vokter encrypt`` in place and
``vokter decrypt -o`` by a member, as a user would run them (kept apart from crypto_bench.py,
which measures processes that need no daemon and no Unix users)."""

from __future__ import annotations

import os
import pwd
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

MEMBER = "vkbenchm"
LEADER = "vkbenchl"


def _vm_hwm_kib(pid: int) -> int:
    """The process's peak resident set so far (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc status")


def _useradd(name: str) -> None:
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True,
                   capture_output=True)


def _userdel(name: str) -> None:
    subprocess.run(["userdel", "--remove", name], capture_output=True)


def _must(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[2:5])}... failed: {done.stderr.strip()}")


def daemon_runs(work: Path, plain: Path, size: int, repeat: int) -> dict[str, float]:
    """Median seconds of ``vokter encrypt`` and ``vokter decrypt`` (whole client process),
    and vokterd's peak RSS in KiB over all of them and before the first."""
    root = work / "daemon"
    root.mkdir()
    config = root / "vokter.toml"
    config.write_text(
        f'state_dir = "{root}/state"\nsocket_path = "{root}/run/vokterd.sock"\n'
        f'key_store = "{root}/keystore"\nzones_dir = "{root}/zones"\n'
        'request_timeout = 300\n')
    config.chmod(0o644)
    root.chmod(0o755)
    work.chmod(0o755)
    bin_dir = Path(sys.executable).parent
    vokter = [str(bin_dir / "vokter"), "--config", str(config)]
    for name in (LEADER, MEMBER):
        _userdel(name)
        _useradd(name)
    daemon = subprocess.Popen([str(bin_dir / "vokterd"), "--config", str(config)],
                              stdout=(root / "vokterd.log").open("ab"),
                              stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([*vokter, "status"], capture_output=True).returncode != 0:
            if daemon.poll() is not None or time.monotonic() > deadline:
                log = (root / "vokterd.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"vokterd did not start:\n{log}")
            time.sleep(0.2)
        _must([*vokter, "project", "create", "p9901", "--title", "crypto bench",
               "--leader", LEADER, "--end-date", "2030-12-31"])
        _must([*vokter, "member", "add", "p9901", MEMBER, "--role", "member",
               "--reason", "benchmark"])
        zone = root / "zones" / "p9901" / "data"
        member = pwd.getpwnam(MEMBER)
        out_dir = work / "member-out"
        out_dir.mkdir()
        os.chown(out_dir, member.pw_uid, member.pw_gid)
        as_member = ["runuser", "-u", MEMBER, "--", *vokter]
        before = _vm_hwm_kib(daemon.pid)
        encrypts: list[float] = []
        decrypts: list[float] = []
        for round_ in range(repeat):
            target = zone / f"cohort-{round_}.bin"
            shutil.copyfile(plain, target)
            os.chown(target, member.pw_uid, member.pw_gid)
            start = time.perf_counter()
            _must([*as_member, "encrypt", str(target)])
            encrypts.append(time.perf_counter() - start)
            out = out_dir / f"cohort-{round_}.out"
            start = time.perf_counter()
            _must([*as_member, "decrypt", f"{target}.tink", "-o", str(out)])
            decrypts.append(time.perf_counter() - start)
            if out.stat().st_size != size:
                raise RuntimeError("vokter decrypt did not give back the whole file")
            out.unlink()
        peak = _vm_hwm_kib(daemon.pid)
        return {
            "encrypt": statistics.median(encrypts),
            "decrypt": statistics.median(decrypts),
            "vokterd_peak_kib": float(peak),
            "vokterd_peak_before_kib": float(before),
        }
    finally:
        daemon.terminate()
        daemon.wait(timeout=120)
        for name in (LEADER, MEMBER):
            _userdel(name)
