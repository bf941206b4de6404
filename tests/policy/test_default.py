"""The shipped default policy holds domain.md's numbers, in two copies that cannot drift."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from agent.policy import Policy, default_policy_path, load_default_policy, load_policy_file

ROOT = Path(__file__).resolve().parents[2]
REPO_DEFAULT = ROOT / "policies" / "default.toml"


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_default_policy()


def test_repo_and_package_copies_are_byte_identical() -> None:
    assert default_policy_path().read_bytes() == REPO_DEFAULT.read_bytes()


def test_default_policy_path_is_inside_the_package() -> None:
    assert default_policy_path().parent == ROOT / "agent" / "policy"
    assert default_policy_path().is_file()


def test_default_policy_loads_from_the_repo_copy(policy: Policy) -> None:
    assert load_policy_file(REPO_DEFAULT) == policy
    assert (policy.name, policy.version) == ("default", "2026.1")


def test_s3_default_encryption_is_aes_256(policy: Policy) -> None:
    assert policy.crypto.cipher == "AES-256-GCM-HKDF"
    assert policy.crypto.key_bits == 256
    assert policy.crypto.segment_size == 65536


def test_s2_s4_s5_s7_default_storage_actions(policy: Policy) -> None:
    storage = policy.storage
    assert storage.identifiable_action == "encrypt"
    assert storage.portable_media_action == "alert"
    assert storage.portable_media_mount_points == ("/media", "/run/media", "/mnt")
    assert storage.key_separation == "separate_filesystem"
    assert storage.export_plaintext_identifiers == "quarantine"
    assert storage.copy_scan_paths == ("/home", "/tmp", "/var/tmp")
    assert storage.identifier_column_share == 0.9


def test_s6_members_do_not_hold_the_key_by_default(policy: Policy) -> None:
    assert policy.storage.members_may_hold_key is False


def test_a2_l8_after_the_end_only_the_leader_reads_and_auditors_never_read_data(
    policy: Policy,
) -> None:
    assert policy.access.ended_leader_read is True
    assert policy.access.auditors_read_data is False


def test_l7_default_k_is_five(policy: Policy) -> None:
    assert policy.anonymisation.k == 5
    assert policy.anonymisation.max_suppression == 0.05
    assert policy.anonymisation.l_diversity == 0


def test_l3_l4_default_retention_is_five_years_and_clinical_trials_twenty_five(
    policy: Policy,
) -> None:
    assert policy.retention.max_years_after_end == 5
    assert policy.retention.clinical_trial_min_years == 25


def test_l2_l6_default_end_is_anonymisation(policy: Policy) -> None:
    lifecycle = policy.lifecycle
    assert (lifecycle.end_action, lifecycle.notice_days, lifecycle.grace_days) == (
        "anonymise",
        30,
        14,
    )
    assert lifecycle.sweep_hour == 3


def test_a5_default_audit_settings(policy: Policy) -> None:
    audit = policy.audit
    assert (audit.hash, audit.checkpoint_seconds, audit.checkpoint_events) == ("sha256", 1, 1000)
    assert audit.access_log_aggregate_seconds == 60


def test_sections_and_keys_match_the_model_fields(policy: Policy) -> None:
    document = tomllib.loads(REPO_DEFAULT.read_text(encoding="utf-8"))
    sections = {"policy": policy.meta} | {
        f.name: getattr(policy, f.name) for f in dataclasses.fields(policy) if f.name != "meta"
    }
    assert list(document) == list(sections)
    for name, section in sections.items():
        assert list(document[name]) == [f.name for f in dataclasses.fields(section)]


def test_every_rule_key_in_the_default_file_cites_its_rule() -> None:
    section = ""
    for line in REPO_DEFAULT.read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif "=" in line and not line.startswith("#") and section != "policy":
            comment = line.partition("#")[2]
            assert re.search(r"\b[SADL]\d+\b", comment), line


def test_docs_table_has_a_row_for_every_key() -> None:
    docs = (ROOT / "docs" / "policy.md").read_text(encoding="utf-8")
    document = tomllib.loads(REPO_DEFAULT.read_text(encoding="utf-8"))
    for section, keys in document.items():
        for key in keys:
            assert f"| `{section}.{key}` |" in docs, f"{section}.{key}"


def test_policy_is_immutable(policy: Policy) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.anonymisation.k = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.retention = policy.retention  # type: ignore[misc]
    with pytest.raises((dataclasses.FrozenInstanceError, AttributeError, TypeError)):
        policy.extra = 1  # type: ignore[attr-defined]
    assert isinstance(policy.storage.copy_scan_paths, tuple)
    assert hash(policy) == hash(load_default_policy())
