"""A project's anonymisation config (L6, L7, D3, D4): the documented example, the defaults, and
each refusal as one line naming the file and the key."""

from __future__ import annotations

import pytest

import agent.anonymise.config as config_module
from agent.anonymise.config import AnonymisationConfig, parse_config
from agent.anonymise.model import DateShift
from agent.errors import InvalidRequest

FULL = """
quasi_identifiers = ["alder", "kommune", "kjonn"]
k = 5
max_suppression = 0.02
l_diversity = 2
sensitive = ["diagnose"]
direct_identifiers = ["navn"]
seed = 42

[hierarchies]
alder = "age"
yrke = "hierarkier/yrke.csv"

[dates]
columns = ["fodt", "innlagt"]
serial = "lopenr"
secret_file = "/srv/p1/date-secret"
max_shift_days = 90
"""


def test_l7_a_full_config_is_read_whole() -> None:
    assert parse_config(FULL, "anon.toml") == AnonymisationConfig(
        quasi_identifiers=("alder", "kommune", "kjonn"),
        k=5,
        max_suppression=0.02,
        l_diversity=2,
        sensitive=("diagnose",),
        direct_identifiers=("navn",),
        seed=42,
        hierarchies=(("alder", "age"), ("yrke", "hierarkier/yrke.csv")),
        date_shift=DateShift(columns=("fodt", "innlagt"), serial="lopenr",
                             secret_file="/srv/p1/date-secret", max_days=90),
    )


def test_l7_the_example_in_the_module_documentation_parses() -> None:
    doc = config_module.__doc__ or ""
    example = doc.split("::\n", 1)[1].split("\n\nA path", 1)[0]
    parsed = parse_config("\n".join(line[4:] for line in example.splitlines()), "doc")
    assert parsed.quasi_identifiers == ("alder", "kommune", "kjonn", "yrke")
    assert parsed.date_shift is not None
    assert parsed.date_shift.max_days == 180


def test_l7_an_empty_config_leaves_everything_to_the_command_line() -> None:
    assert parse_config("", "anon.toml") == AnonymisationConfig(
        quasi_identifiers=(), k=None, max_suppression=None, l_diversity=None, sensitive=(),
        direct_identifiers=(), seed=None, hierarchies=(), date_shift=None)


def test_d4_date_shifting_defaults_to_half_a_year() -> None:
    parsed = parse_config('[dates]\ncolumns = ["fodt"]\nserial = "lopenr"\n'
                          'secret_file = "s"\n', "anon.toml")
    assert parsed.date_shift == DateShift(columns=("fodt",), serial="lopenr", secret_file="s",
                                          max_days=180)


def test_l7_whole_numbers_are_shares_too_and_zero_turns_l_diversity_off() -> None:
    parsed = parse_config("max_suppression = 1\nl_diversity = 0\nseed = 0\n", "anon.toml")
    assert parsed.max_suppression == 1.0
    assert isinstance(parsed.max_suppression, float)
    assert parsed.l_diversity == 0
    assert parsed.seed == 0


