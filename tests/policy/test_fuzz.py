"""Whatever text arrives, parsing returns a Policy or a clean PolicyInvalid, never a traceback."""

from __future__ import annotations

import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import PolicyInvalid
from agent.policy import Policy, check_policy_text, format_issues, parse_policy_text

from .test_parse import DEFAULT_TEXT, edit

FUZZ = settings(max_examples=300, deadline=None)
LINES = DEFAULT_TEXT.splitlines()
KEY_LINES = [i for i, line in enumerate(LINES) if re.match(r"\w+ = ", line)]

toml_literals = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(
        lambda f: {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(f), repr(f))
    ),
    st.booleans().map(lambda b: "true" if b else "false"),
    st.text(max_size=30).map(json.dumps),
    st.lists(st.text(max_size=8), max_size=4).map(json.dumps),
    st.lists(st.integers(), max_size=4).map(str),
    st.sampled_from(
        [
            "[]",
            "{}",
            "{ a = 1 }",
            "1979-05-27",
            "07:32:00",
            "1979-05-27T07:32:00Z",
            "0x1F",
            "1_000",
            "+5",
            "-0.0",
            "'lit'",
            '"""multi\nline"""',
            "[[1], [2]]",
            '"/"',
            '["/", "/"]',
        ]
    ),
    st.text(max_size=12),  # raw garbage where a value should be
)


@st.composite
def mutated_default(draw: st.DrawFn) -> str:
    lines = list(LINES)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        op = draw(st.sampled_from(["replace", "replace", "delete", "insert", "splice"]))
        if op == "replace":
            index = draw(st.sampled_from(KEY_LINES))
            if index < len(lines) and " = " in lines[index]:
                key = lines[index].split(" = ", 1)[0]
                lines[index] = f"{key} = {draw(toml_literals)}"
        elif op == "delete" and lines:
            del lines[draw(st.integers(min_value=0, max_value=len(lines) - 1))]
        elif op == "insert":
            position = draw(st.integers(min_value=0, max_value=len(lines)))
            lines.insert(position, draw(st.one_of(st.text(max_size=40), toml_literals)))
        else:
            text = "\n".join(lines)
            start = draw(st.integers(min_value=0, max_value=len(text)))
            end = draw(st.integers(min_value=start, max_value=min(len(text), start + 20)))
            lines = (text[:start] + draw(st.text(max_size=20)) + text[end:]).split("\n")
    return "\n".join(lines)


def assert_policy_or_clean_refusal(text: str) -> None:
    try:
        policy = parse_policy_text(text)
    except PolicyInvalid as exc:
        assert exc.issues
        assert check_policy_text(text) == exc.issues
        for key, reason in exc.issues:
            assert key and reason
            assert key.splitlines() == [key] and reason.splitlines() == [reason]
        assert all(line.splitlines() == [line] for line in format_issues(exc.issues))
        json.dumps(exc.to_wire())
        exc.one_line()
    else:
        assert isinstance(policy, Policy)
        assert check_policy_text(text) == []


@FUZZ
@given(st.text())
def test_random_text_is_a_policy_or_a_clean_refusal(text: str) -> None:
    assert_policy_or_clean_refusal(text)


@FUZZ
@given(mutated_default())
def test_a_mutated_default_policy_is_a_policy_or_a_clean_refusal(text: str) -> None:
    assert_policy_or_clean_refusal(text)


@FUZZ
@given(st.binary(max_size=400), st.sampled_from(["utf-8", "latin-1", "utf-16"]))
def test_random_bytes_decoded_are_a_policy_or_a_clean_refusal(data: bytes, codec: str) -> None:
    assert_policy_or_clean_refusal(data.decode(codec, errors="replace"))


@FUZZ
@given(
    k=st.integers(min_value=3, max_value=1000),
    years=st.integers(min_value=0, max_value=5),
    share=st.floats(min_value=0.5, max_value=1.0),
)
def test_l3_l7_any_value_within_the_rules_is_accepted(k: int, years: int, share: float) -> None:
    policy = parse_policy_text(
        edit(
            {
                "anonymisation.k": str(k),
                "retention.max_years_after_end": str(years),
                "storage.identifier_column_share": repr(share),
            }
        )
    )
    assert policy.anonymisation.k == k
    assert policy.retention.max_years_after_end == years
    assert policy.storage.identifier_column_share == share
