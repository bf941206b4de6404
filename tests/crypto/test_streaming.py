"""Decryption refuses every kind of tampering with a clear DecryptionFailed (S3), and releases
no plaintext of a segment that did not authenticate.

Files here use 4096-byte segments: segment 0 holds 4040 plaintext bytes (after the 40-byte
header), every later one 4080.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.crypto.keyset import Keyset, StreamingKey, new_keyset
from agent.crypto.stream_io import decrypt_stream, encrypt_stream
from agent.crypto.streaming import Layout
from agent.errors import DecryptionFailed

SEGMENT = 4096
LAYOUT = Layout(SEGMENT, 40)
AD = b"vokter-file-v1:trial"
#: Five segments: four full ones and a short last one.
PLAINTEXT = os.urandom(LAYOUT.first_plaintext + 3 * LAYOUT.plaintext + 1000)
#: Exactly three full segments.
EXACT = os.urandom(LAYOUT.first_plaintext + 2 * LAYOUT.plaintext)


@pytest.fixture(scope="module")
def keyset() -> Keyset:
    return new_keyset(segment_size=SEGMENT)


def seal(data: bytes, keyset: Keyset, tmp_path: Path, name: str = "sealed") -> bytes:
    (tmp_path / "plain").write_bytes(data)
    with (tmp_path / "plain").open("rb") as src, (tmp_path / name).open("wb") as dst:
        encrypt_stream(src.fileno(), dst.fileno(), keyset.primary, AD)
    return (tmp_path / name).read_bytes()


def segment_span(index: int) -> slice:
    """Where segment ``index`` lies in a file (the last one may end sooner)."""
    start = 0 if index == 0 else SEGMENT * index
    return slice(start + (40 if index == 0 else 0), SEGMENT * (index + 1))


def open_sealed(sealed: bytes, keyset: Keyset, tmp_path: Path,
                ad: bytes = AD) -> tuple[DecryptionFailed, bytes]:
    """Decrypts, expecting a refusal; returns it and the plaintext that was released."""
    (tmp_path / "tampered").write_bytes(sealed)
    with (tmp_path / "tampered").open("rb") as src, (tmp_path / "out").open("wb") as dst, \
            pytest.raises(DecryptionFailed) as caught:
        decrypt_stream(src.fileno(), dst.fileno(), keyset, ad)
    assert caught.value.rule == "S3"
    return caught.value, (tmp_path / "out").read_bytes()


def released_segments(released: bytes, data: bytes) -> int:
    """How many whole leading segments were released; asserts nothing else was."""
    assert data.startswith(released)
    for count in range(0, 10):
        size = 0 if count == 0 else LAYOUT.first_plaintext + (count - 1) * LAYOUT.plaintext
        if len(released) == min(size, len(data)):
            return count
    raise AssertionError(f"{len(released)} bytes is not a segment boundary")


def test_s3_a_changed_byte_in_a_middle_segment_is_refused_naming_it(keyset: Keyset,
                                                                     tmp_path: Path) -> None:
    sealed = bytearray(seal(PLAINTEXT, keyset, tmp_path))
    sealed[segment_span(2).start + 100] ^= 0x01
    error, released = open_sealed(bytes(sealed), keyset, tmp_path)
    assert "segment 2 does not authenticate" in error.message
    assert released_segments(released, PLAINTEXT) == 2


@pytest.mark.parametrize("value", [0, 39, 41, 255])
def test_s3_a_changed_header_length_byte_is_refused_as_header_damage(
        keyset: Keyset, tmp_path: Path, value: int) -> None:
    sealed = bytearray(seal(PLAINTEXT, keyset, tmp_path))
    sealed[0] = value
    error, released = open_sealed(bytes(sealed), keyset, tmp_path)
    assert "header is damaged" in error.message and f"says {value}" in error.message
    assert released == b""


@pytest.mark.parametrize(("part", "offset"), [("salt", 1), ("salt", 32), ("nonce prefix", 33),
                                              ("nonce prefix", 39)])
def test_s3_a_changed_salt_or_nonce_prefix_is_refused_as_header_damage(
        keyset: Keyset, tmp_path: Path, part: str, offset: int) -> None:
    sealed = bytearray(seal(PLAINTEXT, keyset, tmp_path))
    sealed[offset] ^= 0x80
    error, released = open_sealed(bytes(sealed), keyset, tmp_path)
    assert "header or segment 0 was changed" in error.message, part
    assert released == b""


def test_s3_two_segments_swapped_are_refused_naming_the_first(keyset: Keyset,
                                                              tmp_path: Path) -> None:
    sealed = bytearray(seal(PLAINTEXT, keyset, tmp_path))
    one, two = segment_span(1), segment_span(2)
    sealed[one], sealed[two] = sealed[two], sealed[one]
    error, released = open_sealed(bytes(sealed), keyset, tmp_path)
    assert "segment 1 does not authenticate" in error.message
    assert "moved" in error.message
    assert released_segments(released, PLAINTEXT) == 1


def test_s3_a_segment_copied_in_from_another_file_under_the_same_key_is_refused(
        keyset: Keyset, tmp_path: Path) -> None:
    """Same key, same segment number: only the per-file salt and nonce prefix tell them apart."""
    sealed = bytearray(seal(PLAINTEXT, keyset, tmp_path))
    other = seal(PLAINTEXT, keyset, tmp_path, name="other")
    sealed[segment_span(3)] = other[segment_span(3)]
    error, released = open_sealed(bytes(sealed), keyset, tmp_path)
    assert "segment 3 does not authenticate" in error.message
    assert "another file" in error.message
    assert released_segments(released, PLAINTEXT) == 3


def test_s3_a_file_truncated_mid_segment_is_refused_as_truncated(keyset: Keyset,
                                                                 tmp_path: Path) -> None:
    sealed = seal(PLAINTEXT, keyset, tmp_path)
    error, released = open_sealed(sealed[:segment_span(3).start + 2000], keyset, tmp_path)
    assert "segment 3, the last, does not authenticate" in error.message
    assert "truncated" in error.message
    assert released_segments(released, PLAINTEXT) == 3


def test_s3_a_file_truncated_inside_a_tag_is_refused_as_truncated(keyset: Keyset,
                                                                  tmp_path: Path) -> None:
    sealed = seal(PLAINTEXT, keyset, tmp_path)
    error, _ = open_sealed(sealed[:segment_span(2).start + 5], keyset, tmp_path)
    assert "truncated" in error.message and "segment 2" in error.message


@pytest.mark.parametrize("segments_left", [1, 2, 4])
def test_s3_a_file_truncated_at_a_segment_boundary_is_refused_as_truncated(
        keyset: Keyset, tmp_path: Path, segments_left: int) -> None:
    """The last-flag in the nonce is what catches this: the cut leaves only genuine segments."""
    sealed = seal(PLAINTEXT, keyset, tmp_path)
    error, released = open_sealed(sealed[:SEGMENT * segments_left], keyset, tmp_path)
    assert "file is truncated" in error.message
    assert f"ends after segment {segments_left - 1}" in error.message
    assert released_segments(released, PLAINTEXT) == segments_left - 1


def test_s3_a_file_truncated_inside_its_header_or_emptied_is_refused(keyset: Keyset,
                                                                     tmp_path: Path) -> None:
    sealed = seal(PLAINTEXT, keyset, tmp_path)
    error, _ = open_sealed(sealed[:20], keyset, tmp_path)
    assert "truncated" in error.message and "header" in error.message
    error, _ = open_sealed(b"", keyset, tmp_path)
    assert "empty" in error.message
    error, _ = open_sealed(sealed[:45], keyset, tmp_path)
    assert "truncated" in error.message and "segment 0" in error.message


def test_s3_a_byte_appended_after_a_full_last_segment_is_refused_as_appended(
        keyset: Keyset, tmp_path: Path) -> None:
    sealed = seal(EXACT, keyset, tmp_path)
    assert len(sealed) == 3 * SEGMENT
    error, released = open_sealed(sealed + b"\x00", keyset, tmp_path)
    assert "data appended: segment 2 is the last one written" in error.message
    assert released_segments(released, EXACT) == 2


def test_s3_a_byte_appended_to_a_short_last_segment_is_refused_naming_appending(
        keyset: Keyset, tmp_path: Path) -> None:
    """A short last segment grown by a byte cannot be told from one changed at its end: the
    message names both, and the segment."""
    sealed = seal(PLAINTEXT, keyset, tmp_path)
    error, released = open_sealed(sealed + b"\x00", keyset, tmp_path)
    assert "segment 4, the last" in error.message and "appended" in error.message
    assert released_segments(released, PLAINTEXT) == 4


def test_s3_a_whole_segment_appended_is_refused_as_appended(keyset: Keyset,
                                                            tmp_path: Path) -> None:
    sealed = seal(EXACT, keyset, tmp_path)
    error, released = open_sealed(sealed + sealed[segment_span(1)], keyset, tmp_path)
    assert "data appended: segment 2 is the last one written" in error.message
    assert released_segments(released, EXACT) == 2


def test_s3_data_appended_to_a_one_segment_file_is_refused(keyset: Keyset,
                                                           tmp_path: Path) -> None:
    """The appended bytes join segment 0, which then fails: the message names the segment and
    appending among what can cause it."""
    sealed = seal(b"tiny", keyset, tmp_path)
    error, released = open_sealed(sealed + os.urandom(SEGMENT), keyset, tmp_path)
    assert "segment 0 does not authenticate" in error.message
    assert "data appended" in error.message and released == b""


def test_s3_a_segment_appended_after_a_full_segment_0_is_refused_as_appended(
        keyset: Keyset, tmp_path: Path) -> None:
    data = EXACT[:LAYOUT.first_plaintext]
    sealed = seal(data, keyset, tmp_path)
    assert len(sealed) == SEGMENT
    error, released = open_sealed(sealed + sealed[40:], keyset, tmp_path)
    assert "data appended: segment 0 is the last one written" in error.message
    assert released == b""


def test_s3_a_changed_byte_in_a_one_segment_file_releases_nothing(keyset: Keyset,
                                                                  tmp_path: Path) -> None:
    sealed = bytearray(seal(b"a short secret", keyset, tmp_path))
    sealed[45] ^= 0x10
    error, released = open_sealed(bytes(sealed), keyset, tmp_path)
    assert "segment 0 does not authenticate" in error.message and released == b""


def test_s3_another_projects_keyset_is_refused_as_not_this_projects_key(
        keyset: Keyset, tmp_path: Path) -> None:
    sealed = seal(PLAINTEXT, keyset, tmp_path)
    error, released = open_sealed(sealed, new_keyset(segment_size=SEGMENT), tmp_path)
    assert "not encrypted under this project's key" in error.message and released == b""
    assert "belongs to this project" in error.one_line()


def test_s3_a_file_of_another_project_under_the_same_key_is_refused(keyset: Keyset,
                                                                    tmp_path: Path) -> None:
    """The project is the HKDF info: the same key material opens nothing of another project."""
    sealed = seal(PLAINTEXT, keyset, tmp_path)
    error, released = open_sealed(sealed, keyset, tmp_path, ad=b"vokter-file-v1:other")
    assert "not encrypted under this project's key" in error.message and released == b""


def test_s3_authenticate_only_refuses_tampering_too(keyset: Keyset, tmp_path: Path) -> None:
    sealed = bytearray(seal(PLAINTEXT, keyset, tmp_path))
    sealed[segment_span(4).start] ^= 1
    (tmp_path / "tampered").write_bytes(bytes(sealed))
    with (tmp_path / "tampered").open("rb") as src, pytest.raises(DecryptionFailed,
                                                                  match="segment 4"):
        decrypt_stream(src.fileno(), None, keyset, AD)


def test_s3_refusals_never_quote_key_material(keyset: Keyset, tmp_path: Path) -> None:
    sealed = seal(PLAINTEXT, keyset, tmp_path)
    error, _ = open_sealed(sealed[:SEGMENT * 2], keyset, tmp_path)
    text = f"{error} {error!r} {error.one_line()} {error.to_wire()}"
    assert keyset.primary.key_value.hex() not in text
    assert str(keyset.primary.key_value)[2:-1] not in text


def _through_pipes(data: bytes, operation: Callable[[int, int], object]) -> bytes:
    """Runs ``operation(src_fd, dst_fd)`` over small in-memory inputs (under a pipe's size)."""
    src_r, src_w = os.pipe()
    dst_r, dst_w = os.pipe()
    try:
        os.write(src_w, data)
        os.close(src_w)
        src_w = -1
        operation(src_r, dst_w)
        os.close(dst_w)
        dst_w = -1
        return os.read(dst_r, 1 << 16)
    finally:
        for fd in (src_r, src_w, dst_r, dst_w):
            if fd >= 0:
                os.close(fd)


@settings(max_examples=150, deadline=None)
@given(size=st.integers(0, 1500), segment_size=st.integers(57, 300), where=st.floats(0, 1),
       bit=st.integers(0, 7))
def test_s3_any_flipped_bit_anywhere_is_refused(size: int, segment_size: int, where: float,
                                                bit: int) -> None:
    key = StreamingKey(1, bytes(32), segment_size=segment_size)
    keyset = Keyset(primary_key_id=1, keys=(key,))
    data = os.urandom(size)
    sealed = bytearray(_through_pipes(
        data, lambda src, dst: encrypt_stream(src, dst, key, AD)))
    assert _through_pipes(bytes(sealed),
                          lambda src, dst: decrypt_stream(src, dst, keyset, AD)) == data
    sealed[min(int(where * len(sealed)), len(sealed) - 1)] ^= 1 << bit
    with pytest.raises(DecryptionFailed):
        _through_pipes(bytes(sealed), lambda src, dst: decrypt_stream(src, dst, keyset, AD))
