"""Legal holds (L5) and registered copies (L2) as people meet them: a real vokterd, real Unix
users appointed with the real CLI, every request made as that user with `runuser`, and the
trail read back from the daemon's own database."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.daemon import RunningDaemon, ok, one_line_failure
from tests.support.identity_numbers import valid_numbers
from tests.support.users import TestUser, UserFactory

PROJECT = "p9101"
REF = "Datatilsynet 24/01234"


@dataclass
class Enclave:
    daemon: RunningDaemon
    leader: TestUser
    auditor: TestUser
    member: TestUser
    outsider: TestUser

    def run(self, *args: str, user: TestUser | None = None) -> Any:
        """A listing or a record, as JSON, of a command that must succeed."""
        return json.loads(ok(self.daemon.vokter(*args, "--json",
                                                user=None if user is None else user.name)))

    def place(self, user: TestUser | None = None, reference: str = REF) -> dict[str, Any]:
        placed: dict[str, Any] = self.run(
            "hold", "place", PROJECT, "--reason", "supervisory_case", "--ref", reference,
            "--note", "inspection announced by letter", user=user)
        return placed

    def events(self, action: str) -> list[dict[str, Any]]:
        return [{**event, "details": json.loads(event["details"])}
                for event in self.daemon.audit_events() if event["action"] == action]


@pytest.fixture
def enclave(daemon: RunningDaemon, unix_users: UserFactory) -> Iterator[Enclave]:
    leader, auditor, member, outsider = (unix_users.create("vhl"), unix_users.create("vha"),
                                         unix_users.create("vhm"), unix_users.create("vho"))
    ok(daemon.vokter("project", "create", PROJECT, "--title", "Register cohort", "--leader",
                     leader.name, "--end-date", "2030-06-30"))
    ok(daemon.vokter("member", "add", PROJECT, auditor.name, "--role", "auditor", "--reason",
                     "institution's audit"))
    ok(daemon.vokter("member", "add", PROJECT, member.name, "--role", "member", "--reason",
                     "analysis", user=leader.name))
    yield Enclave(daemon, leader, auditor, member, outsider)


def test_l5_an_auditor_places_and_releases_a_hold(enclave: Enclave) -> None:
    placed = enclave.place(enclave.auditor)
    assert (placed["project"], placed["reason"], placed["reference"], placed["status"],
            placed["placed_by"]) == (PROJECT, "supervisory_case", REF, "open",
                                     enclave.auditor.name)
    [listed] = enclave.run("hold", "list", PROJECT, "--open", user=enclave.auditor)
    assert listed["id"] == placed["id"]
    [event] = enclave.events("hold.placed")
    assert (event["actor"], event["project_id"], event["rule"], event["outcome"]) == (
        enclave.auditor.name, PROJECT, "L5", "ok")
    assert (event["details"]["reason"], event["details"]["reference"],
            event["details"]["note"]) == ("supervisory_case", REF,
                                          "inspection announced by letter")
    released = enclave.daemon.vokter("hold", "release", str(placed["id"]), "--note",
                                     "case closed by letter of 2 June", user=enclave.auditor.name)
    assert ok(released).strip() == (f"released legal hold {placed['id']} on {PROJECT} "
                                    f"(supervisory_case, {REF})")
    [after] = enclave.run("hold", "list", PROJECT, user=enclave.auditor)
    assert (after["status"], after["released_by"], after["release_note"]) == (
        "released", enclave.auditor.name, "case closed by letter of 2 June")
    assert enclave.run("hold", "list", PROJECT, "--open", user=enclave.auditor) == []
    [event] = enclave.events("hold.released")
    assert (event["actor"], event["project_id"], event["rule"]) == (
        enclave.auditor.name, PROJECT, "L5")
    assert (event["details"]["hold"], event["details"]["placed_by"], event["details"]["note"]) \
        == (placed["id"], enclave.auditor.name, "case closed by letter of 2 June")


def test_l5_the_leader_can_list_holds_but_cannot_place_or_release_one(
        enclave: Enclave) -> None:
    placed = enclave.place()  # root, the operator
    [seen] = enclave.run("hold", "list", PROJECT, user=enclave.leader)
    assert (seen["id"], seen["status"]) == (placed["id"], "open")
    assert [h["id"] for h in enclave.run("hold", "list", user=enclave.leader)] == [placed["id"]]
    refused = [
        enclave.daemon.vokter("hold", "place", PROJECT, "--reason", "other", "--ref", "x",
                              "--note", "mine", user=enclave.leader.name),
        enclave.daemon.vokter("hold", "release", str(placed["id"]), "--note", "done",
                              user=enclave.leader.name),
    ]
    for result in refused:
        line = one_line_failure(result)
        assert line.startswith(f"vokter: as leader of {PROJECT} you may not ")
        assert "(L5); root and the project's auditors place and release legal holds" in line
    assert [h["status"] for h in enclave.run("hold", "list", PROJECT)] == ["open"]
    for action in ("hold.place", "hold.release"):
        [event] = [e for e in enclave.events(action) if e["outcome"] == "refused"]
        assert (event["actor"], event["rule"]) == (enclave.leader.name, "L5")
        # In the project's chain, where its auditors look, though a release names only a hold.
        assert event["project_id"] == PROJECT
    assert enclave.events("hold.released") == []


def test_l5_a_member_sees_no_hold_and_an_outsider_no_project(enclave: Enclave) -> None:
    placed = enclave.place(enclave.auditor)
    listed = enclave.daemon.vokter("hold", "list", user=enclave.member.name)
    assert (listed.returncode, listed.stdout, listed.stderr.strip()) == (0, "", "No legal holds.")
    assert enclave.run("hold", "list", user=enclave.member) == []
    line = one_line_failure(enclave.daemon.vokter("hold", "list", PROJECT,
                                                  user=enclave.member.name))
    assert line.startswith(f"vokter: as member of {PROJECT} you may not see its legal holds")
    line = one_line_failure(enclave.daemon.vokter(
        "hold", "release", str(placed["id"]), "--note", "x", user=enclave.member.name))
    assert line == f"vokter: no legal hold {placed['id']}; see 'vokter hold list'"
    line = one_line_failure(enclave.daemon.vokter("hold", "list", PROJECT,
                                                  user=enclave.outsider.name))
    assert line == f"vokter: no project {PROJECT}; see 'vokter project list'"


def test_l5_a_released_hold_cannot_be_released_again_and_bad_input_changes_nothing(
        enclave: Enclave) -> None:
    placed = enclave.place(enclave.auditor)
    hold_id = str(placed["id"])
    ok(enclave.daemon.vokter("hold", "release", hold_id, "--note", "case closed",
                             user=enclave.auditor.name))
    line = one_line_failure(enclave.daemon.vokter("hold", "release", hold_id, "--note",
                                                  "again", user=enclave.auditor.name))
    assert line.startswith(f"vokter: legal hold {hold_id} was already released on ")
    assert "(L5)" in line
    line = one_line_failure(enclave.daemon.vokter("hold", "release", "999", "--note", "x"))
    assert line == "vokter: no legal hold 999; see 'vokter hold list'"
    for note in ("", "two\nlines"):
        one_line_failure(enclave.daemon.vokter("hold", "place", PROJECT, "--reason", "other",
                                               "--ref", "r1", "--note", note))
    usage = enclave.daemon.vokter("hold", "place", PROJECT, "--reason", "lawsuit", "--ref",
                                  "r1", "--note", "x")
    assert usage.returncode == 2 and "lawsuit" in usage.stderr
    line = one_line_failure(enclave.daemon.vokter("hold", "place", PROJECT, "--reason",
                                                  "supervisory_case", "--ref", " ",
                                                  "--note", "x"))
    assert line.startswith("vokter: the case reference is required (L5)")
    enclave.place(enclave.auditor, reference="24/5")
    line = one_line_failure(enclave.daemon.vokter(
        "hold", "place", PROJECT, "--reason", "supervisory_case", "--ref", "24/5", "--note",
        "twice", user=enclave.auditor.name))
    assert "already stands" in line and "(L5)" in line
    assert [(h["reference"], h["status"]) for h in enclave.run("hold", "list", PROJECT)] == [
        (REF, "released"), ("24/5", "open")]
    assert len(enclave.events("hold.placed")) == 2


def test_l5_holds_list_as_plain_lines_in_a_pipe_and_a_note_keeps_no_identity_number(
        enclave: Enclave) -> None:
    [number] = valid_numbers(1, seed=91)
    placed = enclave.run("hold", "place", PROJECT, "--reason", "integrity_investigation",
                         "--ref", "UiO-GF 2026/17", "--note", f"complaint about {number}",
                         user=enclave.auditor)
    assert number not in json.dumps(placed) and "[id-number]" in placed["note"]
    lines = ok(enclave.daemon.vokter("hold", "list", PROJECT)).splitlines()
    assert [line.split("\t")[:5] for line in lines] == [
        [str(placed["id"]), PROJECT, "integrity_investigation", "UiO-GF 2026/17", "open"]]
    with sqlite3.connect(f"file:{enclave.daemon.state_dir / 'vokter.db'}?mode=ro",
                         uri=True) as db:
        stored = db.execute("SELECT note FROM legal_hold").fetchall()
    assert stored == [("complaint about [id-number]",)]


def test_l2_a_copy_is_registered_confirmed_disposed_once_and_listed(enclave: Enclave) -> None:
    added = enclave.run("copy", "add", PROJECT, "--location", "UiO backup tape T-0042",
                        "--note", "nightly backup", user=enclave.leader)
    assert (added["project"], added["location"], added["status"], added["registered_by"]) == (
        PROJECT, "UiO backup tape T-0042", "kept", enclave.leader.name)
    other = enclave.run("copy", "add", PROJECT, "--location", "Haukeland, K. Berg", "--note",
                        "co-investigator")
    assert enclave.run("copy", "list", PROJECT, user=enclave.auditor) == enclave.run(
        "copy", "list", PROJECT, user=enclave.leader)
    confirmed = enclave.daemon.vokter("copy", "confirm-disposed", str(added["id"]), "--note",
                                      "tape degaussed by USIT", user=enclave.leader.name)
    assert ok(confirmed).strip() == (f"confirmed copy {added['id']} of {PROJECT} at "
                                     "UiO backup tape T-0042 disposed of")
    line = one_line_failure(enclave.daemon.vokter(
        "copy", "confirm-disposed", str(added["id"]), "--note", "again",
        user=enclave.leader.name))
    assert line == (f"vokter: copy {added['id']} was already confirmed disposed of (L2); "
                    "see 'vokter copy list'")
    listed = enclave.run("copy", "list", PROJECT, user=enclave.leader)
    assert [(c["id"], c["status"], c["disposed_confirmed_by"]) for c in listed] == [
        (added["id"], "disposed", enclave.leader.name), (other["id"], "kept", None)]
    [registered, _] = enclave.events("copy.registered")
    assert (registered["actor"], registered["rule"], registered["details"]["location"]) == (
        enclave.leader.name, "L2", "UiO backup tape T-0042")
    [disposed] = enclave.events("copy.disposed")
    assert (disposed["actor"], disposed["project_id"], disposed["details"]["note"]) == (
        enclave.leader.name, PROJECT, "tape degaussed by USIT")


def test_l2_only_root_and_the_leader_register_and_confirm_copies(enclave: Enclave) -> None:
    added = enclave.run("copy", "add", PROJECT, "--location", "tape T-1", "--note", "backup")
    line = one_line_failure(enclave.daemon.vokter(
        "copy", "add", PROJECT, "--location", "tape T-2", "--note", "x",
        user=enclave.auditor.name))
    assert line.startswith(f"vokter: as auditor of {PROJECT} you may not register a copy")
    line = one_line_failure(enclave.daemon.vokter(
        "copy", "confirm-disposed", str(added["id"]), "--note", "x", user=enclave.auditor.name))
    assert "(L2); root and the project's leader register copies" in line
    line = one_line_failure(enclave.daemon.vokter(
        "copy", "confirm-disposed", str(added["id"]), "--note", "x", user=enclave.member.name))
    assert line == f"vokter: no registered copy {added['id']}; see 'vokter copy list PROJECT'"
    one_line_failure(enclave.daemon.vokter("copy", "list", PROJECT, user=enclave.member.name))
    line = one_line_failure(enclave.daemon.vokter("copy", "confirm-disposed", "999", "--note",
                                                  "x"))
    assert line == "vokter: no registered copy 999; see 'vokter copy list PROJECT'"
    line = one_line_failure(enclave.daemon.vokter("copy", "add", PROJECT, "--location",
                                                  "tape T-1", "--note", "same tape"))
    assert "already registered (L2)" in line
    assert [c["status"] for c in enclave.run("copy", "list", PROJECT)] == ["kept"]
    assert len(enclave.events("copy.registered")) == 1
    assert enclave.events("copy.disposed") == []


def test_l5_refused_releases_and_confirmations_by_number_reach_the_projects_chain(
        enclave: Enclave) -> None:
    """Only for callers who know the project: an outsider's guess stays out of its chain."""
    placed = enclave.place()
    added = enclave.run("copy", "add", PROJECT, "--location", "tape T-1", "--note", "backup")
    for args, user in (
        (("hold", "release", str(placed["id"]), "--note", "x"), enclave.member),
        (("copy", "confirm-disposed", str(added["id"]), "--note", "x"), enclave.auditor),
        (("hold", "release", str(placed["id"]), "--note", "x"), enclave.outsider),
        (("copy", "confirm-disposed", str(added["id"]), "--note", "x"), enclave.outsider),
    ):
        one_line_failure(enclave.daemon.vokter(*args, user=user.name))
    refused = [(e["action"], e["actor"], e["project_id"], e["target"])
               for e in enclave.daemon.audit_events() if e["outcome"] == "refused"]
    assert refused == [
        ("hold.release", enclave.member.name, PROJECT, f"legal hold {placed['id']}"),
        ("copy.confirm", enclave.auditor.name, PROJECT, f"registered copy {added['id']}"),
        ("hold.release", enclave.outsider.name, None, None),
        ("copy.confirm", enclave.outsider.name, None, None),
    ]


