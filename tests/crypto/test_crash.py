"""Crash safety of encryption in place (S3): SIGKILL at 50 random points while a 200 MB file
is encrypted, and after each kill the plaintext or a complete, decryptable ciphertext is there
(or both), never neither; a restart's recovery then leaves exactly one of them, no leftovers,
and the data is the original's, byte for byte (SHA-256).

The killed process runs the daemon's own code path (tests/support/crypto_inplace_worker.py
calls ``encrypt_in_place``); recovery is the daemon's start-up ``recover``. The delay before
each kill is drawn from 0 to the measured duration of one full run, from the moment the worker
starts the real work. The seed is printed on failure; set VOKTER_CRASH_SEED to replay it. The
files live on a tmpfs mounted for the test, so it is quick and leaves nothing on disk.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.crypto import inplace
from agent.crypto.journal import journal_dir
from agent.crypto.keyset import Keyset, new_keyset, serialize_keyset
from tests.support.files import decrypt_file, sha256_of

SIZE = 200 * 1024 * 1024
KILLS = 50
PROJECT = "p4711"
NAME = "register.bin"
CHUNK = 8 * 1024 * 1024


@pytest.fixture
def scratch() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="vokter-crash-", dir="/var/tmp"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1200m,mode=0700", "vokter-crash",
                    str(base)], check=True)
    try:
        yield base
    finally:
        subprocess.run(["umount", str(base)], check=True)
        base.rmdir()


class Scene:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "zones" / PROJECT / "data"
        self.folder = self.root / "cohort"
        self.folder.mkdir(parents=True)
        self.journal = journal_dir(base / "state")
        self.keyset = new_keyset()
        self.keyset_file = base / "keyset.bin"
        self.keyset_file.write_bytes(serialize_keyset(self.keyset))
        self.original = base / "original.bin"
        digest = hashlib.sha256()
        with self.original.open("wb") as file:
            for _ in range(SIZE // CHUNK):
                block = os.urandom(CHUNK)
                digest.update(block)
                file.write(block)
        self.digest = digest.hexdigest()
        self.plain = self.folder / NAME
        self.cipher = self.folder / (NAME + ".tink")

    def keyset_for(self, project: str) -> Keyset:
        assert project == PROJECT
        return self.keyset

    def reset(self) -> None:
        """The plaintext in place and nothing else (a plaintext left by recovery is whole)."""
        if self.cipher.exists():
            self.cipher.unlink()
        if not self.plain.exists():
            shutil.copyfile(self.original, self.plain)

    def start_worker(self) -> subprocess.Popen[str]:
        worker = subprocess.Popen(
            [sys.executable, "-m", "tests.support.crypto_inplace_worker", str(self.journal),
             PROJECT, str(self.root), "cohort", NAME, str(self.keyset_file)],
            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
        assert worker.stdout is not None
        assert worker.stdout.readline() == "ready\n"
        return worker

    def ciphertext_digest(self) -> str:
        """Decrypt the whole ciphertext (it must authenticate) and hash the plaintext."""
        out = self.base / "check.out"
        decrypt_file(self.cipher, out, self.keyset, PROJECT)
        try:
            return sha256_of(out)
        finally:
            out.unlink()

    def leftovers(self) -> list[str]:
        partial = [p.name for p in self.folder.iterdir() if inplace.PARTIAL in p.name]
        return partial + [p.name for p in self.journal.iterdir()]


def test_s3_sigkill_at_50_random_points_never_loses_the_file_and_recovery_leaves_one_copy(
        scratch: Path) -> None:
    seed = int(os.environ.get("VOKTER_CRASH_SEED") or random.SystemRandom().randrange(2**32))
    chance = random.Random(seed)
    scene = Scene(scratch)
    scene.reset()
    started = time.monotonic()
    worker = scene.start_worker()
    assert worker.wait() == 0
    duration = time.monotonic() - started
    assert not scene.plain.exists() and scene.ciphertext_digest() == scene.digest
    seen: Counter[str] = Counter()
    for kill in range(1, KILLS + 1):
        delay = chance.uniform(0, duration)
        where = (f"seed {seed} (VOKTER_CRASH_SEED), kill {kill} after {delay:.3f}s "
                 f"of {duration:.3f}s")
        try:
            seen[kill_and_recover(scene, delay, where)] += 1
        except AssertionError:
            raise
        except Exception as error:
            raise AssertionError(f"{where}: {error!r}") from error
    print(f"seed {seed}: states after the kills: {dict(seen)}")


def kill_and_recover(scene: Scene, delay: float, where: str) -> str:
    """One kill, the checks after it, recovery and the checks after that; returns the state
    the kill left."""
    scene.reset()
    worker = scene.start_worker()
    time.sleep(delay)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    plain, cipher = scene.plain.exists(), scene.cipher.exists()
    state = "both" if plain and cipher else "plaintext" if plain else "ciphertext"
    assert plain or cipher, f"{where}: neither the plaintext nor the ciphertext is left"
    if plain:
        assert sha256_of(scene.plain) == scene.digest, f"{where}: the plaintext changed"
    cipher_inode = -1
    if cipher:
        assert scene.ciphertext_digest() == scene.digest, f"{where}: bad ciphertext"
        cipher_inode = scene.cipher.stat().st_ino
    inplace.recover(scene.journal, scene.keyset_for)
    plain, cipher = scene.plain.exists(), scene.cipher.exists()
    assert plain != cipher, f"{where}: after recovery plaintext {plain}, ciphertext {cipher}"
    assert scene.leftovers() == [], f"{where}: recovery left {scene.leftovers()}"
    if plain:
        assert sha256_of(scene.plain) == scene.digest, f"{where}: recovered plaintext"
    else:
        assert scene.cipher.stat().st_ino == cipher_inode, f"{where}: another ciphertext"
    return state
