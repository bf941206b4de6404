"""The audit hash chain's pure core (A5): deterministic, sensitive to every field, unambiguous."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from agent.audit.chain import (
    GENESIS_HASH,
    HASH_ALGORITHMS,
    MacSealer,
    canonical_details,
    encode_fields,
    event_hash,
    event_mac,
    format_time,
    parse_time,
)

BASE: dict[str, Any] = {
    "algorithm": "sha256",
    "seq": 7,
    "time": "2026-11-23T12:00:00.000000Z",
    "actor_uid": 1001,
    "actor": "alice",
    "action": "member.add",
    "project_id": "p1234",
    "project_seq": 3,
    "target": "bob",
    "outcome": "ok",
    "rule": "A4",
    "details": '{"reason":"analysis"}',
    "prev_hash": "ab" * 32,
    "project_prev_hash": "cd" * 32,
}

#: For every field of event_hash, a value that differs from BASE's.
CHANGED: dict[str, Any] = {
    "algorithm": "sha512",
    "seq": 8,
    "time": "2026-11-23T12:00:00.000001Z",
    "actor_uid": 1002,
    "actor": "alicf",
    "action": "member.remove",
    "project_id": "p1235",
    "project_seq": 4,
    "target": "carol",
    "outcome": "refused",
    "rule": "A3",
    "details": '{"reason":"analysiS"}',
    "prev_hash": "ab" * 31 + "ac",
    "project_prev_hash": "cd" * 31 + "ce",
}


def spec_hash(**fields: Any) -> str:
    """The v2 format written out independently (docs/audit-format.md): each field as an 8-byte
    big-endian length and its UTF-8 bytes, after the 'vokter-audit-v2' tag; an absent optional
    field is the length 2**64-1 with no bytes, so that absent and empty differ."""
    order = ["algorithm", "seq", "time", "actor_uid", "actor", "action", "project_id",
             "project_seq", "target", "outcome", "rule", "details", "prev_hash",
             "project_prev_hash"]
    payload = b""
    values = [None if fields[k] is None else str(fields[k]) for k in order]
    for value in ["vokter-audit-v2", *values]:
        if value is None:
            payload += b"\xff" * 8
            continue
        raw = value.encode("utf-8")
        payload += len(raw).to_bytes(8, "big") + raw
    return hashlib.new(fields["algorithm"], payload).hexdigest()


def test_every_event_hash_field_has_a_changed_value() -> None:
    assert set(CHANGED) == set(BASE)
    assert all(CHANGED[name] != BASE[name] for name in BASE)


def test_event_hash_is_deterministic() -> None:
    assert event_hash(**BASE) == event_hash(**dict(BASE))
    assert len(event_hash(**BASE)) == 64


def test_event_hash_follows_the_published_v2_encoding() -> None:
    """Old trails must stay verifiable: the encoding may not drift silently."""
    assert event_hash(**BASE) == spec_hash(**BASE)
    absent = {**BASE, "project_id": None, "project_seq": None, "target": None, "rule": None,
              "project_prev_hash": None}
    assert event_hash(**absent) == spec_hash(**absent)


@pytest.mark.parametrize("field", sorted(BASE))
def test_a5_event_hash_changes_when_any_single_field_changes(field: str) -> None:
    assert event_hash(**{**BASE, field: CHANGED[field]}) != event_hash(**BASE)


OPTIONAL = ["project_id", "project_seq", "target", "rule", "project_prev_hash"]


@pytest.mark.parametrize("field", OPTIONAL)
def test_a5_event_hash_changes_when_an_optional_field_is_dropped(field: str) -> None:
    assert event_hash(**{**BASE, field: None}) != event_hash(**BASE)


@pytest.mark.parametrize("field", ["project_id", "target", "rule", "project_prev_hash"])
def test_a5_event_hash_tells_an_absent_optional_field_from_an_empty_one(field: str) -> None:
    assert event_hash(**{**BASE, field: None}) != event_hash(**{**BASE, field: ""})


def test_length_prefixes_keep_field_boundaries_unambiguous() -> None:
    assert encode_fields(["ab", "c"]) != encode_fields(["a", "bc"])
    assert encode_fields(["", "abc"]) != encode_fields(["abc", ""])
    assert encode_fields(["ab", "c"]) == (
        (2).to_bytes(8, "big") + b"ab" + (1).to_bytes(8, "big") + b"c"
    )


def test_moving_text_between_neighbouring_fields_changes_the_hash() -> None:
    first = event_hash(**{**BASE, "actor": "ab", "action": "c"})
    second = event_hash(**{**BASE, "actor": "a", "action": "bc"})
    assert first != second
    # an empty target next to a rule, and the same text shifted across the boundary
    assert event_hash(**{**BASE, "target": "xA4", "rule": None}) != event_hash(
        **{**BASE, "target": "x", "rule": "A4"}
    )


def test_length_prefix_counts_utf8_bytes_not_characters() -> None:
    assert encode_fields(["Æ"]) == (2).to_bytes(8, "big") + "Æ".encode()
    assert event_hash(**{**BASE, "actor": "bjørn"}) == spec_hash(**{**BASE, "actor": "bjørn"})


def test_canonical_details_does_not_depend_on_key_order() -> None:
    one = {"leader": "alice", "zones": {"key": "/k", "data": "/d"}, "warnings": []}
    other = {"warnings": [], "zones": {"data": "/d", "key": "/k"}, "leader": "alice"}
    assert canonical_details(one) == canonical_details(other)
    assert canonical_details(one) == (
        '{"leader":"alice","warnings":[],"zones":{"data":"/d","key":"/k"}}'
    )


def test_canonical_details_tells_different_details_apart() -> None:
    assert canonical_details({"a": 1}) != canonical_details({"a": "1"})
    assert canonical_details({"a": [1, 2]}) != canonical_details({"a": [2, 1]})


def test_canonical_details_of_nothing_is_an_empty_object() -> None:
    assert canonical_details(None) == canonical_details({}) == "{}"


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "SHA256", "sha3_256", "", "sha256 "])
def test_an_unsupported_hash_algorithm_is_refused(algorithm: str) -> None:
    with pytest.raises(ValueError, match="unsupported audit hash algorithm"):
        event_hash(**{**BASE, "algorithm": algorithm})


@pytest.mark.parametrize(("algorithm", "hex_length"), [("sha512", 128), ("blake2b", 128)])
def test_sha512_and_blake2b_chains_work(algorithm: str, hex_length: int) -> None:
    fields = {**BASE, "algorithm": algorithm}
    digest = event_hash(**fields)
    assert len(digest) == hex_length
    assert digest == spec_hash(**fields)
    assert digest != event_hash(**{**fields, "seq": 8})


def test_the_supported_algorithms_all_hash_apart() -> None:
    digests = {event_hash(**{**BASE, "algorithm": a}) for a in HASH_ALGORITHMS}
    assert len(digests) == len(HASH_ALGORITHMS) == 3


def test_genesis_hash_is_64_zeros() -> None:
    assert GENESIS_HASH == "0" * 64


def test_format_time_always_writes_microseconds_and_z() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    assert format_time(datetime(2026, 11, 23, 12, 0, tzinfo=UTC)) == "2026-11-23T12:00:00.000000Z"
    oslo = datetime(2026, 7, 1, 14, 0, 0, 5, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(oslo) == "2026-07-01T12:00:00.000005Z"
    assert parse_time(format_time(oslo)) == oslo
    with pytest.raises(ValueError):
        parse_time("2026-07-01T12:00:00Z")


def test_a5_the_mac_is_hmac_sha256_of_the_hash_bytes_and_needs_the_key() -> None:
    import hmac

    digest = event_hash(**BASE)
    key = bytes(range(32))
    expected = hmac.new(key, bytes.fromhex(digest), "sha256").hexdigest()
    assert event_mac(key, digest) == expected == MacSealer(key).mac(digest)
    assert event_mac(bytes(32), digest) != expected
    long_key = b"k" * 100
    assert MacSealer(long_key).mac(digest) == event_mac(long_key, digest)
