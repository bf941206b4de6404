"""vokter demo: a narrated tour in a throwaway enclave.

It starts a real vokterd on a temporary config, socket, database and zones directory, talks to
it exactly as a user would, and stops it cleanly; nothing outside the temporary directory is
touched.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from agent.api import VokterError
from agent.api.client import VokterClient
from cli.commands.demo_end import clock_line, show_project_end
from cli.output import print_fields, print_table

PROJECT_COLUMNS = [("project", "PROJECT"), ("title", "TITLE"), ("leader", "LEADER"),
                   ("end_date", "END DATE"), ("state", "STATE")]


def _vokterd_command() -> list[str]:
    beside = Path(sys.executable).with_name("vokterd")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("vokterd")
    if found:
        return [found]
    return [sys.executable, "-m", "agent.daemon"]


def _write_config(root: Path) -> Path:
    config = root / "vokter.toml"
    config.write_text(
        f'state_dir = "{root}/state"\n'
        f'socket_path = "{root}/run/vokterd.sock"\n'
        f'key_store = "{root}/keystore"\n'
        f'zones_dir = "{root}/zones"\n'
        # Root's tour ends with a project's end, on a drill clock the tour sets.
        + (clock_line(root) if os.geteuid() == 0 else "")
    )
    return config


def _wait_for_daemon(client: VokterClient, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise click.ClickException("vokterd exited at start: " + " | ".join(tail))
        try:
            client.call("status")
            return
        except VokterError:
            time.sleep(0.1)
    raise click.ClickException("vokterd did not come up within 30 seconds")


class Tour:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.step = 0

    def say(self, title: str, text: str) -> None:
        self.step += 1
        self.console.print(f"\n[bold cyan]{self.step}. {title}[/]")
        self.console.print(text, highlight=False)

    def command(self, line: str) -> None:
        self.console.print(f"   [dim]$ {line}[/]", highlight=False)


@click.command()
@click.option("--keep", is_flag=True, help="Keep the throwaway enclave directory afterwards.")
def demo(keep: bool) -> None:
    """A narrated tour of Vokter in a throwaway enclave under a temporary directory.

    Starts a real vokterd, creates a project, shows access, the audit trail, encryption and
    the storage rules, walks a project past its end to its certificate of disposal (as root),
    shows the daemon's status and stops it cleanly.

    \b
    Example:
      vokter demo
    """
    console = Console(highlight=False)
    tour = Tour(console)
    root = Path(tempfile.mkdtemp(prefix="vokter-demo-"))
    root.chmod(0o755)  # the demo's member must be able to reach the zones
    config = _write_config(root)
    log = root / "vokterd.log"
    client = VokterClient(root / "run" / "vokterd.sock")
    me = pwd.getpwuid(os.getuid()).pw_name
    users = DemoUsers(console)
    tour.say("A throwaway enclave",
             f"Config, database, socket and project zones all live under {root}.")
    with log.open("wb") as log_file:
        process = subprocess.Popen([*_vokterd_command(), "--config", str(config)],
                                   stdout=log_file, stderr=log_file)
    try:
        _wait_for_daemon(client, process, log)
        tour.say("vokterd is running",
                 f"A real daemon (pid {process.pid}) listens on a Unix socket. It knows who you "
                 "are from the kernel (SO_PEERCRED), not from anything the client says.")
        if _show_project(tour, client, me, console) and os.geteuid() == 0:
            _show_access(tour, client, root, console, users)
            _show_audit(tour, client, root, config, console, users)
            _show_encryption(tour, client, root, config, console, users)
            leader = users.make("vkend")
            if leader is not None:
                show_project_end(tour, _vokter_command(), root, leader, console)
        tour.say("Status", "What an operator checks first:")
        tour.command("vokter status")
        info: dict[str, Any] = client.call("status")
        print_fields([("version", info["version"]), ("store", info["store"]),
                      ("policy", f"{info['policy']['name']} {info['policy']['version']}"),
                      ("uptime", f"{info['uptime_seconds']} s"),
                      ("you are", f"{info['caller']['user']} (uid {info['caller']['uid']})")])
    finally:
        tour.say("Stopping",
                 "SIGTERM: vokterd closes the socket, records its stop in the audit trail "
                 "and exits.")
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        users.remove_all()
        if keep:
            console.print(f"   enclave kept at {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    if code != 0:
        raise click.ClickException(f"vokterd stopped with exit code {code}; see {log}")
    console.print(f"   vokterd stopped cleanly (exit {code}).\n\n[bold green]Tour complete.[/]")


def _show_project(tour: Tour, client: VokterClient, me: str, console: Console) -> bool:
    end = (date.today() + timedelta(days=3 * 365)).isoformat()  # wall-clock: the demo's example
    tour.say("Creating a project",
             "Only the operator (root) creates projects. Each gets a data zone, a key zone for "
             "the linkage key (S5), an export zone and a quarantine, none readable by others.")
    tour.command(f'vokter project create p1234 --title "Diabetes and income" '
                 f"--leader {me} --end-date {end}")
    try:
        created = client.call("project.create", project="p1234", title="Diabetes and income",
                              leader=me, end_date=end)
    except VokterError as refused:
        console.print(f"   refused: {refused.one_line()}")
        console.print("   (run the demo as root to see a project created)")
        return False
    print_fields([(f"{name} zone", path) for name, path in created["zones"].items()])
    for warning in created["warnings"]:
        console.print(f"   [yellow]warning:[/] {warning}")
    tour.say("Listing projects", "Root sees every project; a leader sees only their own.")
    tour.command("vokter project list")
    print_table(client.call("project.list"), PROJECT_COLUMNS, empty="(none)")
    return True


def _vokter_command() -> list[str]:
    beside = Path(sys.executable).with_name("vokter")
    if beside.exists():
        return [str(beside)]
    return [sys.executable, "-m", "cli.main"]


def _run_as(user: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", user, "--", *argv],
                          capture_output=True, text=True, timeout=30, check=False)


class DemoUsers:
    """The tour's Unix users, removed together when the tour ends: removing one midway would
    free its uid for the next, which would then inherit the first one's roles."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._made: list[str] = []

    def make(self, prefix: str) -> str | None:
        name = f"{prefix}{os.getpid()}"
        made = subprocess.run(["useradd", "--no-create-home", "--user-group", name],
                              capture_output=True, text=True, check=False)
        if made.returncode != 0:
            self._console.print(f"   (could not create the demo user {name}: "
                                f"{made.stderr.strip()})")
            return None
        self._made.append(name)
        return name

    def remove_all(self) -> None:
        for name in self._made:
            subprocess.run(["userdel", name], capture_output=True, check=False)
        self._made.clear()