@pytest.mark.parametrize(("text", "key", "problem"), [
    ("k = 5\nk = 6\n", "not valid TOML", "line 2"),
    ("quasi_identifiers = [\"a\"\n", "not valid TOML", "line"),
    ("kk = 5\n", "kk", "unknown key"),
    ("quasi_identifier = [\"a\"]\n", "quasi_identifier", "unknown key"),
    ("[hierarchy]\nalder = \"age\"\n", "hierarchy", "unknown key"),
    ('[dates]\ncolumns = ["d"]\nserial = "s"\nsecret_file = "f"\nmax_days = 3\n',
     "dates.max_days", "unknown key"),
    ('k = "5"\n', "k", "'5' is not a whole number"),
    ("k = true\n", "k", "True is not a whole number"),
    ("k = 5.0\n", "k", "5.0 is not a whole number"),
    ("k = 1\n", "k", "1 is below 2"),
    ("k = -3\n", "k", "-3 is below 2"),
    ('quasi_identifiers = "alder"\n', "quasi_identifiers", "array of column names"),
    ("quasi_identifiers = [1]\n", "quasi_identifiers", "array of column names"),
    ('quasi_identifiers = [""]\n', "quasi_identifiers", "array of column names"),
    ('quasi_identifiers = ["a", "b", "a"]\n', "quasi_identifiers", "'a' is named twice"),
    ('l_diversity = 1\nsensitive = ["d"]\n', "l_diversity", "1 is below 2"),
    ('l_diversity = -2\nsensitive = ["d"]\n', "l_diversity", "-2 is below 2"),
    ("l_diversity = 2\n", "l_diversity", "needs sensitive columns"),
    ("max_suppression = 1.5\n", "max_suppression", "1.5 is outside 0..1"),
    ("max_suppression = -0.1\n", "max_suppression", "-0.1 is outside 0..1"),
    ('max_suppression = "5%"\n', "max_suppression", "'5%' is not a number"),
    ("seed = -1\n", "seed", "outside 0..2**64-1"),
    ("seed = 18446744073709551616\n", "seed", "outside 0..2**64-1"),
    ('hierarchies = "age"\n', "hierarchies", "must be a table"),
    ("[hierarchies]\nalder = 5\n", "hierarchies.alder", "built-in kind or a file path"),
    ('[hierarchies]\nalder = ""\n', "hierarchies.alder", "built-in kind or a file path"),
    ('quasi_identifiers = ["navn"]\ndirect_identifiers = ["navn"]\n', "direct_identifiers",
     "'navn' is also a quasi-identifier"),
    ('quasi_identifiers = ["d"]\nsensitive = ["d"]\n', "sensitive",
     "'d' is also a quasi-identifier"),
    ('sensitive = ["d"]\ndirect_identifiers = ["d"]\n', "sensitive",
     "'d' is also a direct identifier"),
    ('dates = ["d"]\n', "dates", "must be a table"),
    ('[dates]\ncolumns = ["d"]\nsecret_file = "f"\n', "dates.serial", "missing"),
    ('[dates]\nserial = "s"\nsecret_file = "f"\n', "dates.columns", "missing"),
    ('[dates]\ncolumns = ["d"]\nserial = "s"\n', "dates.secret_file", "missing"),
    ('[dates]\ncolumns = []\nserial = "s"\nsecret_file = "f"\n', "dates.columns",
     "names no column"),
    ('[dates]\ncolumns = ["d"]\nserial = "d"\nsecret_file = "f"\n', "dates.serial",
     "'d' is also a date column"),
    ('[dates]\ncolumns = ["d"]\nserial = 7\nsecret_file = "f"\n', "dates.serial",
     "non-empty string"),
    ('[dates]\ncolumns = ["d"]\nserial = "s"\nsecret_file = "f"\nmax_shift_days = 0\n',
     "dates.max_shift_days", "0 is outside 1..3650"),
    ('[dates]\ncolumns = ["d"]\nserial = "s"\nsecret_file = "f"\nmax_shift_days = 3651\n',
     "dates.max_shift_days", "3651 is outside 1..3650"),
    ('[dates]\ncolumns = ["d"]\nserial = "s"\nsecret_file = "f"\nmax_shift_days = 1.5\n',
     "dates.max_shift_days", "not a whole number"),
])
def test_l7_a_bad_config_is_refused_in_one_line_naming_file_and_key(text: str, key: str,
                                                                    problem: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_config(text, "prosjekt/anon.toml")
    line = raised.value.one_line()
    assert line.startswith(f"prosjekt/anon.toml: {key}")
    assert problem in line
    assert raised.value.hint
    assert "\n" not in line


def test_l7_the_rule_behind_a_refusal_is_named() -> None:
    cases = {"k = 1": "L7", "max_suppression = 2": "L7",
             'quasi_identifiers = ["a"]\ndirect_identifiers = ["a"]': "L6",
             "[hierarchies]\na = 1": "D3",
             '[dates]\ncolumns = ["d"]\nserial = "s"\nsecret_file = "f"\nmax_shift_days = 0':
                 "D4"}
    for text, rule in cases.items():
        with pytest.raises(InvalidRequest) as raised:
            parse_config(text, "anon.toml")
        assert raised.value.rule == rule, text


def test_l7_an_identity_number_in_a_bad_value_is_masked() -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_config('k = "01010012356"\n', "anon.toml")
    assert "01010012356" not in raised.value.one_line()


def test_l7_a_config_too_long_to_be_one_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="longer than"):
        parse_config("#" * (config_module.MAX_TEXT_CHARS + 1), "anon.toml")
