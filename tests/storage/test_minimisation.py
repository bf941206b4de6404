"""D2 and D5 on column names: unapproved variables in a delivered or derived file, and files
linking a de-identified register with another source. Also the policy key naming those
registers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import PolicyInvalid
from agent.policy import check_policy_text, parse_policy_text
from agent.storage.findings import Finding, Response
from agent.storage.minimisation import (
    DEIDENTIFIED_LINKAGE,
    UNAPPROVED_VARIABLES,
    DatasetFacts,
    judge_minimisation,
    normalise,
)
from tests.policy.test_parse import DEFAULT_TEXT, edit

REGISTERS = ("NOIS", "NORM", "RAVN", "Abortion Register")
P = "p1001"


def dataset(
    id: int,
    source: str,
    variables: Sequence[str],
    columns: Sequence[str] | None = None,
    *,
    project: str = P,
    path: str | None = None,
) -> DatasetFacts:
    return DatasetFacts(
        id=id,
        project=project,
        path=path or f"/z/{project}/data/{source.lower().replace(' ', '_')}_{id}.csv",
        source=source,
        variables=frozenset(variables),
        columns=frozenset(variables if columns is None else columns),
    )


NPR = dataset(1, "NPR", ["lopenr", "diagnose", "innleggelse"],
              ["lopenr", "diagnose", "innleggelse", "kommune"])
NOIS = dataset(2, "NOIS", ["lopenr", "infeksjon", "operasjon"])
SSB = dataset(3, "SSB", ["lopenr", "utdanning", "inntekt"])


def judge(
    columns: Sequence[str],
    datasets: Sequence[DatasetFacts] = (NPR, NOIS, SSB),
    path: str = f"/z/{P}/data/work/analysis.csv",
    deidentified: Sequence[str] = REGISTERS,
) -> list[Finding]:
    return judge_minimisation(P, path, "data", "fp1", columns, datasets, deidentified)


def links(finding: Finding) -> list[dict[str, Any]]:
    return cast(list[dict[str, Any]], finding.details["links"])


def rules(findings: Sequence[Finding]) -> list[tuple[str, str]]:
    return [(f.rule, f.kind) for f in findings]


# --- D2: the delivered file -----------------------------------------------------------------


def test_d2_a_delivered_file_with_a_column_outside_the_list_is_one_violation() -> None:
    [finding] = judge(["lopenr", "diagnose", "innleggelse", "kommune"], path=NPR.path)
    assert (finding.rule, finding.kind, finding.response) == ("D2", UNAPPROVED_VARIABLES,
                                                               Response.ALERT)
    assert (finding.project, finding.path, finding.zone) == (P, NPR.path, "data")
    assert finding.details["columns"] == ["kommune"]
    assert finding.details["dataset"] == 1 and finding.details["derived"] is False
    assert finding.summary == (
        "1 column not approved for dataset 1 (NPR) in its delivered file: kommune"
    )


def test_d2_a_delivered_file_holding_only_approved_variables_is_clean() -> None:
    assert judge(["lopenr", "diagnose", "innleggelse"], path=NPR.path) == []
    assert judge(["diagnose"], path=NPR.path) == []  # fewer than approved is fine
    assert judge([], path=NPR.path) == []


def test_d2_names_match_trimmed_and_ignoring_case_and_keep_the_files_spelling() -> None:
    assert judge([" LOPENR", "Diagnose ", "INNLEGGELSE"], path=NPR.path) == []
    [finding] = judge(["LopeNr", " Kommune ", "KOMMUNE", "Bydel"], path=NPR.path)
    assert finding.details["columns"] == ["Kommune", "Bydel"]  # each once, file's order
    assert finding.summary.startswith("2 columns not approved")


def test_d2_blank_header_cells_are_not_columns() -> None:
    assert judge(["lopenr", "", "  ", "diagnose"], path=NPR.path) == []


def test_d2_a_long_list_of_columns_is_shortened_in_the_summary_but_kept_whole() -> None:
    extra = [f"v{i}" for i in range(30)]
    [finding] = judge(["lopenr", *extra], path=NPR.path)
    assert finding.details["columns"] == extra
    assert finding.summary.endswith("v11 and 18 more")


# --- D2: files derived from a dataset ---------------------------------------------------------


def test_d2_a_derived_file_carrying_an_unapproved_delivered_column_is_a_violation() -> None:
    [finding] = judge(["lopenr", "diagnose", "kommune", "bmi"])
    assert finding.rule == "D2"
    assert finding.details["columns"] == ["kommune"]
    assert finding.details["derived"] is True
    assert "dataset 1 (NPR) in its derived file" in finding.summary


def test_d2_a_file_sharing_one_delivered_column_is_not_derived() -> None:
    # "kommune" and one other delivered column are needed; a lone serial proves nothing.
    assert judge(["kommune", "bmi"]) == []
    assert judge(["lopenr", "kommune_2020"]) == []


def test_d2_a_derived_file_with_only_approved_or_computed_columns_is_clean() -> None:
    assert judge(["lopenr", "diagnose", "innleggelse", "liggetid_dager"]) == []


def test_d2_columns_computed_under_new_names_are_not_violations() -> None:
    assert judge(["lopenr", "diagnose", "kommune_gruppe", "alder_band"]) == []


def test_d2_an_unapproved_column_another_dataset_approved_may_come_from_there() -> None:
    fylke = dataset(4, "SSB", ["lopenr", "kommune"])
    assert judge(["lopenr", "diagnose", "kommune"], datasets=(NPR, fylke)) == []
    # ...but in the delivered file itself it is still outside that dataset's list.
    [finding] = judge(["lopenr", "kommune"], datasets=(NPR, fylke), path=NPR.path)
    assert finding.details["columns"] == ["kommune"]


def test_d2_the_derived_rule_counts_the_delivered_columns_not_the_approved_ones() -> None:
    wide = dataset(5, "MFR", ["lopenr"], ["lopenr", "vekt", "lengde"])
    [finding] = judge(["lopenr", "vekt"], datasets=(wide,))
    assert finding.details["columns"] == ["vekt"]


def test_d2_one_finding_per_dataset_each_with_its_own_fingerprint() -> None:
    other = dataset(6, "MFR", ["lopenr", "vekt"], ["lopenr", "vekt", "royk"])
    findings = judge(["lopenr", "diagnose", "kommune", "vekt", "royk"], datasets=(other, NPR))
    assert [f.details["dataset"] for f in findings] == [1, 6]
    assert [f.details["columns"] for f in findings] == [["kommune"], ["royk"]]
    assert len({f.fingerprint for f in findings}) == 2
    assert all(f.fingerprint.startswith("fp1/") for f in findings)


def test_d2_a_very_long_file_fingerprint_still_fits_the_table() -> None:
    [finding] = judge_minimisation(P, NPR.path, "data", "x" * 200, ["lopenr", "kommune"],
                                   [NPR], REGISTERS)
    assert len(finding.fingerprint) <= 128
    [again] = judge_minimisation(P, NPR.path, "data", "x" * 200, ["lopenr", "kommune"],
                                 [NPR], REGISTERS)
    assert again.fingerprint == finding.fingerprint


def test_d2_other_projects_datasets_do_not_count() -> None:
    foreign = dataset(7, "NPR", ["lopenr"], ["lopenr", "diagnose", "kommune"], project="p2002")
    assert judge(["lopenr", "diagnose", "kommune"], datasets=(foreign,)) == []
    assert judge(["lopenr", "x"], datasets=(foreign,), path=foreign.path) == []


def test_d2_no_datasets_no_findings() -> None:
    assert judge(["lopenr", "diagnose", "kommune"], datasets=()) == []


# --- D5: de-identified registers ------------------------------------------------------------


def test_d5_a_file_combining_a_deidentified_register_with_another_source_is_a_violation() -> None:
    [finding] = judge(["lopenr", "infeksjon", "diagnose"])
    assert (finding.rule, finding.kind, finding.response) == ("D5", DEIDENTIFIED_LINKAGE,
                                                               Response.ALERT)
    assert finding.fingerprint == "fp1"
    assert finding.summary == (
        "de-identified register NOIS (infeksjon) linked with NPR (diagnose)"
    )
    assert links(finding) == [
        {"register": "NOIS", "columns": ["infeksjon"], "sources": ["NPR"],
         "linked_columns": ["diagnose"]}
    ]


def test_d5_a_shared_serial_column_alone_does_not_link() -> None:
    assert judge(["lopenr", "infeksjon", "operasjon"]) == []
    assert judge(["lopenr", "diagnose", "utdanning"]) == []  # no de-identified register


def test_d5_a_variable_both_sides_were_approved_counts_for_neither() -> None:
    nois = dataset(2, "NOIS", ["lopenr", "alder", "infeksjon"])
    npr = dataset(1, "NPR", ["lopenr", "alder", "diagnose"])
    assert judge(["lopenr", "alder", "infeksjon"], datasets=(nois, npr)) == []
    assert judge(["alder", "diagnose"], datasets=(nois, npr)) == []
    [finding] = judge(["alder", "infeksjon", "diagnose"], datasets=(nois, npr))
    assert links(finding)[0]["columns"] == ["infeksjon"]


def test_d5_the_register_is_matched_ignoring_case_and_spaces() -> None:
    abortion = dataset(8, " abortion register ", ["lopenr", "svangerskapsuke"])
    [finding] = judge(["svangerskapsuke", "utdanning"], datasets=(abortion, SSB))
    assert finding.summary.startswith("de-identified register abortion register (svangerskapsuke)")


def test_d5_only_the_policys_registers_count() -> None:
    assert judge(["infeksjon", "diagnose"], deidentified=["NORM"]) == []
    [finding] = judge(["infeksjon", "diagnose"], deidentified=["nois"])
    assert finding.rule == "D5"


def test_d5_two_deidentified_registers_linked_with_each_other_is_a_violation() -> None:
    norm = dataset(9, "NORM", ["lopenr", "resistens"])
    [finding] = judge(["infeksjon", "resistens"], datasets=(NOIS, norm))
    registers = [link["register"] for link in links(finding)]
    assert registers == ["NOIS", "NORM"]
    assert finding.summary == (
        "de-identified register NOIS (infeksjon) linked with NORM (resistens); "
        "de-identified register NORM (resistens) linked with NOIS (infeksjon)"
    )


def test_d5_two_deliveries_from_the_same_register_are_one_source() -> None:
    nois_2 = dataset(10, "nois", ["lopenr", "mikrobe"])
    assert judge(["infeksjon", "mikrobe"], datasets=(NOIS, nois_2)) == []
    [finding] = judge(["infeksjon", "mikrobe", "inntekt"], datasets=(NOIS, nois_2, SSB))
    [link] = links(finding)
    assert (link["columns"], link["sources"]) == (["infeksjon", "mikrobe"], ["SSB"])


def test_d5_one_finding_names_every_source_linked() -> None:
    [finding] = judge(["infeksjon", "diagnose", "inntekt"])
    [link] = links(finding)
    assert link["sources"] == ["NPR", "SSB"]
    assert link["linked_columns"] == ["diagnose", "inntekt"]


def test_d5_the_delivered_file_of_a_dataset_is_judged_by_d2_only() -> None:
    # NOIS delivered a column another dataset was approved for: D2, not linkage.
    nois = dataset(2, "NOIS", ["lopenr", "infeksjon"], ["lopenr", "infeksjon", "diagnose"])
    findings = judge(["lopenr", "infeksjon", "diagnose"], datasets=(nois, NPR), path=nois.path)
    assert rules(findings) == [("D2", UNAPPROVED_VARIABLES)]


def test_d2_and_d5_together_d2_first() -> None:
    findings = judge(["lopenr", "diagnose", "kommune", "infeksjon"])
    assert rules(findings) == [("D2", UNAPPROVED_VARIABLES), ("D5", DEIDENTIFIED_LINKAGE)]


def test_d5_other_projects_datasets_do_not_count() -> None:
    foreign_npr = dataset(11, "NPR", ["diagnose"], project="p2002")
    assert judge(["infeksjon", "diagnose"], datasets=(NOIS, foreign_npr)) == []


# --- properties -------------------------------------------------------------------------------

names = st.text(alphabet="abcdeXYZ _", min_size=0, max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    columns=st.lists(names, max_size=8),
    variables=st.lists(st.lists(names, max_size=5), min_size=0, max_size=4),
    delivered=st.lists(st.lists(names, max_size=5), min_size=4, max_size=4),
    sources=st.lists(st.sampled_from(["NOIS", "nois", "NPR", "SSB", "RAVN"]), min_size=4,
                     max_size=4),
    on_delivered=st.booleans(),
)
def test_d2_d5_findings_only_name_columns_the_file_holds(
    columns: list[str],
    variables: list[list[str]],
    delivered: list[list[str]],
    sources: list[str],
    on_delivered: bool,
) -> None:
    datasets = [
        dataset(i + 1, sources[i], approved, [*approved, *delivered[i]])
        for i, approved in enumerate(variables)
    ]
    path = datasets[0].path if on_delivered and datasets else "/z/p1001/data/x.csv"
    findings = judge(columns, datasets=datasets, path=path)
    held = {normalise(c) for c in columns}
    for finding in findings:
        assert finding.project == P and finding.path == path
        if finding.rule == "D2":
            named = cast(list[str], finding.details["columns"])
        else:
            named = [c for link in links(finding)
                     for c in (*link["columns"], *link["linked_columns"])]
        assert named and {normalise(c) for c in named} <= held
    if on_delivered and datasets:
        assert all(f.rule == "D2" for f in findings)
    assert judge(columns, datasets=datasets, path=path) == findings  # deterministic


# --- the policy key ---------------------------------------------------------------------------


def test_d5_the_default_policy_names_the_four_deidentified_registers() -> None:
    policy = parse_policy_text(DEFAULT_TEXT)
    assert policy.storage.deidentified_registers == REGISTERS


@pytest.mark.parametrize(
    ("literal", "index", "problem"),
    [
        ('["NOIS", "nois"]', 1, "listed twice"),
        ('["NOIS", ""]', 1, "must not be empty"),
        ('["   "]', 0, "must not be empty"),
        ('[" NOIS"]', 0, "must not begin or end with spaces"),
        ('["NO\\tIS"]', 0, "must not hold control characters"),
        (f'["{"R" * 129}"]', 0, "at most 128 characters"),
        ('["NOIS", 5]', 1, "must be a string"),
    ],
)
def test_d5_each_bad_register_name_is_refused_with_the_rule(
    literal: str, index: int, problem: str
) -> None:
    [(key, reason)] = check_policy_text(edit({"storage.deidentified_registers": literal}))
    assert key == f"storage.deidentified_registers[{index}]"
    assert problem in reason and reason.endswith("(D5)")


def test_d5_an_empty_register_list_would_switch_the_rule_off_and_is_refused() -> None:
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy_text(edit({"storage.deidentified_registers": "[]"}))
    assert caught.value.issues == [
        ("storage.deidentified_registers", "[]: must list at least one name (D5)")
    ]


def test_d5_the_register_list_must_be_an_array_and_is_required() -> None:
    [(key, reason)] = check_policy_text(edit({"storage.deidentified_registers": '"NOIS"'}))
    assert (key, reason) == ("storage.deidentified_registers",
                             '"NOIS": must be an array of strings, not a string')
    assert check_policy_text(edit({"storage.deidentified_registers": None})) == [
        ("storage.deidentified_registers", "missing (required)")
    ]


def test_d5_a_128_character_register_name_and_other_registers_are_accepted() -> None:
    name = "R" * 128
    policy = parse_policy_text(
        edit({"storage.deidentified_registers": f'["{name}", "Kreftregisteret (anonym)"]'})
    )
    assert policy.storage.deidentified_registers == (name, "Kreftregisteret (anonym)")
