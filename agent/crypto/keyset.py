"""A project's keyset: a real Tink ``Keyset`` of AES-GCM-HKDF streaming keys (S3).

The keyset is serialized exactly as Tink serializes it (``google.crypto.tink.Keyset``, binary
protobuf), so stock Tink in Java, C++, Go or Python can load it and decrypt a project's files
without Vokter: the point of using a published format for data that must stay readable for
decades. Each key is a ``google.crypto.tink.AesGcmHkdfStreamingKey`` with RAW output prefix
(streaming keys have no prefix in Tink). Pure: randomness is injected, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from secrets import token_bytes

from agent.crypto import protowire as pw
from agent.errors import KeyStoreUnavailable

DEFAULT_SEGMENT_SIZE = 65536
TYPE_URL = "type.googleapis.com/google.crypto.tink.AesGcmHkdfStreamingKey"

# Enum values of tink.proto and common.proto.
STATUS_ENABLED = 1
OUTPUT_PREFIX_RAW = 3
KEY_MATERIAL_SYMMETRIC = 1
HASH_SHA256 = 3

NONCE_PREFIX_SIZE = 7
TAG_SIZE = 16
#: Tink's limit: segment numbers are 32-bit and segment sizes fit an int32.
MAX_SEGMENT_SIZE = 2**31 - 1
DERIVED_KEY_SIZES = (16, 32)

_KEY_ID_BYTES = 4


@dataclass(frozen=True)
class StreamingKey:
    """One AES-GCM-HKDF streaming key: ``key_value`` is the HKDF input key material; each file
    gets its own AES key derived from it and a random salt."""

    key_id: int
    key_value: bytes = field(repr=False)
    segment_size: int = DEFAULT_SEGMENT_SIZE
    derived_key_size: int = 32

    def __post_init__(self) -> None:
        if not 0 < self.key_id < 2**32:
            raise ValueError("a Tink key id is a nonzero uint32")
        if self.derived_key_size not in DERIVED_KEY_SIZES:
            raise ValueError("the derived key is 16 or 32 bytes (AES-128 or AES-256)")
        if len(self.key_value) < self.derived_key_size:
            raise ValueError("the key value is shorter than the derived key")
        header = header_size(self.derived_key_size)
        if not header + TAG_SIZE < self.segment_size <= MAX_SEGMENT_SIZE:
            raise ValueError(f"segment size must be above {header + TAG_SIZE} bytes")


def header_size(derived_key_size: int) -> int:
    """Length byte, salt (as long as the derived key) and nonce prefix."""
    return 1 + derived_key_size + NONCE_PREFIX_SIZE


@dataclass(frozen=True)
class Keyset:
    """The keys a project's files may be encrypted under; new files use the primary."""

    primary_key_id: int
    keys: tuple[StreamingKey, ...]

    def __post_init__(self) -> None:
        ids = [key.key_id for key in self.keys]
        if len(set(ids)) != len(ids):
            raise ValueError("two keys of a keyset share an id")
        if self.primary_key_id not in ids:
            raise ValueError("the primary key is not in the keyset")

    @property
    def primary(self) -> StreamingKey:
        return next(key for key in self.keys if key.key_id == self.primary_key_id)


def _random_key_id(random: Callable[[int], bytes]) -> int:
    while True:
        key_id = int.from_bytes(random(_KEY_ID_BYTES), "big")
        if key_id:
            return key_id


def new_keyset(*, segment_size: int = DEFAULT_SEGMENT_SIZE,
               random: Callable[[int], bytes] = token_bytes) -> Keyset:
    """A fresh keyset of one AES-256-GCM-HKDF key, as Tink's AES256_GCM_HKDF templates make."""
    key = StreamingKey(key_id=_random_key_id(random), key_value=random(32),
                       segment_size=segment_size, derived_key_size=32)
    return Keyset(primary_key_id=key.key_id, keys=(key,))


