"""Checking what the tests' files hold: a digest, and a ciphertext decrypted to a file."""

from __future__ import annotations

import hashlib
from pathlib import Path

from agent.crypto.keyset import Keyset
from agent.crypto.stream_io import decrypt_stream
from agent.crypto.wrapping import file_associated_data


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(8 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def decrypt_file(ciphertext: Path, out: Path, keyset: Keyset, project: str) -> None:
    """Decrypt a whole file as the daemon would; DecryptionFailed if it does not authenticate."""
    with ciphertext.open("rb") as src, out.open("wb") as dst:
        decrypt_stream(src.fileno(), dst.fileno(), keyset, file_associated_data(project))
