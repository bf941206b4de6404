"""The audit keys in the key store (A5): made once, root-only, never silently replaced."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from agent.audit.keys import (
    AUDIT_DIR,
    MAC_KEY_FILE,
    SIGNING_KEY_FILE,
    load_or_create_audit_keys,
    load_public_pem,
    signature_valid,
)
from agent.errors import AuditUnavailable


def test_a5_keys_are_made_once_root_only_and_reloaded_unchanged(tmp_path: Path) -> None:
    store = tmp_path / "keystore"
    first = load_or_create_audit_keys(store)
    again = load_or_create_audit_keys(store, trail_started=True)
    assert (again.mac_key, again.key_id) == (first.mac_key, first.key_id)
    assert stat.S_IMODE(os.stat(store).st_mode) == 0o700
    for name in (MAC_KEY_FILE, SIGNING_KEY_FILE):
        assert stat.S_IMODE(os.stat(store / AUDIT_DIR / name).st_mode) == 0o400


def test_a5_the_published_key_verifies_what_the_signing_key_signed(tmp_path: Path) -> None:
    keys = load_or_create_audit_keys(tmp_path / "keystore")
    public = load_public_pem(keys.public_pem)
    assert signature_valid(public, keys.sign(b"checkpoint"), b"checkpoint")
    assert not signature_valid(public, keys.sign(b"checkpoint"), b"checkpoinT")


@pytest.mark.parametrize("lost", [MAC_KEY_FILE, SIGNING_KEY_FILE])
def test_a5_a_lost_key_is_not_replaced_once_the_trail_holds_events(
    tmp_path: Path, lost: str
) -> None:
    store = tmp_path / "keystore"
    load_or_create_audit_keys(store)
    (store / AUDIT_DIR / lost).unlink()
    with pytest.raises(AuditUnavailable, match="trail already holds events") as refused:
        load_or_create_audit_keys(store, trail_started=True)
    assert "restore the key store" in refused.value.one_line()
    assert not (store / AUDIT_DIR / lost).exists()


def test_a5_a_key_store_open_to_others_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "keystore"
    store.mkdir(mode=0o755)
    store.chmod(0o755)
    with pytest.raises(AuditUnavailable, match="open to others"):
        load_or_create_audit_keys(store)


def test_a5_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "keystore"
    load_or_create_audit_keys(store)
    (store / AUDIT_DIR / MAC_KEY_FILE).chmod(0o644)
    with pytest.raises(AuditUnavailable, match="readable by others"):
        load_or_create_audit_keys(store)


def test_a5_something_that_is_not_a_public_key_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="vokter audit pubkey"):
        load_public_pem("hello")


def test_a5_the_keys_never_show_in_a_repr(tmp_path: Path) -> None:
    """A logged Services object or a traceback with locals must not carry the MAC key."""
    keys = load_or_create_audit_keys(tmp_path / "keystore")
    shown = repr(keys) + str(keys)
    assert keys.mac_key.hex() not in shown
    assert keys.mac_key.hex().upper() not in shown
    assert repr(keys.mac_key) not in shown
