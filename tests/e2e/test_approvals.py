"""Approvals as people meet them (D1, L3, L4): a real vokterd, the real vokter CLI, real Unix
users. Root records; the leader and the auditors read; a member reads nothing; a refusal stores
nothing, is audited with its rule, and reaches the person as one line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest

from agent.api.client import VokterClient
from agent.api.dispatch import Caller, dispatch
from agent.errors import InvalidRequest
from agent.lifecycle.decision import retention_end
from agent.lifecycle.facts_io import project_facts
from agent.lifecycle.model import ApprovalKind
from agent.operations import OPERATIONS
from agent.services import Services
from agent.store.tables import Project
from cli.main import main
from tests.api.inprocess import audit_events
from tests.support.daemon import RunningDaemon, ok, one_line_failure
from tests.support.users import TestUser, UserFactory

PROJECT = "p9101"
END = "2029-12-31"


@dataclass
class Enclave:
    daemon: RunningDaemon
    leader: TestUser
    member: TestUser
    auditor: TestUser

    def approvals(self, user: str | None = None) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = json.loads(
            ok(self.daemon.vokter("approval", "list", PROJECT, "--json", user=user)))
        return listed

    def events(self, action: str) -> list[dict[str, Any]]:
        return [{**event, "details": json.loads(event["details"])}
                for event in self.daemon.audit_events() if event["action"] == action]


@pytest.fixture
def enclave(daemon: RunningDaemon, unix_users: UserFactory) -> Iterator[Enclave]:
    leader, member, auditor = (unix_users.create("val"), unix_users.create("vam"),
                               unix_users.create("vaa"))
    ok(daemon.vokter("project", "create", PROJECT, "--title", "Statin trial follow-up",
                     "--leader", leader.name, "--end-date", END))
    ok(daemon.vokter("member", "add", PROJECT, member.name, "--role", "member", "--reason",
                     "analysis", user=leader.name))
    ok(daemon.vokter("member", "add", PROJECT, auditor.name, "--role", "auditor", "--reason",
                     "internal control"))
    yield Enclave(daemon, leader, member, auditor)


def test_d1_root_records_an_approval_the_leader_and_the_auditor_list_it(
    enclave: Enclave,
) -> None:
    daemon = enclave.daemon
    added = ok(daemon.vokter("approval", "add", PROJECT, "--kind", "rek", "--ref",
                             "REK 2025/12345", "--valid-until", END, "--retention-until",
                             "2034-12-31"))
    assert added.strip() == ("recorded rek approval 1 of p9101 (REK 2025/12345): data kept "
                             "until 2034-12-31 (L3)")
    ok(daemon.vokter("approval", "add", PROJECT, "--kind", "dpia", "--ref", "DPIA-2025-17"))

    by_leader = enclave.approvals(enclave.leader.name)
    assert by_leader == enclave.approvals(enclave.auditor.name) == enclave.approvals()
    first, second = by_leader
    assert {key: first[key] for key in ("id", "project", "kind", "reference", "valid_until",
                                        "retention_until", "clinical_trial", "final_report",
                                        "recorded_by")} == {
        "id": 1, "project": PROJECT, "kind": "rek", "reference": "REK 2025/12345",
        "valid_until": END, "retention_until": "2034-12-31", "clinical_trial": False,
        "final_report": None, "recorded_by": "root"}
    assert first["recorded_at"]
    assert (second["kind"], second["reference"], second["retention_until"]) == (
        "dpia", "DPIA-2025-17", None)

    # In a pipe: one plain tab-separated line per approval, in the columns' order.
    lines = ok(daemon.vokter("approval", "list", PROJECT, user=enclave.leader.name)).splitlines()
    assert [line.split("\t")[:7] for line in lines] == [
        ["1", "rek", "REK 2025/12345", END, "2034-12-31", "no", "-"],
        ["2", "dpia", "DPIA-2025-17", "-", "-", "no", "-"]]

    (event, _) = enclave.events("approval.added")
    assert (event["project_id"], event["actor"], event["outcome"], event["rule"]) == (
        PROJECT, "root", "ok", "L3")
    assert {key: event["details"][key] for key in ("approval", "kind", "reference",
                                                   "valid_until", "retention_until",
                                                   "clinical_trial", "final_report")} == {
        "approval": 1, "kind": "rek", "reference": "REK 2025/12345", "valid_until": END,
        "retention_until": "2034-12-31", "clinical_trial": False, "final_report": None}


def test_d1_the_leader_cannot_record_an_approval_and_a_member_cannot_list_them(
    enclave: Enclave,
) -> None:
    daemon = enclave.daemon
    line = one_line_failure(daemon.vokter("approval", "add", PROJECT, "--kind", "rek", "--ref",
                                          "REK 2025/1", "--retention-until", "2034-12-31",
                                          user=enclave.leader.name))
    assert line == ("vokter: as leader of p9101 you may not do this (approval.add) (A1)")
    line = one_line_failure(daemon.vokter("approval", "list", PROJECT,
                                          user=enclave.member.name))
    assert line == "vokter: as member of p9101 you may not do this (approval.list) (A1)"
    assert enclave.approvals() == []
    refusals = [event for event in daemon.audit_events()
                if event["action"] in ("approval.add", "approval.list")]
    assert [(e["action"], e["actor"], e["outcome"], e["rule"]) for e in refusals] == [
        ("approval.add", enclave.leader.name, "refused", "A1"),
        ("approval.list", enclave.member.name, "refused", "A1")]


def test_l3_rek_retention_beyond_five_years_is_refused(enclave: Enclave) -> None:
    daemon = enclave.daemon
    line = one_line_failure(daemon.vokter("approval", "add", PROJECT, "--kind", "rek", "--ref",
                                          "REK 2025/12345", "--retention-until", "2035-01-01"))
    assert line == ("vokter: REK may allow at most 5 years after the end (2029-12-31): "
                    "2035-01-01 is beyond 2034-12-31 (L3)")
    assert enclave.approvals() == []
    assert enclave.events("approval.added") == []
    (refused,) = enclave.events("approval.add")
    assert (refused["outcome"], refused["rule"], refused["project_id"]) == (
        "refused", "L3", PROJECT)
    # Only REK allows keeping data after the end at all.
    line = one_line_failure(daemon.vokter("approval", "add", PROJECT, "--kind", "dpia", "--ref",
                                          "DPIA-1", "--retention-until", "2030-12-31"))
    assert line.startswith("vokter: only a REK approval allows keeping data after the end")
    assert line.endswith("(L3); leave --retention-until out, or use --kind rek")
    assert enclave.approvals() == []


def test_l4_a_clinical_trial_keeps_its_source_data_25_years_after_the_final_report(
    enclave: Enclave,
) -> None:
    daemon = enclave.daemon
    refused = one_line_failure(daemon.vokter(
        "approval", "add", PROJECT, "--kind", "rek", "--ref", "REK 2025/777",
        "--clinical-trial", "--final-report", "2030-06-30", "--retention-until", "2055-06-29"))
    assert refused.startswith("vokter: a clinical trial keeps its source data at least 25 "
                              "years after the final report (2030-06-30): 2055-06-29 is "
                              "before 2055-06-30 (L4)")
    missing = one_line_failure(daemon.vokter("approval", "add", PROJECT, "--kind", "rek",
                                             "--ref", "REK 2025/777", "--clinical-trial"))
    assert missing.startswith("vokter: a clinical trial needs the date of its final report (L4)")
    assert enclave.approvals() == []

    added = json.loads(ok(daemon.vokter("approval", "add", PROJECT, "--kind", "rek", "--ref",
                                        "REK 2025/777", "--clinical-trial", "--final-report",
                                        "2030-06-30", "--json")))
    assert added["rule"] == "L4" and added["warnings"] == []
    assert {key: added["approval"][key] for key in ("kind", "clinical_trial", "final_report",
                                                    "retention_until")} == {
        "kind": "rek", "clinical_trial": True, "final_report": "2030-06-30",
        "retention_until": "2055-06-30"}
    # The L3 cap of 5 years does not bound a clinical trial: contracts may require longer.
    ok(daemon.vokter("approval", "add", PROJECT, "--kind", "rek", "--ref", "REK 2025/777",
                     "--clinical-trial", "--final-report", "2030-06-30",
                     "--retention-until", "2060-12-31"))
    listed = enclave.approvals(enclave.auditor.name)
    assert [(a["retention_until"], a["clinical_trial"]) for a in listed] == [
        ("2055-06-30", True), ("2060-12-31", True)]
    assert [e["rule"] for e in enclave.events("approval.added")] == ["L4", "L4"]


def test_d1_impossible_dates_and_the_same_approval_twice_are_refused_in_one_line(
    enclave: Enclave,
) -> None:
    daemon = enclave.daemon
    line = one_line_failure(daemon.vokter("approval", "add", PROJECT, "--kind", "rek", "--ref",
                                          "REK 2025/1", "--valid-until", "2026-02-30"), code=2)
    assert line == "vokter: --valid-until: '2026-02-30' is not a real date (YYYY-MM-DD)"
    unknown = daemon.vokter("approval", "add", PROJECT, "--kind", "ethics", "--ref", "R")
    assert unknown.returncode == 2 and "'ethics' is not one of 'rek', 'dpia'" in unknown.stderr
    # Neither reached the daemon: nothing is refused in the trail, nothing stored.
    assert enclave.events("approval.add") == []
    # Another client, without the CLI's checks: the daemon's schema refuses the same date.
    with pytest.raises(InvalidRequest) as raised:
        VokterClient(daemon.socket_path).call("approval.add", project=PROJECT, kind="rek",
                                              reference="REK 2025/1", final_report="2026-02-30")
    assert raised.value.message == "final_report: '2026-02-30' is not a real date (YYYY-MM-DD)"
    assert enclave.approvals() == []

    ok(daemon.vokter("approval", "add", PROJECT, "--kind", "folkeregister", "--ref",
                     "SKE 2025/88", "--valid-until", "2027-06-30"))
    line = one_line_failure(daemon.vokter("approval", "add", PROJECT, "--kind", "folkeregister",
                                          "--ref", "SKE 2025/88", "--valid-until", "2027-06-30"))
    assert line == ("vokter: this folkeregister approval (SKE 2025/88) is already recorded as "
                    "approval 1 of p9101 (D1); see 'vokter approval list p9101'")
    assert len(enclave.approvals()) == 1


def test_l1_an_approval_running_out_before_the_end_date_is_recorded_with_a_warning(
    enclave: Enclave,
) -> None:
    result = enclave.daemon.vokter("approval", "add", PROJECT, "--kind", "rek", "--ref",
                                   "REK 2025/5", "--valid-until", "2028-12-31")
    assert ok(result).strip() == "recorded rek approval 1 of p9101 (REK 2025/5)"
    assert result.stderr.strip() == (
        "warning: the rek approval is valid until 2028-12-31, before p9101's end date "
        "2029-12-31: record its renewal, or end the project earlier with 'vokter project end' "
        "(L1)")
    assert [a["valid_until"] for a in enclave.approvals(enclave.leader.name)] == ["2028-12-31"]


def test_d1_the_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("add", "list"):
        assert main(["approval", command, "--help"]) == 0
        out = capsys.readouterr().out
        assert "Examples:" in out and f"vokter approval {command} p1234" in out


def test_l3_l4_approvals_are_stored_and_read_back_as_the_decision_reads_them(
    services: Services, root_caller: Caller,
) -> None:
    """The same requests in process, on SQLite and PostgreSQL, with the clock on 2026-11-23:
    what is stored is what the project-end decision then counts from."""

    def call(op: str, **args: Any) -> dict[str, Any]:
        answer: dict[str, Any] = dispatch({"op": op, "args": args}, root_caller, services,
                                          OPERATIONS)
        return answer

    assert call("project.create", project=PROJECT, title="Statin trial", leader="root",
                end_date=END)["ok"]
    before_creation = call("approval.add", project=PROJECT, kind="rek", reference="REK 1",
                           valid_until="2026-11-22")
    assert before_creation["error"]["rule"] == "D1"
    beyond = call("approval.add", project=PROJECT, kind="rek", reference="REK 1",
                  retention_until="2035-01-01")
    assert (beyond["error"]["type"], beyond["error"]["rule"]) == ("RuleViolation", "L3")
    assert call("approval.add", project=PROJECT, kind="rek", reference="REK 1",
                valid_until="2026-11-23", retention_until="2034-12-31")["ok"]
    assert call("approval.add", project=PROJECT, kind="rek", reference="REK 2",
                clinical_trial=True, final_report="2030-06-30")["ok"]
    listed = call("approval.list", project=PROJECT)["result"]
    assert [(a["id"], a["valid_until"], a["retention_until"], a["final_report"])
            for a in listed] == [(1, "2026-11-23", "2034-12-31", None),
                                 (2, None, "2055-06-30", "2030-06-30")]
    assert {a["recorded_at"] for a in listed} == {"2026-11-23T12:00:00+00:00"}

    with services.store.read() as session:
        project = session.get(Project, PROJECT)
        assert project is not None
        facts = project_facts(session, project)
    assert [a.kind for a in facts.approvals] == [ApprovalKind.REK, ApprovalKind.REK]
    assert retention_end(facts.approvals, services.policies.current()) == date(2055, 6, 30)
    added = [e for e in audit_events(services) if e.action == "approval.added"]
    assert [(e.rule, json.loads(e.details)["reference"]) for e in added] == [
        ("L3", "REK 1"), ("L4", "REK 2")]
