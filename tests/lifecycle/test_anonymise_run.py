"""Disposal by anonymisation, the data zone's part (L6, L7), on real files as root: each file is
kept, anonymised or deleted by the rules of agent.lifecycle.anonymise_settings, nothing outside
the zone is touched, and a run killed with SIGKILL resumes to the same outcomes. Archiving's
note for the certificate (L9) is at the end."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from agent.anonymise import tables
from agent.anonymise.tables import read_table
from agent.errors import Failed, Refused
from agent.lifecycle.anonymise_run import (
    TABLE_SUFFIXES,
    TableOutcome,
    anonymise_data_zone,
    archive_note,
)
from agent.lifecycle.model import ApprovalFacts, ApprovalKind
from agent.policy.files import load_default_policy
from agent.store.tables import Approval
from tests.support.anonymity import fewest_persons, independent_k
from tests.support.identity_numbers import some

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]
POLICY = load_default_policy()
TODAY = date(2031, 7, 1)
QIS = ["alder", "kommune", "kjonn", "yrke"]
CONFIG = """\
quasi_identifiers = ["alder", "kommune", "kjonn", "yrke"]
direct_identifiers = ["navn"]
seed = 7
[hierarchies]
alder = "age"
yrke = "hierarkier/yrke.csv"
"""
JOBS = ["lege", "sykepleier", "snekker", "elektriker"]
YRKE_HIERARCHY = "lege;helse;*\nsykepleier;helse;*\nsnekker;bygg;*\nelektriker;bygg;*\n"


def never() -> bool:
    return False


def run(zone: Path, journal: Path, should_stop: Callable[[], bool] = never
        ) -> tuple[list[TableOutcome], bool]:
    return anonymise_data_zone(zone, journal, policy=POLICY, today=TODAY,
                               should_stop=should_stop)


def by_path(outcomes: list[TableOutcome]) -> dict[str, TableOutcome]:
    assert len({outcome.path for outcome in outcomes}) == len(outcomes)
    return {outcome.path: outcome for outcome in outcomes}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_csv(path: Path, frame: pl.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_csv(path, separator=";")


def anonymous_table() -> pl.DataFrame:
    """Already 5-anonymous over the config's quasi-identifiers it has (no kjonn, no yrke)."""
    return pl.DataFrame({"alder": ["30-34"] * 5 + ["40-44"] * 5,
                         "kommune": ["03"] * 5 + ["11"] * 5,
                         "diagnose": ["J45", "E11", "I10", "J45", "E11"] * 2})


def identifying_table() -> pl.DataFrame:
    """Exact ages, municipalities, names and identity numbers: 40 persons, each alone."""
    return pl.DataFrame({
        "navn": [f"Person {n}" for n in range(40)],
        "fnr": [some(1 + n % 28, 1 + n % 12, 60 + n % 30) for n in range(40)],
        "alder": [str(20 + n) for n in range(40)],
        "kommune": ["0301", "0302", "1103", "1106"] * 10,
        "kjonn": ["M", "K"] * 20,
        "yrke": [JOBS[n % 4] for n in range(40)],
        "diagnose": ["J45", "E11", "I10", "C50", "F32"] * 8,
    })


def project_zone(root: Path) -> Path:
    """A data zone: the config and its hierarchy, a table to keep, one to anonymise (and a
    Parquet copy of it), one too small for k, a file that is no table."""
    zone = root / "data"
    (zone / "hierarkier").mkdir(parents=True)
    (zone / "anonymisation.toml").write_text(CONFIG)
    (zone / "hierarkier" / "yrke.csv").write_text(YRKE_HIERARCHY)
    write_csv(zone / "kept.csv", anonymous_table())
    write_csv(zone / "cohort" / "visits.csv", identifying_table())
    identifying_table().write_parquet(zone / "cohort" / "visits.parquet")
    write_csv(zone / "small.csv", identifying_table().head(3))
    (zone / "cohort" / "scan.pdf").write_bytes(b"%PDF-1.7 not a table\n")
    return zone


# --- each file's outcome ------------------------------------------------------------------------


def test_l7_a_k_anonymous_table_is_kept_byte_identical(tmp_path: Path) -> None:
    zone = project_zone(tmp_path)
    before = sha256(zone / "kept.csv")
    inode = os.stat(zone / "kept.csv").st_ino

    outcomes, stopped = run(zone, tmp_path / "journal")

    kept = by_path(outcomes)["kept.csv"]
    assert not stopped
    assert (kept.outcome, kept.k, kept.sha256_before, kept.sha256_after) == \
        ("kept", 5, before, before)
    assert kept.reason == "5-anonymous as it was (5 at the least)"
    assert sha256(zone / "kept.csv") == before and os.stat(zone / "kept.csv").st_ino == inode


