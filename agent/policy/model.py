"""The policy as typed, immutable values.

Why frozen, slotted dataclasses: a Policy is read by every pure decision (storage rules,
lifecycle, k-anonymity) and shared between threads of the daemon; nobody may change a rule
after it has been validated, and a typo in an attribute name must fail loudly. Lists are tuples
for the same reason.

Why Literal types for the choices: consumers switch on them (``if action == "unmount"``), and
mypy then catches a misspelt branch. The parser takes its allowed values from these same
aliases (``typing.get_args``), so the two cannot drift.

Nothing here validates: a ``Policy`` built by :func:`agent.policy.parse_policy_text` has been
checked against domain.md; one built by hand (in a test, with ``dataclasses.replace``) is
whatever its author made it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: What files are sealed with: Tink's streaming AEAD, the one format Vokter writes and reads.
Cipher = Literal["AES-256-GCM-HKDF"]
IdentifiableAction = Literal["encrypt", "quarantine", "alert"]
PortableMediaAction = Literal["alert", "unmount"]
KeySeparation = Literal["separate_filesystem", "separate_directory"]
ExportAction = Literal["quarantine", "alert"]
EndAction = Literal["anonymise", "delete"]
AuditHash = Literal["sha256", "sha512", "blake2b"]


@dataclass(frozen=True, slots=True)
class PolicyMeta:
    """Which policy this is, so that audit events and certificates can name it."""

    name: str
    version: str
    description: str


@dataclass(frozen=True, slots=True)
class CryptoPolicy:
    """S3: the envelope encryption used for identifiable files, the key zone and exports."""

    cipher: Cipher
    key_bits: int
    #: bytes per ciphertext segment of the streaming format (Tink's ciphertext_segment_size, a
    #: power of two), for keysets made from now on; a keyset keeps the size it was made with.
    segment_size: int


@dataclass(frozen=True, slots=True)
class StoragePolicy:
    """S1, S2, S4-S7: where data may be, and what the daemon does when it is not."""

    identifiable_action: IdentifiableAction
    portable_media_action: PortableMediaAction
    portable_media_mount_points: tuple[str, ...]
    key_separation: KeySeparation
    members_may_hold_key: bool
    export_plaintext_identifiers: ExportAction
    copy_scan_paths: tuple[str, ...]
    #: share of a column's non-empty values that must validate as identity numbers before
    #: the column counts as identifying (single hits are ~1 % noise, see domain.md).
    identifier_column_share: float
    #: D5: registers whose de-identified data must never be linked with other sources, as
    #: the datasets' ``source`` names them (matched case-insensitively).
    deidentified_registers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """L8, A2: who still sees anything once a project has ended."""

    ended_leader_read: bool
    auditors_read_data: bool


@dataclass(frozen=True, slots=True)
class AnonymisationPolicy:
    """L7: when a table counts as anonymous."""

    k: int
    max_suppression: float
    #: 0 turns l-diversity off.
    l_diversity: int


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """L3, L4: how long REK may let data stay after the project's end."""

    max_years_after_end: int
    clinical_trial_min_years: int


@dataclass(frozen=True, slots=True)
class LifecyclePolicy:
    """L2, L6: what happens at a project's end, and when."""

    end_action: EndAction
    notice_days: int
    grace_days: int
    sweep_hour: int


@dataclass(frozen=True, slots=True)
class AuditPolicy:
    """A5 and the audit trail's tamper evidence."""

    hash: AuditHash
    checkpoint_seconds: int
    checkpoint_events: int
    access_log_aggregate_seconds: int


@dataclass(frozen=True, slots=True)
class Policy:
    """A complete, validated statement of the rules one enclave enforces."""

    meta: PolicyMeta
    crypto: CryptoPolicy
    storage: StoragePolicy
    access: AccessPolicy
    anonymisation: AnonymisationPolicy
    retention: RetentionPolicy
    lifecycle: LifecyclePolicy
    audit: AuditPolicy

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def version(self) -> str:
        return self.meta.version
