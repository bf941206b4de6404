"""Granting access once a project has ended (L8), as people meet it: a real vokterd, real Unix
users, the real `vokter member add` run as each of them after `vokter project end`."""

from __future__ import annotations

import json

from tests.support.daemon import RunningDaemon, ok, one_line_failure
from tests.support.users import UserFactory

PROJECT = "p9108"


def test_l8_after_the_end_no_one_is_given_a_role_but_root_still_appoints_an_auditor(
    daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    leader, newcomer, auditor = (unix_users.create("vgl"), unix_users.create("vgn"),
                                 unix_users.create("vga"))
    ok(daemon.vokter("project", "create", PROJECT, "--title", "Shift work", "--leader",
                     leader.name, "--end-date", "2030-06-30"))
    ok(daemon.vokter("project", "end", PROJECT, "--yes", user=leader.name))
    for role, user in (("member", leader.name), ("key_custodian", leader.name),
                       ("member", None)):
        line = one_line_failure(daemon.vokter(
            "member", "add", PROJECT, newcomer.name, "--role", role, "--reason", "late analysis",
            user=user))
        assert line == (f"vokter: {PROJECT} has ended (ended): no one is given a role in it any "
                        "more (L8); the leader keeps read access; root may still appoint an "
                        "auditor")
    ok(daemon.vokter("member", "add", PROJECT, auditor.name, "--role", "auditor", "--reason",
                     "the institution's audit of the closed project"))
    listed = json.loads(ok(daemon.vokter("member", "list", PROJECT, "--json")))
    assert sorted((m["user"], m["role"]) for m in listed) == sorted(
        [(leader.name, "leader"), (auditor.name, "auditor")])
    refused = [(e["actor"], e["rule"], e["project_id"]) for e in daemon.audit_events()
               if e["action"] == "member.add" and e["outcome"] == "refused"]
    assert refused == [(leader.name, "L8", PROJECT)] * 2 + [("root", "L8", PROJECT)]
