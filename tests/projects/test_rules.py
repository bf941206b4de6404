"""Pure checks on a new project: id, title, end date (L1) and the zones plan (S5)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from agent.errors import InvalidRequest, RuleViolation
from agent.projects.rules import (
    MAX_TITLE,
    ZonePlan,
    check_end_date,
    check_project_id,
    check_title,
    check_user_name,
    plan_zones,
)

TODAY = date(2026, 11, 23)


@pytest.mark.parametrize("project", ["p1234", "p1", "p123456789", "p0"])
def test_valid_project_ids(project: str) -> None:
    assert check_project_id(project) == project


@pytest.mark.parametrize(
    "project",
    ["P1234", "p", "p12a", "../x", "p1234 ", " p1234", "p1/../p2", "p1234567890",
     "", "q1234", "p-1", "p１２３"],
)
def test_invalid_project_ids_are_refused(project: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_project_id(project)
    assert caught.value.hint is not None and "p1234" in caught.value.hint


def test_project_id_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        check_project_id("p1234\n")


def test_user_name_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        check_user_name("root\n")


def test_project_id_in_a_refusal_is_shortened() -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_project_id("x" * 10_000)
    assert len(caught.value.message) < 100


@pytest.mark.parametrize("name", ["alice", "_svc", "bob-2", "a" * 32, "machine$"])
def test_valid_user_names(name: str) -> None:
    assert check_user_name(name) == name


@pytest.mark.parametrize("name", ["Alice", "1bob", "a" * 33, "", "../root", "al ice"])
def test_invalid_user_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidRequest):
        check_user_name(name)


def test_title_whitespace_is_collapsed() -> None:
    assert check_title("  Diabetes\tand\nincome  ") == "Diabetes and income"


def test_title_of_exactly_the_limit_is_accepted() -> None:
    assert check_title("x" * MAX_TITLE) == "x" * MAX_TITLE


@pytest.mark.parametrize("title", ["", "   ", "\t\n"])
def test_empty_title_is_refused(title: str) -> None:
    with pytest.raises(InvalidRequest, match="empty"):
        check_title(title)


def test_overlong_title_is_refused() -> None:
    with pytest.raises(InvalidRequest, match=f"longer than {MAX_TITLE}"):
        check_title("x" * (MAX_TITLE + 1))


@pytest.mark.parametrize("title", ["Study\x00", "bell\x07", "\x1b[31mred\x1b[0m", "cr\rhere",
                                   "back\x08space"])
def test_title_with_control_characters_is_refused(title: str) -> None:
    with pytest.raises(InvalidRequest, match="control characters"):
        check_title(title)


def test_end_date_in_the_past_is_refused_under_l1() -> None:
    with pytest.raises(RuleViolation) as caught:
        check_end_date(TODAY - timedelta(days=1), TODAY)
    error = caught.value
    assert error.rule == "L1"
    assert "2026-11-22" in error.message and "2026-11-23" in error.message
    assert "(L1)" in error.one_line()


@pytest.mark.parametrize("end", [TODAY, TODAY + timedelta(days=1), date(2051, 1, 1)])
def test_end_date_today_or_later_is_allowed(end: date) -> None:
    assert check_end_date(end, TODAY) == end


# --- the zones plan -----------------------------------------------------------------------------


def test_zones_default_under_zones_dir_and_project() -> None:
    assert plan_zones("p1234", "/srv/vokter") == ZonePlan(
        project_dir="/srv/vokter/p1234",
        data="/srv/vokter/p1234/data",
        key="/srv/vokter/p1234/key",
        export="/srv/vokter/p1234/export",
        quarantine="/srv/vokter/p1234/quarantine",
    )


def test_zones_dict_names_every_zone() -> None:
    assert list(plan_zones("p1", "/srv/vokter").zones()) == ["data", "key", "export",
                                                             "quarantine"]


def test_zones_dir_is_normalised() -> None:
    assert plan_zones("p1", "/srv//vokter/./").data == "/srv/vokter/p1/data"


def test_given_zones_replace_the_defaults_and_are_normalised() -> None:
    plan = plan_zones("p1", "/srv/vokter", data_dir="/data//p1/", key_dir="/keys/p1",
                      export_dir="/export/./p1")
    assert (plan.data, plan.key, plan.export) == ("/data/p1", "/keys/p1", "/export/p1")
    assert plan.quarantine == "/srv/vokter/p1/quarantine"  # always under the project


@pytest.mark.parametrize(
    ("kwargs", "what"),
    [
        ({"zones_dir": "srv/vokter"}, "zones_dir"),
        ({"zones_dir": ""}, "zones_dir"),
        ({"data_dir": "data/p1"}, "--data-dir"),
        ({"key_dir": "./keys"}, "--key-dir"),
        ({"export_dir": "~/export"}, "--export-dir"),
    ],
)
def test_relative_paths_are_refused(kwargs: dict[str, str], what: str) -> None:
    args = {"zones_dir": "/srv/vokter", **kwargs}
    with pytest.raises(InvalidRequest, match=f"{what} .*must be an absolute path"):
        plan_zones("p1", **args)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"zones_dir": "/srv/../etc"},
        {"data_dir": "/srv/vokter/p1/../p2/data"},
        {"key_dir": "/keys/.."},
        {"export_dir": "/../export"},
    ],
)
def test_dot_dot_is_refused(kwargs: dict[str, str]) -> None:
    args = {"zones_dir": "/srv/vokter", **kwargs}
    with pytest.raises(InvalidRequest, match=r"must not contain '\.\.'"):
        plan_zones("p1", **args)


def test_nul_in_a_path_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        plan_zones("p1", "/srv/vokter", data_dir="/data/p1\x00/x")


@pytest.mark.parametrize("root", ["/", "/./", "///"])
def test_a_zone_cannot_be_the_root_directory(root: str) -> None:
    with pytest.raises(InvalidRequest, match="root directory"):
        plan_zones("p1", "/srv/vokter", data_dir=root)


@pytest.mark.parametrize(
    ("data_dir", "key_dir"),
    [
        ("/data/p1", "/data/p1/key"),  # key inside data
        ("/data/p1/inner", "/data/p1"),  # data inside key
        ("/data/p1", "/data/p1/a/b/c"),
        ("/data/p1", "/data/p1"),  # the same directory
        ("/data/p1", "/data//p1/"),  # the same directory, spelt differently
    ],
)
def test_key_zone_and_data_zone_must_be_apart_s5(data_dir: str, key_dir: str) -> None:
    with pytest.raises(RuleViolation) as caught:
        plan_zones("p1", "/srv/vokter", data_dir=data_dir, key_dir=key_dir)
    assert caught.value.rule == "S5"
    assert "(S5)" in caught.value.one_line()


def test_default_key_zone_inside_a_given_data_zone_is_refused_s5() -> None:
    with pytest.raises(RuleViolation) as caught:
        plan_zones("p1", "/srv/vokter", data_dir="/srv/vokter/p1")  # swallows default key zone
    assert caught.value.rule == "S5"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"export_dir": "/data/p1", "data_dir": "/data/p1"},
        {"export_dir": "/srv/vokter/p1/quarantine"},
        {"export_dir": "/keys/p1/out", "key_dir": "/keys/p1"},
        {"export_dir": "/srv/vokter/p1/data/out"},
    ],
)
def test_other_zones_may_not_coincide_or_nest_either(kwargs: dict[str, str]) -> None:
    with pytest.raises(RuleViolation, match="lies inside"):
        plan_zones("p1", "/srv/vokter", **kwargs)


def test_sibling_directories_sharing_a_prefix_are_not_nested() -> None:
    plan = plan_zones("p1", "/srv/vokter", data_dir="/data/p1", key_dir="/data/p1-key",
                      export_dir="/data/p1export")
    assert (plan.data, plan.key, plan.export) == ("/data/p1", "/data/p1-key", "/data/p1export")


@pytest.mark.parametrize(
    ("data_dir", "key_dir"),
    [("//data/p1", "/data/p1/key"), ("//data/p1", "/data/p1"), ("/data/p1", "//data/p1/k")],
)
def test_a_leading_double_slash_does_not_hide_nesting_s5(data_dir: str, key_dir: str) -> None:
    with pytest.raises(RuleViolation) as caught:
        plan_zones("p1", "/srv/vokter", data_dir=data_dir, key_dir=key_dir)
    assert caught.value.rule == "S5"


def test_a_leading_double_slash_is_normalised_away() -> None:
    plan = plan_zones("p1", "//srv/vokter", data_dir="//data/p1")
    assert plan.project_dir == "/srv/vokter/p1"
    assert plan.data == "/data/p1"


def test_double_slash_is_the_root_directory_too() -> None:
    with pytest.raises(InvalidRequest, match="root directory"):
        plan_zones("p1", "/srv/vokter", data_dir="//")
