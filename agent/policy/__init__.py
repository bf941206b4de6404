"""Policy files -> a validated, immutable :class:`Policy` (the numbers and choices of domain.md).

Parsing is pure (``parse``); reading files is the only I/O (``files``).
"""

from agent.policy.files import (
    default_policy_path,
    load_default_policy,
    load_named_policy,
    load_policy_file,
)
from agent.policy.model import Policy
from agent.policy.parse import check_policy_text, format_issues, parse_policy_text

__all__ = [
    "Policy",
    "check_policy_text",
    "default_policy_path",
    "format_issues",
    "load_default_policy",
    "load_named_policy",
    "load_policy_file",
    "parse_policy_text",
]