def _show_access(tour: Tour, client: VokterClient, root: Path, console: Console,
                 users: DemoUsers) -> None:
    """Add a member, let them read, remove them, show the kernel refusing the next open."""
    user = users.make("vkdemo")
    if user is None:
        return
    data = root / "zones" / "p1234" / "data" / "cohort.csv"
    data.write_text("id,hba1c,income\n1,48,512000\n")
    tour.say("Adding a member",
             f"The leader grants {user} access, with a reason (A4). POSIX ACLs are set on "
             "every file of the data zone, and the fanotify gate learns of it at once.")
    tour.command(f'vokter member add p1234 {user} --role member --reason "analyses HbA1c"')
    client.call("member.add", project="p1234", user=user, role="member",
                reason="analyses HbA1c")
    tour.command(f"runuser -u {user} -- cat {data}")
    read = _run_as(user, "cat", str(data))
    console.print("   " + (read.stdout.strip().replace("\n", "\n   ") or read.stderr.strip()))
    tour.say("Removing the member",
             "Access ends on the very next open, for every file and every running process; "
             "files the member owns are handed to the leader (A3).")
    tour.command(f'vokter member remove p1234 {user} --reason "left the project"')
    removed = client.call("member.remove", project="p1234", user=user,
                          reason="left the project")
    console.print(f"   access ended in {removed['effective_ms']} ms")
    tour.command(f"runuser -u {user} -- cat {data}")
    denied = _run_as(user, "cat", str(data))
    console.print("   " + (denied.stderr.strip() or "(read succeeded: unexpected)"))


