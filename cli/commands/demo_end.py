"""The demo's last chapter: a project reaches its end, its data is disposed of, and the signed
certificate of disposal is shown and checked (L1, L2, L6, L8).

A chapter of its own because it needs the drill clock: the tour's daemon reads its date from a
file (``clock_file``), so the tour moves a project past its end in a second instead of waiting
for its end date.
"""

from __future__ import annotations

import json
import subprocess
from datetime import date, timedelta
from pathlib import Path
from typing import Protocol

from rich.console import Console

PROJECT = "p2026"


class Narrator(Protocol):
    def say(self, title: str, text: str) -> None: ...
    def command(self, line: str) -> None: ...


def clock_line(root: Path) -> str:
    """The config line that lets the tour set the daemon's date (root's tour only)."""
    return f'clock_file = "{root}/clock"\n'


def _set_clock(root: Path, day: date) -> None:
    clock = root / "clock"
    clock.write_text(f"{day.isoformat()}T09:00:00+00:00\n")
    clock.chmod(0o644)


def show_project_end(tour: Narrator, vokter: list[str], root: Path, leader: str,
                     console: Console) -> None:
    """Create a project, walk it past its end and its grace, and show the certificate."""
    today = date.today()  # wall-clock: the tour starts from the real date
    end = today + timedelta(days=30)
    run = [*vokter, "--config", str(root / "vokter.toml")]

    def call(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*run, *argv], capture_output=True, text=True, timeout=120,
                              check=False)

    tour.say("A project's end",
             "Every project lives as long as its REK approval. The day after its end date "
             "members lose access, the leader only reads (L8); 14 days later the data is "
             "disposed of (L2), unless REK approved keeping it or a legal hold stands (L5).")
    tour.command(f"vokter project create {PROJECT} --title \"Shift work\" --leader {leader} "
                 f"--end-date {end.isoformat()}")
    made = call("project", "create", PROJECT, "--title", "Shift work", "--leader", leader,
                "--end-date", end.isoformat())
    if made.returncode != 0:
        console.print(f"   {made.stderr.strip()}")
        return
    data = root / "zones" / PROJECT / "data"
    (data / "anonymisation.toml").write_text(
        'quasi_identifiers = ["alder", "kommune"]\nmax_suppression = 0.0\n'
        '[hierarchies]\nalder = "age"\nkommune = "municipality"\n')
    rows = "\n".join(f"{20 + i % 40};{['0301', '1103', '4601'][i % 3]};{i % 9}"
                     for i in range(300))
    (data / "shifts.csv").write_text("alder;kommune;timer\n" + rows + "\n")
    (data / "interviews.txt").write_text("notes from the interviews\n")
    tour.command(f"vokter lifecycle plan {PROJECT}")
    for line in call("lifecycle", "plan", PROJECT).stdout.splitlines()[1:4]:
        console.print(f"   {line}")
    _set_clock(root, end + timedelta(days=15))
    tour.say("Fifteen days after the end",
             "The tour moves the daemon's clock (a drill clock: never in production). The "
             "daily sweep finds the project ended and its grace over; `lifecycle run` does "
             "now what the schedule would do at night. The keyset is shredded first, the key "
             "zone removed, and each table of the data zone kept if it is 5-anonymous, "
             "anonymised if it can be, deleted if not, as the project's anonymisation.toml "
             "names its quasi-identifiers (L6, L7).")
    tour.command("sudo vokter lifecycle run")
    swept = call("lifecycle", "run")
    console.print("   " + (swept.stdout.strip() or swept.stderr.strip()).replace("\n", "\n   "))
    tour.command(f"ls {data}")
    console.print("   " + "  ".join(sorted(p.name for p in data.iterdir())))
    certificate = root / f"{PROJECT}-disposal.json"
    pubkey = root / "trail.pem"
    tour.say("The certificate of disposal",
             "Signed with the audit trail's key: the legal basis, the decision and its rules, "
             "the keyset destroyed, every file with its size and SHA-256 taken before "
             "removal, each table's outcome, and the checks made afterwards. Anyone can check "
             "it with the public key alone, far from the enclave.")
    tour.command(f"vokter lifecycle certificate {PROJECT} -o {certificate.name}")
    got = call("lifecycle", "certificate", PROJECT, "-o", str(certificate))
    if got.returncode != 0:
        console.print(f"   {got.stderr.strip()}")
        return
    payload = json.loads(json.loads(certificate.read_text())["payload"])
    steps = ", ".join(f"{step['step']} ({step['rules']})" for step in payload["decision"])
    tables = ", ".join(f"{table['path']} {table['outcome']}" for table in payload["tables"])
    console.print(f"   method {payload['method']}; steps: {steps}")
    console.print(f"   data zone: {tables}")
    pubkey.write_text(call("audit", "pubkey").stdout)
    tour.command(f"vokter audit pubkey > trail.pem && vokter lifecycle verify-certificate "
                 f"{certificate.name} --pubkey trail.pem")
    checked = call("lifecycle", "verify-certificate", str(certificate), "--pubkey", str(pubkey))
    console.print("   " + (checked.stdout.strip() or checked.stderr.strip()).replace("\n", "\n   "))