@pytest.mark.parametrize("name", ["visits.csv", "visits.parquet"])
def test_l7_a_failing_table_is_replaced_by_a_k_anonymous_one_without_identifiers(
        tmp_path: Path, name: str) -> None:
    zone = project_zone(tmp_path)
    path = zone / "cohort" / name
    before = sha256(path)

    outcome = by_path(run(zone, tmp_path / "journal")[0])[f"cohort/{name}"]

    frame = read_table(path).frame
    assert outcome.outcome == "anonymised" and outcome.sha256_before == before
    assert outcome.sha256_after == sha256(path) != before
    assert outcome.reason.startswith(f"anonymised: k {outcome.k}, ")
    assert outcome.reason.endswith(", 2 columns removed")
    assert outcome.k is not None and outcome.k >= POLICY.anonymisation.k
    assert independent_k(frame, QIS) >= POLICY.anonymisation.k  # pycanon, not Vokter's count
    assert "navn" not in frame.columns and "fnr" not in frame.columns  # L6
    assert frame.height >= 38  # at most the policy's 5 % suppressed
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def test_l7_a_table_for_which_k_is_not_reachable_is_deleted(tmp_path: Path) -> None:
    zone = project_zone(tmp_path)
    before = sha256(zone / "small.csv")

    small = by_path(run(zone, tmp_path / "journal")[0])["small.csv"]

    assert (small.outcome, small.sha256_before, small.sha256_after) == \
        ("deleted", before, None)
    assert small.reason.startswith("k not reachable: the table has 3 rows, fewer than k = 5")
    assert not (zone / "small.csv").exists()


def test_l6_a_file_that_is_no_table_is_deleted_and_the_config_last(tmp_path: Path) -> None:
    zone = project_zone(tmp_path)
    pdf = sha256(zone / "cohort" / "scan.pdf")

    outcomes, _ = run(zone, tmp_path / "journal")

    found = by_path(outcomes)
    assert (found["cohort/scan.pdf"].outcome, found["cohort/scan.pdf"].reason,
            found["cohort/scan.pdf"].sha256_before) == ("deleted", "not a table", pdf)
    assert [outcome.path for outcome in outcomes[-2:]] == \
        ["hierarkier/yrke.csv", "anonymisation.toml"]
    assert found["anonymisation.toml"].reason == \
        "the anonymisation config: it describes the identifiers"
    assert found["hierarkier/yrke.csv"].reason == \
        "a hierarchy of the anonymisation config: it describes the identifiers"
    left = sorted(str(p.relative_to(zone)) for p in zone.rglob("*"))
    assert left == ["cohort", "cohort/visits.csv", "cohort/visits.parquet", "hierarkier",
                    "kept.csv"]  # folders stay


def test_l7_without_a_config_every_table_is_deleted(tmp_path: Path) -> None:
    zone = project_zone(tmp_path)
    (zone / "anonymisation.toml").unlink()

    outcomes, _ = run(zone, tmp_path / "journal")

    assert {outcome.outcome for outcome in outcomes} == {"deleted"}
    assert len(outcomes) == 6
    assert by_path(outcomes)["kept.csv"].reason == ("cannot be shown anonymous: no "
                                                    "anonymisation.toml in the data zone names "
                                                    "its quasi-identifiers")
    assert [p for p in zone.rglob("*") if not p.is_dir()] == []


def test_l7_one_config_for_every_table_a_table_is_judged_by_the_names_it_has(
        tmp_path: Path) -> None:
    zone = project_zone(tmp_path)
    write_csv(zone / "codes.csv", pl.DataFrame({"kode": ["J45", "E11"], "tekst": ["a", "b"]}))

    found = by_path(run(zone, tmp_path / "journal")[0])

    assert found["kept.csv"].outcome == "kept"  # alder and kommune; it has no kjonn or yrke
    assert (found["codes.csv"].outcome, found["codes.csv"].reason) == (
        "deleted", "cannot be shown anonymous: no quasi-identifiers named for it: none of the "
        "config's are among its columns")


