"""Interoperability with stock Tink (S3): what Vokter encrypts, Tink decrypts with the
project's keyset, and what Tink encrypts, Vokter decrypts, under keysets either of them made;
keysets wrapped by one are unwrapped by the other with the master key. This is the proof that
the files are in a published format that does not need Vokter to be read."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tink
from tink import aead, proto_keyset_format, secret_key_access, streaming_aead
from tink.proto import aes_gcm_pb2, tink_pb2

from agent.crypto.keyset import Keyset, new_keyset, parse_keyset, serialize_keyset
from agent.crypto.stream_io import decrypt_stream, encrypt_stream
from agent.crypto.streaming import Layout
from agent.crypto.wrapping import (
    MasterKey,
    file_associated_data,
    keyset_associated_data,
    unwrap_keyset,
    wrap_keyset,
)
from agent.errors import DecryptionFailed

streaming_aead.register()
aead.register()

AD = file_associated_data("trial-42")
TEMPLATES = streaming_aead.streaming_aead_key_templates


def sizes_for(segment_size: int) -> list[int]:
    layout = Layout(segment_size, 40)
    first, rest = layout.first_plaintext, layout.plaintext
    return [0, 1, first, first + 1, first + rest, first + 2 * rest, 3 * 1024 * 1024 + 13]


def tink_streaming(keyset_bytes: bytes) -> streaming_aead.StreamingAead:
    handle = proto_keyset_format.parse(keyset_bytes, secret_key_access.TOKEN)
    return handle.primitive(streaming_aead.StreamingAead)


def tink_encrypt(primitive: streaming_aead.StreamingAead, data: bytes, path: Path) -> None:
    with path.open("wb") as sink, primitive.new_encrypting_stream(sink, AD) as stream:
        view = memoryview(data)
        while view:
            view = view[stream.write(view):]


def tink_decrypt(primitive: streaming_aead.StreamingAead, path: Path) -> bytes:
    with path.open("rb") as source, primitive.new_decrypting_stream(source, AD) as stream:
        return bytes(stream.read())


def vokter_encrypt(keyset: Keyset, data: bytes, tmp_path: Path) -> Path:
    (tmp_path / "plain").write_bytes(data)
    with (tmp_path / "plain").open("rb") as src, (tmp_path / "v.tink").open("wb") as dst:
        encrypt_stream(src.fileno(), dst.fileno(), keyset.primary, AD)
    return tmp_path / "v.tink"


def vokter_decrypt(keyset: Keyset, path: Path, tmp_path: Path) -> bytes:
    with path.open("rb") as src, (tmp_path / "opened").open("wb") as dst:
        decrypt_stream(src.fileno(), dst.fileno(), keyset, AD)
    return (tmp_path / "opened").read_bytes()


def master_key_aead(master: MasterKey) -> aead.Aead:
    """The master key as a Tink AEAD: one AesGcmKey, RAW output prefix."""
    key = aes_gcm_pb2.AesGcmKey(version=0, key_value=master.material)
    keyset = tink_pb2.Keyset(primary_key_id=1, key=[tink_pb2.Keyset.Key(
        key_data=tink_pb2.KeyData(type_url="type.googleapis.com/google.crypto.tink.AesGcmKey",
                                  value=key.SerializeToString(),
                                  key_material_type=tink_pb2.KeyData.SYMMETRIC),
        status=tink_pb2.ENABLED, key_id=1, output_prefix_type=tink_pb2.RAW)])
    handle = proto_keyset_format.parse(keyset.SerializeToString(), secret_key_access.TOKEN)
    return handle.primitive(aead.Aead)


@pytest.mark.parametrize("segment_size", [4096, 65536, 1 << 20])
def test_s3_files_vokter_encrypts_decrypt_with_tink(tmp_path: Path, segment_size: int) -> None:
    keyset = new_keyset(segment_size=segment_size)
    primitive = tink_streaming(serialize_keyset(keyset))
    for size in sizes_for(segment_size):
        data = os.urandom(size)
        assert tink_decrypt(primitive, vokter_encrypt(keyset, data, tmp_path)) == data, size


@pytest.mark.parametrize("segment_size", [4096, 65536, 1 << 20])
def test_s3_files_tink_encrypts_under_a_vokter_keyset_decrypt_with_vokter(
        tmp_path: Path, segment_size: int) -> None:
    keyset = new_keyset(segment_size=segment_size)
    primitive = tink_streaming(serialize_keyset(keyset))
    for size in sizes_for(segment_size):
        data = os.urandom(size)
        tink_encrypt(primitive, data, tmp_path / "t.tink")
        assert (tmp_path / "t.tink").stat().st_size == \
            Layout.of(keyset.primary).ciphertext_size(size)
        assert vokter_decrypt(keyset, tmp_path / "t.tink", tmp_path) == data, size


@pytest.mark.parametrize("template", ["AES256_GCM_HKDF_4KB", "AES256_GCM_HKDF_1MB",
                                      "AES128_GCM_HKDF_4KB"])
def test_s3_files_tink_encrypts_under_a_tink_keyset_decrypt_with_vokter(
        tmp_path: Path, template: str) -> None:
    handle = tink.new_keyset_handle(getattr(TEMPLATES, template))
    serialized = proto_keyset_format.serialize(handle, secret_key_access.TOKEN)
    keyset = parse_keyset(serialized)
    primitive = handle.primitive(streaming_aead.StreamingAead)
    header = 40 if "256" in template else 24
    layout = Layout(keyset.primary.segment_size, header)
    for size in (0, 1, layout.first_plaintext, layout.first_plaintext + 1,
                 layout.first_plaintext + layout.plaintext, 2 * 1024 * 1024 + 7):
        data = os.urandom(size)
        tink_encrypt(primitive, data, tmp_path / "t.tink")
        assert vokter_decrypt(keyset, tmp_path / "t.tink", tmp_path) == data, size
        assert tink_decrypt(primitive, vokter_encrypt(keyset, data, tmp_path)) == data, size
    assert serialize_keyset(keyset) == serialized


def test_s3_vokter_tries_every_key_of_a_rotated_tink_keyset(tmp_path: Path) -> None:
    """As Tink does: a file sealed under an older key of the keyset still opens."""
    manager = tink.new_keyset_handle(TEMPLATES.AES256_GCM_HKDF_4KB)
    old_primitive = manager.primitive(streaming_aead.StreamingAead)
    tink_encrypt(old_primitive, b"sealed before the rotation" * 500, tmp_path / "old.tink")
    keyset_proto = tink_pb2.Keyset.FromString(
        proto_keyset_format.serialize(manager, secret_key_access.TOKEN))
    newer = tink_pb2.Keyset.FromString(proto_keyset_format.serialize(
        tink.new_keyset_handle(TEMPLATES.AES256_GCM_HKDF_1MB), secret_key_access.TOKEN))
    keyset_proto.key.append(newer.key[0])
    keyset_proto.primary_key_id = newer.key[0].key_id
    keyset = parse_keyset(keyset_proto.SerializeToString())
    assert keyset.primary.segment_size == 1 << 20 and len(keyset.keys) == 2
    assert vokter_decrypt(keyset, tmp_path / "old.tink", tmp_path) == \
        b"sealed before the rotation" * 500
    data = os.urandom(100_000)
    tink_encrypt(tink_streaming(keyset_proto.SerializeToString()), data, tmp_path / "new.tink")
    assert vokter_decrypt(keyset, tmp_path / "new.tink", tmp_path) == data


def test_s3_tink_refuses_a_vokter_file_under_another_projects_associated_data(
        tmp_path: Path) -> None:
    keyset = new_keyset(segment_size=4096)
    path = vokter_encrypt(keyset, b"x" * 10_000, tmp_path)
    primitive = tink_streaming(serialize_keyset(keyset))
    with path.open("rb") as source, pytest.raises(tink.TinkError), \
            primitive.new_decrypting_stream(source, file_associated_data("other")) as stream:
        stream.read()
    with pytest.raises(DecryptionFailed):
        vokter_decrypt(new_keyset(segment_size=4096), path, tmp_path)


def test_s5_tink_unwraps_a_keyset_vokter_wrapped_with_the_master_key(tmp_path: Path) -> None:
    master, keyset = MasterKey.generate(), new_keyset()
    ad = keyset_associated_data("trial-42")
    handle = proto_keyset_format.parse_encrypted(wrap_keyset(keyset, master, ad),
                                                 master_key_aead(master), ad)
    assert proto_keyset_format.serialize(handle, secret_key_access.TOKEN) == \
        serialize_keyset(keyset)
    data = os.urandom(70_000)
    assert tink_decrypt(handle.primitive(streaming_aead.StreamingAead),
                        vokter_encrypt(keyset, data, tmp_path)) == data


def test_s5_vokter_unwraps_a_keyset_tink_wrapped_with_the_master_key() -> None:
    master = MasterKey.generate()
    ad = keyset_associated_data("trial-42")
    handle = tink.new_keyset_handle(TEMPLATES.AES256_GCM_HKDF_4KB)
    wrapped = proto_keyset_format.serialize_encrypted(handle, master_key_aead(master), ad)
    assert serialize_keyset(unwrap_keyset(wrapped, master, ad)) == \
        proto_keyset_format.serialize(handle, secret_key_access.TOKEN)


def test_s3_the_decrypter_in_docs_format_opens_a_vokter_file_with_stock_tink(
        tmp_path: Path) -> None:
    """The example of docs/format.md is what someone without Vokter would run: it must work,
    with master.key's base64 text and with a raw credential, and refuse a damaged file."""
    document = (Path(__file__).parents[2] / "docs" / "format.md").read_text()
    [program] = re.findall(r"```python\n(.*?)```", document, re.DOTALL)
    script = tmp_path / "decrypt.py"
    script.write_text(program)
    master, keyset = MasterKey.generate(), new_keyset()
    (tmp_path / "master.key").write_text(base64.b64encode(master.material).decode() + "\n")
    (tmp_path / "credential").write_bytes(master.material)
    (tmp_path / "trial-42.keyset").write_bytes(
        wrap_keyset(keyset, master, keyset_associated_data("trial-42")))
    data = os.urandom(200_000)
    sealed = vokter_encrypt(keyset, data, tmp_path)
    for key_file in ("master.key", "credential"):
        run = subprocess.run([sys.executable, str(script), str(tmp_path / key_file),
                              str(tmp_path / "trial-42.keyset"), "trial-42", str(sealed),
                              str(tmp_path / "out")],
                             capture_output=True, text=True, timeout=120, check=False)
        assert run.returncode == 0, run.stderr
        assert (tmp_path / "out").read_bytes() == data
    damaged = bytearray(sealed.read_bytes())
    damaged[70_000] ^= 1
    sealed.write_bytes(bytes(damaged))
    run = subprocess.run([sys.executable, str(script), str(tmp_path / "master.key"),
                          str(tmp_path / "trial-42.keyset"), "trial-42", str(sealed),
                          str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode != 0 and "does not decrypt" in run.stderr
