"""The access gate on the real kernel, with real users opening real files through ``runuser``.

Zone directories are 0777 and files 0666, so the only thing that can say no is the gate.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.access.gate import AccessGate, DeniedOpen
from agent.access.live import GateViewHolder
from agent.access.plan import (
    EMPTY_VIEW,
    GateView,
    ProjectZones,
    ZoneKind,
    build_gate_view,
    plan_access,
)
from agent.access.rules import Grant
from tests.support import users
from tests.support.users import UserFactory

pytestmark = pytest.mark.root

DENIED = "Operation not permitted"


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def run_as(user: str | None, *command: str) -> subprocess.CompletedProcess[str]:
    """Run ``command`` as ``user`` (root if None) in a process that is not the gate's."""
    prefix = ["runuser", "-u", user, "--"] if user else []
    return subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=30)


def cat_as(user: str | None, path: Path | str) -> subprocess.CompletedProcess[str]:
    return run_as(user, "cat", str(path))


def open_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)
    return path


def put(path: Path, text: str) -> Path:
    open_dir(path.parent)
    path.write_text(text)
    path.chmod(0o666)
    return path


@dataclass
class Project:
    zones: ProjectZones

    def path(self, kind: ZoneKind) -> Path:
        return Path(self.zones.paths()[kind])

    def view(self, *grants: tuple[users.TestUser, str]) -> GateView:
        listed = [Grant(user.name, user.uid, role) for user, role in grants]
        return build_gate_view([plan_access(self.zones, listed)])


def make_project(root: Path, name: str) -> Project:
    base = root / name
    base.mkdir(mode=0o755)
    paths = {kind: str(open_dir(base / kind.value)) for kind in ZoneKind}
    return Project(ProjectZones(name, None, paths[ZoneKind.DATA], paths[ZoneKind.KEY],
                                paths[ZoneKind.EXPORT], paths[ZoneKind.QUARANTINE]))


@dataclass
class Recorded:
    denied: list[DeniedOpen] = field(default_factory=list)
    attrib: list[tuple[str, int]] = field(default_factory=list)
    problems: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@dataclass
class Env:
    project: Project
    member: users.TestUser
    outsider: users.TestUser
    views: GateViewHolder
    gate: AccessGate
    seen: Recorded

    @property
    def data(self) -> Path:
        return self.project.path(ZoneKind.DATA)


@pytest.fixture
def env(enclave_root: Path, unix_users: UserFactory) -> Iterator[Env]:
    project = make_project(enclave_root, "p1234")
    member, outsider = unix_users.create("vkm"), unix_users.create("vko")
    put(project.path(ZoneKind.DATA) / "old" / "f.csv", "old data\n")
    put(project.path(ZoneKind.KEY) / "linkage.csv", "key\n")
    views = GateViewHolder(project.view((member, "member")))
    seen = Recorded()
    gate = AccessGate(views, on_denied=seen.denied.append,
                      on_attrib=lambda path, pid: seen.attrib.append((path, pid)),
                      on_problem=lambda kind, details: seen.problems.append((kind, details)))
    gate.start()
    try:
        yield Env(project, member, outsider, views, gate, seen)
    finally:
        gate.stop()


def revoke_everyone(env: Env) -> None:
    env.views.publish(env.project.view())


# --- A1: the access list is what opens files, and a removal holds at once -------------------


def test_a1_admitted_member_reads_and_outsider_is_denied(env: Env) -> None:
    target = env.data / "old" / "f.csv"
    assert cat_as(env.member.name, target).stdout == "old data\n"
    refused = cat_as(env.outsider.name, target)
    assert refused.returncode != 0
    assert DENIED in refused.stderr
    assert refused.stdout == ""
    # Listing a zone directory is an open too.
    assert DENIED in run_as(env.outsider.name, "ls", str(env.data)).stderr
    assert run_as(env.member.name, "ls", str(env.data)).stdout.split() == ["old"]


def test_a1_removed_member_is_denied_on_next_open(env: Env) -> None:
    target = env.data / "old" / "f.csv"
    assert cat_as(env.member.name, target).returncode == 0
    revoke_everyone(env)
    refused = cat_as(env.member.name, target)
    assert DENIED in refused.stderr
    assert refused.stdout == ""


