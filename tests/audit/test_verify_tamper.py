"""A5: verifying the stored trail names the first damaged event and the kind of damage, for each
way someone who can write the database may tamper with it (the real SQLite file, written with
Python's sqlite3 module; a PostgreSQL database through a connection of their own).

The trail is made as the daemon makes it (append_events) and sealed as its sealer does
(seal.extend, a checkpoint row and the key store's copy); verify_trail reads it back."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from agent.audit.chain import EventFields
from agent.audit.checkpoint import SignedCheckpoint
from agent.audit.keys import AuditKeys, load_or_create_audit_keys
from agent.audit.seal import CHECKPOINT_FILE, read_checkpoint_file, sign_checkpoint
from agent.audit.verify import DamageKind, VerifyResult
from agent.audit.verify_trail import verify_trail
from agent.errors import InvalidRequest
from agent.store import Store
from agent.store.migrate import upgrade
from tests.audit.tamper import (
    PROJECTS,
    T0,
    append,
    attacker,
    close_gap,
    event,
    forged_after,
    insert,
    open_gap,
    point_heads_at_what_is_left,
    rehash,
    sample_events,
    seal,
    sqlite_path,
    swap,
)

EVENTS = 20
#: Events 8 and 12 are both about p1002 (sample_events), 5 about p1001, 7 about no project.
IN_P1002, ALSO_IN_P1002, IN_P1001, IN_NO_PROJECT = 8, 12, 5, 7


@dataclass
class Trail:
    store: Store
    keys: AuditKeys
    key_store: Path

    def verify(self, project: str | None = None,
               kept: SignedCheckpoint | None = None) -> VerifyResult:
        return verify_trail(self.store, self.keys, self.key_store, project=project, kept=kept)

    def append(self, count: int, first: int) -> None:
        append(self.store, self.keys, sample_events(count, first))

    def seal(self, minutes: int = 60) -> int:
        return seal(self.store, self.keys, self.key_store, T0 + timedelta(minutes=minutes))

    def kept(self) -> SignedCheckpoint:
        """What an auditor keeps: the daemon's newest checkpoint ('vokter audit checkpoint')."""
        signed = read_checkpoint_file(self.key_store, self.keys)
        assert signed is not None
        return signed

    def place(self, seq: int) -> tuple[str | None, int | None]:
        with attacker(self.store) as hands:
            values = event(hands, seq)
        return values["project_id"], values["project_seq"]


@pytest.fixture
def trail(store: Store, tmp_path: Path) -> Trail:
    key_store = tmp_path / "keystore"
    made = Trail(store, load_or_create_audit_keys(key_store), key_store)
    made.append(12, 0)
    made.append(EVENTS - 12, 12)
    return made


def assert_damage(result: VerifyResult, kind: DamageKind, seq: int | None,
                  project_seq: int | None = None) -> None:
    assert result.damage is not None, f"expected {kind} at {seq}, but it verified"
    assert (result.damage.kind, result.damage.seq, result.damage.project_seq) == (
        kind, seq, project_seq), result.damage


def test_sample_places_are_as_the_tests_assume(trail: Trail) -> None:
    assert trail.place(IN_P1002)[0] == trail.place(ALSO_IN_P1002)[0] == "p1002"
    assert trail.place(IN_P1001)[0] == "p1001"
    assert trail.place(IN_NO_PROJECT) == (None, None)


# --- intact ------------------------------------------------------------------------------------


def test_a5_an_intact_trail_verifies_whole_and_per_project(trail: Trail) -> None:
    sealed = trail.seal()
    trail.append(5, EVENTS)
    result = trail.verify()
    assert result.ok, result.damage
    assert (result.count, result.last.seq) == (EVENTS + 5, EVENTS + 5)
    assert result.sealed_head is not None and result.sealed_head.seq == sealed
    kept = trail.kept()
    for project in PROJECTS:
        expected = sum(1 for e in sample_events(EVENTS + 5) if e.project_id == project)
        mine = trail.verify(project=project, kept=kept)
        assert mine.ok, mine.damage
        assert mine.count == mine.last.seq == expected
        assert mine.sealed_head == kept.checkpoint.projects[project]


def test_a5_an_unsealed_trail_verifies_and_says_nothing_sealed_it(trail: Trail) -> None:
    result = trail.verify()
    assert result.ok and result.count == EVENTS
    assert result.sealed is None


