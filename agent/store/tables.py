"""The tables. Plain rows; what they mean is decided elsewhere.

Times are stored as UTC and always come back timezone-aware (``UTCDateTime``), on SQLite and
PostgreSQL alike, so a decision never compares a naive time with an aware one.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, LargeBinary, Text, UniqueConstraint
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC; hands back aware UTC."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("refusing a naive datetime: times are UTC and timezone-aware")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


class Project(SQLModel, table=True):
    __tablename__ = "project"

    id: str = Field(primary_key=True, max_length=32)
    title: str = Field(max_length=200)
    leader: str = Field(max_length=64)
    leader_uid: int
    end_date: date
    state: str = Field(default="active", max_length=16)
    data_root: str = Field(max_length=4096)
    key_root: str = Field(max_length=4096)
    export_root: str = Field(max_length=4096)
    quarantine_root: str = Field(max_length=4096)
    policy: str = Field(default="default", max_length=64)
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by: str = Field(max_length=64)


class Member(SQLModel, table=True):
    """One grant of a role to a Unix user; a revoked grant stays, for the access review (A2)."""

    __tablename__ = "member"

    id: int | None = Field(default=None, primary_key=True)
    project_id: str = Field(foreign_key="project.id", index=True, max_length=32)
    user: str = Field(max_length=64)
    uid: int
    role: str = Field(max_length=16)
    granted_by: str = Field(max_length=64)
    reason: str = Field(max_length=1000)
    granted_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: date | None = None
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_by: str | None = Field(default=None, max_length=64)
    revoke_reason: str | None = Field(default=None, max_length=1000)


class AuditEvent(SQLModel, table=True):
    """One link of the audit chain. ``seq`` is assigned by the chain, not by the database, so
    that a gap is visible; ``project_id`` has no foreign key because refusals about projects
    that do not exist are recorded too. An event about a project is also a link of that
    project's own chain (``project_seq``, ``project_prev_hash``)."""

    __tablename__ = "audit_event"
    __table_args__ = (
        UniqueConstraint("project_id", "project_seq", name="uq_audit_event_project_seq"),
    )

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    time: datetime = Field(sa_type=UTCDateTime)
    actor_uid: int
    actor: str = Field(max_length=64)
    action: str = Field(max_length=64, index=True)
    project_id: str | None = Field(default=None, max_length=32, index=True)
    target: str | None = Field(default=None, max_length=4096)
    outcome: str = Field(max_length=16)
    rule: str | None = Field(default=None, max_length=16)
    details: str = Field(sa_type=Text)
    hash_alg: str = Field(max_length=16)
    prev_hash: str = Field(max_length=128)
    hash: str = Field(max_length=128)
    project_seq: int | None = None
    project_prev_hash: str | None = Field(default=None, max_length=128)
    #: HMAC-SHA256 of ``hash`` under the key store's audit key (agent.audit.chain.event_mac).
    mac: str = Field(default="", max_length=64)


class AuditHead(SQLModel, table=True):
    """The newest link of each chain ("" is the whole trail), kept beside the events so that
    appending and checkpointing need not scan them. A cache: verification never trusts it."""

    __tablename__ = "audit_head"

    chain: str = Field(primary_key=True, max_length=32)
    seq: int
    hash: str = Field(max_length=128)


class AuditCheckpoint(SQLModel, table=True):
    """A signed statement of every chain's head at a moment (agent.audit.checkpoint)."""

    __tablename__ = "audit_checkpoint"

    id: int | None = Field(default=None, primary_key=True)
    time: datetime = Field(sa_type=UTCDateTime)
    seq: int = Field(index=True)
    head: str = Field(max_length=128)
    key_id: str = Field(max_length=32)
    payload: str = Field(sa_type=Text)
    signature: str = Field(max_length=128)



