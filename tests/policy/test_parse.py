"""Validation of policy text: every bound with its rule ID, every problem reported at once."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest

from agent.errors import PolicyInvalid
from agent.policy import Policy, check_policy_text, format_issues, model, parse_policy_text

DEFAULT_TEXT = (Path(__file__).resolve().parents[2] / "policies" / "default.toml").read_text(
    encoding="utf-8"
)


def edit(changes: dict[str, str | None], text: str = DEFAULT_TEXT) -> str:
    """The default text with ``section.key`` set to a raw TOML literal (None deletes the line)."""
    out: list[str] = []
    section = ""
    seen: set[str] = set()
    for line in text.splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        match = re.match(r"(\w+) = ", line)
        dotted = f"{section}.{match.group(1)}" if match else ""
        if dotted in changes:
            seen.add(dotted)
            literal = changes[dotted]
            if literal is not None:
                out.append(f"{match.group(1) if match else ''} = {literal}")
            continue
        out.append(line)
    assert seen == set(changes), "a key to edit is not in the text"
    return "\n".join(out) + "\n"


def insert_after(header: str, line: str, text: str = DEFAULT_TEXT) -> str:
    assert header in text
    return text.replace(header, f"{header}\n{line}", 1)


def only_issue(text: str) -> tuple[str, str]:
    issues = check_policy_text(text)
    assert len(issues) == 1, issues
    return issues[0]


def test_the_default_text_has_no_issues() -> None:
    assert check_policy_text(DEFAULT_TEXT) == []
    assert isinstance(parse_policy_text(DEFAULT_TEXT), Policy)


def test_l3_retention_beyond_five_years_is_refused() -> None:
    text = edit({"retention.max_years_after_end": "6"})
    assert check_policy_text(text) == [
        ("retention.max_years_after_end", "6: at most 5 years are allowed (L3)")
    ]
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy_text(text, source="p.toml")
    assert caught.value.issues == [
        ("retention.max_years_after_end", "6: at most 5 years are allowed (L3)")
    ]
    assert caught.value.message.startswith("p.toml: retention.max_years_after_end")
    assert format_issues(caught.value.issues) == [
        "retention.max_years_after_end = 6: at most 5 years are allowed (L3)"
    ]


OUT_OF_RANGE = [
    ("crypto.key_bits", "128", "S3"),
    ("crypto.key_bits", "512", "S3"),
    ("crypto.segment_size", "65535", "S3"),
    ("crypto.segment_size", "2048", "S3"),
    ("crypto.segment_size", str(1 << 25), "S3"),
    ("storage.identifier_column_share", "0.49", "S4"),
    ("storage.identifier_column_share", "1.01", "S4"),
    ("anonymisation.k", "2", "L7"),
    ("anonymisation.k", "1001", "L7"),
    ("anonymisation.max_suppression", "0.51", "L7"),
    ("anonymisation.max_suppression", "-0.01", "L7"),
    ("anonymisation.max_suppression", "nan", "L7"),
    ("anonymisation.l_diversity", "1", "L7"),
    ("anonymisation.l_diversity", "-2", "L7"),
    ("retention.max_years_after_end", "-1", "L3"),
    ("retention.clinical_trial_min_years", "24", "L4"),
    ("retention.clinical_trial_min_years", "101", "L4"),
    ("lifecycle.notice_days", "0", "L1"),
    ("lifecycle.notice_days", "366", "L1"),
    ("lifecycle.grace_days", "-1", "L2"),
    ("lifecycle.grace_days", "91", "L2"),
    ("lifecycle.sweep_hour", "24", "L2"),
    ("audit.checkpoint_seconds", "0", "A5"),
    ("audit.checkpoint_seconds", "3601", "A5"),
    ("audit.checkpoint_events", "1000001", "A5"),
    ("audit.access_log_aggregate_seconds", "0", "A5"),
    ("audit.access_log_aggregate_seconds", "3601", "A5"),
]


@pytest.mark.parametrize(("dotted", "literal", "rule"), OUT_OF_RANGE)
def test_every_bound_is_enforced_with_its_rule_id(dotted: str, literal: str, rule: str) -> None:
    key, reason = only_issue(edit({dotted: literal}))
    assert key == dotted
    assert reason.startswith(f"{literal}: ")
    assert re.search(rf"\({rule}[,)]", reason), reason


def test_l7_k_below_three_names_the_rule() -> None:
    assert only_issue(edit({"anonymisation.k": "2"})) == (
        "anonymisation.k",
        "2: k must be at least 3: no group may be under 3-5 persons (L7)",
    )


def test_l4_clinical_trials_shorter_than_25_years_are_refused() -> None:
    assert only_issue(edit({"retention.clinical_trial_min_years": "24"})) == (
        "retention.clinical_trial_min_years",
        "24: clinical-trial source data is kept at least 25 years (L4)",
    )


EDGES = {
    "anonymisation.k": ["3", "1000"],
    "retention.max_years_after_end": ["0", "5"],
    "retention.clinical_trial_min_years": ["25", "100"],
    "storage.identifier_column_share": ["0.5", "1"],
    "anonymisation.max_suppression": ["0", "0.5"],
    "anonymisation.l_diversity": ["0", "2", "5"],
    "crypto.segment_size": ["4096", str(1 << 24)],
    "lifecycle.sweep_hour": ["0", "23"],
    "lifecycle.grace_days": ["0", "90"],
}


@pytest.mark.parametrize(
    ("dotted", "literal"), [(key, value) for key, values in EDGES.items() for value in values]
)
def test_values_at_the_bounds_are_accepted(dotted: str, literal: str) -> None:
    assert check_policy_text(edit({dotted: literal})) == []


def test_integers_are_accepted_where_numbers_are_expected() -> None:
    policy = parse_policy_text(edit({"anonymisation.max_suppression": "0"}))
    assert policy.anonymisation.max_suppression == 0.0
    assert isinstance(policy.anonymisation.max_suppression, float)


@pytest.mark.parametrize(
    "cipher",
    [
        "AES-128-GCM",
        "AES-192-GCM",
        "AES-128-GCM-HKDF",
        "3DES",
        "DES-EDE3-CBC",
        "AES-256-CBC",
        "RC4",
        "Blowfish",
    ],
)
def test_s3_weaker_ciphers_are_refused(cipher: str) -> None:
    key, reason = only_issue(edit({"crypto.cipher": f'"{cipher}"'}))
    assert key == "crypto.cipher"
    assert reason.startswith(f'"{cipher}": weaker than AES-256')
    assert reason.endswith("(S3)")


@pytest.mark.parametrize("cipher", ["ChaCha20-Poly1305", "XChaCha20-Poly1305", "Twofish-256", ""])
def test_s3_ciphers_other_than_aes_256_are_refused(cipher: str) -> None:
    key, reason = only_issue(edit({"crypto.cipher": f'"{cipher}"'}))
    assert key == "crypto.cipher"
    assert reason.endswith("(S3)")
    assert "choose one of AES-256-GCM-HKDF (S3)" in reason


@pytest.mark.parametrize("cipher", get_args(model.Cipher))
def test_s3_each_allowed_cipher_is_accepted(cipher: str) -> None:
    assert parse_policy_text(edit({"crypto.cipher": f'"{cipher}"'})).crypto.cipher == cipher


def test_s3_a_miscased_cipher_is_refused_with_its_spelling() -> None:
    assert only_issue(edit({"crypto.cipher": '"aes-256-gcm-hkdf"'})) == (
        "crypto.cipher",
        '"aes-256-gcm-hkdf": write it as "AES-256-GCM-HKDF" (S3)',
    )


@pytest.mark.parametrize("cipher", ["AES-256-GCM", "AES-256-SIV"])
def test_s3_a_strong_cipher_without_a_file_format_is_refused_not_ignored(cipher: str) -> None:
    key, reason = only_issue(edit({"crypto.cipher": f'"{cipher}"'}))
    assert key == "crypto.cipher"
    assert "not implemented" in reason and "AES-256-GCM-HKDF" in reason


CHOICES = [
    ("storage.identifiable_action", model.IdentifiableAction, "S4"),
    ("storage.portable_media_action", model.PortableMediaAction, "S2"),
    ("storage.key_separation", model.KeySeparation, "S5"),
    ("storage.export_plaintext_identifiers", model.ExportAction, "S7"),
    ("lifecycle.end_action", model.EndAction, "L2"),
    ("audit.hash", model.AuditHash, "A5"),
]


@pytest.mark.parametrize(("dotted", "alias", "rule"), CHOICES)
def test_choices_accept_their_options_and_refuse_others_with_the_rule(
    dotted: str, alias: object, rule: str
) -> None:
    for option in get_args(alias):
        assert check_policy_text(edit({dotted: f'"{option}"'})) == []
    key, reason = only_issue(edit({dotted: '"ignore"'}))
    assert key == dotted
    assert reason.startswith('"ignore": not allowed; choose one of ')
    assert f"({rule}" in reason


def test_a2_l8_auditors_reading_data_is_refused() -> None:
    assert only_issue(edit({"access.auditors_read_data": "true"})) == (
        "access.auditors_read_data",
        "true: must be false: auditors read access logs, never data (A2, L8)",
    )


def test_s6_members_holding_the_key_is_a_policy_choice() -> None:
    policy = parse_policy_text(edit({"storage.members_may_hold_key": "true"}))
    assert policy.storage.members_may_hold_key is True


@pytest.mark.parametrize(
    ("literal", "bad_key", "reason"),
    [
        ('["media"]', "[0]", '"media": must be an absolute path'),
        ('["/media", "/mnt/../etc"]', "[1]", '"/mnt/../etc": must be an absolute path'),
        ('["/media/"]', "[0]", '"/media/": must be an absolute path'),
        ('["/media", "/media"]', "[1]", '"/media": listed twice'),
        ('["/"]', "[0]", '"/": the root file system cannot be a mount point'),
        ('["/media", 5]', "[1]", "5: must be a string, not an integer"),
        ("[]", "", "[]: must list at least one mount point (S2)"),
    ],
)
def test_s2_mount_points_are_distinct_absolute_paths(
    literal: str, bad_key: str, reason: str
) -> None:
    key, got = only_issue(edit({"storage.portable_media_mount_points": literal}))
    assert key == f"storage.portable_media_mount_points{bad_key}"
    assert got.startswith(reason)
    assert got.endswith("(S2)")


def test_s1_copy_scan_paths_may_include_root_but_not_relative_paths() -> None:
    assert check_policy_text(edit({"storage.copy_scan_paths": '["/"]'})) == []
    key, reason = only_issue(edit({"storage.copy_scan_paths": '["home"]'}))
    assert key == "storage.copy_scan_paths[0]"
    assert reason.endswith("(S1)")


@pytest.mark.parametrize(
    ("dotted", "literal", "reason"),
    [
        ("anonymisation.k", "true", "true: must be an integer, not a boolean"),
        ("anonymisation.k", '"5"', '"5": must be an integer, not a string'),
        ("anonymisation.k", "5.0", "5.0: must be an integer, not a float"),
        ("anonymisation.k", "{ a = 1 }", "{...}: must be an integer, not a table"),
        ("anonymisation.k", "2026-01-01", "2026-01-01: must be an integer, not a date"),
        ("anonymisation.max_suppression", "false", "false: must be a number, not a boolean"),
        ("storage.members_may_hold_key", "0", "0: must be true or false, not an integer"),
        ("storage.members_may_hold_key", '"false"', '"false": must be true or false, not a string'),
        ("policy.version", "2026.1", "2026.1: must be a string in quotes, not a float"),
        (
            "crypto.cipher",
            '["AES-256-GCM"]',
            '["AES-256-GCM"]: must be a string in quotes, not an array',
        ),
        (
            "storage.copy_scan_paths",
            '"/home"',
            '"/home": must be an array of strings, not a string',
        ),
    ],
)
def test_wrong_types_are_refused_and_bool_is_not_an_integer(
    dotted: str, literal: str, reason: str
) -> None:
    assert only_issue(edit({dotted: literal})) == (dotted, reason)


def test_unknown_keys_and_sections_are_errors() -> None:
    text = insert_after("[crypto]", "kdf = 1") + "\n[extra]\na = 1\n"
    text = "toplevel = 1\n" + text
    issues = check_policy_text(text)
    assert ("crypto.kdf", "unknown key") in issues
    assert ("extra", "unknown section") in issues
    assert ("toplevel", "unknown key") in issues
    assert len(issues) == 3


def test_odd_unknown_key_names_stay_on_one_line() -> None:
    key, reason = only_issue(insert_after("[crypto]", '"a\\nb" = 1'))
    assert (key, reason) == ('crypto."a\\u000Ab"', "unknown key")


def test_missing_keys_and_sections_are_errors() -> None:
    text = edit({"anonymisation.k": None})
    assert only_issue(text) == ("anonymisation.k", "missing (required)")
    without_audit = DEFAULT_TEXT.split("[audit]")[0]
    assert only_issue(without_audit) == ("audit", "missing (required)")


def test_empty_text_reports_every_section_missing() -> None:
    issues = check_policy_text("")
    assert [key for key, _ in issues] == [
        "policy",
        "crypto",
        "storage",
        "access",
        "anonymisation",
        "retention",
        "lifecycle",
        "audit",
    ]
    assert {reason for _, reason in issues} == {"missing (required)"}


def test_a_section_that_is_not_a_table_is_an_error() -> None:
    text = "audit = 5\n" + DEFAULT_TEXT.split("[audit]")[0]
    assert only_issue(text) == ("audit", "5: must be a table ([audit])")


def test_all_problems_are_reported_at_once() -> None:
    text = edit(
        {
            "retention.max_years_after_end": "6",
            "anonymisation.k": "true",
            "crypto.cipher": '"AES-128-GCM"',
        }
    )
    issues = check_policy_text(text)
    assert [key for key, _ in issues] == [
        "crypto.cipher",
        "anonymisation.k",
        "retention.max_years_after_end",
    ]
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy_text(text)
    assert caught.value.issues == issues
    assert "(and 2 more)" in caught.value.message


def test_l7_l_diversity_cannot_exceed_k() -> None:
    key, reason = only_issue(edit({"anonymisation.l_diversity": "6"}))
    assert key == "anonymisation.l_diversity"
    assert reason.startswith("6: cannot exceed anonymisation.k = 5")
    assert reason.endswith("(L7)")


@pytest.mark.parametrize("name", ['"Default"', '""', '"../etc"', '"a b"', f'"{"x" * 65}"'])
def test_policy_names_are_safe_file_names(name: str) -> None:
    assert only_issue(edit({"policy.name": name}))[0] == "policy.name"


def test_a_toml_syntax_error_names_line_and_column() -> None:
    key, reason = only_issue(DEFAULT_TEXT.replace("k = 5", "k = = 5"))
    assert key == "toml"
    assert reason.startswith("syntax error: ")
    assert re.search(r"line \d+, column \d+", reason)


@pytest.mark.parametrize(
    "text",
    ["x = " + "[" * 5000 + "]" * 5000, "x = " + "9" * 5000, "x = " + "{ a = " * 3000, "a = 1\0"],
)
def test_pathological_text_is_a_clean_refusal(text: str) -> None:
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy_text(text)
    assert [key for key, _ in caught.value.issues] == ["toml"]


def test_format_issues_shows_the_value_only_where_it_is_known() -> None:
    issues = [
        ("retention.max_years_after_end", "6: at most 5 years are allowed (L3)"),
        ("anonymisation.k", "missing (required)"),
        ("crypto.kdf", "unknown key"),
        ("toml", "syntax error: Invalid value (at line 1, column 5)"),
        ("storage.copy_scan_paths[0]", '"home": must be an absolute path (S1)'),
    ]
    assert format_issues(issues) == [
        "retention.max_years_after_end = 6: at most 5 years are allowed (L3)",
        "anonymisation.k: missing (required)",
        "crypto.kdf: unknown key",
        "toml: syntax error: Invalid value (at line 1, column 5)",
        'storage.copy_scan_paths[0] = "home": must be an absolute path (S1)',
    ]


def test_long_values_are_shortened_in_reasons() -> None:
    _, reason = only_issue(edit({"crypto.cipher": '"' + "A" * 500 + '"'}))
    assert len(reason) < 200