def _show_audit(tour: Tour, client: VokterClient, root: Path, config: Path,
                console: Console, users: DemoUsers) -> None:
    """An auditor exports the project's log and checks it offline; then a forged row fails."""
    auditor = users.make("vkaudit")
    if auditor is None:
        return
    desk = root / "auditor"
    desk.mkdir(mode=0o700)
    entry = pwd.getpwnam(auditor)
    os.chown(desk, entry.pw_uid, entry.pw_gid)
    tour.say("Appointing an auditor",
             "Only the operator appoints auditors (A2). They read the trail, never the data.")
    tour.command(f'vokter member add p1234 {auditor} --role auditor --reason "internal audit"')
    client.call("member.add", project="p1234", user=auditor, role="auditor",
                reason="internal audit")
    vokter = [*_vokter_command(), "--config", str(config)]
    pubkey = desk / "vokter-audit.pub"
    export = desk / "p1234-audit.csv"
    tour.say("The auditor exports the project's log (A5)",
             "Every administrative act and every open of a project file is in it (opens "
             "are merged per program and file each minute, so the member's read arrives "
             "when its minute closes), each event chained to the one before and sealed. "
             "The daemon signs a manifest beside the file, with the checkpoint that "
             "covers it.")
    tour.command("vokter audit pubkey > vokter-audit.pub")
    shown = _run_as(auditor, *vokter, "audit", "pubkey")
    pubkey.write_text(shown.stdout)
    tour.command("vokter audit export --project p1234 --format csv -o p1234-audit.csv")
    exported = _run_as(auditor, *vokter, "audit", "export", "--project", "p1234",
                       "--format", "csv", "-o", str(export))
    console.print("   " + (exported.stdout.strip() or exported.stderr.strip()))
    if exported.returncode != 0:
        return
    tour.say("Checked outside the enclave",
             "With the public key alone: no database, no daemon.")
    tour.command("vokter audit verify-export p1234-audit.csv --pubkey vokter-audit.pub")
    checked = _run_as(auditor, *_vokter_command(), "audit", "verify-export", str(export),
                      "--pubkey", str(pubkey))
    console.print("   " + (checked.stdout.strip() or checked.stderr.strip()))
    rows = export.read_bytes().split(b"\r\n")  # RFC 4180 line ends, kept as they are
    changed = next((n for n, row in enumerate(rows) if b',"ok",' in row), None)
    if changed is not None:
        rows[changed] = rows[changed].replace(b',"ok",', b',"refused",', 1)
        export.write_bytes(b"\r\n".join(rows))
        tour.say("A changed row is caught",
                 "Someone edits one event of the export: the check names it.")
        tour.command("vokter audit verify-export p1234-audit.csv --pubkey vokter-audit.pub")
        forged = _run_as(auditor, *_vokter_command(), "audit", "verify-export",
                         str(export), "--pubkey", str(pubkey))
        console.print("   " + (forged.stderr.strip() or forged.stdout.strip()))


