"""Checks the CLI runs itself, without a daemon: an operator edits a policy before any vokterd
reads it. The file is read with the user's own rights, never the daemon's."""

from __future__ import annotations

from pathlib import Path

from agent.errors import PolicyInvalid
from agent.policy import format_issues, load_policy_file


def check_policy_file(path: Path) -> list[str]:
    """Every problem in the policy file, one line each; an empty list means it is valid."""
    try:
        load_policy_file(path)
    except PolicyInvalid as error:
        return format_issues(error.issues)
    return []
