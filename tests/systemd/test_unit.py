"""The systemd unit and tmpfiles entry that run vokterd on an enclave host.

These tests run systemd's own tools against the files in ``systemd/``: the sandbox score the
unit promises, that systemd accepts every line of it, and that the tmpfiles entry creates the
directories the unit's ``ReadWritePaths=`` needs with the modes the key store and the state
directory rely on. The tools come from the Debian package ``systemd``; a machine without it
fails here with that name rather than skipping, so a missing package cannot pass for a good unit.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "vokterd.service"
TMPFILES = REPO / "systemd" / "vokter.tmpfiles"
DAEMON = "/opt/vokter/bin/vokterd"
#: systemd-analyze's score; 0.3 of it is CAP_SYS_PTRACE, without which the daemon cannot name
#: the program in the access log (A5) or find a removed member's processes (A3).
MAX_EXPOSURE = 2.2

#: The capabilities the daemon needs, and no others (see the comments in the unit).
NEEDED_CAPABILITIES = {
    "CAP_CHOWN",
    "CAP_FOWNER",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_SYS_ADMIN",
    "CAP_KILL",
    "CAP_SYS_PTRACE",
}

#: path -> mode every enclave host must have before vokterd starts (owner root:root).
EXPECTED_DIRS = {
    "run/vokter": 0o755,
    "var/lib/vokter": 0o700,
    "etc/vokter/keystore": 0o700,
    "srv/vokter": 0o711,
}

_ENV = {**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "", "SYSTEMD_LOG_COLOR": "0"}


def _tool(name: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/bin/{name}", f"/bin/{name}") if Path(p).exists()), None
    )
    if path is None:
        pytest.fail(
            f"{name} not found: install the Debian package 'systemd' (apt-get install systemd)"
        )
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, env=_ENV, timeout=120, check=False)


def _directives(path: Path) -> list[tuple[int, str, str]]:
    """(line index, key, value) for every assignment in a unit file, comments skipped."""
    found = []
    for index, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        text = line.strip()
        if not text or text.startswith(("#", ";", "[")):
            continue
        key, sep, value = text.partition("=")
        assert sep, f"{path.name}:{index + 1}: not a Key=Value line: {line!r}"
        found.append((index, key.strip(), value.strip()))
    return found


def _values(key: str) -> list[str]:
    return [value for _, k, value in _directives(UNIT) if k == key]


def _only(key: str) -> str:
    values = _values(key)
    assert len(values) == 1, f"{key}= expected once in the unit, found {values}"
    return values[0]


# --- what systemd itself says -------------------------------------------------------------


def test_security_exposure_stays_at_or_below_2_2() -> None:
    result = _run(_tool("systemd-analyze"), "security", "--offline=true", "--no-pager", str(UNIT))
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match, f"no exposure figure in systemd-analyze output:\n{result.stdout}{result.stderr}"
    exposure = float(match.group(1))
    unmet = "\n".join(line for line in result.stdout.splitlines() if "✗" in line)
    assert exposure <= MAX_EXPOSURE, f"exposure {exposure} > {MAX_EXPOSURE}; open items:\n{unmet}"


def test_verify_complains_only_about_the_daemon_binary_not_installed_here() -> None:
    result = _run(_tool("systemd-analyze"), "verify", "--man=no", "--generators=no", str(UNIT))
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    unexpected = [line for line in complaints if DAEMON not in line]
    assert not unexpected, "systemd-analyze verify:\n" + "\n".join(complaints)
    if not Path(DAEMON).exists():
        assert complaints, "verify should name the missing daemon binary; did it check at all?"


def test_verify_is_silent_once_the_daemon_binary_exists(tmp_path: Path) -> None:
    # The same unit with an executable that exists everywhere: any output now is a real
    # problem in the unit (unknown key, bad value, key in the wrong section...).
    text = UNIT.read_text(encoding="utf-8")
    assert DAEMON in text
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(DAEMON, "/bin/true"), encoding="utf-8")
    result = _run(_tool("systemd-analyze"), "verify", "--man=no", "--generators=no", str(copy))
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and not output, f"systemd-analyze verify:\n{output}"


# --- contracts with the daemon ------------------------------------------------------------


def test_unit_is_type_notify_with_main_pid_notify_and_a_watchdog() -> None:
    assert _only("Type") == "notify"
    assert _only("NotifyAccess") == "main"
    assert _only("WatchdogSec")
    assert _only("ExecStart") == f"{DAEMON} --config /etc/vokter/vokter.toml"


def test_reload_sends_sighup_to_the_daemon() -> None:
    assert _only("ExecReload") == "/bin/kill -HUP $MAINPID"


def test_bounding_set_holds_exactly_the_needed_capabilities() -> None:
    granted = {cap for value in _values("CapabilityBoundingSet") for cap in value.split()}
    assert granted == NEEDED_CAPABILITIES
    assert not _values("AmbientCapabilities"), "root service: ambient capabilities do nothing"


def test_every_capability_has_a_comment_above_it_saying_why() -> None:
    lines = UNIT.read_text(encoding="utf-8").splitlines()
    entries = [(i, v) for i, k, v in _directives(UNIT) if k == "CapabilityBoundingSet"]
    assert entries
    for index, value in entries:
        caps = value.split()
        assert len(caps) == 1, f"line {index + 1}: one capability per line, each with its reason"
        block = []
        above = index - 1
        while above >= 0 and lines[above].lstrip().startswith("#"):
            block.append(lines[above])
            above -= 1
        assert block, f"line {index + 1}: {caps[0]} has no comment above it"
        assert any(f"{caps[0]}:" in line for line in block), (
            f"line {index + 1}: the comment above does not say why {caps[0]} is needed"
        )


def test_system_call_filter_allows_fanotify_and_not_mount_calls() -> None:
    allowed = " ".join(v for v in _values("SystemCallFilter") if not v.startswith("~")).split()
    assert "@system-service" in allowed
    assert {"fanotify_init", "fanotify_mark"} <= set(allowed)
    # An unmount inside the unit's mount namespace would not reach the host (S2 goes via PID 1).
    assert not {"@mount", "umount", "umount2", "mount"} & set(allowed)
    assert _only("SystemCallArchitectures") == "native"


def test_stray_copy_scan_can_see_home_and_the_real_tmp() -> None:
    # S1: the scan reads /home, /tmp and /var/tmp of the host, not private or empty ones.
    assert _values("PrivateTmp") in ([], ["no"], ["false"])
    assert _values("ProtectHome") in ([], ["read-only"])


def test_processes_of_removed_members_stay_visible() -> None:
    # A3: the cleanup finds other users' processes in /proc.
    assert _values("ProtectProc") in ([], ["default"])
    assert _values("PrivatePIDs") == []


def test_daemon_can_write_state_socket_key_store_and_zones() -> None:
    assert _only("ProtectSystem") == "strict"
    writable = " ".join(_values("ReadWritePaths")).split()
    for path in EXPECTED_DIRS:
        assert f"/{path}" in writable, f"/{path} missing from ReadWritePaths="


def test_files_the_daemon_creates_are_private_by_default() -> None:
    assert _only("UMask") == "0077"


# --- tmpfiles -------------------------------------------------------------------------------


def test_tmpfiles_entry_declares_the_runtime_and_state_directories() -> None:
    entries = {}
    for line in TMPFILES.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if fields and not fields[0].startswith("#"):
            entries[fields[1]] = fields
    for path, mode in EXPECTED_DIRS.items():
        fields = entries.get(f"/{path}")
        assert fields, f"/{path} not in {TMPFILES.name}"
        assert fields[0] == "d" and fields[2] == f"{mode:04o}" and fields[3:5] == ["root", "root"]


def test_tmpfiles_creates_directories_with_their_modes_and_root_owner(tmp_path: Path) -> None:
    # Installed the way docs/operations.md says, then applied under a scratch root.
    conf = tmp_path / "etc" / "tmpfiles.d" / "vokter.conf"
    conf.parent.mkdir(parents=True)
    shutil.copyfile(TMPFILES, conf)
    command = [_tool("systemd-tmpfiles"), "--create", f"--root={tmp_path}", "vokter.conf"]
    if os.geteuid() != 0:
        # Without root, chown to root is refused; in a user namespace our uid is root.
        command = ["unshare", "--map-root-user", *command]
    result = _run(*command)
    assert result.returncode == 0, (
        f"{' '.join(command)} failed ({result.returncode}): {result.stderr}"
        + ("\nrun as root or allow unprivileged user namespaces" if os.geteuid() else "")
    )
    for path, mode in EXPECTED_DIRS.items():
        info = (tmp_path / path).stat()
        assert stat.S_ISDIR(info.st_mode), f"/{path} is not a directory"
        assert stat.S_IMODE(info.st_mode) == mode, f"/{path}: mode {stat.S_IMODE(info.st_mode):o}"
        # Root of the host, or the uid mapped to root when run without it.
        assert (info.st_uid, info.st_gid) == (os.geteuid(), os.getegid()), f"/{path}: owner"
