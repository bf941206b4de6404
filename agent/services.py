"""What the daemon's handlers are given: the store, the clock, the current policy, the config.

The composition root (``agent.daemon``) builds one ``Services``; tests build their own with a
``FakeClock`` and a temporary store.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent.access.live import GateViewHolder
from agent.audit.keys import AuditKeys
from agent.clock import Clock
from agent.config import Config
from agent.crypto.keystore import KeyStore
from agent.policy import Policy
from agent.store import Store

if TYPE_CHECKING:
    from agent.lifecycle.scheduler import LifecycleScheduler
    from agent.storage.watcher import StorageWatcher


class PolicyHolder:
    """The policy in force; swapped whole on reload, so a request sees one policy throughout."""

    def __init__(self, policy: Policy) -> None:
        self._policy = policy
        self._lock = threading.Lock()

    def current(self) -> Policy:
        with self._lock:
            return self._policy

    def replace(self, policy: Policy) -> Policy:
        with self._lock:
            old, self._policy = self._policy, policy
        return old


@dataclass
class Services:
    config: Config
    store: Store
    clock: Clock
    policies: PolicyHolder
    version: str
    #: The key store's audit keys: the MAC key seals events, the signing key checkpoints.
    audit_keys: AuditKeys
    #: The master key and the projects' wrapped keysets (S3, S5).
    key_store: KeyStore
    started_monotonic: float = 0.0
    #: The schema revision migrated to at start (it only changes at start).
    schema_revision: str | None = None
    watchers: list[str] = field(default_factory=list)
    #: What the fanotify gate answers opens from; published after every access change.
    gate_view: GateViewHolder = field(default_factory=GateViewHolder)
    #: The storage rules' watcher (S4, S5, S7, D2, D5), once started; None in a bare test.
    storage: StorageWatcher | None = None
    #: The project-end scheduler (L1-L5), once started; None in a bare test.
    lifecycle: LifecycleScheduler | None = None
