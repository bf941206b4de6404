"""The data zone the anonymising-disposal tests build, and how they run the anonymisation."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date
from pathlib import Path

import polars as pl

from agent.lifecycle.anonymise_run import (
    TableOutcome,
    anonymise_data_zone,
)
from agent.policy.files import load_default_policy
from tests.support.identity_numbers import some

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
