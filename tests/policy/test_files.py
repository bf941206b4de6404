"""Reading policy files: every failure is a PolicyInvalid naming the file, never a traceback."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from agent.errors import PolicyInvalid
from agent.policy import default_policy_path, load_named_policy, load_policy_file


def file_issue(path: Path) -> tuple[str, str]:
    with pytest.raises(PolicyInvalid) as caught:
        load_policy_file(path)
    assert caught.value.message.startswith(str(path))
    assert len(caught.value.issues) == 1
    return caught.value.issues[0]


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    assert file_issue(tmp_path / "nope.toml") == ("file", "not found")


def test_a_directory_is_refused(tmp_path: Path) -> None:
    assert file_issue(tmp_path) == ("file", "is a directory, not a policy file")


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "policy.toml"
    os.mkfifo(fifo)
    assert file_issue(fifo) == ("file", "is not a regular file")


def test_a_non_utf8_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('[policy]\nname = "bøk"\n'.encode("latin-1"))
    key, reason = file_issue(path)
    assert key == "file"
    assert reason.startswith("not UTF-8 text")


def test_a_file_over_one_mib_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_bytes(b"# " + b"x" * (2 << 20) + b"\n")
    key, reason = file_issue(path)
    assert key == "file"
    assert "1 MiB" in reason


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret.toml"
    shutil.copyfile(default_policy_path(), path)
    path.chmod(0)
    assert file_issue(path) == ("file", "not readable: permission denied")


def test_a_byte_order_mark_is_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + default_policy_path().read_bytes())
    assert load_policy_file(path).name == "default"


def test_an_invalid_policy_file_names_the_file_in_the_message(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    text = default_policy_path().read_text(encoding="utf-8")
    path.write_text(text.replace("max_years_after_end = 5", "max_years_after_end = 6"))
    with pytest.raises(PolicyInvalid) as caught:
        load_policy_file(path)
    assert caught.value.issues == [
        ("retention.max_years_after_end", "6: at most 5 years are allowed (L3)")
    ]
    assert caught.value.message.startswith(f"{path}: retention.max_years_after_end")


@pytest.fixture
def policies_dir(tmp_path: Path) -> Path:
    shutil.copyfile(default_policy_path(), tmp_path / "default.toml")
    return tmp_path


def test_a_named_policy_is_loaded_from_the_policies_dir(policies_dir: Path) -> None:
    assert load_named_policy(policies_dir, "default").name == "default"


@pytest.mark.parametrize("name", ["../default", "/etc/passwd", "Default", "", "a" * 65, "a b"])
def test_a_named_policy_must_have_a_safe_name(policies_dir: Path, name: str) -> None:
    with pytest.raises(PolicyInvalid) as caught:
        load_named_policy(policies_dir, name)
    assert [key for key, _ in caught.value.issues] == ["file"]


def test_a_missing_named_policy_is_refused(policies_dir: Path) -> None:
    with pytest.raises(PolicyInvalid) as caught:
        load_named_policy(policies_dir, "strict")
    assert caught.value.issues == [("file", "not found")]


def test_a_named_policy_must_carry_its_file_name(policies_dir: Path) -> None:
    shutil.copyfile(policies_dir / "default.toml", policies_dir / "strict.toml")
    with pytest.raises(PolicyInvalid) as caught:
        load_named_policy(policies_dir, "strict")
    assert caught.value.issues == [
        ("policy.name", '"default": does not match the file name strict.toml')
    ]
