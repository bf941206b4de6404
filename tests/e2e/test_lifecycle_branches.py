"""The branches of a project's end against a running daemon on a drill clock (L3, L4): REK's
retention keeps the data until its day, a clinical trial keeps it 25 years after the final
report, and disposal follows the day after, not a day before."""

from __future__ import annotations

import json

from tests.support.daemon import RunningDaemon, ok
from tests.support.drill import PROJECT, create_project, set_clock
from tests.support.users import UserFactory


def run(daemon: RunningDaemon) -> dict[str, object]:
    swept: list[dict[str, object]] = json.loads(ok(daemon.vokter("lifecycle", "run", "--json")))
    return swept[0]


def start(daemon: RunningDaemon, users: UserFactory) -> None:
    leader = users.create("vkl")
    create_project(daemon, leader.name)
    (daemon.zones_dir / PROJECT / "data" / "shifts.csv").write_text("a;b\n1;2\n")


def test_l3_rek_retention_of_three_years_retains_the_data_then_disposes_of_it(
    dated_daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    daemon = dated_daemon
    start(daemon, unix_users)
    ok(daemon.vokter("approval", "add", PROJECT, "--kind", "rek", "--ref", "2024/12345",
                     "--retention-until", "2029-03-31"))
    set_clock(daemon, "2026-04-15T09:00:00+00:00")  # the end and the grace are behind
    assert run(daemon)["applied"] == ["end", "retain"]
    set_clock(daemon, "2029-03-31T09:00:00+00:00")  # the last day of the retention
    kept = run(daemon)
    assert kept["state"] == "retained" and kept["applied"] == []
    assert kept["notices"] == ["retention:2029-03-31"]  # told within the 30 days before
    assert (daemon.zones_dir / PROJECT / "data" / "shifts.csv").exists()
    set_clock(daemon, "2029-04-01T09:00:00+00:00")
    assert run(daemon)["applied"] == ["dispose", "anonymised", "close"]
    assert not (daemon.zones_dir / PROJECT / "data" / "shifts.csv").exists()


def test_l4_a_clinical_trial_keeps_its_data_25_years_after_the_final_report(
    dated_daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    daemon = dated_daemon
    start(daemon, unix_users)
    ok(daemon.vokter("approval", "add", PROJECT, "--kind", "rek", "--ref", "2024/777",
                     "--clinical-trial", "--final-report", "2026-06-30"))
    set_clock(daemon, "2026-04-15T09:00:00+00:00")
    assert run(daemon)["applied"] == ["end", "retain"]
    plan = json.loads(ok(daemon.vokter("lifecycle", "plan", PROJECT, "--json")))
    assert plan["retained_until"] == "2051-06-30" and plan["disposal_on"] == "2051-07-01"
    set_clock(daemon, "2051-06-30T09:00:00+00:00")
    assert run(daemon)["state"] == "retained"
    set_clock(daemon, "2051-07-01T09:00:00+00:00")
    assert run(daemon)["applied"] == ["dispose", "anonymised", "close"]


def test_l9_with_a_transfer_agreement_the_data_is_archived_then_deleted_locally(
    dated_daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    daemon = dated_daemon
    start(daemon, unix_users)
    ok(daemon.vokter("approval", "add", PROJECT, "--kind", "transfer_agreement", "--ref",
                     "Sikt 2026/42"))
    plan = json.loads(ok(daemon.vokter("lifecycle", "plan", PROJECT, "--json")))
    assert plan["method"] == "archive"
    set_clock(daemon, "2026-04-15T09:00:00+00:00")
    assert run(daemon)["applied"] == ["end", "dispose", "archived", "close"]
    assert list((daemon.zones_dir / PROJECT / "data").iterdir()) == []
    folder = daemon.state_dir / "disposal" / PROJECT
    payload = json.loads(json.loads((folder / "certificate.json").read_text())["payload"])
    assert payload["method"] == "archive"
    assert "Sikt 2026/42" in json.dumps(payload["verification"])