def _serialize_key_value(key: StreamingKey) -> bytes:
    params = pw.message([
        pw.varint_field(1, key.segment_size),
        pw.varint_field(2, key.derived_key_size),
        pw.varint_field(3, HASH_SHA256),
    ])
    return pw.message([
        pw.varint_field(1, 0),  # version
        pw.bytes_field(2, params),
        pw.bytes_field(3, key.key_value),
    ])


def serialize_keyset(keyset: Keyset) -> bytes:
    """The ``google.crypto.tink.Keyset`` protobuf, binary: what Tink's
    ``proto_keyset_format.serialize`` writes for the same keys."""
    keys = []
    for key in keyset.keys:
        key_data = pw.message([
            pw.bytes_field(1, TYPE_URL.encode()),
            pw.bytes_field(2, _serialize_key_value(key)),
            pw.varint_field(3, KEY_MATERIAL_SYMMETRIC),
        ])
        keys.append(pw.bytes_field(2, pw.message([
            pw.bytes_field(1, key_data),
            pw.varint_field(2, STATUS_ENABLED),
            pw.varint_field(3, key.key_id),
            pw.varint_field(4, OUTPUT_PREFIX_RAW),
        ])))
    return pw.message([pw.varint_field(1, keyset.primary_key_id), *keys])


def keyset_info(keyset: Keyset) -> bytes:
    """``google.crypto.tink.KeysetInfo``: the keyset's shape without key material, which Tink
    stores beside an encrypted keyset."""
    infos = [pw.bytes_field(2, pw.message([
        pw.bytes_field(1, TYPE_URL.encode()),
        pw.varint_field(2, STATUS_ENABLED),
        pw.varint_field(3, key.key_id),
        pw.varint_field(4, OUTPUT_PREFIX_RAW),
    ])) for key in keyset.keys]
    return pw.message([pw.varint_field(1, keyset.primary_key_id), *infos])


def _parse_key(data: bytes) -> StreamingKey | None:
    """One ``Keyset.Key``; None for a key Tink would not use (disabled or destroyed)."""
    fields = pw.parse_fields(data)
    if pw.last_varint(fields, 2) != STATUS_ENABLED:
        return None
    key_id = pw.last_varint(fields, 3)
    key_data = pw.parse_fields(pw.last_bytes(fields, 1))
    type_url = pw.last_bytes(key_data, 1).decode("utf-8", "replace")
    if type_url != TYPE_URL:
        raise _damaged(f"it holds a key of another type ({type_url[:100]})")
    if pw.last_varint(fields, 4) != OUTPUT_PREFIX_RAW:
        raise _damaged("a streaming key's output prefix is not RAW")
    value = pw.parse_fields(pw.last_bytes(key_data, 2))
    if pw.last_varint(value, 1) != 0:
        raise _damaged("a streaming key has an unknown version")
    params = pw.parse_fields(pw.last_bytes(value, 2))
    if pw.last_varint(params, 3) != HASH_SHA256:
        raise _damaged("a streaming key uses an HKDF hash other than SHA-256")
    try:
        return StreamingKey(key_id=key_id, key_value=pw.last_bytes(value, 3),
                            segment_size=pw.last_varint(params, 1),
                            derived_key_size=pw.last_varint(params, 2))
    except ValueError as exc:
        raise _damaged(str(exc)) from None


def parse_keyset(data: bytes) -> Keyset:
    """A keyset from its Tink serialization. Refuses anything else with a message that never
    quotes the bytes (they are key material)."""
    try:
        fields = pw.parse_fields(data)
        keys = [key for raw in pw.repeated_bytes(fields, 2)
                if (key := _parse_key(raw)) is not None]
        primary = pw.last_varint(fields, 1)
    except pw.WireError as exc:
        raise _damaged(f"it is not a well-formed Tink keyset ({exc})") from None
    if not keys:
        raise _damaged("it holds no enabled key")
    try:
        return Keyset(primary_key_id=primary, keys=tuple(keys))
    except ValueError as exc:
        raise _damaged(str(exc)) from None


def _damaged(why: str) -> KeyStoreUnavailable:
    return KeyStoreUnavailable(f"the keyset cannot be used: {why}", rule="S5",
                               hint="restore the key store and database from the same backup")