def _show_encryption(tour: Tour, client: VokterClient, root: Path, config: Path,
                     console: Console, users: DemoUsers) -> None:
    """A member encrypts a file in place and decrypts a copy; then root shreds the key."""
    member = users.make("vkcrypt")
    if member is None:
        return
    desk = root / "member"
    plain = root / "zones" / "p1234" / "data" / "linked.csv"
    vokter = [*_vokter_command(), "--config", str(config)]
    desk.mkdir(mode=0o700)
    entry = pwd.getpwnam(member)
    os.chown(desk, entry.pw_uid, entry.pw_gid)
    client.call("member.add", project="p1234", user=member, role="member",
                reason="links the cohort")
    plain.write_text("fnr_masked,hba1c\nA-0001,48\n")
    os.chown(plain, entry.pw_uid, entry.pw_gid)
    tour.say("Encryption at rest (S3, S4)",
             "A member encrypts a file in place with the project's key, which only the "
             "daemon holds. The result is Tink's streaming AEAD (AES-256-GCM-HKDF), readable "
             "in 25 years with any Tink; the plaintext is removed only once the ciphertext "
             "is safely on disk.")
    tour.command(f"vokter encrypt {plain}")
    done = _run_as(member, *vokter, "encrypt", str(plain))
    console.print("   " + (done.stdout.strip() or done.stderr.strip()))
    cipher = plain.with_name(plain.name + ".tink")
    out = desk / "linked.csv"
    tour.command(f"vokter decrypt {cipher} -o linked.csv")
    opened = _run_as(member, *vokter, "decrypt", str(cipher), "-o", str(out))
    console.print("   " + (opened.stdout.strip() or opened.stderr.strip()))
    if out.exists():
        console.print("   " + out.read_text().strip().replace("\n", "\n   "))
    _show_storage_rules(tour, client, root, member, console)
    tour.say("Crypto-shredding",
             "At the end, root destroys the project's keyset: every copy of every file "
             "encrypted under it becomes unreadable at once, wherever it is.")
    tour.command("vokter project shred-key p1234 --yes")
    shredded = subprocess.run([*vokter, "project", "shred-key", "p1234", "--yes"],
                              capture_output=True, text=True, timeout=30, check=False)
    console.print("   " + (shredded.stdout.strip() or shredded.stderr.strip()))
    tour.command(f"vokter decrypt {cipher} -o again.csv")
    refused = _run_as(member, *vokter, "decrypt", str(cipher), "-o", str(desk / "again.csv"))
    console.print("   " + (refused.stderr.strip() or refused.stdout.strip()))


def _synthetic_numbers(count: int) -> list[str]:
    """Synthetic test numbers (month + 80, as the national test data uses): they pass every
    check a real identity number passes, and belong to nobody."""
    first, second = (3, 7, 6, 1, 8, 9, 4, 5, 2), (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
    found: list[str] = []
    for serial in range(1000):
        body = [int(c) for c in f"{serial % 28 + 1:02d}{serial % 12 + 81:02d}85{serial:03d}"]
        k1 = (11 - sum(d * w for d, w in zip(body, first, strict=True)) % 11) % 11
        k2 = (11 - sum(d * w for d, w in zip([*body, k1], second, strict=True)) % 11) % 11
        if k1 < 10 and k2 < 10:
            found.append("".join(map(str, [*body, k1, k2])))
        if len(found) == count:
            break
    return found


def _show_storage_rules(tour: Tour, client: VokterClient, root: Path, member: str,
                        console: Console) -> None:
    """A member saves a table with identity numbers; the daemon encrypts it within a second."""
    tour.say("Storage rules (S4)",
             "The member saves a table with an identity-number column in the data zone (the "
             "numbers are synthetic test numbers). The daemon sees the file closed, finds the "
             "column and, as the policy says, encrypts the file in place, and records a "
             "violation the leader must look at. It never writes a number anywhere.")
    plain = root / "zones" / "p1234" / "data" / "cohort.csv"
    rows = "".join(f"{number};{48 + index % 30}\n"
                   for index, number in enumerate(_synthetic_numbers(40)))
    console.print(f"   (as {member}) save {plain.name}: 40 rows, columns fnr;hba1c")
    started = time.monotonic()
    subprocess.run(["runuser", "-u", member, "--", "sh", "-c", 'cat > "$1"', "sh", str(plain)],
                   input="fnr;hba1c\n" + rows, text=True, timeout=30, check=False)
    sealed = plain.with_name(plain.name + ".tink")
    while not sealed.exists() and time.monotonic() - started < 10:
        time.sleep(0.02)
    if sealed.exists():
        console.print(f"   {plain.name} -> {sealed.name}, "
                      f"{time.monotonic() - started:.2f} s after the file was closed")
    tour.command("vokter violations list p1234")
    listed: list[dict[str, Any]] = client.call("violations.list", project="p1234",
                                               open_only=False)
    print_table(listed, [("id", "ID"), ("rule", "RULE"), ("action", "ACTION"),
                         ("outcome", "OUTCOME"), ("summary", "SUMMARY")],
                empty="No violations.")
