"""``vokter dataset add|list`` on a real vokterd (D2): a delivery is recorded with its approved
variables, an unapproved column is a violation at once, and every bad request is one line
that leaves nothing recorded."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.storage.d2_enclave import NPR_FILE, PROJECT, Enclave, add_npr, make_enclave
from tests.support.daemon import RunningDaemon, ok
from tests.support.daemon import one_line_failure as refused
from tests.support.identity_numbers import some
from tests.support.users import UserFactory


@pytest.fixture
def enclave(daemon: RunningDaemon, unix_users: UserFactory) -> Iterator[Enclave]:
    yield make_enclave(daemon, unix_users)


def test_d2_a_delivery_with_an_unapproved_column_is_a_violation_at_once(enclave: Enclave) -> None:
    result = add_npr(enclave)
    recorded = result["dataset"]
    assert recorded["project"] == PROJECT and recorded["source"] == "NPR"
    assert recorded["path"] == str(enclave.data / "npr.csv")
    assert recorded["variables"] == ["lopenr", "diagnose"]
    assert recorded["columns"] == ["lopenr", "diagnose", "kommune"]
    assert result["unapproved"] == ["kommune"] and len(result["violations"]) == 1

    [violation] = enclave.json("violations", "list", PROJECT, user=enclave.leader)
    assert violation["id"] == result["violations"][0]
    assert (violation["rule"], violation["kind"], violation["status"]) == (
        "D2", "unapproved_variables", "open")
    assert (violation["path"], violation["zone"]) == (recorded["path"], "data")
    assert violation["details"]["columns"] == ["kommune"]
    assert "kommune" in violation["summary"] and "NPR" in violation["summary"]

    actions = [e["action"] for e in enclave.daemon.audit_events() if e["project_id"] == PROJECT]
    assert actions[-2:] == ["dataset.added", "violation.detected"]


def test_d2_the_command_says_what_was_recorded_and_warns_of_unapproved_columns(
    enclave: Enclave,
) -> None:
    delivered = enclave.write_as(enclave.leader, enclave.data / "npr.csv", NPR_FILE)
    variables = enclave.variables(enclave.leader, "# NPR application, 2026\nlopenr\n\ndiagnose\n")
    result = enclave.vokter("dataset", "add", PROJECT, str(delivered), "--source", "NPR",
                            "--variables", str(variables), user=enclave.leader)
    assert ok(result).startswith(f"recorded dataset 1 of {PROJECT} from NPR: 2 approved")
    assert re.fullmatch(r"warning: 1 column\(s\) outside the approved variables \(violation "
                        r"\d+\) \(D2\): kommune\n", result.stderr)


def test_d2_a_delivery_holding_only_approved_variables_records_no_violation(
    enclave: Enclave,
) -> None:
    result = add_npr(enclave, approved="LOPENR\nDiagnose\nkommune\nbydel\n")
    assert result["unapproved"] == [] and result["violations"] == []
    assert enclave.json("violations", "list", PROJECT) == []
    [listed] = enclave.json("dataset", "list", PROJECT, user=enclave.member)
    assert listed["variables"] == ["LOPENR", "Diagnose", "kommune", "bydel"]


def test_d2_a_csv_header_is_a_variables_file_too(enclave: Enclave) -> None:
    delivered = enclave.write_as(enclave.leader, enclave.data / "npr.csv", NPR_FILE)
    variables = enclave.variables(enclave.leader, "lopenr,diagnose\n1,K35\n", "approved.csv")
    result = enclave.json("dataset", "add", PROJECT, str(delivered), "--source", "NPR",
                          "--variables", str(variables), user=enclave.leader)
    assert result["dataset"]["variables"] == ["lopenr", "diagnose"]


def test_d2_root_records_datasets_too_and_insiders_list_them(enclave: Enclave) -> None:
    delivered = enclave.write_as(enclave.leader, enclave.data / "ssb.tsv",
                                 "lopenr\tutdanning\n1\t7\n")
    variables = enclave.variables(enclave.leader, "lopenr\nutdanning\n")
    variables.chmod(0o644)
    ok(enclave.vokter("dataset", "add", PROJECT, str(delivered), "--source", "SSB",
                      "--variables", str(variables)))
    for user in (enclave.leader, enclave.member, enclave.auditor, None):
        [row] = enclave.json("dataset", "list", PROJECT, user=user)
        assert (row["source"], row["unapproved"]) == ("SSB", [])
    line = refused(enclave.vokter("dataset", "list", PROJECT, user=enclave.outsider))
    assert f"no project {PROJECT}" in line
    plain = ok(enclave.vokter("dataset", "list", PROJECT))  # a pipe: one tab-separated line
    assert plain.splitlines() == [plain.rstrip("\n")]
    assert plain.split("\t")[:5] == ["1", "SSB", str(delivered), "2", "2"]


def test_d2_identity_numbers_in_column_names_never_reach_a_violation_or_the_trail(
    enclave: Enclave,
) -> None:
    """A file in wide form names a column after each person: its header is the data."""
    numbers = [some(day, 3, 85) for day in (1, 2, 3)]
    text = "lopenr;" + ";".join(numbers) + "\n1;K35;K80;K35\n"
    delivered = enclave.write_as(enclave.leader, enclave.data / "wide.csv", text)
    variables = enclave.variables(enclave.leader, "lopenr\n")
    result = enclave.vokter("dataset", "add", PROJECT, str(delivered), "--source", "NPR",
                            "--variables", str(variables), "--json", user=enclave.leader)
    assert len(json.loads(ok(result))["violations"]) == 1
    listing = ok(enclave.vokter("violations", "list", "--json"))
    assert "3 columns not approved" in listing
    trail = json.dumps(enclave.daemon.audit_events())
    log = enclave.daemon.log_path.read_text()
    for number in numbers:
        for where in (listing, trail, log, result.stderr):
            assert number not in where


# --- refusals: one line, nothing recorded ----------------------------------------------------


def _add(enclave: Enclave, path: str, variables: str, *, source: str = "NPR",
         project: str = PROJECT, user: str = "leader") -> str:
    who = getattr(enclave, user)
    return refused(enclave.vokter("dataset", "add", project, path, "--source", source,
                                  "--variables", variables, user=who))


def test_d2_each_bad_request_is_refused_in_one_line_and_records_nothing(enclave: Enclave) -> None:
    delivered = str(enclave.write_as(enclave.leader, enclave.data / "npr.csv", NPR_FILE))
    good = str(enclave.variables(enclave.leader, "lopenr\ndiagnose\n"))
    member_list = str(enclave.variables(enclave.member, "lopenr\n"))
    outsider_list = str(enclave.variables(enclave.outsider, "lopenr\n"))
    empty = str(enclave.variables(enclave.leader, "# nothing approved yet\n\n", "empty.txt"))
    long_name = str(enclave.variables(enclave.leader, "v" * 129 + "\n", "long.txt"))
    too_many = str(enclave.variables(
        enclave.leader, "".join(f"v{i}\n" for i in range(5001)), "many.txt"))
    outside = str(enclave.write_as(enclave.leader, enclave.home(enclave.leader) / "npr.csv",
                                   NPR_FILE))
    export = str(enclave.write_as(enclave.leader,
                                  enclave.daemon.zones_dir / PROJECT / "export" / "npr.csv",
                                  NPR_FILE))
    prose = str(enclave.write_as(enclave.leader, enclave.data / "notes.txt",
                                 "Delivered on Monday and checked by the registry.\n"
                                 "The codes follow later.\n"))

    assert "no project p9999" in _add(enclave, delivered, good, project="p9999")
    assert "you may not do this (dataset.add)" in _add(enclave, delivered, member_list,
                                                        user="member")
    assert f"no project {PROJECT}" in _add(enclave, "/etc/hostname", outsider_list,
                                           user="outsider")
    assert "the list of approved variables is empty (D2)" in _add(enclave, delivered, empty)
    assert "approved variable 1 is longer than 128 characters (D2)" in _add(
        enclave, delivered, long_name)
    assert "5001 approved variables: at most 5000 are accepted (D2)" in _add(
        enclave, delivered, too_many)
    assert "the source register is empty (D2)" in _add(enclave, delivered, good, source="  ")
    assert "the source register is longer than 128 characters (D2)" in _add(
        enclave, delivered, good, source="R" * 129)
    assert f"is not in the data zone of {PROJECT} (D2)" in _add(enclave, outside, good)
    assert f"is not in the data zone of {PROJECT} (D2)" in _add(enclave, export, good)
    assert "holds no table with named columns (D2)" in _add(enclave, prose, good)
    assert "no such file" in refused(enclave.vokter(
        "dataset", "add", PROJECT, delivered, "--source", "NPR", "--variables",
        str(enclave.home(enclave.leader) / "missing.txt"), user=enclave.leader), code=2)

    assert enclave.json("dataset", "list", PROJECT) == []
    assert enclave.json("violations", "list", PROJECT) == []
    assert not [e for e in enclave.daemon.audit_events() if e["action"] == "dataset.added"
                and e["outcome"] == "ok"]


def test_d2_a_file_is_recorded_once(enclave: Enclave) -> None:
    first = add_npr(enclave)
    line = _add(enclave, first["dataset"]["path"], str(enclave.home(enclave.leader)
                                                        / "approved.txt"))
    assert f"already recorded as dataset {first['dataset']['id']} of {PROJECT}" in line
    assert len(enclave.json("dataset", "list", PROJECT)) == 1


# --- files derived from datasets, judged by the watching daemon ------------------------------


def _violations_of(enclave: Enclave, path: str, rule: str) -> list[dict[str, object]]:
    """The open violations about ``path``, once the daemon has judged it (it acts on the
    writer's close; this waits up to a generous bound for a loaded machine)."""
    deadline = time.monotonic() + 30
    while True:
        rows = [row for row in enclave.json("violations", "list", PROJECT, "--open")
                if row["path"] == path and row["rule"] == rule]
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_d2_d5_a_derived_file_linking_nois_with_npr_is_found_by_the_daemon(
    enclave: Enclave,
) -> None:
    add_npr(enclave)
    nois = enclave.write_as(enclave.leader, enclave.data / "nois.csv",
                            "lopenr;infeksjon;operasjon\n1;SSI;hofte\n")
    nois_list = enclave.variables(enclave.leader, "lopenr\ninfeksjon\noperasjon\n", "nois.txt")
    assert enclave.json("dataset", "add", PROJECT, str(nois), "--source", "nois",
                        "--variables", str(nois_list), user=enclave.leader)["violations"] == []
    work = enclave.data / "work"
    subprocess.run(["runuser", "-u", enclave.member.name, "--", "mkdir", str(work)], check=True)
    linked = enclave.write_as(enclave.member, work / "linked.csv",
                              "lopenr;diagnose;kommune;infeksjon\n1;K35;0301;SSI\n")
    [d5] = _violations_of(enclave, str(linked), "D5")
    # kommune was approved for no one, lopenr for both: only diagnose counts for NPR.
    assert d5["summary"] == "de-identified register nois (infeksjon) linked with NPR (diagnose)"
    [d2] = _violations_of(enclave, str(linked), "D2")
    assert d2["details"] == {"dataset": 1, "source": "NPR", "derived": True,
                             "columns": ["kommune"]}
