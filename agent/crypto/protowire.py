"""The few protocol-buffer wire encodings Tink's keysets need, written out by hand.

Tink stores keysets as protobuf messages (``google.crypto.tink.Keyset`` and friends). We need
only varints and length-delimited fields, so a hundred lines here spare the daemon a protobuf
runtime and generated code, and keep the bytes we write exactly the ones the protobuf
encoding rules define (https://protobuf.dev/programming-guides/encoding/), which is what
Tink reads. Parsing is strict about structure (a damaged keyset must not half-parse) and
lenient about unknown fields, as protobuf readers are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

VARINT = 0
FIXED64 = 1
LENGTH_DELIMITED = 2
FIXED32 = 5

_MAX_VARINT_BYTES = 10


class WireError(ValueError):
    """Bytes that are not a well-formed protobuf message. Callers turn it into their own error;
    the message never quotes the bytes (they may be key material)."""


@dataclass(frozen=True)
class WireField:
    """One field as found on the wire: a varint's value, or a length-delimited payload."""

    number: int
    wire_type: int
    value: int | bytes = 0

    def __repr__(self) -> str:
        # The payload may be key material: say its size only.
        size = len(self.value) if isinstance(self.value, bytes) else None
        return f"WireField(number={self.number}, wire_type={self.wire_type}, size={size})"


def encode_varint(value: int) -> bytes:
    if value < 0 or value >= 1 << 64:
        raise WireError("varint out of range")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data: bytes, offset: int) -> tuple[int, int]:
    """The varint at ``offset`` and the offset just after it."""
    value = 0
    for index in range(_MAX_VARINT_BYTES):
        if offset + index >= len(data):
            raise WireError("message ends inside a varint")
        byte = data[offset + index]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            if value >= 1 << 64:
                raise WireError("varint out of range")
            return value, offset + index + 1
    raise WireError("varint longer than 10 bytes")


def _tag(number: int, wire_type: int) -> bytes:
    return encode_varint(number << 3 | wire_type)


def varint_field(number: int, value: int) -> bytes:
    """A varint field; zero is left out, as proto3 writes default values."""
    return _tag(number, VARINT) + encode_varint(value) if value else b""


def bytes_field(number: int, value: bytes) -> bytes:
    """A length-delimited field (bytes, string or embedded message); empty is left out."""
    if not value:
        return b""
    return _tag(number, LENGTH_DELIMITED) + encode_varint(len(value)) + value


def message(fields: Iterable[bytes]) -> bytes:
    return b"".join(fields)


def parse_fields(data: bytes) -> list[WireField]:
    """Every field of one message, in wire order; fixed-width fields are kept as bytes."""
    fields: list[WireField] = []
    offset = 0
    while offset < len(data):
        key, offset = decode_varint(data, offset)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire_type == VARINT:
            value, offset = decode_varint(data, offset)
            fields.append(WireField(number, wire_type, value))
        elif wire_type == LENGTH_DELIMITED:
            size, offset = decode_varint(data, offset)
            if offset + size > len(data):
                raise WireError("length-delimited field runs past the end")
            fields.append(WireField(number, wire_type, bytes(data[offset:offset + size])))
            offset += size
        elif wire_type in (FIXED64, FIXED32):
            width = 8 if wire_type == FIXED64 else 4
            if offset + width > len(data):
                raise WireError("fixed-width field runs past the end")
            fields.append(WireField(number, wire_type, bytes(data[offset:offset + width])))
            offset += width
        else:
            raise WireError(f"unsupported wire type {wire_type}")
    return fields


def last_varint(fields: Iterable[WireField], number: int, default: int = 0) -> int:
    """A scalar field's value: the last occurrence wins, as in protobuf."""
    value = default
    for field in fields:
        if field.number == number:
            if field.wire_type != VARINT or not isinstance(field.value, int):
                raise WireError(f"field {number} is not a varint")
            value = field.value
    return value


def last_bytes(fields: Iterable[WireField], number: int) -> bytes:
    value = b""
    for field in fields:
        if field.number == number:
            if field.wire_type != LENGTH_DELIMITED or not isinstance(field.value, bytes):
                raise WireError(f"field {number} is not length-delimited")
            value = field.value
    return value


def repeated_bytes(fields: Iterable[WireField], number: int) -> list[bytes]:
    values: list[bytes] = []
    for field in fields:
        if field.number == number:
            if field.wire_type != LENGTH_DELIMITED or not isinstance(field.value, bytes):
                raise WireError(f"field {number} is not length-delimited")
            values.append(field.value)
    return values
