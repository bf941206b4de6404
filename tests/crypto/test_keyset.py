"""The project keyset is a real Tink keyset (S3): its bytes are Tink's protobuf, and key
material never shows in a repr, str or error."""

from __future__ import annotations

import base64
import os

import pytest
from tink.proto import aes_gcm_hkdf_streaming_pb2 as streaming_pb2
from tink.proto import tink_pb2

from agent.crypto import protowire as pw
from agent.crypto.keyset import (
    DEFAULT_SEGMENT_SIZE,
    TYPE_URL,
    Keyset,
    StreamingKey,
    new_keyset,
    parse_keyset,
    serialize_keyset,
)
from agent.errors import KeyStoreUnavailable


def counting_random(start: int = 1):  # type: ignore[no-untyped-def]
    """Deterministic bytes, so a test can know what a fresh keyset holds."""
    state = [start]

    def random(n: int) -> bytes:
        out = bytes((state[0] + i) % 256 for i in range(n))
        state[0] += n
        return out
    return random


def secret_forms(secret: bytes) -> list[str]:
    return [secret.hex(), base64.b64encode(secret).decode(), repr(secret)[2:-1]]


def test_s3_new_keyset_is_one_aes256_gcm_hkdf_key_with_injected_randomness() -> None:
    keyset = new_keyset(random=counting_random())
    assert len(keyset.keys) == 1 and keyset.primary.key_id == keyset.primary_key_id
    assert keyset.primary.key_id == int.from_bytes(bytes([1, 2, 3, 4]), "big")
    assert keyset.primary.key_value == bytes(range(5, 37))
    assert keyset.primary.segment_size == DEFAULT_SEGMENT_SIZE == 65536
    assert keyset.primary.derived_key_size == 32
    assert new_keyset() != new_keyset()


def test_s3_serialized_keyset_is_tinks_keyset_protobuf_field_for_field() -> None:
    keyset = new_keyset(segment_size=4096)
    proto = tink_pb2.Keyset.FromString(serialize_keyset(keyset))
    assert proto.primary_key_id == keyset.primary_key_id
    [key] = proto.key
    assert key.key_id == keyset.primary_key_id
    assert key.status == tink_pb2.ENABLED and key.output_prefix_type == tink_pb2.RAW
    assert key.key_data.type_url == TYPE_URL
    assert key.key_data.key_material_type == tink_pb2.KeyData.SYMMETRIC
    value = streaming_pb2.AesGcmHkdfStreamingKey.FromString(key.key_data.value)
    assert value.version == 0 and value.key_value == keyset.primary.key_value
    assert value.params.ciphertext_segment_size == 4096
    assert value.params.derived_key_size == 32
    assert value.params.hkdf_hash_type == 3  # SHA256
    # Byte for byte what protobuf itself writes for the same message.
    assert proto.SerializeToString(deterministic=True) == serialize_keyset(keyset)


def test_s3_keyset_round_trips_with_several_keys_and_sizes() -> None:
    keys = (StreamingKey(7, os.urandom(32), 4096, 32), StreamingKey(2**32 - 1, os.urandom(16),
                                                                     1 << 20, 16))
    keyset = Keyset(primary_key_id=2**32 - 1, keys=keys)
    assert parse_keyset(serialize_keyset(keyset)) == keyset


def test_s3_keyset_tink_wrote_parses_and_disabled_keys_are_left_out() -> None:
    keyset = new_keyset()
    proto = tink_pb2.Keyset.FromString(serialize_keyset(keyset))
    extra = proto.key.add()
    extra.CopyFrom(proto.key[0])
    extra.key_id = 99
    extra.status = tink_pb2.DISABLED
    assert parse_keyset(proto.SerializeToString()) == keyset


@pytest.mark.parametrize("garbage", [b"", b"\xff" * 20, b"\x0a\x05abc", b"\x08\x01",
                                     os.urandom(64)])
def test_s5_garbage_is_refused_as_key_store_unavailable(garbage: bytes) -> None:
    with pytest.raises(KeyStoreUnavailable, match="keyset cannot be used"):
        parse_keyset(garbage)


def test_s5_keyset_of_another_key_type_is_refused_by_name() -> None:
    proto = tink_pb2.Keyset.FromString(serialize_keyset(new_keyset()))
    proto.key[0].key_data.type_url = "type.googleapis.com/google.crypto.tink.AesGcmKey"
    with pytest.raises(KeyStoreUnavailable, match="another type"):
        parse_keyset(proto.SerializeToString())


def test_s5_damaged_keyset_error_never_quotes_the_key() -> None:
    keyset = new_keyset()
    data = bytearray(serialize_keyset(keyset))
    data[-1] = 0x7F  # the output prefix type becomes unknown
    with pytest.raises(KeyStoreUnavailable) as caught:
        parse_keyset(bytes(data))
    text = f"{caught.value} {caught.value!r} {caught.value.one_line()}"
    assert not any(form in text for form in secret_forms(keyset.primary.key_value))


def test_s5_key_material_never_in_repr_or_str_of_a_key_or_keyset() -> None:
    keyset = new_keyset()
    secret = keyset.primary.key_value
    for text in (repr(keyset), str(keyset), repr(keyset.primary), str(keyset.primary)):
        assert not any(form in text for form in secret_forms(secret)), text
    fields = pw.parse_fields(serialize_keyset(keyset))
    assert not any(form in repr(fields) for form in secret_forms(secret))


def test_s3_invalid_keys_are_refused_at_construction() -> None:
    with pytest.raises(ValueError):
        StreamingKey(0, os.urandom(32))
    with pytest.raises(ValueError):
        StreamingKey(1, os.urandom(32), segment_size=40 + 16)
    with pytest.raises(ValueError):
        StreamingKey(1, os.urandom(16), derived_key_size=32)
    with pytest.raises(ValueError):
        Keyset(primary_key_id=5, keys=(StreamingKey(1, os.urandom(32)),))


def test_s3_varints_round_trip_at_their_edges() -> None:
    for value in (0, 1, 127, 128, 300, 2**32 - 1, 2**63, 2**64 - 1):
        encoded = pw.encode_varint(value)
        assert pw.decode_varint(encoded, 0) == (value, len(encoded))
    with pytest.raises(pw.WireError):
        pw.decode_varint(b"\x80" * 11, 0)
    with pytest.raises(pw.WireError):
        pw.decode_varint(b"\x80", 0)
