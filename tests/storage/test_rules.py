"""The storage decision table (S4, S5, S7), zone by zone, against the shipped policy and its
alternatives: which finding, which rule, which response, and that a sealed file is never one."""

from __future__ import annotations

from dataclasses import replace

import pytest

from agent.policy import load_default_policy
from agent.storage.findings import Response
from agent.storage.rules import FileEvidence, TableEvidence, judge_file

POLICY = load_default_policy().storage

IDENTITY = TableEvidence(name="", rows=120, identity_columns=("fnr",), identity_values=118)
KEY = TableEvidence(name="", rows=120, identity_columns=("fnr",), identity_values=120,
                    linkage=("fnr", "lopenr"))
CLEAN = TableEvidence(name="", rows=120, identity_columns=(), identity_values=0)


def evidence(zone: str, *tables: TableEvidence, text_hits: int = 0,
             sealed: bool = False) -> FileEvidence:
    return FileEvidence(project="p1", zone=zone, path=f"/z/p1/{zone}/f.csv", fingerprint="1:2:3:4",
                        sealed=sealed, tables=tables, text_hits=text_hits)


def test_s4_an_identity_column_in_the_data_zone_is_encrypted_under_the_shipped_policy() -> None:
    [finding] = judge_file(evidence("data", CLEAN, IDENTITY), POLICY)
    assert (finding.rule, finding.kind, finding.response) == ("S4", "identity_numbers",
                                                              Response.ENCRYPT)
    assert finding.project == "p1" and finding.zone == "data"
    assert finding.fingerprint == "1:2:3:4"
    assert "column fnr: 118 valid of 120 rows" in finding.summary
    assert finding.details["identity_columns"] == ["fnr"]


@pytest.mark.parametrize("action", ["encrypt", "quarantine", "alert"])
def test_s4_the_policy_chooses_the_response(action: str) -> None:
    policy = replace(POLICY, identifiable_action=action)
    [finding] = judge_file(evidence("data", IDENTITY), policy)
    assert finding.response == Response(action)


def test_s4_single_hits_in_free_text_are_reported_as_such_and_only_alerted() -> None:
    [finding] = judge_file(evidence("data", text_hits=3), POLICY)
    assert (finding.rule, finding.kind, finding.response) == ("S4", "identity_numbers_in_text",
                                                              Response.ALERT)
    assert finding.summary.startswith("3 single identity-number hit")


def test_s4_a_clean_file_in_any_zone_is_no_finding() -> None:
    for zone in ("data", "key", "export", "quarantine"):
        assert judge_file(evidence(zone, CLEAN), POLICY) == []


@pytest.mark.parametrize("zone", ["data", "key", "export"])
def test_s3_a_file_sealed_with_the_project_key_is_never_a_finding(zone: str) -> None:
    assert judge_file(evidence(zone, KEY, IDENTITY, text_hits=9, sealed=True), POLICY) == []


def test_s5_a_linkage_key_in_the_data_zone_moves_to_the_key_zone_whatever_the_s4_action() -> None:
    for action in ("encrypt", "quarantine", "alert"):
        policy = replace(POLICY, identifiable_action=action)
        [finding] = judge_file(evidence("data", KEY), policy)
        assert (finding.rule, finding.kind, finding.response) == (
            "S5", "linkage_key", Response.MOVE_TO_KEY_ZONE)
        assert "fnr paired one-to-one with serial column lopenr over 120 rows" in finding.summary


@pytest.mark.parametrize("found", [(KEY,), (IDENTITY,), ()])
def test_s5_plaintext_identifiers_in_the_key_zone_are_sealed_in_place(
        found: tuple[TableEvidence, ...]) -> None:
    [finding] = judge_file(evidence("key", *found, text_hits=0 if found else 2), POLICY)
    assert (finding.rule, finding.kind, finding.response) == ("S5", "plaintext_key",
                                                              Response.ENCRYPT)


@pytest.mark.parametrize("action", ["quarantine", "alert"])
@pytest.mark.parametrize("found", [(KEY,), (IDENTITY,), ()])
def test_s7_plaintext_identifiers_in_the_export_zone_follow_the_policy(
        action: str, found: tuple[TableEvidence, ...]) -> None:
    policy = replace(POLICY, export_plaintext_identifiers=action)
    [finding] = judge_file(evidence("export", *found, text_hits=0 if found else 1), policy)
    assert (finding.rule, finding.kind, finding.response) == ("S7", "plaintext_export",
                                                              Response(action))


def test_s7_the_shipped_policy_blocks_plaintext_exports_by_quarantine() -> None:
    [finding] = judge_file(evidence("export", IDENTITY), POLICY)
    assert finding.response is Response.QUARANTINE


def test_s4_nothing_in_the_quarantine_is_judged_again() -> None:
    assert judge_file(evidence("quarantine", KEY, IDENTITY, text_hits=5), POLICY) == []


def test_s4_excel_sheets_are_named_in_the_summary() -> None:
    sheet = replace(IDENTITY, name="Ark2")
    [finding] = judge_file(evidence("data", sheet), POLICY)
    assert "(sheet Ark2)" in finding.summary
