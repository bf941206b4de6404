"""``vokter anonymise check|apply`` as a user runs them: the real command on real files of all
four formats, every output re-checked by pycanon, bad input refused in one line with the input
untouched, and the caller's own permissions deciding what can be read (L6, L7, D4)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import tempfile
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import polars as pl
import pyreadstat
import pytest

from tests.anonymise.test_search import ADULT, ADULT_QIS, adult, assert_minimal
from tests.support.anonymity import independent_k
from tests.support.daemon import VOKTER
from tests.support.users import UserFactory

QIS = ["alder", "kommune", "kjonn"]


def vokter(*args: str, user: str | None = None, cwd: Path | None = None
           ) -> subprocess.CompletedProcess[str]:
    command = [str(VOKTER), *args]
    if user is not None:
        command = ["runuser", "-u", user, "--", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False,
                          cwd=cwd)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cohort(rows: int = 300) -> pd.DataFrame:
    """A register extract, drawn with a fixed seed: ages, municipalities, sex, diagnoses."""
    draw = random.Random(8)
    kommuner = ["0301", "1103", "4601", "5001", "1804", "3024"]
    return pd.DataFrame({
        "lopenr": [float(1000 + i) for i in range(rows)],
        "alder": [float(draw.randint(18, 90)) for _ in range(rows)],
        "kommune": [draw.choice(kommuner) for _ in range(rows)],
        "kjonn": [draw.choice([1.0, 2.0]) for _ in range(rows)],
        "diagnose": [draw.choice(["E10", "E11", "I21", "J45"]) for _ in range(rows)],
        "verdi": [i / 3 for i in range(rows)],
    })


LABELS = {"kjonn": {1.0: "Mann", 2.0: "Kvinne"}, "verdi": {0.0: "ingen"}}
VARIABLE_LABELS = ["Løpenummer", "Alder i år", "Bostedskommune", "Kjønn", "Diagnose", "Verdi"]


def write_all_formats(folder: Path) -> dict[str, Path]:
    frame = cohort()
    paths = {name: folder / f"cohort.{ext}" for name, ext in
             [("csv", "csv"), ("parquet", "parquet"), ("stata", "dta"), ("spss", "sav")]}
    frame.to_csv(paths["csv"], sep=";", index=False)
    pl.from_pandas(frame).write_parquet(paths["parquet"])
    pyreadstat.write_dta(frame, str(paths["stata"]), column_labels=VARIABLE_LABELS,
                         variable_value_labels=LABELS)
    pyreadstat.write_sav(frame, str(paths["spss"]), column_labels=VARIABLE_LABELS,
                         variable_value_labels=LABELS)
    return paths


def read_back(path: Path) -> tuple[pd.DataFrame, object | None]:
    if path.suffix == ".csv":
        return pd.read_csv(path, sep=";", dtype=str), None
    if path.suffix == ".parquet":
        return pl.read_parquet(path).to_pandas(), None
    reader = pyreadstat.read_dta if path.suffix == ".dta" else pyreadstat.read_sav
    return reader(str(path))


@pytest.mark.parametrize("kind", ["csv", "parquet", "stata", "spss"])
def test_l7_apply_keeps_the_format_and_the_output_is_k_anonymous(tmp_path: Path,
                                                                   kind: str) -> None:
    source = write_all_formats(tmp_path)[kind]
    before = digest(source)
    out = tmp_path / f"anon{source.suffix}"
    report = tmp_path / "report.json"
    done = vokter("anonymise", "apply", str(source), "-o", str(out), "--qi", ",".join(QIS),
                  "--hierarchy", "kjonn=sex", "--k", "5", "--max-suppression", "0",
                  "--drop", "lopenr", "--report", str(report))
    assert done.returncode == 0, done.stderr
    assert digest(source) == before
    figures = json.loads(report.read_text())
    assert {"k", "suppressed_rows", "levels", "loss"} <= set(figures)
    assert figures["k"] == 5 and figures["suppressed_rows"] == 0
    assert set(figures["levels"]) == set(QIS)
    assert f"wrote {out}" in done.stdout
    frame, meta = read_back(out)
    assert "lopenr" not in frame.columns
    assert len(frame) == 300
    assert independent_k(frame, QIS) >= 5
    assert sorted(frame["diagnose"]) == sorted(cohort()["diagnose"])
    if meta is not None:
        labels = dict(zip(meta.column_names, meta.column_labels, strict=True))  # type: ignore[attr-defined]
        assert labels["verdi"] == "Verdi" and labels["alder"] == "Alder i år"
        assert meta.variable_value_labels.get("verdi") == {0.0: "ingen"}  # type: ignore[attr-defined]
        assert frame["verdi"].dtype.kind == "f"
    check = vokter("anonymise", "check", str(out), "--qi", ",".join(QIS), "--k", "5")
    assert check.returncode == 0, check.stdout + check.stderr


def test_l7_adult_with_arx_hierarchies_gives_a_minimal_node(tmp_path: Path) -> None:
    out = tmp_path / "adult-anon.csv"
    report = tmp_path / "report.json"
    args = ["anonymise", "apply", str(ADULT / "adult.csv"), "-o", str(out), "--k", "5",
            "--max-suppression", "0%", "--qi", ",".join(ADULT_QIS), "--report", str(report)]
    for name in ADULT_QIS:
        args += ["--hierarchy", f"{name}={ADULT / f'adult_hierarchy_{name}.csv'}"]
    done = vokter(*args)
    assert done.returncode == 0, done.stderr
    figures = json.loads(report.read_text())
    assert figures["suppressed_rows"] == 0 and figures["k_reached"] >= 5
    levels = tuple(figures["levels"][name] for name in ADULT_QIS)
    frequencies, arrays = adult()
    from agent.anonymise.search import Criteria

    assert_minimal(frequencies, arrays, levels, Criteria(5, 0))
    frame = pd.read_csv(out, sep=";", dtype=str, keep_default_na=False)
    assert len(frame) == 30162
    assert independent_k(frame, list(ADULT_QIS)) >= 5


def test_l7_check_exits_1_and_describes_classes_by_size_never_values(tmp_path: Path) -> None:
    source = write_all_formats(tmp_path)["csv"]
    done = vokter("anonymise", "check", str(source), "--qi", "alder,kommune", "--k", "5")
    assert done.returncode == 1
    assert "not 5-anonymous" in done.stdout and "of size" in done.stdout
    for value in ("0301", "1103", "18", "E10"):
        assert value not in done.stdout.replace(",", " ").split()
    as_json = vokter("anonymise", "check", str(source), "--qi", "kjonn", "--json")
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout)["anonymous"] is True


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--qi", "alder,fodested"], "fodested"),
        (["--qi", "alder", "--k", "1"], "k = 1"),
        (["--qi", "alder", "--hierarchy", "alder=missing.csv"], "missing.csv"),
        (["--qi", "diagnose", "--hierarchy", "diagnose=age"], "diagnose"),
        (["--qi", "kjonn", "--k", "500", "--max-suppression", "0"], "fewer than k = 500"),
    ],
)
def test_l7_bad_input_gives_one_line_and_leaves_the_input_unchanged(
    tmp_path: Path, extra: list[str], words: str
) -> None:
    source = write_all_formats(tmp_path)["parquet"]
    before = digest(source)
    out = tmp_path / "out.parquet"
    done = vokter("anonymise", "apply", str(source), "-o", str(out), *extra, cwd=tmp_path)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1 and words in done.stderr
    assert "Traceback" not in done.stderr
    assert digest(source) == before and not out.exists()


def test_l7_a_share_that_is_no_share_is_a_usage_error(tmp_path: Path) -> None:
    source = write_all_formats(tmp_path)["csv"]
    for share in ("7", "-1%", "half"):
        done = vokter("anonymise", "apply", str(source), "-o", str(tmp_path / "o.csv"),
                      "--qi", "kjonn", "--max-suppression", share)
        assert done.returncode == 2 and "--max-suppression" in done.stderr
        assert not (tmp_path / "o.csv").exists()


def test_l7_a_value_missing_from_a_hierarchy_file_is_named(tmp_path: Path) -> None:
    source = write_all_formats(tmp_path)["csv"]
    hierarchy = tmp_path / "kommune.csv"
    hierarchy.write_text("0301;03;*\n1103;11;*\n")
    done = vokter("anonymise", "apply", str(source), "-o", str(tmp_path / "o.csv"),
                  "--qi", "kommune", "--hierarchy", f"kommune={hierarchy}")
    assert done.returncode == 1
    assert "kommune" in done.stderr and "4601" in done.stderr


def test_l7_unreadable_files_and_output_onto_the_input_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "data.dta"
    garbage.write_bytes(b"not a stata file at all")
    done = vokter("anonymise", "check", str(garbage), "--qi", "a")
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1
    source = write_all_formats(tmp_path)["stata"]
    before = digest(source)
    link = tmp_path / "same.dta"
    os.link(source, link)
    for target in (source, link):
        refused = vokter("anonymise", "apply", str(source), "-o", str(target), "--qi", "kjonn",
                         "--overwrite")
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        onto = vokter("anonymise", "apply", str(source), "-o", str(tmp_path / "o.dta"),
                      "--qi", "kjonn", "--drop", "lopenr", "--report", str(target),
                      "--overwrite")
        assert onto.returncode == 1 and "which this run reads" in onto.stderr
    assert digest(source) == before


def test_l7_a_user_anonymises_only_what_they_may_read(unix_users: UserFactory) -> None:
    member = unix_users.create()
    # Outside pytest's private tmp folder, which other users cannot enter.
    folder = Path(tempfile.mkdtemp(prefix="vokter-anon-"))
    try:
        os.chmod(folder, 0o755)  # noqa: S103 - the member must enter it
        source = write_all_formats(folder)["csv"]
        os.chmod(source, 0o600)
        out = folder / "out.csv"
        denied = vokter("anonymise", "apply", str(source), "-o", str(out), "--qi", "kjonn",
                        user=member.name)
        assert denied.returncode == 1 and "may not read" in denied.stderr
        assert len(denied.stderr.strip().splitlines()) == 1
        assert not out.exists()
        os.chmod(source, 0o644)
        os.chown(folder, member.uid, member.gid)
        allowed = vokter("anonymise", "apply", str(source), "-o", str(out), "--qi", "kjonn",
                         "--drop", "lopenr", user=member.name)
        assert allowed.returncode == 0, allowed.stderr
        assert out.stat().st_uid == member.uid
    finally:
        shutil.rmtree(folder)


def test_d4_dates_shift_alike_in_two_files_of_one_project(tmp_path: Path) -> None:
    secret = tmp_path / "date.secret"
    assert vokter("anonymise", "new-secret", str(secret)).returncode == 0
    assert secret.stat().st_mode & 0o777 == 0o600
    rows = 60
    admitted = [date(2021, 3, 1) + timedelta(days=i) for i in range(rows)]
    first = pl.DataFrame({"lopenr": list(range(rows)), "kjonn": ["M", "K"] * (rows // 2),
                          "innlagt": admitted})
    second = pl.DataFrame({"lopenr": list(range(rows)),
                           "utskrevet": [day + timedelta(days=5) for day in admitted],
                           "kjonn": ["M", "K"] * (rows // 2)})
    first.write_parquet(tmp_path / "a.parquet")
    second.write_csv(tmp_path / "b.csv")
    for name, column in (("a.parquet", "innlagt"), ("b.csv", "utskrevet")):
        done = vokter("anonymise", "apply", str(tmp_path / name), "-o",
                      str(tmp_path / f"anon-{name}"), "--qi", "kjonn", "--shift-dates", column,
                      "--serial", "lopenr", "--date-secret", str(secret))
        assert done.returncode == 0, done.stderr
    a = pl.read_parquet(tmp_path / "anon-a.parquet")
    b = pl.read_csv(tmp_path / "anon-b.csv", try_parse_dates=True)
    joined = a.join(b, on="lopenr")
    assert (joined["utskrevet"] - joined["innlagt"]).dt.total_days().to_list() == [5] * rows
    assert a.sort("lopenr")["innlagt"].to_list() != admitted


def test_l7_a_projects_config_names_the_columns_hierarchies_and_secret(tmp_path: Path) -> None:
    """Hierarchy files and the date secret are named relative to the config file's folder."""
    project = tmp_path / "project"
    (project / "hierarkier").mkdir(parents=True)
    assert vokter("anonymise", "new-secret", str(project / "date.secret")).returncode == 0
    (project / "hierarkier" / "diagnose.csv").write_text(
        "E10;E;*\nE11;E;*\nI21;I;*\nJ45;J;*\n")
    (project / "anonymise.toml").write_text(
        'quasi_identifiers = ["alder", "kommune", "diagnose"]\n'
        "k = 4\nmax_suppression = 0.02\nseed = 3\n"
        'direct_identifiers = ["verdi"]\n'
        '[hierarchies]\nalder = "age"\ndiagnose = "hierarkier/diagnose.csv"\n'
        '[dates]\ncolumns = ["innlagt"]\nserial = "lopenr"\nsecret_file = "date.secret"\n'
        "max_shift_days = 20\n")
    frame = cohort().assign(innlagt=[date(2022, 1, 1) + timedelta(days=i) for i in range(300)])
    pyreadstat.write_dta(frame, str(tmp_path / "c.dta"), column_labels=[*VARIABLE_LABELS,
                                                                         "Innlagt"])
    report = tmp_path / "r.json"
    done = vokter("anonymise", "apply", str(tmp_path / "c.dta"), "-o", str(tmp_path / "o.dta"),
                  "--config", str(project / "anonymise.toml"), "--report", str(report),
                  cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    figures = json.loads(report.read_text())
    assert figures["k"] == 4 and figures["max_suppression"] == 0.02
    assert figures["hierarchies"]["alder"] == "age"
    assert figures["hierarchies"]["diagnose"].endswith("hierarkier/diagnose.csv")
    assert figures["removed_columns"] == {"verdi": "named as a direct identifier (L6)"}
    assert figures["shifted_columns"] == ["innlagt"]
    out, meta = pyreadstat.read_dta(str(tmp_path / "o.dta"))
    assert independent_k(out, ["alder", "kommune", "diagnose"]) >= 4
    by_serial = dict(zip(frame["lopenr"], frame["innlagt"], strict=True))
    moved = {(day.date() if hasattr(day, "date") else day) - by_serial[serial]
             for serial, day in zip(out["lopenr"], out["innlagt"], strict=True)}
    assert all(1 <= abs(delta.days) <= 20 for delta in moved)
    assert dict(zip(meta.column_names, meta.column_labels, strict=True))["innlagt"] == "Innlagt"


def test_l7_suppression_beyond_the_policy_is_refused(tmp_path: Path) -> None:
    source = write_all_formats(tmp_path)["csv"]
    done = vokter("anonymise", "apply", str(source), "-o", str(tmp_path / "o.csv"),
                  "--qi", "kjonn", "--max-suppression", "10%")
    assert done.returncode == 1 and "(L7)" in done.stderr
    assert "anonymisation.max_suppression" in done.stderr
    assert not (tmp_path / "o.csv").exists()


def test_l7_a_fifo_for_a_hierarchy_is_refused_not_waited_on(tmp_path: Path) -> None:
    source = write_all_formats(tmp_path)["csv"]
    fifo = tmp_path / "hierarchy.csv"
    os.mkfifo(fifo)
    done = vokter("anonymise", "apply", str(source), "-o", str(tmp_path / "o.csv"),
                  "--qi", "kommune", "--hierarchy", f"kommune={fifo}")
    assert done.returncode == 1 and "not a regular file" in done.stderr


def test_d4_the_output_never_replaces_the_date_secret(tmp_path: Path) -> None:
    source = write_all_formats(tmp_path)["csv"]
    secret = tmp_path / "date.secret"
    assert vokter("anonymise", "new-secret", str(secret)).returncode == 0
    before = digest(secret)
    for target in (["-o", str(secret)], ["-o", str(tmp_path / "o.csv"), "--report", str(secret)]):
        done = vokter("anonymise", "apply", str(source), *target, "--qi", "kjonn",
                      "--shift-dates", "verdi", "--serial", "lopenr", "--date-secret",
                      str(secret), "--overwrite")
        assert done.returncode == 1 and "which this run reads" in done.stderr
    assert digest(secret) == before


def test_l7_a_report_in_a_missing_folder_is_refused_before_any_output(tmp_path: Path) -> None:
    source = write_all_formats(tmp_path)["csv"]
    done = vokter("anonymise", "apply", str(source), "-o", str(tmp_path / "o.csv"),
                  "--qi", "kjonn", "--drop", "lopenr",
                  "--report", str(tmp_path / "missing" / "r.json"))
    assert done.returncode == 1 and "no folder" in done.stderr
    assert not (tmp_path / "o.csv").exists()


def test_l6_a_column_of_lists_is_refused_in_one_line(tmp_path: Path) -> None:
    frame = pl.from_pandas(cohort()).with_columns(
        pl.Series("koder", [[i, i + 1] for i in range(300)]))
    frame.write_parquet(tmp_path / "nested.parquet")
    done = vokter("anonymise", "apply", str(tmp_path / "nested.parquet"), "-o",
                  str(tmp_path / "o.parquet"), "--qi", "kjonn")
    assert done.returncode == 1 and "--drop koder" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_l7_check_with_a_person_column_counts_persons(tmp_path: Path) -> None:
    visits = pd.DataFrame({"lopenr": [p for p in range(6) for _ in range(5)],
                           "alder": [40 + p % 2 for p in range(6) for _ in range(5)]})
    visits.to_csv(tmp_path / "visits.csv", sep=";", index=False)
    by_rows = vokter("anonymise", "check", str(tmp_path / "visits.csv"), "--qi", "alder")
    assert by_rows.returncode == 0
    by_persons = vokter("anonymise", "check", str(tmp_path / "visits.csv"), "--qi", "alder",
                        "--person", "lopenr")
    assert by_persons.returncode == 1 and "3 of size 3" not in by_persons.stdout
    assert "2 of size 3" in by_persons.stdout


def test_l6_a_stata_column_encoding_identity_numbers_is_removed(tmp_path: Path) -> None:
    from tests.support.identity_numbers import valid_numbers

    numbers = valid_numbers(3, seed=9)
    frame = cohort().assign(pid=[float(1 + i % 3) for i in range(300)])
    labels = {"pid": {float(i + 1): number for i, number in enumerate(numbers)}}
    pyreadstat.write_dta(frame, str(tmp_path / "c.dta"), variable_value_labels=labels,
                         file_label=f"uttrekk for {numbers[0]}")
    report = tmp_path / "r.json"
    done = vokter("anonymise", "apply", str(tmp_path / "c.dta"), "-o", str(tmp_path / "o.dta"),
                  "--qi", "kjonn", "--drop", "lopenr", "--report", str(report))
    assert done.returncode == 0, done.stderr
    figures = json.loads(report.read_text())
    assert figures["removed_columns"]["pid"] == "its value labels are identity numbers (L6)"
    assert figures["masked_metadata"] >= 1
    written = (tmp_path / "o.dta").read_bytes()
    for number in numbers:
        assert number.encode() not in written
        assert number not in done.stdout + report.read_text()