def test_l7_groups_count_persons_and_a_table_without_the_person_column_is_deleted(
        tmp_path: Path) -> None:
    zone = tmp_path / "data"
    zone.mkdir()
    (zone / "anonymisation.toml").write_text(
        'quasi_identifiers = ["alder", "kommune"]\nperson = "lopenr"\nseed = 1\n')
    # 20 persons, two visits each, each age held by one person: 5-year bands make 5 persons.
    visits = pl.DataFrame({"lopenr": [str(n // 2) for n in range(40)],
                           "alder": [str(20 + n // 2) for n in range(40)],
                           "kommune": ["0301"] * 40})
    # Groups of 5 rows, but four persons in all: k = 5 persons is not reachable.
    repeated = pl.DataFrame({"lopenr": [str(n % 4) for n in range(20)],
                             "alder": ["30"] * 10 + ["40"] * 10, "kommune": ["0301"] * 20})
    write_csv(zone / "visits.csv", visits)
    write_csv(zone / "repeated.csv", repeated)
    write_csv(zone / "no-serial.csv", visits.drop("lopenr"))

    found = by_path(run(zone, tmp_path / "journal")[0])

    assert found["no-serial.csv"].reason == \
        "cannot be shown anonymous: no column 'lopenr' to count persons by (L7)"
    assert found["repeated.csv"].outcome == "deleted"
    assert found["repeated.csv"].reason.startswith("k not reachable: ")
    assert found["visits.csv"].outcome == "anonymised" and found["visits.csv"].k == 5
    frame = read_table(zone / "visits.csv").frame
    assert fewest_persons(frame, ["alder", "kommune"], "lopenr") >= 5
    assert independent_k(frame, ["alder", "kommune"]) >= 10  # rows: two visits a person


def test_l7_k_is_at_least_the_policys_whatever_the_config_asks(tmp_path: Path) -> None:
    zone = tmp_path / "data"
    zone.mkdir()
    (zone / "anonymisation.toml").write_text('quasi_identifiers = ["alder"]\nk = 2\nseed = 3\n')
    write_csv(zone / "pairs.csv", pl.DataFrame({"alder": [str(20 + n // 2) for n in range(40)]}))

    pairs = by_path(run(zone, tmp_path / "journal")[0])["pairs.csv"]

    assert pairs.outcome == "anonymised" and pairs.k is not None and pairs.k >= 5
    assert independent_k(read_table(zone / "pairs.csv").frame, ["alder"]) >= 5


def test_l6_the_anonymised_version_keeps_the_originals_owner_mode_and_acl(
        tmp_path: Path) -> None:
    zone = project_zone(tmp_path)
    path = zone / "cohort" / "visits.csv"
    os.chown(path, 4242, 4343)
    os.chmod(path, 0o640)
    subprocess.run(["setfacl", "-m", "u:4444:r", str(path)], check=True)
    acl = subprocess.run(["getfacl", "-cn", str(path)], check=True, capture_output=True,
                         text=True).stdout

    assert by_path(run(zone, tmp_path / "journal")[0])["cohort/visits.csv"].outcome == \
        "anonymised"

    info = os.stat(path)
    assert (info.st_uid, info.st_gid, info.st_mode & 0o7777) == (4242, 4343, 0o640)
    assert subprocess.run(["getfacl", "-cn", str(path)], check=True, capture_output=True,
                          text=True).stdout == acl


# --- nothing outside the zone -------------------------------------------------------------------


def test_l2_symlinks_and_fifos_are_removed_never_followed(tmp_path: Path) -> None:
    zone = project_zone(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    write_csv(outside / "other-project.csv", identifying_table())
    target = sha256(outside / "other-project.csv")
    (zone / "link.csv").symlink_to(outside / "other-project.csv")
    (zone / "linked-folder").symlink_to(outside)
    os.mkfifo(zone / "cohort" / "pipe.csv")

    found = by_path(run(zone, tmp_path / "journal")[0])

    for name in ("link.csv", "linked-folder"):
        assert (found[name].outcome, found[name].sha256_before) == ("deleted", None)
        assert found[name].reason == "a symlink or socket: removed as a name, never followed"
        assert not os.path.lexists(zone / name)
    assert found["cohort/pipe.csv"].reason.startswith("not a regular file")
    assert not os.path.lexists(zone / "cohort" / "pipe.csv")
    assert sorted(os.listdir(outside)) == ["other-project.csv"]
    assert sha256(outside / "other-project.csv") == target


@pytest.mark.parametrize("hierarchy", ["../outside/yrke.csv", "/tmp/yrke.csv",
                                       "linked/yrke.csv", "yrke-link.csv"])
def test_l7_a_hierarchy_outside_the_zone_refuses_the_whole_config(
        tmp_path: Path, hierarchy: str) -> None:
    zone = project_zone(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "yrke.csv").write_text(YRKE_HIERARCHY)
    (zone / "linked").symlink_to(outside)
    (zone / "yrke-link.csv").symlink_to(outside / "yrke.csv")
    (zone / "anonymisation.toml").write_text(CONFIG.replace("hierarkier/yrke.csv", hierarchy))

    found = by_path(run(zone, tmp_path / "journal")[0])

    tables = [found[name] for name in ("kept.csv", "cohort/visits.csv", "small.csv")]
    assert {outcome.outcome for outcome in tables} == {"deleted"}
    reason = tables[0].reason
    assert reason.startswith("cannot be shown anonymous: anonymisation.toml is refused: ")
    assert any(words in reason for words in ("leaves the data zone", "absolute path",
                                             "symlink")), reason
    assert found["anonymisation.toml"].reason == \
        "the anonymisation config: it describes the identifiers"
    assert (outside / "yrke.csv").read_text() == YRKE_HIERARCHY


def test_l7_a_config_that_does_not_parse_is_no_config(tmp_path: Path) -> None:
    zone = project_zone(tmp_path)
    (zone / "anonymisation.toml").write_text("k = 1\n" + CONFIG)

    found = by_path(run(zone, tmp_path / "journal")[0])

    assert found["kept.csv"].reason == ("cannot be shown anonymous: anonymisation.toml is "
                                        "refused: anonymisation.toml: k: 1 is below 2")
    assert {outcome.outcome for outcome in found.values()} == {"deleted"}


# --- journalled, resumable, stoppable -----------------------------------------------------------

_KILLED_RUN = r"""
import sys, time
from datetime import date
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from agent.lifecycle.anonymise_run import anonymise_data_zone
from agent.policy.files import load_default_policy
zone, journal, marker, kill_at = sys.argv[2:6]
asked = [0]
def should_stop():
    asked[0] += 1
    if asked[0] == int(kill_at):
        Path(marker).write_text("here")
        time.sleep(3600)  # killed here
    return False
anonymise_data_zone(Path(zone), Path(journal), policy=load_default_policy(),
                    today=date(2031, 7, 1), should_stop=should_stop)
"""


def kill_mid_run(tmp_path: Path, zone: Path, journal: Path, kill_at: int) -> None:
    marker = tmp_path / "marker"
    child = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, str(ROOT), str(zone),
                              str(journal), str(marker), str(kill_at)])
    try:
        deadline = time.monotonic() + 120  # a guard against a hang, not a timing assertion
        while not marker.exists():
            assert child.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "the run never reached the file"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL


@pytest.mark.parametrize("kill_at", [1, 3, 5, 6, 7])
def test_l7_a_run_killed_with_sigkill_completes_with_the_same_outcomes(
        tmp_path: Path, kill_at: int) -> None:
    zone = project_zone(tmp_path / "killed")
    reference_zone = project_zone(tmp_path / "reference")
    expected, _ = run(reference_zone, tmp_path / "reference-journal")
    assert len(expected) == 7  # 5 files, then the hierarchy and the config

    kill_mid_run(tmp_path, zone, tmp_path / "journal", kill_at)
    outcomes, stopped = run(zone, tmp_path / "journal")

    assert not stopped
    assert sorted(outcomes, key=lambda o: o.path) == sorted(expected, key=lambda o: o.path)
    assert sorted(p.read_bytes() for p in zone.rglob("*") if p.is_file()) == \
        sorted(p.read_bytes() for p in reference_zone.rglob("*") if p.is_file())
    assert run(zone, tmp_path / "journal") == (outcomes, False)  # a second run: nothing new


def test_l7_a_run_killed_around_the_rename_finds_its_pending_outcome(tmp_path: Path) -> None:
    """The state SIGKILL leaves between journalling an anonymised version as pending and
    recording its outcome: renamed into place or not, the next run ends where a whole one
    would, without anonymising the anonymised table again."""
    reference = project_zone(tmp_path / "reference")
    expected, _ = run(reference, tmp_path / "reference-journal")
    lines = (tmp_path / "reference-journal" / "anonymise.jsonl").read_text().splitlines()
    pending = next(n for n, line in enumerate(lines) if '"pending"' in line)
    path = json.loads(lines[pending])["pending"]["path"]

    for renamed in (True, False):
        case = tmp_path / f"renamed-{renamed}"
        zone = project_zone(case)
        journal = case / "journal"
        journal.mkdir()
        (journal / "anonymise.jsonl").write_text(
            "\n".join(lines[:pending + 1]).replace(str(reference), str(zone)) + "\n")
        done = [json.loads(line)["outcome"]["path"] for line in lines[1:pending]]
        for name in done:  # as the killed run left them
            if os.path.lexists(reference / name):
                shutil.copy2(reference / name, zone / name)
            else:
                (zone / name).unlink()
        if renamed:
            shutil.copy2(reference / path, zone / path)

        outcomes, _ = run(zone, journal)

        assert sorted(outcomes, key=lambda o: o.path) == sorted(expected, key=lambda o: o.path)
        assert sha256(zone / path) == sha256(reference / path)


def test_l5_should_stop_stops_before_the_next_file_and_a_later_run_finishes(
        tmp_path: Path) -> None:
    zone = project_zone(tmp_path)
    asked: list[bool] = []

    def hold_after_two() -> bool:
        asked.append(True)
        return len(asked) > 2

    outcomes, stopped = run(zone, tmp_path / "journal", hold_after_two)

    assert stopped and len(asked) == 3 and len(outcomes) == 2
    assert (zone / "anonymisation.toml").exists()
    assert len([p for p in zone.rglob("*") if p.is_file()]) == 7 - sum(
        o.outcome == "deleted" for o in outcomes)
    finished, stopped_again = run(zone, tmp_path / "journal")
    assert not stopped_again and finished[:2] == outcomes and len(finished) == 7


def test_l2_a_journal_of_another_zone_or_a_damaged_one_is_refused(tmp_path: Path) -> None:
    first = project_zone(tmp_path / "one")
    other = project_zone(tmp_path / "two")
    run(first, tmp_path / "journal", lambda: True)
    with pytest.raises(Failed, match="is for the zone"):
        run(other, tmp_path / "journal")
    journal = tmp_path / "journal" / "anonymise.jsonl"
    journal.write_text(journal.read_text() + "rubbish\n{\"outcome\": {\"path\": \"x\"}}\n")
    with pytest.raises(Failed, match="line 2 is not a record"):
        run(first, tmp_path / "journal")
    assert len([p for p in other.rglob("*") if p.is_file()]) == 7


def test_l2_a_line_torn_by_a_crash_is_cut_off_and_that_file_redone(tmp_path: Path) -> None:
    zone = project_zone(tmp_path)
    journal = tmp_path / "journal"
    asked: list[bool] = []

    def stop_after_one() -> bool:
        asked.append(True)
        return len(asked) > 1

    first, _ = run(zone, journal, stop_after_one)
    assert len(first) == 1
    with (journal / "anonymise.jsonl").open("a") as stream:
        stream.write('{"outcome": {"path": "half')

    outcomes, _ = run(zone, journal)

    assert outcomes[0] == first[0] and len(outcomes) == 7
    assert "half" not in (journal / "anonymise.jsonl").read_text()


def test_l7_the_readers_extensions_are_the_ones_taken_for_tables() -> None:
    assert set(tables._EXTENSIONS) == TABLE_SUFFIXES


# --- archiving (L9) -------------------------------------------------------------------------------


def test_l9_the_archive_note_names_the_transfer_agreement_as_last_recorded() -> None:
    facts = [ApprovalFacts(1, ApprovalKind.REK, "REK 2020/123"),
             ApprovalFacts(2, ApprovalKind.TRANSFER_AGREEMENT, "NSD-2031-7",
                           valid_until=date(2040, 1, 1)),
             ApprovalFacts(3, ApprovalKind.TRANSFER_AGREEMENT, "NSD-2031-7",
                           valid_until=date(2045, 1, 1))]
    assert archive_note(facts) == ("transferred to the external archive under transfer "
                                   "agreement NSD-2031-7 (valid until 2045-01-01), then "
                                   "deleted locally (L9)")
    row = Approval(id=4, project_id="p1", kind="transfer_agreement", reference="SSB 99",
                   recorded_by="root", recorded_at=datetime(2031, 6, 30, 23, 30, tzinfo=UTC))
    assert archive_note([row]) == ("transferred to the external archive under transfer "
                                   "agreement SSB 99 (recorded 2031-06-30), then deleted "
                                   "locally (L9)")
    with pytest.raises(Refused, match="no transfer agreement") as refused:
        archive_note(facts[:1])
    assert refused.value.rule == "L9"
