"""Exports made in process, through ``dispatch``, into real files passed as descriptors (the
way the CLI passes them), for the export and offline-check tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.api.dispatch import Attachments, Caller, dispatch
from agent.api.offline import manifest_path_for, verify_export
from agent.audit.chain import EventFields
from agent.audit.export_check import ExportReport
from agent.audit.trail import append_events
from agent.clock import FakeClock
from agent.operations import OPERATIONS
from agent.services import Services
from tests.support.users import TestUser, UserFactory

ROOT = Caller(uid=0, gid=0, pid=1, name="root")
START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def caller(user: TestUser) -> Caller:
    return Caller(uid=user.uid, gid=user.gid, pid=4242, name=user.name)


@dataclass
class Export:
    answer: dict[str, Any]
    data: Path
    manifest: Path
    progress: list[tuple[int, int]]

    @property
    def result(self) -> dict[str, Any]:
        assert self.answer["ok"], self.answer
        return dict(self.answer["result"])


class Trail:
    """A project with a leader and an auditor, and a trail of events to export."""

    def __init__(self, services: Services, folder: Path, leader: TestUser,
                 auditor: TestUser) -> None:
        self.services, self.folder = services, folder
        self.leader, self.auditor = leader, auditor
        self.pubkey = folder / "vokter-audit.pub"
        self.pubkey.write_text(services.audit_keys.public_pem)

    @property
    def clock(self) -> FakeClock:
        assert isinstance(self.services.clock, FakeClock)
        return self.services.clock

    def call(self, who: Caller, op: str, **args: Any) -> dict[str, Any]:
        answer = dispatch({"op": op, "args": args}, who, self.services, OPERATIONS)
        assert answer["ok"], answer
        return dict(answer["result"])

    def append(self, count: int, *, actor: str = "alice", uid: int = 5001,
               action: str = "file.open", project: str | None = "p1234") -> None:
        with self.services.store.write() as session:
            batch = [EventFields(time=self.clock.now(), actor_uid=uid, actor=actor,
                                 action=action, outcome="ok", project_id=project,
                                 target=f"/zones/{project}/data/f{n}.csv",
                                 details={"n": n, "note": 'a "quoted", comma\r\nand a break'})
                     for n in range(count)]
            append_events(session, batch, mac_key=self.services.audit_keys.mac_key)

    def export(self, who: Caller, name: str = "audit.csv", *, fmt: str = "csv",
               fds: tuple[int, ...] | None = None, **args: Any) -> Export:
        data = self.folder / name
        manifest = manifest_path_for(data)
        opened = [os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                  for path in (data, manifest)]
        progress: list[tuple[int, int]] = []
        try:
            answer = dispatch(
                {"op": "audit.export", "args": {"format": fmt, "file_name": name, **args}},
                who, self.services, OPERATIONS,
                Attachments(tuple(opened) if fds is None else fds,
                            lambda done, total: progress.append((done, total))))
        finally:
            for fd in opened:
                os.close(fd)
        return Export(answer, data, manifest, progress)

    def verify(self, export: Export) -> ExportReport:
        return verify_export(export.data, self.pubkey, export.manifest)


@pytest.fixture
def trail(services: Services, unix_users: UserFactory, tmp_path: Path) -> Iterator[Trail]:
    leader, auditor = unix_users.create("vkl"), unix_users.create("vka")
    built = Trail(services, tmp_path, leader, auditor)
    built.call(ROOT, "project.create", project="p1234", title="Shift work", leader=leader.name,
               end_date="2030-06-30")
    built.call(ROOT, "member.add", project="p1234", user=auditor.name, role="auditor",
               reason="the institution's audit")
    yield built
