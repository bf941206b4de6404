"""``audit.export`` through ``dispatch``, on SQLite and PostgreSQL (A5).

The export file and its manifest are real files opened here and passed as descriptors, as the
CLI passes them; each export is then checked offline with the trail's public key alone.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select, text

from agent.audit.export import CHUNK
from agent.audit.manifest import parse_manifest_document
from agent.store.tables import AuditCheckpoint
from tests.api.inprocess import audit_events
from tests.audit.export_support import ROOT, START, Trail, caller, trail
from tests.support.users import UserFactory

__all__ = ["trail"]  # the fixture

@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a5_root_exports_the_whole_trail_and_it_verifies_offline(trail: Trail, fmt: str) -> None:
    trail.append(30)
    trail.append(5, project=None, action="daemon.reload")
    exported = trail.export(ROOT, f"all.{fmt}", fmt=fmt)
    result = exported.result
    assert result["mode"] == "trail" and result["format"] == fmt
    assert result["first_seq"] == 1 and result["last_seq"] == result["through_seq"]
    assert result["count"] == result["through_seq"]  # every event up to the checkpoint
    report = trail.verify(exported)
    assert report.ok, report.problem
    assert report.count == result["count"]
    assert exported.data.stat().st_size == result["bytes"]


def test_a5_an_auditor_exports_their_project_as_its_own_chain(trail: Trail) -> None:
    trail.append(20)
    trail.append(7, project="p9999")  # another project's events stay out
    exported = trail.export(caller(trail.auditor), project="p1234")
    result = exported.result
    assert result["mode"] == "project"
    manifest, _, _ = parse_manifest_document(exported.manifest.read_bytes())
    assert manifest.first is not None and manifest.first.project_seq == 1
    assert manifest.exported_by == trail.auditor.name
    assert manifest.exported_by_uid == trail.auditor.uid
    rows = exported.data.read_text().splitlines()
    assert all('"p9999"' not in line for line in rows)
    assert trail.verify(exported).ok


def test_a5_filters_choose_rows_and_each_row_still_verifies(trail: Trail) -> None:
    trail.append(10, actor="alice")
    trail.clock.advance(timedelta(hours=2))
    trail.append(4, actor="bob", uid=5002)
    trail.append(3, actor="bob", uid=5002, action="file.write")
    by_bob = trail.export(ROOT, "bob.jsonl", fmt="jsonl", project="p1234", user="bob")
    assert by_bob.result["mode"] == "rows" and by_bob.result["count"] == 7
    lines = [json.loads(line) for line in by_bob.data.read_text().splitlines()]
    assert {line["actor"] for line in lines} == {"bob"}
    assert trail.verify(by_bob).ok
    writes = trail.export(ROOT, "writes.csv", action="file.write")
    assert writes.result["count"] == 3
    assert trail.verify(writes).ok


def test_a5_time_filters_are_inclusive_moments_with_a_timezone(trail: Trail) -> None:
    trail.append(3)
    trail.clock.set(START + timedelta(days=1))
    trail.append(4)
    trail.clock.set(START + timedelta(days=2))
    trail.append(5)
    middle = START + timedelta(days=1)
    exported = trail.export(ROOT, "day.csv", project="p1234",
                            since=middle.isoformat(),
                            until=(middle + timedelta(hours=1)).astimezone().isoformat())
    assert exported.result["count"] == 4
    assert trail.verify(exported).ok


@pytest.mark.parametrize(("since", "expected"), [
    ("2026-02-30T00:00:00Z", "since: is not a real time"),
    ("2026-02-03T00:00:00", "since: has no timezone"),
    ("yesterday", "since: is not a real time"),
])
def test_a5_impossible_or_ambiguous_times_are_refused_clearly(
    trail: Trail, since: str, expected: str
) -> None:
    exported = trail.export(ROOT, since=since)
    assert exported.answer["ok"] is False
    assert exported.answer["error"]["message"].startswith(expected)
    assert exported.data.read_bytes() == b""  # nothing was written


def test_a5_a_checkpoint_is_sealed_to_cover_the_last_exported_event(trail: Trail) -> None:
    trail.append(12)
    exported = trail.export(ROOT)
    with trail.services.store.read() as session:
        newest = session.exec(
            select(AuditCheckpoint).order_by(col(AuditCheckpoint.id).desc())).first()
    assert newest is not None and newest.seq == exported.result["through_seq"]
    manifest, _, _ = parse_manifest_document(exported.manifest.read_bytes())
    assert json.loads(manifest.checkpoint["payload"])["seq"] == newest.seq


def test_a5_the_export_is_audited_with_its_filters_and_count(trail: Trail) -> None:
    trail.append(6)
    exported = trail.export(caller(trail.auditor), "p1234.csv", project="p1234",
                            action="file.open")
    last = audit_events(trail.services)[-1]
    assert (last.action, last.outcome, last.actor, last.project_id, last.target) == (
        "audit.export", "ok", trail.auditor.name, "p1234", "p1234.csv")
    details = json.loads(last.details)
    assert details["count"] == exported.result["count"] == 6
    assert details["filters"]["action"] == "file.open"
    assert details["mode"] == "rows"


def test_a5_progress_is_reported_per_chunk_while_rows_stream(trail: Trail) -> None:
    trail.append(CHUNK * 2 + 17)
    exported = trail.export(ROOT, "big.jsonl", fmt="jsonl", project="p1234")
    total = exported.result["count"]
    assert total >= CHUNK * 2 + 17
    assert exported.progress[0] == (0, total)
    assert exported.progress[-1] == (total, total)
    assert [done for done, _ in exported.progress[1:3]] == [CHUNK, 2 * CHUNK]
    assert trail.verify(exported).ok


@pytest.mark.parametrize("who", ["leader", "member"])
def test_a5_only_auditors_and_root_export_a_project(trail: Trail, who: str,
                                                    unix_users: UserFactory) -> None:
    person = trail.leader
    if who == "member":
        person = unix_users.create()
        trail.call(caller(trail.leader), "member.add", project="p1234", user=person.name,
                   role="member", reason="analysis")
    exported = trail.export(caller(person), project="p1234")
    assert exported.answer["ok"] is False
    assert exported.answer["error"]["type"] == "PermissionDenied"
    assert "audit.read" in exported.answer["error"]["message"]
    assert exported.data.read_bytes() == b"" and exported.manifest.read_bytes() == b""
    last = audit_events(trail.services)[-1]
    assert (last.action, last.outcome) == ("audit.export", "refused")


def test_a5_outsiders_learn_nothing_and_no_one_but_root_exports_everything(
    trail: Trail, unix_users: UserFactory
) -> None:
    stranger = caller(unix_users.create())
    hidden = trail.export(stranger, project="p1234")
    assert hidden.answer["error"]["type"] == "NotFound"
    everything = trail.export(caller(trail.auditor))
    assert everything.answer["error"]["type"] == "PermissionDenied"
    assert "only root exports the whole trail" in everything.answer["error"]["message"]


def test_a5_descriptors_must_be_distinct_regular_files_opened_for_writing(
    trail: Trail, tmp_path: Path
) -> None:
    readable = tmp_path / "read-only.csv"
    readable.write_text("")
    directory = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    reading = os.open(readable, os.O_RDONLY)
    writing = os.open(tmp_path / "w.csv", os.O_WRONLY | os.O_CREAT, 0o600)
    read_end, write_end = os.pipe()
    try:
        cases = {
            "was not opened for writing": (reading, writing),
            "is not a regular file": (directory, writing),
            "the manifest file is not a regular file": (writing, write_end),
            "are the same file": (writing, writing),
        }
        for expected, fds in cases.items():
            refused = trail.export(ROOT, fds=fds)
            assert refused.answer["ok"] is False
            assert expected in refused.answer["error"]["message"], refused.answer
            assert audit_events(trail.services)[-1].outcome == "refused"
    finally:
        for fd in (directory, reading, writing, read_end, write_end):
            os.close(fd)
    assert (tmp_path / "w.csv").read_bytes() == b""


def test_a5_a_damaged_trail_is_not_exported_under_a_signature(trail: Trail) -> None:
    trail.append(8)
    with trail.services.store.write() as session:
        session.execute(text("UPDATE audit_event SET target = 'elsewhere' WHERE seq = 5"))
    refused = trail.export(ROOT)
    assert refused.answer["ok"] is False
    assert refused.answer["error"]["type"] == "AuditUnavailable"
    assert "event 5" in refused.answer["error"]["message"]
    assert refused.data.read_bytes() == b""
