"""``vokter policy check`` runs without a daemon: exit 0 and OK for a valid file, exit 1 and
each problem for a broken one, so scripts and CI can rely on the exit code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def vokter(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=60, check=False)


def test_the_default_policy_checks_ok_with_exit_0() -> None:
    result = vokter("policy", "check", str(REPO / "policies" / "default.toml"))
    assert (result.returncode, result.stdout.strip()) == (0, "OK")


def test_l3_a_retention_beyond_the_rules_fails_with_exit_1_and_names_the_rule(
    tmp_path: Path,
) -> None:
    text = (REPO / "policies" / "default.toml").read_text()
    broken = tmp_path / "default.toml"
    broken.write_text(text.replace("max_years_after_end = 5", "max_years_after_end = 6"))
    result = vokter("policy", "check", str(broken))
    assert result.returncode == 1
    assert "max_years_after_end" in result.stdout + result.stderr
    assert "L3" in result.stdout + result.stderr


def test_a_file_that_is_not_toml_fails_with_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("x=\n")
    assert vokter("policy", "check", str(bad)).returncode == 1
