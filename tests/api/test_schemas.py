"""Request envelopes and argument schemas: validated before any handler runs.

Identity comes only from the kernel (SO_PEERCRED): a request that carries ``uid`` or ``user``
is refused, never believed.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from agent.api.protocol import PROTOCOL_VERSION
from agent.api.schemas import (
    Envelope,
    NoArgs,
    ProjectCreateArgs,
    ProjectRef,
    parse_args,
    parse_envelope,
)
from agent.errors import InvalidRequest, ProtocolError

CREATE = {"project": "p1234", "title": "Diabetes and income", "leader": "alice",
          "end_date": "2029-12-31"}


def test_a_well_formed_envelope_is_parsed() -> None:
    envelope = parse_envelope({"v": 1, "op": "status", "args": {}})
    assert envelope == Envelope(v=1, op="status", args={})


def test_version_and_args_may_be_left_out() -> None:
    envelope = parse_envelope({"op": "project.list"})
    assert (envelope.v, envelope.op, envelope.args) == (PROTOCOL_VERSION, "project.list", {})


@pytest.mark.parametrize("message", [[], ["status"], "status", None, 1, True, 2.5])
def test_envelope_that_is_not_an_object_is_refused(message: Any) -> None:
    with pytest.raises(ProtocolError, match="must be a JSON object with 'op' and 'args'"):
        parse_envelope(message)


def test_envelope_without_op_is_refused_naming_op() -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_envelope({"v": 1, "args": {}})
    assert caught.value.message.startswith("malformed request: op:")


@pytest.mark.parametrize("field", ["uid", "user", "caller", "pid"])
def test_envelope_with_an_extra_field_is_refused(field: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_envelope({"v": 1, "op": "status", "args": {}, field: 0})
    assert caught.value.message == f"malformed request: {field}: is not an accepted field"


@pytest.mark.parametrize(
    "message",
    [{"v": 1, "op": 5}, {"v": "1", "op": "status"}, {"v": 1, "op": "status", "args": []},
     {"v": 1, "op": "status", "args": "x"}, {"v": 1, "op": "x" * 65}],
)
def test_envelope_with_wrong_types_is_refused(message: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError, match="malformed request"):
        parse_envelope(message)


@pytest.mark.parametrize("version", [0, 2, 99])
def test_envelope_of_another_protocol_version_is_refused_clearly(version: int) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_envelope({"v": version, "op": "status"})
    error = caught.value
    assert f"protocol version {version} is not spoken here" in error.message
    assert f"speaks {PROTOCOL_VERSION}" in error.message
    assert error.hint is not None and "same version" in error.hint


def test_valid_project_create_args() -> None:
    args = parse_args(ProjectCreateArgs, dict(CREATE, key_dir="/srv/keys/p1234"))
    assert args.end_date == date(2029, 12, 31)
    assert args.key_dir == "/srv/keys/p1234"
    assert args.data_dir is None


@pytest.mark.parametrize("field", ["uid", "user", "caller_uid", "gid"])
def test_identity_fields_in_args_are_refused(field: str) -> None:
    """Identity comes from the kernel only; a client may not claim one."""
    with pytest.raises(InvalidRequest) as caught:
        parse_args(ProjectCreateArgs, dict(CREATE, **{field: 0}))
    assert caught.value.message == f"{field}: is not an accepted field"
    with pytest.raises(InvalidRequest, match=f"^{field}: is not an accepted field$"):
        parse_args(NoArgs, {field: 0})


@pytest.mark.parametrize(
    "value", ["2026-02-30", "2026-13-01", "2026-00-10", "2025-02-29", "2026-04-31"]
)
def test_impossible_end_dates_are_refused_in_one_line_naming_end_date(value: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_args(ProjectCreateArgs, dict(CREATE, end_date=value))
    line = caught.value.one_line()
    assert "\n" not in line
    assert line.startswith("end_date: ")
    assert value in line and "not a real date" in line


@pytest.mark.parametrize("value", ["2026-2-3", "31.12.2029", "2029-12-31T00:00:00", "", "tomorrow"])
def test_end_dates_not_written_yyyy_mm_dd_are_refused(value: str) -> None:
    with pytest.raises(InvalidRequest, match=r"^end_date: .*YYYY-MM-DD"):
        parse_args(ProjectCreateArgs, dict(CREATE, end_date=value))


@pytest.mark.parametrize("value", [20291231, None, ["2029-12-31"]])
def test_end_date_of_the_wrong_type_is_refused(value: Any) -> None:
    with pytest.raises(InvalidRequest, match=r"^end_date: "):
        parse_args(ProjectCreateArgs, dict(CREATE, end_date=value))


def test_leap_day_in_a_leap_year_is_a_real_date() -> None:
    assert parse_args(ProjectCreateArgs, dict(CREATE, end_date="2028-02-29")).end_date == date(
        2028, 2, 29
    )


@pytest.mark.parametrize("missing", ["project", "title", "leader", "end_date"])
def test_missing_required_argument_is_named(missing: str) -> None:
    args = {k: v for k, v in CREATE.items() if k != missing}
    with pytest.raises(InvalidRequest, match=f"^{missing}: "):
        parse_args(ProjectCreateArgs, args)


def test_strings_are_not_coerced_from_numbers() -> None:
    with pytest.raises(InvalidRequest, match=r"^project: "):
        parse_args(ProjectRef, {"project": 1234})


def test_overlong_fields_are_refused() -> None:
    with pytest.raises(InvalidRequest, match=r"^project: "):
        parse_args(ProjectRef, {"project": "p" + "1" * 64})
    with pytest.raises(InvalidRequest, match=r"^title: "):
        parse_args(ProjectCreateArgs, dict(CREATE, title="x" * 4097))


def test_several_problems_are_counted_in_one_line() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_args(ProjectCreateArgs, {"uid": 0, "user": "root"})
    line = caught.value.one_line()
    assert "\n" not in line
    assert "more problems)" in line