def test_a5_events_the_fast_path_leaves_to_the_exact_check_verify_too(trail: Trail) -> None:
    """Names and paths beyond ASCII, details longer than the prefix table, another hash."""
    trail.seal()
    odd = [
        EventFields(time=T0 + timedelta(hours=2), actor_uid=1001, actor="bjørn",
                    action="file.open", outcome="ok", project_id="p1001",
                    target="/srv/zones/p1001/data/måling æøå.csv"),
        EventFields(time=T0 + timedelta(hours=2), actor_uid=0, actor="root", action="x",
                    outcome="ok", details={"long": "y" * 10_000}),
    ]
    append(trail.store, trail.keys, odd)
    with trail.store.write() as session:
        from agent.audit.trail import append_events

        append_events(session, sample_events(3, 40), mac_key=trail.keys.mac_key,
                      algorithm="sha512")
    trail.append(2, 50)
    result = trail.verify()
    assert result.ok, result.damage
    assert result.count == EVENTS + 7
    assert trail.verify(project="p1001").ok


# --- a field changed ---------------------------------------------------------------------------


def test_a5_a_changed_field_is_named_changed_at_its_event(trail: Trail) -> None:
    trail.seal()
    project, project_seq = trail.place(IN_P1002)
    with attacker(trail.store) as hands:
        hands.run("UPDATE audit_event SET target = '/tmp/elsewhere' WHERE seq = :seq",
                  seq=IN_P1002)
    assert_damage(trail.verify(), DamageKind.CHANGED, IN_P1002)
    assert_damage(trail.verify(project=project), DamageKind.CHANGED, IN_P1002, project_seq)
    assert trail.verify(project="p1001").ok


def test_a5_a_changed_field_with_its_hash_recomputed_is_still_changed(trail: Trail) -> None:
    """The attacker knows the format and fixes the hash; the MAC gives them away, and the
    untouched event after it shows the event was changed, not added."""
    with attacker(trail.store) as hands:
        values = event(hands, IN_NO_PROJECT)
        values["outcome"] = "refused"
        hands.run("UPDATE audit_event SET outcome = 'refused', hash = :hash WHERE seq = :seq",
                  hash=rehash(values), seq=IN_NO_PROJECT)
    assert_damage(trail.verify(), DamageKind.CHANGED, IN_NO_PROJECT)


@pytest.mark.parametrize(("column", "value"), [
    ("target", "/srv/å.csv"), ("actor", "bjørn"), ("project_id", "på"), ("action", "åpne"),
    ("rule", "Å5"), ("outcome", "nå"),
])
def test_a5_text_beyond_ascii_changed_to_look_alike_bytes_is_changed(
    trail: Trail, column: str, value: str
) -> None:
    """'å' stored as the two latin-1 characters of its UTF-8 bytes must not pass, whichever
    text field holds it (a refusal may record whatever project name a client sent)."""
    fields = {"actor": "root", "action": "file.open", "outcome": "ok", "project_id": None,
              "target": None, "rule": None, column: value}
    append(trail.store, trail.keys, [EventFields(time=T0 + timedelta(hours=3), actor_uid=0,
                                                 **fields)])  # type: ignore[arg-type]
    assert trail.verify().ok
    with attacker(trail.store) as hands:
        hands.run(f"UPDATE audit_event SET {column} = :v WHERE seq = :seq",  # noqa: S608
                  v=value.encode().decode("latin-1"), seq=EVENTS + 1)
    assert_damage(trail.verify(), DamageKind.CHANGED, EVENTS + 1)


def test_a5_an_event_stripped_of_its_mac_is_named_unsealed(trail: Trail) -> None:
    with attacker(trail.store) as hands:
        hands.run("UPDATE audit_event SET mac = '' WHERE seq = 3")
    assert_damage(trail.verify(), DamageKind.UNSEALED, 3)


# --- an event deleted --------------------------------------------------------------------------


def test_a5_a_deleted_event_is_named_deleted_at_its_place(trail: Trail) -> None:
    trail.seal()
    project, project_seq = trail.place(IN_P1002)
    with attacker(trail.store) as hands:
        hands.run("DELETE FROM audit_event WHERE seq = :seq", seq=IN_P1002)
    assert_damage(trail.verify(), DamageKind.DELETED, IN_P1002)
    assert_damage(trail.verify(project=project), DamageKind.DELETED, None, project_seq)