class ProjectKeyset(SQLModel, table=True):
    """A project's Tink keyset, only ever stored wrapped by the master key (S3, S5). After
    crypto-shredding ``wrapped`` is gone and the row stays as a tombstone, so decryption can
    say "destroyed" rather than "unknown". No foreign key: the tombstone outlives the project."""

    __tablename__ = "project_keyset"

    project_id: str = Field(primary_key=True, max_length=32)
    #: Tink's EncryptedKeyset under the master key named by ``master_key_id``; None once shredded.
    wrapped: bytes | None = Field(default=None, sa_type=LargeBinary)
    master_key_id: str = Field(max_length=16, index=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    destroyed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    destroyed_by: str | None = Field(default=None, max_length=64)


class Violation(SQLModel, table=True):
    """A storage rule found broken (S1, S2, S4, S5, S7, D2, D5) and what the daemon did about it.

    ``fingerprint`` says which state of the thing was judged (a file's size, time and inode,
    a mount's device): the same finding about an unchanged thing is not recorded twice while
    it is open. ``summary`` and ``details`` hold counts and column names, never a value read
    from a file. ``project_id`` is empty for findings about the host (a portable medium)."""

    __tablename__ = "violation"

    id: int | None = Field(default=None, primary_key=True)
    project_id: str | None = Field(default=None, max_length=32, index=True)
    rule: str = Field(max_length=16)
    #: What was found: "identity_numbers", "linkage_key", "portable_medium", "copy", ...
    kind: str = Field(max_length=32)
    path: str = Field(max_length=4096)
    zone: str | None = Field(default=None, max_length=16)
    fingerprint: str = Field(max_length=128)
    detected_at: datetime = Field(sa_type=UTCDateTime)
    #: The policy's response: "encrypt", "quarantine", "move_to_key_zone", "unmount", "alert".
    action: str = Field(max_length=32)
    #: "done", "failed" or "none" (alert only); ``action_note`` says what happened.
    action_outcome: str = Field(max_length=16)
    action_note: str = Field(default="", max_length=1000)
    summary: str = Field(max_length=1000)
    details: str = Field(default="{}", sa_type=Text)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_by: str | None = Field(default=None, max_length=64)
    resolution_note: str | None = Field(default=None, max_length=1000)


class Dataset(SQLModel, table=True):
    """A delivered dataset (D2): where it lies, which register it came from, and the variables
    the project was approved to receive, as the source names them."""

    __tablename__ = "dataset"

    id: int | None = Field(default=None, primary_key=True)
    project_id: str = Field(foreign_key="project.id", index=True, max_length=32)
    path: str = Field(max_length=4096)
    source: str = Field(max_length=128)
    #: JSON arrays of column names: the approved variables, and the columns the file held.
    variables: str = Field(sa_type=Text)
    columns: str = Field(sa_type=Text)
    added_by: str = Field(max_length=64)
    added_at: datetime = Field(sa_type=UTCDateTime)


class Approval(SQLModel, table=True):
    """A project's legal basis on record (D1): a REK approval, a DPIA, a dispensation from the
    duty of confidentiality, the Tax Administration's permission for the population register,
    a data processor or transfer agreement. For REK, ``retention_until`` is how long the data
    may be kept after the project's end (L3); a clinical trial keeps its source data at least
    25 years after ``final_report`` (L4)."""

    __tablename__ = "approval"

    id: int | None = Field(default=None, primary_key=True)
    project_id: str = Field(foreign_key="project.id", index=True, max_length=32)
    #: rek | dpia | dispensation | folkeregister | processor_agreement | transfer_agreement
    kind: str = Field(max_length=32)
    reference: str = Field(max_length=200)
    valid_until: date | None = None
    retention_until: date | None = None
    clinical_trial: bool = False
    final_report: date | None = None
    recorded_by: str = Field(max_length=64)
    recorded_at: datetime = Field(sa_type=UTCDateTime)


class LegalHold(SQLModel, table=True):
    """A legal hold (L5): while one is open, nothing of the project is disposed of."""

    __tablename__ = "legal_hold"

    id: int | None = Field(default=None, primary_key=True)
    project_id: str = Field(foreign_key="project.id", index=True, max_length=32)
    #: supervisory_case | integrity_investigation | other
    reason: str = Field(max_length=32)
    reference: str = Field(max_length=200)
    note: str = Field(max_length=1000)
    placed_by: str = Field(max_length=64)
    placed_at: datetime = Field(sa_type=UTCDateTime)
    released_by: str | None = Field(default=None, max_length=64)
    released_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    release_note: str | None = Field(default=None, max_length=1000)


class RegisteredCopy(SQLModel, table=True):
    """A copy of the project's data kept outside the enclave (L2): the project is not closed
    until each is confirmed disposed of."""

    __tablename__ = "registered_copy"

    id: int | None = Field(default=None, primary_key=True)
    project_id: str = Field(foreign_key="project.id", index=True, max_length=32)
    location: str = Field(max_length=4096)
    note: str = Field(max_length=1000)
    registered_by: str = Field(max_length=64)
    registered_at: datetime = Field(sa_type=UTCDateTime)
    disposed_confirmed_by: str | None = Field(default=None, max_length=64)
    disposed_confirmed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    disposal_note: str | None = Field(default=None, max_length=1000)


ALL_TABLES = (Project, Member, AuditEvent, AuditHead, AuditCheckpoint, ProjectKeyset,
              Violation, Dataset, Approval, LegalHold, RegisteredCopy)