def test_a1_removal_covers_new_subdirectories_made_after_the_gate_started(env: Env) -> None:
    before = env.gate.marked_directories
    deep = env.data / "a" / "b" / "c"
    made = run_as(env.member.name, "sh", "-c", f'mkdir -p "{deep}" && echo new > "{deep}/f"')
    assert made.returncode == 0, made.stderr
    wait_until(lambda: env.gate.marked_directories == before + 3)
    assert cat_as(env.member.name, deep / "f").stdout == "new\n"
    revoke_everyone(env)
    assert DENIED in cat_as(env.member.name, deep / "f").stderr


def test_a1_directory_moved_into_a_zone_is_gated(env: Env, enclave_root: Path) -> None:
    outside = put(enclave_root / "staging" / "in" / "g.csv", "moved\n").parent.parent
    before = env.gate.marked_directories
    assert run_as(None, "mv", str(outside), str(env.data / "staging")).returncode == 0
    wait_until(lambda: env.gate.marked_directories == before + 2)
    assert DENIED in cat_as(env.outsider.name, env.data / "staging" / "in" / "g.csv").stderr


def test_a1_running_shell_inside_the_zone_is_denied_after_removal(
    env: Env, enclave_root: Path
) -> None:
    put(env.data / "sub" / "f", "secret\n")
    fifo = enclave_root / "go"
    os.mkfifo(fifo, 0o666)
    fifo.chmod(0o666)
    script = f'cd "{env.data / "sub"}" && cat f && read line < "{fifo}" && cat f'
    shell = subprocess.Popen(["runuser", "-u", env.member.name, "--", "sh", "-c", script],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert shell.stdout is not None
        assert shell.stdout.readline() == "secret\n"  # admitted, and now waiting on the fifo
        revoke_everyone(env)
        with fifo.open("w") as go:
            go.write("go\n")
        out, err = shell.communicate(timeout=30)
    finally:
        shell.kill()
        shell.wait()
    assert out == ""
    assert DENIED in err
    assert shell.returncode != 0


def test_s6_member_is_denied_in_the_key_zone_and_nobody_but_root_reads_quarantine(
    env: Env,
) -> None:
    assert DENIED in cat_as(env.member.name, env.project.path(ZoneKind.KEY) / "linkage.csv").stderr
    put(env.project.path(ZoneKind.QUARANTINE) / "held.csv", "held\n")
    assert DENIED in cat_as(env.member.name,
                            env.project.path(ZoneKind.QUARANTINE) / "held.csv").stderr
    assert cat_as(None, env.project.path(ZoneKind.QUARANTINE) / "held.csv").stdout == "held\n"


def test_a1_executing_a_program_in_a_zone_is_an_open_and_is_gated(env: Env) -> None:
    program = env.data / "tool"
    program.write_bytes(Path("/bin/true").read_bytes())
    program.chmod(0o755)
    assert run_as(env.member.name, str(program)).returncode == 0
    refused = run_as(env.outsider.name, str(program))
    assert refused.returncode != 0
    assert DENIED in refused.stderr


# --- who passes without a grant ----------------------------------------------------------------


def test_root_passes_in_every_zone(env: Env) -> None:
    revoke_everyone(env)
    assert cat_as(None, env.data / "old" / "f.csv").stdout == "old data\n"
    assert cat_as(None, env.project.path(ZoneKind.KEY) / "linkage.csv").stdout == "key\n"


def test_paths_outside_zones_are_not_gated(env: Env, enclave_root: Path) -> None:
    beside = put(enclave_root / "p1234" / "README", "public\n")
    other = put(enclave_root / "elsewhere" / "notes.txt", "notes\n")
    decisions = env.gate.decisions
    assert cat_as(env.outsider.name, beside).stdout == "public\n"
    assert cat_as(env.outsider.name, other).stdout == "notes\n"
    assert env.gate.decisions == decisions  # nothing outside a zone even reached the gate


def test_the_daemons_own_opens_pass_unexamined(env: Env) -> None:
    env.views.publish(EMPTY_VIEW)  # no zone at all: the marks go, then come back
    env.views.publish(env.project.view())  # zones, but nobody admitted
    decisions = env.gate.decisions
    results: list[str] = []
    worker = threading.Thread(
        target=lambda: results.append((env.data / "old" / "f.csv").read_text()))
    worker.start()
    worker.join(timeout=10)
    put(env.data / "new" / "mine.csv", "written by the daemon\n")
    assert (env.data / "new" / "mine.csv").read_text() == "written by the daemon\n"
    assert sorted(os.listdir(env.data)) == ["new", "old"]
    assert results == ["old data\n"]
    assert env.gate.decisions == decisions
    assert env.seen.denied == []


# --- what the gate reports ------------------------------------------------------------------


def test_a_denied_open_is_reported_with_uid_pid_and_program(env: Env) -> None:
    target = env.data / "old" / "f.csv"
    refused = run_as(env.outsider.name, "sh", "-c", 'echo $$; exec cat "$1"', "sh", str(target))
    assert DENIED in refused.stderr
    wait_until(lambda: len(env.seen.denied) == 1)
    (denied,) = env.seen.denied
    assert denied.path == str(target)
    assert denied.uid == env.outsider.uid
    assert denied.pid == int(refused.stdout.split()[0])
    assert denied.program == "cat"
    assert denied.zone.kind is ZoneKind.DATA
    assert denied.zone.project == "p1234"
    assert env.gate.denials == 1


def test_attribute_changes_by_others_are_reported_with_path_and_pid(env: Env) -> None:
    target = env.data / "old" / "f.csv"
    os.chmod(target, 0o640)  # the daemon's own change is not drift
    changed = run_as(None, "sh", "-c", 'echo $$; exec chmod 600 "$1" "$2"', "sh", str(target),
                     str(env.data / "old"))
    pid = int(changed.stdout.split()[0])
    wait_until(lambda: len(env.seen.attrib) >= 2)
    time.sleep(0.2)
    assert sorted(env.seen.attrib) == sorted([(str(target), pid), (str(env.data / "old"), pid)])


def test_attribute_changes_are_reported_under_the_new_name_after_a_rename(env: Env) -> None:
    assert run_as(None, "mv", str(env.data / "old"), str(env.data / "renamed")).returncode == 0
    moved = env.data / "renamed" / "f.csv"
    # One queue carries both events in order: the move is learnt before the chmod is reported.
    assert run_as(None, "chmod", "600", str(moved)).returncode == 0
    wait_until(lambda: any(path == str(moved) for path, _ in env.seen.attrib))
    assert all("/old" not in path for path, _ in env.seen.attrib)


# --- the view changes and the gate stops ---------------------------------------------------


def test_a_zone_published_later_is_gated_before_publish_returns(
    env: Env, enclave_root: Path
) -> None:
    second = make_project(enclave_root, "p2000")
    put(second.path(ZoneKind.DATA) / "x.csv", "x\n")
    assert cat_as(env.outsider.name, second.path(ZoneKind.DATA) / "x.csv").returncode == 0
    env.views.publish(build_gate_view([
        plan_access(env.project.zones, [Grant(env.member.name, env.member.uid, "member")]),
        plan_access(second.zones, []),
    ]))
    assert DENIED in cat_as(env.outsider.name, second.path(ZoneKind.DATA) / "x.csv").stderr


def test_a_zone_that_leaves_the_view_loses_its_marks(env: Env) -> None:
    assert env.gate.marked_directories == 5  # four zones and data/old
    env.views.publish(EMPTY_VIEW)
    assert env.gate.marked_directories == 0
    decisions = env.gate.decisions
    assert cat_as(env.outsider.name, env.data / "old" / "f.csv").stdout == "old data\n"
    assert env.gate.decisions == decisions


def test_stop_ends_gating_and_the_kernel_drops_the_marks(env: Env) -> None:
    target = env.data / "old" / "f.csv"
    assert DENIED in cat_as(env.outsider.name, target).stderr
    env.gate.stop()
    assert cat_as(env.outsider.name, target).stdout == "old data\n"
    assert env.gate.marked_directories == 0
    env.views.publish(env.project.view())  # a stopped gate ignores new views
    assert env.gate.marked_directories == 0
