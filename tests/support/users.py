"""Real Unix users for tests, made with useradd and removed afterwards (with their processes)."""

from __future__ import annotations

import pwd
import subprocess
import uuid
from dataclasses import dataclass


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
