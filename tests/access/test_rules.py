"""The grant rules (A1, A2, A4, S6) as the pure functions in ``agent.access.rules`` apply them.

Every refusal is checked for its type, its rule ID where a rule is the reason, and for a message
a person can read: one line, naming the user, never echoing an identity number.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.access.rules import (
    DATA_ROLES,
    GRANTABLE_ROLES,
    MAX_REASON,
    Grant,
    access_ends_at,
    check_expiry,
    check_grant,
    check_reason,
    check_role,
    due_expiries,
    find_grant,
)
from agent.errors import (
    AlreadyExists,
    InvalidRequest,
    NotFound,
    Refused,
    RuleViolation,
    VokterError,
)

TODAY = date(2025, 3, 10)
PROJECT_END = date(2026, 12, 31)
LEADER = 1000
KARI, OLA, NINA = 1001, 1002, 1003
FNR_LIKE = re.compile(r"\d{11}")


def assert_readable(error: VokterError) -> None:
    """One line, no identity-number-like digit run, and the CLI line is one line too."""
    assert error.message.strip()
    assert "\n" not in error.message and "\r" not in error.message
    assert FNR_LIKE.search(error.message) is None
    assert "\n" not in error.one_line()


def grant(
    grants: Sequence[Grant],
    uid: int,
    role: str,
    *,
    user: str = "kari",
    leader_uid: int | None = LEADER,
    members_may_hold_key: bool = False,
) -> None:
    check_grant(grants, user=user, uid=uid, role=role, leader_uid=leader_uid,
                members_may_hold_key=members_may_hold_key)


# --- check_role --------------------------------------------------------------------------------


@pytest.mark.parametrize("role", GRANTABLE_ROLES)
def test_grantable_roles_pass_check_role_unchanged(role: str) -> None:
    assert check_role(role) == role


def test_grantable_roles_are_member_key_custodian_and_auditor() -> None:
    assert set(GRANTABLE_ROLES) == {"member", "key_custodian", "auditor"}
    assert set(DATA_ROLES) == {"leader", "member"}


@pytest.mark.parametrize("role", ["leader", "root", "Member", "member ", "", "keycustodian"])
def test_unknown_role_is_refused_with_the_list_of_roles(role: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_role(role)
    error = caught.value
    assert isinstance(error, Refused)
    assert "unknown role" in error.message
    assert error.hint is not None
    for known in GRANTABLE_ROLES:
        assert known in error.hint
        assert known in error.one_line()
    assert_readable(error)


def test_unknown_role_that_is_not_a_short_word_is_not_echoed() -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_role("x" * 200)
    assert "x" * 33 not in caught.value.message
    with pytest.raises(InvalidRequest) as caught:
        check_role("owner")
    assert "'owner'" in caught.value.message


def test_unknown_role_never_echoes_an_identity_number() -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_role("01019912345")
    assert FNR_LIKE.search(caught.value.message) is None


def test_unknown_role_with_a_newline_still_gives_a_one_line_message() -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_role("member\nrm -rf")
    assert "\n" not in caught.value.message


# --- check_reason (A4) ---------------------------------------------------------------------------


def test_a4_reason_is_returned_stripped() -> None:
    assert check_reason("  analysis of NAV income data  ") == "analysis of NAV income data"


@pytest.mark.parametrize("reason", [None, "", " ", "   \t  ", "\n", " \r\n "])
def test_a4_grant_without_reason_is_refused(reason: str | None) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_reason(reason)
    error = caught.value
    assert error.rule == "A4"
    assert "reason" in error.message
    assert error.hint is not None and "--reason" in error.hint
    assert "(A4" in error.one_line()
    assert_readable(error)


@pytest.mark.parametrize("reason", ["first line\nsecond line", "a\rb", "a\r\nb", "a\x00b"])
def test_a4_multi_line_reason_is_refused(reason: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_reason(reason)
    assert "one line" in caught.value.message
    assert_readable(caught.value)


#: Line breaks str.splitlines knows besides \n and \r.
OTHER_LINE_BREAKS = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("brk", OTHER_LINE_BREAKS)
def test_a4_reason_with_any_line_break_is_refused(brk: str) -> None:
    with pytest.raises(InvalidRequest):
        check_reason(f"first line{brk}second line")


def test_a4_reason_of_exactly_max_length_is_accepted() -> None:
    assert MAX_REASON == 500
    assert check_reason("r" * MAX_REASON) == "r" * MAX_REASON


def test_a4_reason_length_is_counted_after_stripping() -> None:
    assert check_reason("  " + "r" * MAX_REASON + "  ") == "r" * MAX_REASON


def test_a4_too_long_reason_is_refused() -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_reason("r" * (MAX_REASON + 1))
    assert str(MAX_REASON) in caught.value.message
    assert_readable(caught.value)


# Control characters (C0 and DEL) are refused too; the property is over everything else.
_ONE_LINE = st.characters(
    blacklist_characters=["\n", "\r", "\x00", "\x7f", *OTHER_LINE_BREAKS],
    blacklist_categories=["Cc"],
)


def test_a4_reason_with_a_control_character_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        check_reason("ok\x1b[31mred")


@given(st.text(alphabet=_ONE_LINE, max_size=600))
def test_a4_reason_accepted_iff_non_blank_one_line_and_short(reason: str) -> None:
    text = reason.strip()
    if text and len(text) <= MAX_REASON:
        assert check_reason(reason) == text
    else:
        with pytest.raises(InvalidRequest):
            check_reason(reason)


# --- check_expiry / access_ends_at ------------------------------------------------------------


def test_expiry_none_passes() -> None:
    assert check_expiry(None, TODAY, PROJECT_END) is None


def test_expiry_none_passes_even_when_the_project_has_ended() -> None:
    assert check_expiry(None, TODAY, TODAY - timedelta(days=30)) is None


@pytest.mark.parametrize("expires", [TODAY, TODAY + timedelta(days=1), PROJECT_END])
def test_expiry_from_today_to_project_end_is_allowed(expires: date) -> None:
    assert check_expiry(expires, TODAY, PROJECT_END) == expires


@pytest.mark.parametrize("expires", [TODAY - timedelta(days=1), date(2000, 1, 1)])
def test_expiry_in_the_past_is_refused(expires: date) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_expiry(expires, TODAY, PROJECT_END)
    error = caught.value
    assert "past" in error.message
    assert expires.isoformat() in error.message and TODAY.isoformat() in error.message
    assert error.hint
    assert_readable(error)


@pytest.mark.parametrize("expires", [PROJECT_END + timedelta(days=1), date(2099, 1, 1)])
def test_a1_expiry_after_project_end_is_refused(expires: date) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_expiry(expires, TODAY, PROJECT_END)
    error = caught.value
    assert "end" in error.message
    assert expires.isoformat() in error.message and PROJECT_END.isoformat() in error.message
    assert error.hint and "--expires" in error.hint
    assert_readable(error)


@given(
    expires=st.dates(date(2020, 1, 1), date(2030, 12, 31)),
    today=st.dates(date(2020, 1, 1), date(2030, 12, 31)),
    end=st.dates(date(2020, 1, 1), date(2030, 12, 31)),
)
def test_expiry_accepted_iff_between_today_and_project_end(
    expires: date, today: date, end: date
) -> None:
    if today <= expires <= end:
        assert check_expiry(expires, today, end) == expires
    else:
        with pytest.raises(InvalidRequest):
            check_expiry(expires, today, end)


def test_access_ends_at_midnight_utc_after_the_expiry_day() -> None:
    ends = access_ends_at(date(2025, 3, 10))
    assert ends == datetime(2025, 3, 11, 0, 0, tzinfo=UTC)
    assert ends.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("expires", "ends"),
    [
        (date(2025, 12, 31), datetime(2026, 1, 1, tzinfo=UTC)),
        (date(2024, 2, 28), datetime(2024, 2, 29, tzinfo=UTC)),
        (date(2024, 2, 29), datetime(2024, 3, 1, tzinfo=UTC)),
        (date(2025, 2, 28), datetime(2025, 3, 1, tzinfo=UTC)),
    ],
)
def test_access_ends_at_crosses_month_year_and_leap_day(expires: date, ends: datetime) -> None:
    assert access_ends_at(expires) == ends


@given(st.dates(date(1971, 1, 1), date(9998, 12, 30)))
def test_access_lasts_through_the_whole_expiry_day(expires: date) -> None:
    ends = access_ends_at(expires)
    last_moment = ends - timedelta(microseconds=1)
    assert last_moment.date() == expires
    assert ends.date() == expires + timedelta(days=1)
    assert (ends.hour, ends.minute, ends.second, ends.microsecond) == (0, 0, 0, 0)


# --- check_grant: duplicates --------------------------------------------------------------------


def test_a1_a_new_member_is_allowed() -> None:
    grant([], KARI, "member")


@pytest.mark.parametrize(
    ("role", "article"),
    [("member", "a member"), ("key_custodian", "a key custodian"), ("auditor", "an auditor")],
)
def test_a1_duplicate_role_is_already_exists(role: str, article: str) -> None:
    with pytest.raises(AlreadyExists) as caught:
        grant([Grant("kari", KARI, role)], KARI, role)
    error = caught.value
    assert error.message == f"kari is already {article} of this project"
    assert_readable(error)


def test_a1_duplicate_is_found_by_uid_not_by_name() -> None:
    with pytest.raises(AlreadyExists):
        grant([Grant("kari.old", KARI, "member")], KARI, "member", user="kari")
    grant([Grant("kari", OLA, "member")], KARI, "member", user="kari")


def test_a1_duplicate_is_reported_before_s6_when_key_holding_is_allowed() -> None:
    held = [Grant("kari", KARI, "member"), Grant("kari", KARI, "key_custodian")]
    with pytest.raises(AlreadyExists):
        grant(held, KARI, "key_custodian", members_may_hold_key=True)


def test_other_users_grants_do_not_affect_a_grant() -> None:
    others = [Grant("ola", OLA, "key_custodian"), Grant("nina", NINA, "auditor"),
              Grant("ola", OLA, "member")]
    grant(others, KARI, "member")
    grant(others, KARI, "key_custodian")
    grant(others, KARI, "auditor")


# --- check_grant: S6 ----------------------------------------------------------------------------


def test_s6_member_cannot_be_key_custodian() -> None:
    with pytest.raises(RuleViolation) as caught:
        grant([Grant("kari", KARI, "member")], KARI, "key_custodian")
    error = caught.value
    assert error.rule == "S6"
    assert "kari" in error.message and "linkage key" in error.message
    assert error.hint
    assert "(S6)" in error.one_line()
    assert_readable(error)


def test_s6_key_custodian_cannot_become_member() -> None:
    with pytest.raises(RuleViolation) as caught:
        grant([Grant("kari", KARI, "key_custodian")], KARI, "member")
    error = caught.value
    assert error.rule == "S6"
    assert "kari" in error.message and "research data" in error.message
    assert error.hint
    assert_readable(error)


def test_s6_leader_cannot_be_key_custodian() -> None:
    with pytest.raises(RuleViolation) as caught:
        grant([], LEADER, "key_custodian", user="leila")
    assert caught.value.rule == "S6"
    assert "leila" in caught.value.message
    assert_readable(caught.value)


def test_s6_leader_without_grants_is_recognised_only_by_leader_uid() -> None:
    grant([], LEADER, "key_custodian", leader_uid=None)
    grant([], LEADER, "key_custodian", leader_uid=LEADER + 50)


def test_s6_someone_outside_the_data_users_may_be_key_custodian() -> None:
    grant([Grant("ola", OLA, "member")], KARI, "key_custodian")


@pytest.mark.parametrize(
    ("held", "uid", "role"),
    [
        ([Grant("kari", KARI, "member")], KARI, "key_custodian"),
        ([Grant("kari", KARI, "key_custodian")], KARI, "member"),
        ([], LEADER, "key_custodian"),
    ],
)
def test_s6_members_may_hold_key_policy_allows_both(
    held: list[Grant], uid: int, role: str
) -> None:
    grant(held, uid, role, members_may_hold_key=True)


# --- check_grant: A2 -----------------------------------------------------------------------------


@pytest.mark.parametrize("existing", ["member", "key_custodian"])
def test_a2_participant_cannot_audit(existing: str) -> None:
    with pytest.raises(RuleViolation) as caught:
        grant([Grant("kari", KARI, existing)], KARI, "auditor")
    error = caught.value
    assert error.rule == "A2"
    assert "kari" in error.message and existing in error.message
    assert error.hint
    assert_readable(error)


def test_a2_leader_cannot_audit_own_project() -> None:
    with pytest.raises(RuleViolation) as caught:
        grant([], LEADER, "auditor", user="leila")
    assert caught.value.rule == "A2"
    assert "leader" in caught.value.message
    assert_readable(caught.value)


def test_a2_auditor_refusal_lists_every_held_role_sorted() -> None:
    held = [Grant("kari", KARI, "member"), Grant("kari", KARI, "key_custodian")]
    with pytest.raises(RuleViolation) as caught:
        grant(held, KARI, "auditor", members_may_hold_key=True)
    assert caught.value.rule == "A2"
    assert "(key_custodian, member)" in caught.value.message


@pytest.mark.parametrize("role", ["member", "key_custodian"])
@pytest.mark.parametrize("may_hold_key", [False, True])
def test_a2_auditor_never_reaches_data_or_key(role: str, may_hold_key: bool) -> None:
    with pytest.raises(RuleViolation) as caught:
        grant([Grant("kari", KARI, "auditor")], KARI, role, members_may_hold_key=may_hold_key)
    error = caught.value
    assert error.rule == "A2"
    assert "kari" in error.message and role in error.message
    assert error.hint
    assert_readable(error)


def test_a2_outsider_may_be_appointed_auditor() -> None:
    grant([Grant("ola", OLA, "member")], KARI, "auditor")


_ROLES = st.sampled_from(GRANTABLE_ROLES)


@given(
    requests=st.lists(st.tuples(st.sampled_from([LEADER, KARI, OLA, NINA]), _ROLES), max_size=20),
    may_hold_key=st.booleans(),
)
def test_accepted_grants_never_break_s6_or_a2(
    requests: list[tuple[int, str]], may_hold_key: bool
) -> None:
    """Whatever order grants are asked for, those check_grant lets through keep S6 and A2."""
    grants: list[Grant] = []
    for uid, role in requests:
        try:
            grant(grants, uid, role, user=f"u{uid}", members_may_hold_key=may_hold_key)
        except (AlreadyExists, RuleViolation) as error:
            assert_readable(error)
            assert isinstance(error, AlreadyExists) or error.rule in {"S6", "A2"}
            continue
        grants.append(Grant(f"u{uid}", uid, role))
    for uid in {LEADER, KARI, OLA, NINA}:
        roles = [g.role for g in grants if g.uid == uid] + (["leader"] if uid == LEADER else [])
        assert len(roles) == len(set(roles)), "a role was granted twice"
        if "auditor" in roles:
            assert roles == ["auditor"], "an auditor takes part in the project (A2)"
        if not may_hold_key and "key_custodian" in roles:
            assert not set(roles) & DATA_ROLES, "the key and the data meet (S6)"


# --- find_grant -----------------------------------------------------------------------------------


def test_find_grant_without_role_returns_the_only_one() -> None:
    mine = Grant("kari", KARI, "member", date(2025, 6, 1))
    grants = [Grant("ola", OLA, "member"), mine, Grant("nina", NINA, "auditor")]
    assert find_grant(grants, user="kari", uid=KARI, role=None) is mine


def test_find_grant_with_no_grant_is_not_found() -> None:
    with pytest.raises(NotFound) as caught:
        find_grant([Grant("ola", OLA, "member")], user="kari", uid=KARI, role=None)
    error = caught.value
    assert error.message == "kari has no access to this project"
    assert error.hint and "member list" in error.hint
    assert_readable(error)


def test_find_grant_with_a_role_the_user_lacks_is_not_found_naming_the_role() -> None:
    with pytest.raises(NotFound) as caught:
        find_grant([Grant("kari", KARI, "member")], user="kari", uid=KARI, role="key_custodian")
    assert caught.value.message == "kari has no access as key_custodian to this project"
    assert_readable(caught.value)


def test_find_grant_several_roles_without_role_asks_which() -> None:
    grants = [Grant("kari", KARI, "member"), Grant("kari", KARI, "key_custodian")]
    with pytest.raises(InvalidRequest) as caught:
        find_grant(grants, user="kari", uid=KARI, role=None)
    error = caught.value
    assert not isinstance(error, NotFound)
    assert "(key_custodian, member)" in error.message
    assert "--role" in error.message
    assert_readable(error)


@pytest.mark.parametrize("role", ["member", "key_custodian"])
def test_find_grant_role_filter_picks_that_grant(role: str) -> None:
    grants = [Grant("kari", KARI, "member"), Grant("kari", KARI, "key_custodian"),
              Grant("ola", OLA, role)]
    found = find_grant(grants, user="kari", uid=KARI, role=role)
    assert (found.uid, found.role) == (KARI, role)


def test_find_grant_matches_by_uid_not_by_name() -> None:
    with pytest.raises(NotFound):
        find_grant([Grant("kari", OLA, "member")], user="kari", uid=KARI, role=None)


def test_find_grant_accepts_any_iterable() -> None:
    found = find_grant(iter([Grant("kari", KARI, "member")]), user="kari", uid=KARI, role=None)
    assert found.role == "member"


# --- due_expiries ---------------------------------------------------------------------------------


def test_due_expiries_boundary_exactly_at_access_end_is_due() -> None:
    g = Grant("kari", KARI, "member", date(2025, 3, 10))
    ends = access_ends_at(date(2025, 3, 10))
    assert due_expiries([g], ends) == [g]
    assert due_expiries([g], ends - timedelta(microseconds=1)) == []
    assert due_expiries([g], ends + timedelta(microseconds=1)) == [g]


def test_due_expiries_the_whole_expiry_day_still_has_access() -> None:
    g = Grant("kari", KARI, "member", date(2025, 3, 10))
    assert due_expiries([g], datetime(2025, 3, 10, 23, 59, 59, tzinfo=UTC)) == []
    assert due_expiries([g], datetime(2025, 3, 10, 0, 0, tzinfo=UTC)) == []


def test_due_expiries_compares_instants_across_time_zones() -> None:
    g = Grant("kari", KARI, "member", date(2025, 3, 10))
    oslo = timezone(timedelta(hours=1))
    # 00:30 in Oslo on the 11th is 23:30 UTC on the 10th: the expiry day is not over yet.
    assert due_expiries([g], datetime(2025, 3, 11, 0, 30, tzinfo=oslo)) == []
    assert due_expiries([g], datetime(2025, 3, 11, 1, 0, tzinfo=oslo)) == [g]


def test_due_expiries_never_includes_grants_without_expiry() -> None:
    far_future = datetime(9999, 12, 30, tzinfo=UTC)
    assert due_expiries([Grant("kari", KARI, "member")], far_future) == []


def test_due_expiries_keeps_order_and_filters_the_rest() -> None:
    now = datetime(2025, 6, 1, 12, tzinfo=UTC)
    a = Grant("kari", KARI, "member", date(2025, 5, 31))
    b = Grant("ola", OLA, "member", date(2025, 6, 1))
    c = Grant("nina", NINA, "auditor", None)
    d = Grant("ola", OLA, "key_custodian", date(2025, 1, 1))
    assert due_expiries([a, b, c, d], now) == [a, d]
    assert due_expiries([], now) == []


@given(
    expires=st.dates(date(2020, 1, 1), date(2030, 12, 31)),
    now=st.datetimes(datetime(2020, 1, 1), datetime(2031, 1, 2), timezones=st.just(UTC)),
)
def test_due_iff_now_is_past_the_expiry_day_in_utc(expires: date, now: datetime) -> None:
    g = Grant("kari", KARI, "member", expires)
    assert (due_expiries([g], now) == [g]) is (now.date() > expires)
