"""A removal of a project's zones (L2) survives SIGKILL and completes when run again, on real
trees as root: the plan is read back from the journal, never taken again; a second run after
completion does nothing; a journal cut short or for other zones is handled as it should be."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from agent.errors import Failed
from agent.lifecycle.removal import Item, Removal, inventory
from tests.support.killing import kill_at_marker

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]

_KILLED_RUN = r"""
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from agent.lifecycle.removal import Removal
journal, zones, marker, kill_at, sync_every, workers = sys.argv[2:8]
seen = [0]
def on_item(item):
    seen[0] += 1
    if seen[0] == int(kill_at):
        Path(marker).write_text(str(seen[0]))
        time.sleep(3600)  # killed here
Removal(Path(journal), [Path(z) for z in zones.split(",")], sync_every=int(sync_every)).run(
    on_item=on_item, workers=int(workers))
"""


def fill(root: Path, count: int, folders: int = 3) -> None:
    for n in range(count):
        folder = root / f"d{n % folders}" / ("deep" if n % 2 else "")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{n}.csv").write_bytes(b"%d;row\n" % n * (n + 1))


def kill_mid_run(tmp_path: Path, zones: list[Path], kill_at: int, sync_every: int,
                 workers: int) -> None:
    """A removal in a process of its own, SIGKILLed while it waits after item ``kill_at``."""
    marker = tmp_path / "marker"
    kill_at_marker([sys.executable, "-c", _KILLED_RUN, str(ROOT), str(tmp_path / "journal"),
                    ",".join(map(str, zones)), str(marker), str(kill_at), str(sync_every),
                    str(workers)], marker, "removal")


@pytest.mark.parametrize(("kill_at", "sync_every", "workers"),
                         [(1, 1, 1), (9, 1, 1), (9, 1000, 1), (20, 4, 2)])
def test_l2_a_run_killed_with_sigkill_resumes_from_its_journal_and_completes(
        tmp_path: Path, kill_at: int, sync_every: int, workers: int) -> None:
    zones = [tmp_path / "p9002" / "data", tmp_path / "p9002" / "keys"]
    fill(zones[0], 30)
    fill(zones[1], 6, folders=1)
    expected = [item for zone in zones for item in inventory(zone)]

    kill_mid_run(tmp_path, zones, kill_at, sync_every, workers)

    present = [item for item in expected if os.path.lexists(Path(item.zone, item.path))]
    assert kill_at <= len(expected) - len(present) <= kill_at + workers - 1
    resumed = Removal(tmp_path / "journal", zones)
    assert resumed.plan() == expected  # read back: the zones no longer hold it all
    report = resumed.run()
    assert report.errors == () and not report.stopped
    assert report.done_before + report.removed + report.gone == report.items == len(expected)
    assert report.removed == len(present)
    if sync_every == 1 and workers == 1:
        assert (report.done_before, report.gone) == (kill_at, 0)
    if sync_every > kill_at:  # the progress never reached the disk: redone, found gone
        assert (report.done_before, report.gone) == (0, kill_at)
    assert resumed.verify() == []
    assert [path.name for path in zones if path.is_dir()] == ["data", "keys"]  # roots stay


def test_l2_a_second_run_after_completion_does_nothing(tmp_path: Path) -> None:
    zone = tmp_path / "zone"
    fill(zone, 10)
    count = len(list(inventory(zone)))
    removal = Removal(tmp_path / "journal", [zone])
    first = removal.run()
    (zone / "written-afterwards.csv").write_bytes(b"not in the plan\n")
    asked: list[bool] = []

    def should_stop() -> bool:
        asked.append(True)
        return False

    again = Removal(tmp_path / "journal", [zone]).run(should_stop=should_stop)

    assert first.removed == first.items == count == 16
    assert (again.removed, again.gone, again.bytes, again.done_before) == (0, 0, 0, count)
    assert asked == []
    assert removal.verify() == [f"{zone}/written-afterwards.csv"]  # the plan is never retaken


def test_l2_a_plan_cut_short_by_a_crash_is_taken_again_and_stale_progress_ignored(
        tmp_path: Path) -> None:
    zone = tmp_path / "zone"
    fill(zone, 5)
    journal = tmp_path / "journal"
    journal.mkdir(mode=0o700)
    (journal / ".plan.jsonl.tmp").write_text('{"journal": "vokter-removal", "vers')
    (journal / "done.jsonl").write_text('{"done": 0}\n{"done": 1}\n')

    report = Removal(journal, [zone]).run()

    assert (report.done_before, report.removed, report.items) == (0, 10, 10)
    assert sorted(path.name for path in journal.iterdir()) == ["done.jsonl", "plan.jsonl"]


def test_l2_a_torn_last_progress_line_is_redone_and_a_damaged_one_refused(
        tmp_path: Path) -> None:
    zone = tmp_path / "zone"
    fill(zone, 4, folders=1)
    journal = tmp_path / "journal"
    removal = Removal(journal, [zone])
    planned = removal.plan()
    os.unlink(Path(planned[0].zone, planned[0].path))
    (journal / "done.jsonl").write_text('{"done": 0}\n{"do')

    report = Removal(journal, [zone]).run()
    assert (report.done_before, report.removed) == (1, len(planned) - 1)

    (journal / "done.jsonl").write_text('{"done": 0}\nrubbish\n{"done": 2}\n')
    with pytest.raises(Failed, match="line 2 of its progress is not a record"):
        Removal(journal, [zone]).run()


def test_l2_a_journal_for_other_zones_is_refused(tmp_path: Path) -> None:
    fill(tmp_path / "a", 2)
    fill(tmp_path / "b", 2)
    Removal(tmp_path / "journal", [tmp_path / "a"]).plan()
    with pytest.raises(Failed, match="is for other zones"):
        Removal(tmp_path / "journal", [tmp_path / "b"]).run()
    assert len(list((tmp_path / "b").rglob("*.csv"))) == 2


def test_l2_two_runs_on_one_journal_at_once_are_refused(tmp_path: Path) -> None:
    zone = tmp_path / "zone"
    fill(zone, 3)
    refusals: list[str] = []

    def start_a_second_run(item: Item) -> None:
        if not refusals:
            with pytest.raises(Failed, match="is already running") as refused:
                Removal(tmp_path / "journal", [zone]).run()
            refusals.append(refused.value.message)

    report = Removal(tmp_path / "journal", [zone]).run(on_item=start_a_second_run)
    assert len(refusals) == 1 and report.errors == () and report.removed == report.items


def test_l2_names_that_are_not_utf8_or_hold_newlines_survive_the_journal(
        tmp_path: Path) -> None:
    zone = tmp_path / "zone"
    zone.mkdir()
    odd = [b"caf\xe9.csv", b"two\nlines.csv", b'quote"and\\slash.csv']
    zone_fd = os.open(zone, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in odd:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=zone_fd)
            os.close(fd)
    finally:
        os.close(zone_fd)
    Removal(tmp_path / "journal", [zone]).plan()

    resumed = Removal(tmp_path / "journal", [zone])
    assert sorted(os.fsencode(item.path) for item in resumed.plan()) == sorted(odd)
    assert resumed.run().removed == 3 and os.listdir(zone) == []


def test_l2_the_journal_is_private_durable_json_lines_and_discarded_on_request(
        tmp_path: Path) -> None:
    zone = tmp_path / "zone"
    fill(zone, 3)
    journal = tmp_path / "journal"
    removal = Removal(journal, [zone])
    removal.run()

    assert stat.S_IMODE(journal.stat().st_mode) == 0o700
    for name in ("plan.jsonl", "done.jsonl"):
        assert stat.S_IMODE((journal / name).stat().st_mode) == 0o600
    lines = [json.loads(line) for line in (journal / "plan.jsonl").read_text().splitlines()]
    assert lines[0]["zones"] == [str(zone)] and lines[-1] == {"items": 7}
    done = [json.loads(line)["done"] for line in (journal / "done.jsonl").read_text().splitlines()]
    assert sorted(done) == list(range(7))

    removal.discard_journal()
    assert list(journal.iterdir()) == []
    journal.rmdir()
    journal.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(Failed, match="cannot be opened"):
        Removal(journal, [zone]).plan()