def test_l5_while_a_hold_stands_no_key_is_shredded_and_no_copy_confirmed_disposed_of(
        enclave: Enclave) -> None:
    added = enclave.run("copy", "add", PROJECT, "--location", "tape T-1", "--note", "backup")
    placed = enclave.place(enclave.auditor)
    line = one_line_failure(enclave.daemon.vokter("project", "shred-key", PROJECT, "--yes"))
    assert line == (f"vokter: {PROJECT} is under a legal hold: shredding its key is refused "
                    f"until the hold is released (L5); see 'vokter hold list {PROJECT} --open'")
    line = one_line_failure(enclave.daemon.vokter(
        "copy", "confirm-disposed", str(added["id"]), "--note", "tape degaussed",
        user=enclave.leader.name))
    assert line.startswith(f"vokter: {PROJECT} is under a legal hold: confirming copy "
                           f"{added['id']} disposed of is refused until the hold is released")
    assert [c["status"] for c in enclave.run("copy", "list", PROJECT)] == ["kept"]
    assert enclave.events("project.key_shredded") == enclave.events("copy.disposed") == []
    refused = [(e["action"], e["rule"], e["project_id"]) for e in enclave.daemon.audit_events()
               if e["outcome"] == "refused"]
    assert refused == [("project.shred_key", "L5", PROJECT), ("copy.confirm", "L5", PROJECT)]

    ok(enclave.daemon.vokter("hold", "release", str(placed["id"]), "--note", "case closed",
                             user=enclave.auditor.name))
    ok(enclave.daemon.vokter("copy", "confirm-disposed", str(added["id"]), "--note",
                             "tape degaussed", user=enclave.leader.name))
    ok(enclave.daemon.vokter("project", "shred-key", PROJECT, "--yes"))
    assert len(enclave.events("project.key_shredded")) == 1
