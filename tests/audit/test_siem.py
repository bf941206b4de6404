"""The SIEM feed (A5): every committed audit event is one JSON line on the daemon's stderr, for
journald or syslog to forward; the log level never drops one; identity numbers appear nowhere,
neither in the feed nor in the trail nor in what the CLI prints."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from agent.api.dispatch import Caller, RequestContext
from agent.daemon import configure_logging
from agent.services import Services
from tests.api.inprocess import audit_events
from tests.support.daemon import RunningDaemon
from tests.support.users import UserFactory

ALICE = Caller(uid=1001, gid=1001, pid=4242, name="alice")
IDENTITY_NUMBER = "01019912345"
SPLIT_IDENTITY_NUMBER = "010199 12345"
ANY_IDENTITY_NUMBER = re.compile(r"(?<![0-9])[0-9]{6}[ .\-]?[0-9]{5}(?![0-9])")
DIGESTS = ("hash", "head", "prev_hash", "project_prev_hash", "mac")


@pytest.fixture
def daemon_log() -> Iterator[io.StringIO]:
    saved = structlog.get_config()
    buffer = io.StringIO()
    configure_logging(stream=buffer)
    yield buffer
    structlog.configure(**saved)


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = text.splitlines()
    assert lines, "nothing was logged"
    return [json.loads(line) for line in lines]  # every line is one JSON object


def feed(records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    lines = [r for r in records if r.get("logger") == "vokter.audit"]
    assert all(r["event"] == "audit_event" for r in lines)
    by_seq = {int(r["seq"]): r for r in lines}
    assert len(by_seq) == len(lines), "an event was logged twice"
    return by_seq


def text_of_row(row: Any) -> str:
    """A stored event's or log line's text, without its digests (an 11-digit run in a hex
    digest is chance, and masking it would break the digest)."""
    values = row if isinstance(row, dict) else row.model_dump()
    return json.dumps({k: v for k, v in values.items() if k not in DIGESTS}, default=str)


def shows_an_identity_number(log_text: str) -> bool:
    return any(ANY_IDENTITY_NUMBER.search(text_of_row(record))
               for record in json_lines(log_text))


def test_a5_each_committed_event_is_one_json_line_matching_the_trail(
    sqlite_services: Services, daemon_log: io.StringIO
) -> None:
    context = RequestContext(ALICE, sqlite_services)
    with sqlite_services.store.write() as session:
        context.audit(session, "member.add", project="p1", target=f"{IDENTITY_NUMBER}.csv",
                      details={"reason": f"consent {SPLIT_IDENTITY_NUMBER}",
                               "paths": [f"/z/p1/data/{IDENTITY_NUMBER}"]})
        context.audit(session, "project.show", outcome="refused", project=IDENTITY_NUMBER,
                      target=IDENTITY_NUMBER)
    with pytest.raises(RuntimeError), sqlite_services.store.write() as session:
        context.audit(session, "member.remove", project="p1")
        raise RuntimeError("rolled back: no line")
    rows = audit_events(sqlite_services)
    lines = feed(json_lines(daemon_log.getvalue()))
    assert sorted(lines) == [row.seq for row in rows] == [1, 2]
    for row in rows:
        line = lines[row.seq]
        assert (line["action"], line["hash"], line["actor"], line["outcome"]) == (
            row.action, row.hash, row.actor, row.outcome)
        assert (line["project"], line["target"], line["details"]) == (
            row.project_id, row.target, row.details)
    assert "member.remove" not in daemon_log.getvalue()
    assert not shows_an_identity_number(daemon_log.getvalue())
    assert not any(ANY_IDENTITY_NUMBER.search(text_of_row(row)) for row in rows)
    assert rows[1].project_id == "[id-number]"


def test_a5_a_quiet_log_level_never_drops_the_audit_feed(sqlite_services: Services) -> None:
    saved = structlog.get_config()
    buffer = io.StringIO()
    configure_logging("error", stream=buffer)
    try:
        chatter = structlog.get_logger("vokterd.test")
        chatter.info("routine")
        chatter.warning("noticed")
        with sqlite_services.store.write() as session:
            RequestContext(ALICE, sqlite_services).audit(session, "member.add", project="p1")
        chatter.error("broke")
    finally:
        structlog.configure(**saved)
    events = [r["event"] for r in json_lines(buffer.getvalue())]
    assert events == ["audit_event", "broke"]


def test_identity_numbers_are_masked_in_every_daemon_line_but_digests_are_kept(
    daemon_log: io.StringIO,
) -> None:
    digest = "ab" + "12345678901" + "cd" * 25
    log = structlog.get_logger("vokterd.test")
    try:
        raise ValueError(f"cannot read /z/p1/data/{IDENTITY_NUMBER}.csv")
    except ValueError:
        log.exception("scan_failed", path=f"/z/{SPLIT_IDENTITY_NUMBER}", uid=31129954321,
                      found={"names": [IDENTITY_NUMBER]}, hash=digest)
    [record] = json_lines(daemon_log.getvalue())
    assert record["hash"] == digest
    assert record["path"] == "/z/[id-number]" and record["uid"] == "[id-number]"
    assert record["found"] == {"names": ["[id-number]"]}
    assert "ValueError" in record["exception"] and "[id-number].csv" in record["exception"]
    assert IDENTITY_NUMBER not in daemon_log.getvalue()


def test_a5_the_daemons_feed_end_to_end_carries_each_event_once_and_no_identity_number(
    daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    member = unix_users.create()
    said = [
        daemon.vokter("project", "create", "p1", "--title", f"Cohort {IDENTITY_NUMBER}",
                      "--leader", "root", "--end-date", "2030-06-30"),
        daemon.vokter("member", "add", "p1", member.name, "--role", "member",
                      "--reason", f"consent form {SPLIT_IDENTITY_NUMBER}"),
        daemon.vokter("member", "remove", "p1", member.name,
                      "--reason", f"withdrew, see {IDENTITY_NUMBER}"),
        daemon.vokter("project", "show", "p99", user=member.name),
    ]
    assert [r.returncode for r in said] == [0, 0, 0, 1], [r.stderr for r in said]
    assert daemon.stop() == 0
    rows = daemon.audit_events()
    lines = feed(json_lines(daemon.log_path.read_text()))
    assert sorted(lines) == [row["seq"] for row in rows]
    for row in rows:
        line = lines[row["seq"]]
        assert (line["action"], line["hash"], line["project"], line["target"]) == (
            row["action"], row["hash"], row["project_id"], row["target"])
    actions = {row["action"] for row in rows}
    assert {"daemon.start", "project.create", "member.add", "member.remove", "project.show",
            "daemon.stop"} <= actions
    assert not shows_an_identity_number(daemon.log_path.read_text())
    assert not any(ANY_IDENTITY_NUMBER.search(text_of_row(row)) for row in rows)
    for result in said:
        assert not ANY_IDENTITY_NUMBER.search(result.stderr)


def test_a5_a_refusal_never_echoes_an_identity_number_to_the_cli(daemon: RunningDaemon) -> None:
    refused = daemon.vokter("project", "show", IDENTITY_NUMBER)
    assert refused.returncode == 1
    assert IDENTITY_NUMBER not in refused.stderr


def test_a5_a_refusal_naming_an_identity_number_keeps_it_out_of_trail_and_feed(
    daemon: RunningDaemon,
) -> None:
    assert daemon.vokter("project", "show", IDENTITY_NUMBER).returncode == 1
    daemon.stop()
    [refusal] = [r for r in daemon.audit_events() if r["action"] == "project.show"]
    assert (refusal["project_id"], refusal["target"]) == (None, "[id-number]")
    assert IDENTITY_NUMBER not in daemon.log_path.read_text()
    assert not ANY_IDENTITY_NUMBER.search(text_of_row(refusal))