def test_a5_a_deleted_event_with_the_gap_closed_is_still_deleted(trail: Trail) -> None:
    with attacker(trail.store) as hands:
        hands.run("DELETE FROM audit_event WHERE seq = :seq", seq=IN_NO_PROJECT)
        close_gap(hands, IN_NO_PROJECT)
    assert_damage(trail.verify(), DamageKind.DELETED, IN_NO_PROJECT)


# --- a forged event inserted -------------------------------------------------------------------


def test_a5_a_forged_event_inserted_is_named_inserted(trail: Trail) -> None:
    trail.seal()
    with attacker(trail.store) as hands:
        forged = forged_after(hands, IN_P1002 - 1)
        open_gap(hands, IN_P1002)
        insert(hands, forged)
    assert_damage(trail.verify(), DamageKind.INSERTED, IN_P1002)


def test_a5_a_forged_event_appended_after_the_last_is_named_inserted(trail: Trail) -> None:
    with attacker(trail.store) as hands:
        insert(hands, forged_after(hands, EVENTS))
    assert_damage(trail.verify(), DamageKind.INSERTED, EVENTS + 1)


def test_a5_a_forged_event_the_daemon_wrote_after_is_still_inserted(trail: Trail) -> None:
    """The attacker moved the chain's head cache too, so new events link to the forgery."""
    with attacker(trail.store) as hands:
        forged = forged_after(hands, EVENTS)
        insert(hands, forged)
        hands.run("UPDATE audit_head SET seq = :seq, hash = :hash WHERE chain = ''",
                  seq=EVENTS + 1, hash=forged["hash"])
    trail.append(3, EVENTS)
    assert_damage(trail.verify(), DamageKind.INSERTED, EVENTS + 1)


# --- two events swapped ------------------------------------------------------------------------


def test_a5_two_neighbouring_events_swapped_are_named_swapped(trail: Trail) -> None:
    with attacker(trail.store) as hands:
        swap(hands, IN_NO_PROJECT, IN_P1002)
    assert_damage(trail.verify(), DamageKind.SWAPPED, IN_NO_PROJECT)


def test_a5_two_distant_events_swapped_are_named_swapped(trail: Trail) -> None:
    trail.seal()
    project, project_seq = trail.place(IN_P1002)
    with attacker(trail.store) as hands:
        swap(hands, IN_P1002, ALSO_IN_P1002)
    assert_damage(trail.verify(), DamageKind.SWAPPED, IN_P1002)
    # in the project's own chain the first event found out of place is the same one
    damage = trail.verify(project=project).damage
    assert damage is not None and damage.kind is DamageKind.SWAPPED
    assert damage.project_seq == project_seq


# --- the tail cut off --------------------------------------------------------------------------


def cut_tail(trail: Trail, after: int) -> None:
    """Remove the events after ``after`` and every checkpoint row, and point the head cache
    at what is left, as a careful attacker would."""
    with attacker(trail.store) as hands:
        hands.run("DELETE FROM audit_event WHERE seq > :after", after=after)
        hands.run("DELETE FROM audit_checkpoint")
        point_heads_at_what_is_left(hands)




def test_a5_a_tail_cut_with_its_checkpoints_is_caught_by_the_key_store_copy(
    trail: Trail,
) -> None:
    sealed = trail.seal()
    project, project_seq = trail.place(ALSO_IN_P1002)
    cut_tail(trail, ALSO_IN_P1002 - 1)
    assert_damage(trail.verify(), DamageKind.TAIL_CUT, ALSO_IN_P1002)
    assert sealed == EVENTS
    damage = trail.verify(project=project).damage
    assert damage is not None and (damage.kind, damage.project_seq) == (
        DamageKind.TAIL_CUT, project_seq)


def test_a5_a_tail_cut_and_written_on_is_still_caught(trail: Trail) -> None:
    sealed = trail.seal()
    cut_tail(trail, 15)
    trail.append(10, 100)  # the daemon writes on from event 16
    result = trail.verify()
    assert_damage(result, DamageKind.TAIL_CUT, sealed)
    assert "cut back" in result.damage.message  # type: ignore[union-attr]


def test_a5_limit_events_after_the_last_checkpoint_can_be_cut_without_a_trace(
    trail: Trail,
) -> None:
    """The documented limit (docs/audit.md, Verifying): nothing signed covers them yet."""
    sealed = trail.seal()
    trail.append(5, EVENTS)
    cut_tail(trail, sealed)
    result = trail.verify()
    assert result.ok and result.count == sealed


