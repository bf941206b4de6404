"""Building the daemon's Services for tests: one recipe, whatever store and clock they use."""

from __future__ import annotations

from pathlib import Path

from agent.audit.keys import load_or_create_audit_keys
from agent.clock import FakeClock
from agent.config import Config
from agent.crypto.keystore import open_key_store
from agent.policy import load_default_policy
from agent.services import PolicyHolder, Services
from agent.store import Store


def build_services(store: Store, clock: FakeClock, directory: Path) -> Services:
    config = Config(
        state_dir=directory / "state",
        socket_path=directory / "run" / "vokterd.sock",
        key_store=directory / "keystore",
        zones_dir=directory / "zones",
    )
    policies = PolicyHolder(load_default_policy())
    return Services(
        config=config,
        store=store,
        clock=clock,
        policies=policies,
        version="test",
        audit_keys=load_or_create_audit_keys(config.key_store),
        key_store=open_key_store(config, store, clock=clock,
                                 segment_size=lambda: policies.current().crypto.segment_size),
    )
