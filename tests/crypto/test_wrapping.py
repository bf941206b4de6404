"""Wrapped keysets (S5): Tink's EncryptedKeyset under the master key, bound to the project."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from tink.proto import tink_pb2

from agent.crypto.keyset import new_keyset, parse_keyset, serialize_keyset
from agent.crypto.wrapping import (
    MasterKey,
    file_associated_data,
    keyset_associated_data,
    unwrap_keyset,
    wrap_keyset,
)
from agent.errors import KeyStoreUnavailable


def secret_forms(secret: bytes) -> list[str]:
    return [secret.hex(), base64.b64encode(secret).decode(), repr(secret)[2:-1]]


def test_s5_wrap_then_unwrap_gives_the_keyset_back() -> None:
    keyset, master = new_keyset(), MasterKey.generate()
    wrapped = wrap_keyset(keyset, master, keyset_associated_data("p1"))
    assert unwrap_keyset(wrapped, master, keyset_associated_data("p1")) == keyset
    assert wrap_keyset(keyset, master, b"x") != wrap_keyset(keyset, master, b"x")


def test_s5_wrapped_keyset_is_tinks_encrypted_keyset_of_aes_gcm_raw_output() -> None:
    """nonce (12) || ciphertext || tag (16) under the master key, as a RAW AesGcmKey seals."""
    keyset, master = new_keyset(), MasterKey.generate()
    nonce = bytes(range(12))
    wrapped = wrap_keyset(keyset, master, b"ad", random=lambda n: nonce[:n])
    proto = tink_pb2.EncryptedKeyset.FromString(wrapped)
    sealed = proto.encrypted_keyset
    assert sealed[:12] == nonce
    assert AESGCM(master.material).decrypt(sealed[:12], sealed[12:], b"ad") == \
        serialize_keyset(keyset)
    assert proto.keyset_info.primary_key_id == keyset.primary_key_id
    assert [info.key_id for info in proto.keyset_info.key_info] == [keyset.primary_key_id]


def test_s5_wrong_master_key_is_refused_naming_the_key_id() -> None:
    keyset, master, other = new_keyset(), MasterKey.generate(), MasterKey.generate()
    wrapped = wrap_keyset(keyset, master, keyset_associated_data("p1"))
    with pytest.raises(KeyStoreUnavailable, match=f"master key {other.key_id}"):
        unwrap_keyset(wrapped, other, keyset_associated_data("p1"))


def test_s5_another_projects_wrapped_keyset_does_not_unwrap() -> None:
    keyset, master = new_keyset(), MasterKey.generate()
    wrapped = wrap_keyset(keyset, master, keyset_associated_data("p1"))
    with pytest.raises(KeyStoreUnavailable, match="another project"):
        unwrap_keyset(wrapped, master, keyset_associated_data("p2"))


@pytest.mark.parametrize("damage", ["flip", "cut", "empty", "garbage"])
def test_s5_damaged_wrapped_keyset_is_refused(damage: str) -> None:
    keyset, master = new_keyset(), MasterKey.generate()
    wrapped = bytearray(wrap_keyset(keyset, master, b"ad"))
    if damage == "flip":
        wrapped[20] ^= 1
    elif damage == "cut":
        wrapped = wrapped[:30]
    elif damage == "empty":
        wrapped = bytearray()
    else:
        wrapped = bytearray(os.urandom(len(wrapped)))
    with pytest.raises(KeyStoreUnavailable, match="does not unwrap"):
        unwrap_keyset(bytes(wrapped), master, b"ad")


def test_s5_master_key_id_is_the_documented_keyed_hash() -> None:
    master = MasterKey(material=bytes(32))
    expected = hmac.new(bytes(32), b"vokter-master-key-id", hashlib.sha256).digest()[:8].hex()
    assert master.key_id == expected and len(master.key_id) == 16
    assert MasterKey.generate(random=lambda n: b"\x01" * n).material == b"\x01" * 32
    with pytest.raises(ValueError):
        MasterKey(material=b"short")


def test_s5_master_key_never_in_repr_str_or_unwrap_errors() -> None:
    keyset, master, other = new_keyset(), MasterKey.generate(), MasterKey.generate()
    for text in (repr(master), str(master), f"{master}", repr([master])):
        assert not any(form in text for form in secret_forms(master.material)), text
        assert master.key_id in text
    with pytest.raises(KeyStoreUnavailable) as caught:
        unwrap_keyset(wrap_keyset(keyset, master, b"ad"), other, b"ad")
    text = f"{caught.value} {caught.value!r} {caught.value.one_line()} {caught.value.to_wire()}"
    for secret in (master.material, other.material, keyset.primary.key_value):
        assert not any(form in text for form in secret_forms(secret))


def test_s3_associated_data_are_the_documented_strings() -> None:
    assert file_associated_data("trial-7") == b"vokter-file-v1:trial-7"
    assert keyset_associated_data("trial-7") == b"vokter-keyset-v1:trial-7"


def test_s5_unwrapped_bytes_that_are_not_a_keyset_are_refused() -> None:
    master = MasterKey.generate()
    nonce = os.urandom(12)
    sealed = nonce + AESGCM(master.material).encrypt(nonce, b"not a keyset \xff\xff", b"ad")
    wrapped = tink_pb2.EncryptedKeyset(encrypted_keyset=sealed).SerializeToString()
    with pytest.raises(KeyStoreUnavailable, match="keyset cannot be used"):
        unwrap_keyset(wrapped, master, b"ad")
    assert parse_keyset(serialize_keyset(new_keyset()))
