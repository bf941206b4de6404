"""A project with a leader, a member, an auditor and an outsider on a real vokterd, and a
delivered dataset written into its data zone as the leader: what the D2 tests start from."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.daemon import RunningDaemon, ok
from tests.support.users import TestUser, UserFactory, home_of, write_as

PROJECT = "p4711"


@dataclass
class Enclave:
    daemon: RunningDaemon
    leader: TestUser
    member: TestUser
    auditor: TestUser
    outsider: TestUser

    @property
    def data(self) -> Path:
        return self.daemon.zones_dir / PROJECT / "data"

    def vokter(self, *args: str, user: TestUser | None = None) -> subprocess.CompletedProcess[str]:
        return self.daemon.vokter(*args, user=None if user is None else user.name)

    def json(self, *args: str, user: TestUser | None = None) -> Any:
        return json.loads(ok(self.vokter(*args, "--json", user=user)))

    def home(self, user: TestUser) -> Path:
        return home_of(self.daemon.root, user)

    def write_as(self, user: TestUser, path: Path, text: str) -> Path:
        return write_as(user, path, text.encode())

    def variables(self, user: TestUser, text: str, name: str = "approved.txt") -> Path:
        """An approved-variables file the user owns (only they can read it)."""
        return self.write_as(user, self.home(user) / name, text)


def make_enclave(daemon: RunningDaemon, users: UserFactory) -> Enclave:
    leader, member = users.create("vkl"), users.create("vkm")
    auditor, outsider = users.create("vka"), users.create("vko")
    ok(daemon.vokter("project", "create", PROJECT, "--title", "Infections after surgery",
                     "--leader", leader.name, "--end-date", "2030-06-30"))
    ok(daemon.vokter("member", "add", PROJECT, member.name, "--role", "member", "--reason",
                     "cohort analysis", user=leader.name))
    ok(daemon.vokter("member", "add", PROJECT, auditor.name, "--role", "auditor", "--reason",
                     "institution's audit"))
    return Enclave(daemon, leader, member, auditor, outsider)


NPR_FILE = "lopenr;diagnose;kommune\n1;K35;0301\n2;K80;4601\n"


def add_npr(enclave: Enclave, *, approved: str = "lopenr\ndiagnose\n") -> dict[str, Any]:
    """NPR delivered lopenr, diagnose and kommune; by default kommune was not applied for."""
    delivered = enclave.write_as(enclave.leader, enclave.data / "npr.csv", NPR_FILE)
    variables = enclave.variables(enclave.leader, approved)
    result: dict[str, Any] = enclave.json("dataset", "add", PROJECT, str(delivered), "--source",
                                          "NPR", "--variables", str(variables),
                                          user=enclave.leader)
    return result
