"""Disposal by anonymisation, the data zone's part (L6, L7), on real files as root: each file is
kept, anonymised or deleted by the rules of agent.lifecycle.anonymise_settings, nothing outside
the zone is touched. Resuming after a kill: test_anonymise_run_resume.py."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import polars as pl
import pytest

from agent.anonymise.tables import read_table
from tests.lifecycle.anonymise_zone import (
    CONFIG,
    POLICY,
    QIS,
    YRKE_HIERARCHY,
    by_path,
    identifying_table,
    project_zone,
    run,
    sha256,
    write_csv,
)
from tests.support.anonymity import fewest_persons, independent_k

pytestmark = pytest.mark.root


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