# --- a checkpoint forged -----------------------------------------------------------------------


def test_a5_a_checkpoint_row_not_signed_by_the_trail_key_is_damage(trail: Trail) -> None:
    sealed = trail.seal()
    with attacker(trail.store) as hands:
        [(payload, signature, head, key_id)] = hands.run(
            "SELECT payload, signature, head, key_id FROM audit_checkpoint")
        hands.run("INSERT INTO audit_checkpoint (time, seq, head, key_id, payload, signature) "
                  "VALUES (:time, :seq, :head, :key_id, :payload, :signature)",
                  time=T0, seq=sealed + 5, head=head, key_id=key_id, signature=signature,
                  payload=payload.replace(f'"seq":{sealed}', f'"seq":{sealed + 5}'))
    assert_damage(trail.verify(), DamageKind.FORGED_CHECKPOINT, sealed + 5)


def test_a5_a_key_store_checkpoint_not_signed_by_the_trail_key_is_damage(trail: Trail) -> None:
    """Only root could have replaced it; the events still verify, so it is the damage named."""
    sealed = trail.seal()
    copy = trail.key_store / "audit" / CHECKPOINT_FILE
    copy.write_text(copy.read_text().replace(f'\\"seq\\":{sealed}', '\\"seq\\":2'))
    assert_damage(trail.verify(), DamageKind.FORGED_CHECKPOINT, 2)


def test_a5_a_kept_checkpoint_of_another_trail_is_refused(trail: Trail, tmp_path: Path) -> None:
    trail.seal()
    stranger = load_or_create_audit_keys(tmp_path / "elsewhere")
    theirs = sign_checkpoint(
        dataclasses.replace(trail.kept().checkpoint, key_id=stranger.key_id), stranger)
    with pytest.raises(InvalidRequest, match="another trail"):
        trail.verify(kept=theirs)


def test_a5_a_kept_checkpoint_altered_after_signing_is_refused(trail: Trail) -> None:
    trail.seal()
    ours = trail.kept()
    altered = SignedCheckpoint(ours.checkpoint, ours.payload.replace(
        f'"seq":{EVENTS}', f'"seq":{EVENTS - 1}'), ours.signature)
    with pytest.raises(InvalidRequest, match="altered"):
        trail.verify(kept=altered)


# --- the whole database replaced by an older copy ----------------------------------------------


@pytest.fixture
def sqlite_trail(tmp_path: Path) -> Iterator[Trail]:
    """A trail in a SQLite file: a file is what can be copied aside and put back."""
    store = Store(f"sqlite:///{tmp_path / 'vokter.db'}")
    upgrade(store.engine)
    key_store = tmp_path / "keystore"
    made = Trail(store, load_or_create_audit_keys(key_store), key_store)
    made.append(EVENTS, 0)
    yield made
    store.close()


def test_a5_the_database_replaced_by_an_older_copy_is_rolled_back_given_a_kept_checkpoint(
    sqlite_trail: Trail, tmp_path: Path,
) -> None:
    trail = sqlite_trail
    path = sqlite_path(trail.store)
    assert path is not None
    trail.seal()
    key_store_copy = trail.key_store / "audit" / CHECKPOINT_FILE
    old_checkpoint = key_store_copy.read_bytes()
    trail.store.engine.dispose()
    shutil.copy2(path, tmp_path / "old.db")
    trail.append(10, EVENTS)
    trail.seal(minutes=90)
    kept = trail.kept()  # the auditor's copy, taken now
    trail.store.engine.dispose()
    shutil.copy2(tmp_path / "old.db", path)
    # A DB-only attacker: the key store still holds the newer checkpoint.
    assert_damage(trail.verify(), DamageKind.TAIL_CUT, EVENTS + 1)
    # Root puts the key store's copy back too: only the auditor's checkpoint tells.
    key_store_copy.write_bytes(old_checkpoint)
    assert trail.verify().ok
    assert_damage(trail.verify(kept=kept), DamageKind.ROLLED_BACK, EVENTS + 1)
    # and once the daemon has written on, the first event written after the checkpoint is named
    trail.append(3, 10_000)  # timed well after the checkpoints
    result = trail.verify(kept=kept)
    assert_damage(result, DamageKind.ROLLED_BACK, EVENTS + 1)
