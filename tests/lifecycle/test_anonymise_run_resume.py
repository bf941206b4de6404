"""Disposal by anonymisation, resumed: a run killed with SIGKILL at any point, or stopped by a
hold, finishes with the same outcomes; damaged or foreign journals are refused (L2, L5, L7).
Archiving's note for the certificate (L9) is at the end."""

from __future__ import annotations

import json
import os
import shutil
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from agent.anonymise import tables
from agent.errors import Failed, Refused
from agent.lifecycle.anonymise_run import (
    TABLE_SUFFIXES,
    archive_note,
)
from agent.lifecycle.model import ApprovalFacts, ApprovalKind
from agent.store.tables import Approval
from tests.lifecycle.anonymise_zone import (
    ROOT,
    project_zone,
    run,
    sha256,
)
from tests.support.killing import kill_at_marker

pytestmark = pytest.mark.root


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
    kill_at_marker([sys.executable, "-c", _KILLED_RUN, str(ROOT), str(zone), str(journal),
                    str(marker), str(kill_at)], marker, "run")


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
