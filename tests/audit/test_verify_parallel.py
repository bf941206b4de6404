"""A5: a long SQLite trail verified in stretches on several cores says exactly what verifying it
in one piece says when it is intact, and nothing at all (leaving it to the one piece) when any
stretch is damaged or the stretches do not join up."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.audit.checkpoint import ChainHead
from agent.audit.keys import AuditKeys, load_or_create_audit_keys
from agent.audit.parallel import stretches, verify_in_stretches
from agent.audit.rows import trail_rows
from agent.audit.seal import read_checkpoint_file
from agent.audit.verify import ChainVerifier, CheckpointClaim, DamageKind, Progress
from agent.audit.verify_trail import verify_trail
from agent.store import Store
from agent.store.migrate import upgrade
from tests.audit.tamper import append, attacker, sample_events, seal, swap

EVENTS = 3000
STRETCH = 700


@pytest.fixture
def long_trail(tmp_path: Path) -> Iterator[tuple[Store, AuditKeys, Path]]:
    store = Store(f"sqlite:///{tmp_path / 'vokter.db'}")
    upgrade(store.engine)
    keys = load_or_create_audit_keys(tmp_path / "keystore")
    append(store, keys, sample_events(EVENTS - 500))
    yield store, keys, tmp_path / "keystore"
    store.close()


def in_stretches(store: Store, keys: AuditKeys, key_store: Path) -> object:
    kept = read_checkpoint_file(key_store, keys)
    claims = [] if kept is None else [CheckpointClaim(kept.checkpoint, "daemon")]
    assert store.engine.url.database is not None
    return verify_in_stretches(Path(store.engine.url.database), keys.mac_key, claims,
                               processes=4, min_stretch=STRETCH)


def test_stretches_cover_the_trail_once_in_order() -> None:
    for last, parts in ((3000, 4), (1_000_001, 2), (7, 3)):
        bounds = stretches(last, parts)
        assert bounds[0][0] == 1 and bounds[-1][1] == last and len(bounds) == parts
        assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(bounds))


def test_a5_an_intact_trail_verifies_in_stretches_as_in_one_piece(
    long_trail: tuple[Store, AuditKeys, Path],
) -> None:
    store, keys, key_store = long_trail
    sealed = seal(store, keys, key_store)
    append(store, keys, sample_events(500, EVENTS))
    result = in_stretches(store, keys, key_store)
    whole = verify_trail(store, keys, key_store, processes=1)
    assert whole.ok and result == whole
    assert whole.count == EVENTS
    assert whole.sealed_head is not None and whole.sealed_head.seq == sealed


@pytest.mark.parametrize("at", ["first of a stretch", "last of a stretch", "inside"])
def test_a5_any_damage_leaves_the_verdict_to_one_piece(
    long_trail: tuple[Store, AuditKeys, Path], at: str,
) -> None:
    store, keys, key_store = long_trail
    start = stretches(EVENTS - 500, 3)[1][0]
    seq = {"first of a stretch": start, "last of a stretch": start - 1, "inside": start + 7}[at]
    with attacker(store) as hands:
        hands.run("DELETE FROM audit_event WHERE seq = :seq", seq=seq)
    assert in_stretches(store, keys, key_store) is None
    damage = verify_trail(store, keys, key_store).damage
    assert damage is not None and (damage.kind, damage.seq) == (DamageKind.DELETED, seq)


def test_a5_a_swap_across_two_stretches_leaves_the_verdict_to_one_piece(
    long_trail: tuple[Store, AuditKeys, Path],
) -> None:
    store, keys, key_store = long_trail
    start = stretches(EVENTS - 500, 3)[1][0]
    with attacker(store) as hands:
        swap(hands, start - 1, start)
    assert in_stretches(store, keys, key_store) is None
    damage = verify_trail(store, keys, key_store).damage
    assert damage is not None and (damage.kind, damage.seq) == (DamageKind.SWAPPED, start - 1)


def test_a5_a_checkpoint_the_trail_fell_short_of_leaves_the_verdict_to_one_piece(
    long_trail: tuple[Store, AuditKeys, Path],
) -> None:
    store, keys, key_store = long_trail
    seal(store, keys, key_store)
    with attacker(store) as hands:
        hands.run("DELETE FROM audit_event WHERE seq > 2000")
    assert in_stretches(store, keys, key_store) is None


# --- joining stretches (pure) ------------------------------------------------------------------


def part(start: ChainHead, last: ChainHead, firsts: dict[str, tuple[int, str]] | None = None,
         heads: dict[str, ChainHead] | None = None, damaged: bool = False) -> Progress:
    return Progress(start, last, last.seq - start.seq, damaged, heads or {}, firsts or {}, {})


A, B, C = "a" * 64, "b" * 64, "c" * 64
GENESIS = ChainHead(0, "0" * 64)


def test_stretches_join_only_where_each_starts_at_the_end_of_the_one_before() -> None:
    first = part(GENESIS, ChainHead(10, A), heads={"p1": ChainHead(3, B)})
    good = part(ChainHead(10, A), ChainHead(20, C), firsts={"p1": (4, B)})
    joined = ChainVerifier.joined([first, good], mac_key=None)
    assert joined is not None
    result = joined.finish()
    assert (result.count, result.last, result.projects["p1"]) == (
        20, ChainHead(20, C), ChainHead(3, B))
    for bad in (
        part(ChainHead(10, B), ChainHead(20, C)),  # not the verified end
        part(ChainHead(9, A), ChainHead(20, C)),  # overlaps
        part(ChainHead(10, A), ChainHead(20, C), firsts={"p1": (5, B)}),  # project gap
        part(ChainHead(10, A), ChainHead(20, C), firsts={"p1": (4, C)}),  # project link
        part(ChainHead(10, A), ChainHead(20, C), firsts={"p2": (2, C)}),  # project's start
        part(ChainHead(10, A), ChainHead(20, C), damaged=True),
    ):
        assert ChainVerifier.joined([first, bad], mac_key=None) is None, bad


def test_a5_a_long_verification_tells_how_far_it_got(
    long_trail: tuple[Store, AuditKeys, Path],
) -> None:
    store, keys, _ = long_trail
    heard: list[int] = []
    with store.read() as session:
        verifier = ChainVerifier("trail", mac_key=keys.mac_key)
        verifier.feed_all(trail_rows(session), heard.append, every=1000)
        result = verifier.finish()
    assert result.ok and result.count == EVENTS - 500
    assert heard == [1000, 2000, EVENTS - 500]
