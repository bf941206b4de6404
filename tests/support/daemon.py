"""A real vokterd on a temporary config, driven by the real vokter CLI (also as other users)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
VOKTERD = BIN / "vokterd"
_HEX_TOKEN = re.compile(r"[0-9a-f]{16,}")
VOKTER = BIN / "vokter"


class RunningDaemon:
    def __init__(self, root: Path, extra_config: str = "", env: dict[str, str] | None = None,
                 *, database_url: str | None = None, key_store: Path | None = None,
                 policy_changes: dict[str, str] | None = None):
        """``database_url`` and ``key_store`` let two daemons share one database and the audit
        keys that seal its trail (the default: SQLite in the state dir, a key store of its own).
        ``policy_changes``: policy keys (as the shipped file names them) and the TOML values
        they take instead, e.g. ``{"end_action": '"delete"'}``."""
        self.root = root
        self.config_path = root / "vokter.toml"
        self.socket_path = root / "run" / "vokterd.sock"
        self.state_dir = root / "state"
        self.zones_dir = root / "zones"
        self.key_store = key_store or root / "keystore"
        self.log_path = root / "vokterd.log"
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.policy_changes = policy_changes or {}
        database = "" if database_url is None else f"database_url = {json.dumps(database_url)}\n"
        if "policies_dir" not in extra_config:
            extra_config += f'policies_dir = "{self.own_policies()}"\n'
        self.config_path.write_text(
            f'state_dir = "{self.state_dir}"\n'
            f'socket_path = "{self.socket_path}"\n'
            f'key_store = "{self.key_store}"\n'
            f'zones_dir = "{self.zones_dir}"\n' + database + extra_config
        )
        self.config_path.chmod(0o644)

    def own_policies(self) -> Path:
        """The shipped policy, with two changes that keep one test off another's things:
        portable media are looked for under this enclave's own ``media`` folder, not the
        host's /media, /run/media and /mnt, which may hold the machine's own mounts (S2); and
        stray copies only in /home, not in /tmp and /var/tmp, where other tests' enclaves
        are (S1)."""
        folder = self.root / "policies"
        folder.mkdir(exist_ok=True)
        shipped = (Path(__file__).parents[2] / "policies" / "default.toml").read_text()
        media = self.root / "media"
        media.mkdir(exist_ok=True)
        replaced = {"portable_media_mount_points": f'["{media}"]',
                    "copy_scan_paths": '["/home"]', **self.policy_changes}
        lines = []
        for line in shipped.splitlines():
            key = line.split("=", 1)[0].strip()
            lines.append(f"{key} = {replaced[key]}" if key in replaced else line)
        (folder / "default.toml").write_text("\n".join(lines) + "\n")
        return folder

    def start(self, timeout: float = 30.0) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(VOKTERD), "--config", str(self.config_path)],
                stdout=log, stderr=log, env=self.env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vokterd exited at start:\n{self.log_path.read_text()}")
            if self.socket_path.exists() and self.vokter("status").returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"vokterd did not come up:\n{self.log_path.read_text()}")

    def vokter(self, *args: str, user: str | None = None, timeout: float = 60.0,
               input: str | None = None) -> subprocess.CompletedProcess[str]:
        command = [str(VOKTER), "--config", str(self.config_path), *args]
        if user is not None:
            command = ["runuser", "-u", user, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              input=input, env={**self.env, "COLUMNS": "200"})

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
        return self.process.returncode

    def audit_events(self) -> list[dict[str, Any]]:
        """The trail as stored, read straight from the database file."""
        with sqlite3.connect(f"file:{self.state_dir / 'vokter.db'}?mode=ro", uri=True) as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("SELECT * FROM audit_event ORDER BY seq")]

    def identity_numbers_recorded(self) -> int:
        """Valid identity numbers in everything the daemon wrote about what it saw: its log,
        the audit trail, the violations and datasets. Must be 0 (S4): the validator itself
        reads them, so a masked number or an account number does not count."""
        from datetime import date

        from agent.storage.evidence import scan_text

        produced = [self.log_path.read_text(errors="replace")] if self.log_path.exists() else []
        database = self.state_dir / "vokter.db"
        if database.exists():
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
                tables = {name for (name,) in db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")}
                for table in ("audit_event", "violation", "dataset"):
                    if table in tables:
                        produced += [json.dumps(row) for row in
                                     db.execute(f"SELECT * FROM {table}")]  # noqa: S608
        # Hashes, MACs and key ids are long lowercase hex: about one in thirty holds 11 digits
        # in a row, and one in a hundred of those passes the checks. They are not numbers
        # given to people (the masking leaves them too), so they are taken out first.
        produced = [_HEX_TOKEN.sub(lambda m: m.group() if m.group().isdigit() else "~", text)
                    for text in produced]
        return scan_text(produced, today=date.today()).hits  # wall-clock: the daemon's day

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                records.append(json.loads(line))
        return records


def make_enclave_root() -> Path:
    """A temporary enclave root every test user can traverse (pytest's tmp_path is 0700)."""
    root = Path(tempfile.mkdtemp(prefix="vokter-e2e-"))
    root.chmod(0o755)
    return root


def remove_enclave_root(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """The output of a command that must succeed; its streams when it did not."""
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def one_line_failure(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The error of a command that must fail with ``code`` and exactly one line on stderr."""
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]
