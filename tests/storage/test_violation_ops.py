"""``vokter violations list|resolve`` on a real vokterd: the leader sees and resolves their
project's violations, the auditor sees them, root sees everything (the host's own findings
too), and nobody else sees any."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from agent.api.dispatch import Caller, RequestContext
from agent.clock import FakeClock
from agent.storage.findings import NOTHING_DONE, Finding, Response
from agent.storage.violations import record_finding
from agent.store import Store
from tests.storage.d2_enclave import PROJECT, Enclave, add_npr, make_enclave
from tests.support.daemon import RunningDaemon, ok
from tests.support.daemon import one_line_failure as refused
from tests.support.services import build_services
from tests.support.users import UserFactory


@pytest.fixture
def enclave(daemon: RunningDaemon, unix_users: UserFactory) -> Iterator[Enclave]:
    yield make_enclave(daemon, unix_users)


def ids(rows: list[dict[str, object]]) -> list[object]:
    return [row["id"] for row in rows]


def test_d2_leader_auditor_and_root_see_a_projects_violations_and_no_one_else(
    enclave: Enclave,
) -> None:
    [violation] = add_npr(enclave)["violations"]
    for user in (enclave.leader, enclave.auditor, None):
        assert ids(enclave.json("violations", "list", PROJECT, user=user)) == [violation]
    for user in (enclave.leader, enclave.auditor):
        assert ids(enclave.json("violations", "list", user=user)) == [violation]
    # Root's listing holds every project's and the host's own (the machine may have media).
    assert violation in ids(enclave.json("violations", "list"))
    line = refused(enclave.vokter("violations", "list", PROJECT, user=enclave.member))
    assert "as member of p4711 you may not do this (violation.read)" in line
    assert f"no project {PROJECT}" in refused(
        enclave.vokter("violations", "list", PROJECT, user=enclave.outsider))
    for user in (enclave.member, enclave.outsider):
        assert enclave.json("violations", "list", user=user) == []


def test_d2_the_leader_resolves_with_a_note_and_only_once(enclave: Enclave) -> None:
    [violation] = add_npr(enclave)["violations"]
    note = "column kommune deleted; NPR asked to re-deliver without it"
    done = ok(enclave.vokter("violations", "resolve", str(violation), "--note", note,
                             user=enclave.leader))
    assert done.strip() == f"resolved violation {violation} (D2 in {PROJECT})"
    [row] = enclave.json("violations", "list", PROJECT, user=enclave.auditor)
    assert (row["status"], row["resolved_by"], row["resolution_note"]) == (
        "resolved", enclave.leader.name, note)
    assert enclave.json("violations", "list", PROJECT, "--open") == []

    again = refused(enclave.vokter("violations", "resolve", str(violation), "--note", "again",
                                   user=enclave.leader))
    assert f"violation {violation} was already resolved on" in again
    assert f"by {enclave.leader.name}" in again

    [event] = [e for e in enclave.daemon.audit_events() if e["action"] == "violation.resolved"]
    assert (event["project_id"], event["rule"], event["actor"]) == (
        PROJECT, "D2", enclave.leader.name)
    assert json.loads(event["details"])["note"] == note


def test_d2_member_auditor_and_outsider_cannot_resolve(enclave: Enclave) -> None:
    [violation] = add_npr(enclave)["violations"]
    member = refused(enclave.vokter("violations", "resolve", str(violation), "--note", "fixed",
                                    user=enclave.member))
    assert f"as member of {PROJECT} you may not resolve its violations" in member
    auditor = refused(enclave.vokter("violations", "resolve", str(violation), "--note", "ok",
                                     user=enclave.auditor))
    assert f"as auditor of {PROJECT} you may not resolve its violations" in auditor
    outsider = refused(enclave.vokter("violations", "resolve", str(violation), "--note", "ok",
                                      user=enclave.outsider))
    assert f"no violation {violation}" in outsider
    assert f"no violation {violation + 1}" in refused(
        enclave.vokter("violations", "resolve", str(violation + 1), "--note", "ok"))
    [row] = enclave.json("violations", "list", PROJECT, "--open")
    assert row["status"] == "open"


def test_d2_a_resolution_note_is_one_line_of_1_to_1000_characters(enclave: Enclave) -> None:
    [violation] = add_npr(enclave)["violations"]
    for note in ("   ", "x" * 1001, "first line\nsecond line"):
        refused(enclave.vokter("violations", "resolve", str(violation), "--note", note,
                               user=enclave.leader))
    assert enclave.json("violations", "list", PROJECT, "--open")[0]["id"] == violation
    ok(enclave.vokter("violations", "resolve", str(violation), "--note", "y" * 1000,
                      user=enclave.leader))


def test_d2_a_listing_in_a_pipe_is_one_tab_separated_line_per_violation(
    enclave: Enclave,
) -> None:
    [violation] = add_npr(enclave)["violations"]
    plain = ok(enclave.vokter("violations", "list", PROJECT, user=enclave.leader))
    [line] = plain.splitlines()
    cells = line.split("\t")
    assert cells[:3] == [str(violation), PROJECT, "D2"]
    assert cells[-2:-1] == ["open"] and "kommune" in cells[-1]
    empty = enclave.vokter("violations", "list", PROJECT, "--open", user=enclave.auditor)
    ok(enclave.vokter("violations", "resolve", str(violation), "--note", "done",
                      user=enclave.leader))
    empty = enclave.vokter("violations", "list", PROJECT, "--open", user=enclave.auditor)
    assert (ok(empty), empty.stderr.strip()) == ("", f"No open violations in {PROJECT}.")


def _record_host_finding(daemon: RunningDaemon) -> None:
    """A portable medium seen on the host, stored as the daemon stores it, while it is down."""
    daemon.stop()
    store = Store(f"sqlite:///{daemon.state_dir / 'vokter.db'}")
    try:
        # wall-clock: the event follows the daemon's own in its trail
        clock = FakeClock(datetime.now(UTC))
        services = build_services(store, clock, daemon.root)
        finding = Finding(rule="S2", kind="portable_medium", project=None, path="/media/usb0",
                          zone=None, fingerprint="8:17", response=Response.ALERT,
                          summary="a removable medium (usb) mounted at /media/usb0")
        with store.write() as session:
            record_finding(session, RequestContext(Caller(0, 0, 1, "root"), services), finding,
                           NOTHING_DONE)
    finally:
        store.close()
    daemon.start()


def test_s2_only_root_sees_and_resolves_the_hosts_own_findings(enclave: Enclave) -> None:
    [d2] = add_npr(enclave)["violations"]
    _record_host_finding(enclave.daemon)
    rows = enclave.json("violations", "list")
    [host] = [row for row in rows if row["path"] == "/media/usb0"]
    assert (host["project"], host["rule"], host["zone"]) == (None, "S2", None)
    assert d2 in ids(rows)
    for user in (enclave.leader, enclave.auditor):
        assert ids(enclave.json("violations", "list", user=user)) == [d2]
    line = refused(enclave.vokter("violations", "resolve", str(host["id"]), "--note", "gone",
                                  user=enclave.leader))
    assert f"no violation {host['id']}" in line
    ok(enclave.vokter("violations", "resolve", str(host["id"]), "--note", "stick removed"))
    still_open = ids(enclave.json("violations", "list", "--open"))
    assert d2 in still_open and host["id"] not in still_open
    assert "verified" in ok(enclave.vokter("audit", "verify")).lower()
