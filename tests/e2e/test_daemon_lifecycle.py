"""vokterd as systemd runs it: notify, SIGTERM, SIGHUP reload, one daemon per state dir."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from agent.policy import default_policy_path
from tests.support.daemon import VOKTER, VOKTERD, RunningDaemon


def _receive(sock: socket.socket, wanted: str, timeout: float = 20.0) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            seen.append(sock.recv(4096).decode())
        except TimeoutError:
            break
        if any(wanted in message for message in seen):
            return seen
    raise AssertionError(f"never received {wanted!r}; got {seen}")


def test_sd_notify_ready_watchdog_stopping(enclave_root: Path) -> None:
    notify_path = enclave_root / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(notify_path))
        daemon = RunningDaemon(enclave_root, env={"NOTIFY_SOCKET": str(notify_path),
                                                  "WATCHDOG_USEC": "400000"})
        daemon.start()
        try:
            assert any(m.startswith("READY=1") for m in _receive(listener, "READY=1"))
            _receive(listener, "WATCHDOG=1")
        finally:
            assert daemon.stop() == 0
        _receive(listener, "STOPPING=1")


def test_sigterm_stops_cleanly_and_is_audited(enclave_root: Path) -> None:
    daemon = RunningDaemon(enclave_root)
    daemon.start()
    assert daemon.stop() == 0
    assert not daemon.socket_path.exists()
    actions = [e["action"] for e in daemon.audit_events()]
    assert actions[0] == "daemon.start" and actions[-1] == "daemon.stop"
    # A restart finds the old trail and continues it.
    daemon.start()
    assert daemon.stop() == 0
    # Each start also records the gate's and the access log's start; the second start marks
    # the gap since the first stop (A5).
    assert [(e["seq"], e["action"]) for e in daemon.audit_events()] == [
        (1, "daemon.start"), (2, "access.gate_start"), (3, "access_log.start"),
        (4, "access_log.stop"), (5, "daemon.stop"),
        (6, "daemon.start"), (7, "access.gate_start"), (8, "access_log.gap"),
        (9, "access_log.start"), (10, "access_log.stop"), (11, "daemon.stop")]


def _policy_with_version(version: str) -> str:
    text = default_policy_path().read_text()
    import re
    return re.sub(r'(?m)^version = "[^"]*"', f'version = "{version}"', text, count=1)


def test_sighup_reloads_policy_and_a_bad_policy_keeps_the_old(enclave_root: Path) -> None:
    policies = enclave_root / "policies"
    policies.mkdir()
    shutil.copy(default_policy_path(), policies / "default.toml")
    daemon = RunningDaemon(enclave_root, extra_config=f'policies_dir = "{policies}"\n')
    daemon.start()
    try:
        (policies / "default.toml").write_text(_policy_with_version("2099.1"))
        daemon.signal(signal.SIGHUP)
        _wait_for_policy(daemon, "2099.1")

        bad = _policy_with_version("2099.2").replace(
            "max_years_after_end = 5", "max_years_after_end = 6")
        assert bad != _policy_with_version("2099.2")
        (policies / "default.toml").write_text(bad)
        daemon.signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if any(r.get("event") == "policy_reload_failed" for r in daemon.log_records()):
                break
            time.sleep(0.1)
        failed = [r for r in daemon.log_records() if r.get("event") == "policy_reload_failed"]
        assert failed and "L3" in json.dumps(failed[0])
        assert _policy_version(daemon) == "2099.1"
        reloads = [(e["outcome"]) for e in daemon.audit_events() if e["action"] == "policy.reload"]
        assert reloads == ["ok", "refused"]
    finally:
        assert daemon.stop() == 0


def _policy_version(daemon: RunningDaemon) -> str:
    return str(json.loads(daemon.vokter("status", "--json").stdout)["policy"]["version"])


def _wait_for_policy(daemon: RunningDaemon, version: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if _policy_version(daemon) == version:
            return
        time.sleep(0.1)
    raise AssertionError(f"policy {version} never came into force")


def test_a_second_daemon_on_the_same_state_dir_refuses_to_start(daemon: RunningDaemon) -> None:
    second = subprocess.run([str(VOKTERD), "--config", str(daemon.config_path)],
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 1
    assert "another vokterd is running" in second.stderr
    assert daemon.vokter("status").returncode == 0  # the first one is undisturbed


def test_daemon_refuses_to_start_with_a_bad_config(enclave_root: Path) -> None:
    daemon = RunningDaemon(enclave_root, extra_config='zone_dir = "/srv/typo"\n')
    with pytest.raises(RuntimeError, match="zone_dir: unknown key"):
        daemon.start(timeout=20)


@pytest.mark.postgres
def test_daemon_runs_on_postgresql(enclave_root: Path, pg_url: str) -> None:
    daemon = RunningDaemon(enclave_root, extra_config=f'database_url = "{pg_url}"\n')
    daemon.start()
    try:
        result = daemon.vokter("project", "create", "p100", "--title", "On PostgreSQL",
                               "--leader", "root", "--end-date", "2031-01-01")
        assert result.returncode == 0, result.stderr
        status = json.loads(daemon.vokter("status", "--json").stdout)
        assert status["store"] == "postgresql"
        assert "vokter_test:***@" in status["database"]
    finally:
        assert daemon.stop() == 0


def test_vokter_demo_runs_the_tour_and_exits_0() -> None:
    result = subprocess.run([str(VOKTER), "demo"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "p1234" in result.stdout and "stopped cleanly (exit 0)" in result.stdout
    assert "Status" in result.stdout
    # A1/A3: the demo's member reads the data, is removed, and the next open is refused.
    assert "1,48,512000" in result.stdout
    assert "access ended in" in result.stdout
    assert "Operation not permitted" in result.stdout or "Permission denied" in result.stdout
    # A5: the auditor's export checks out offline, and an edited row is named.
    assert "OK: " in result.stdout and "whole chain" in result.stdout
    assert "was changed: its fields no longer match its hash" in " ".join(result.stdout.split())
    # S3: a member encrypts and decrypts; after shred-key the file is unreadable.
    flat = " ".join(result.stdout.split())
    assert "linked.csv.tink" in flat and "A-0001,48" in flat
    assert "crypto-shredded" in flat
    # S4: a table with identity numbers is encrypted by the daemon, and the violation shown.
    assert "cohort.csv -> cohort.csv.tink" in flat
    assert "S4 encrypt done identity numbers in plaintext: column fnr: 40 valid of 40 rows" \
        in flat.replace("\t", " ")
    # L1-L8: a project walked past its end, disposed of, and its certificate checked (10).
    assert "p2026: end, dispose, anonymised, close; now closed" in flat
    assert "shifts.csv anonymised, interviews.txt deleted" in flat
    assert "OK: certificate of disposal of p2026" in flat


def test_daemon_start_failure_is_one_line_not_a_traceback(enclave_root: Path) -> None:
    blocker = enclave_root / "state"
    blocker.write_text("a file where the state directory should be")
    result = subprocess.run(
        [str(VOKTERD), "--config", str(RunningDaemon(enclave_root).config_path)],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("vokterd: cannot start")
