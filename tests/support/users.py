"""Real Unix users for tests, made with useradd and removed afterwards (with their processes)."""

from __future__ import annotations

import os
import pwd
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TestUser:
    __test__ = False  # a fixture's value, not a test class
    name: str
    uid: int
    gid: int


class UserFactory:
    def __init__(self) -> None:
        self.created: list[str] = []

    def create(self, prefix: str = "vk") -> TestUser:
        name = f"{prefix}{uuid.uuid4().hex[:8]}"
        subprocess.run(
            ["useradd", "--no-create-home", "--shell", "/bin/sh", "--user-group", name],
            check=True,
            capture_output=True,
        )
        self.created.append(name)
        entry = pwd.getpwnam(name)
        return TestUser(name, entry.pw_uid, entry.pw_gid)

    def cleanup(self) -> None:
        for name in reversed(self.created):
            subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
            subprocess.run(["userdel", name], capture_output=True)
        self.created.clear()


def write_as(user: TestUser, path: Path, data: bytes) -> Path:
    """Write ``path`` as ``user`` would: the kernel checks their rights, the file is theirs,
    and its close is the user's close-after-write."""
    subprocess.run(["runuser", "-u", user.name, "--", "sh", "-c", 'cat > "$1"', "sh",
                    str(path)], input=data, check=True, timeout=120)
    return path


def home_of(root: Path, user: TestUser) -> Path:
    """A private folder of ``user``'s under ``root``, made on first use."""
    home = root / f"home-{user.name}"
    if not home.exists():
        home.mkdir(mode=0o700)
        os.chown(home, user.uid, user.gid)
    return home
