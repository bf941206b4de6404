"""Policy text -> a validated :class:`Policy`, or every problem in it at once.

Why pure: the daemon, ``vokter policy check FILE`` and the tests all validate text; only
``files.py`` touches the disk. Why every problem at once: an operator editing a policy should
fix a file in one pass, not meet its errors one run at a time. Why every key is required: a
policy file is a complete statement of the rules, so reading it tells the whole policy and a
forgotten line cannot silently fall back to a default nobody chose.

A reason that is about a value starts with that value as TOML would spell it (``6: at most 5
years are allowed (L3)``), so :func:`format_issues` can print ``key = value: reason``. Reasons
are single lines: they end up in audit events, socket replies and terminal output.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import agent.policy.model as m
from agent.errors import PolicyInvalid
from agent.policy import checks as c
from agent.policy.checks import Check

Issue = tuple[str, str]

MISSING = "missing (required)"
UNKNOWN_KEY = "unknown key"
UNKNOWN_SECTION = "unknown section"
#: Real policies are a few kilobytes; the cap keeps a pathological input from costing much.
MAX_TEXT_CHARS = 1 << 20

_RENDER_LIMIT = 60
_BARE_KEY = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_TOML_TYPE = {
    "str": "a string",
    "int": "an integer",
    "float": "a float",
    "bool": "a boolean",
    "list": "an array",
    "dict": "a table",
    "datetime": "a date-time",
    "date": "a date",
    "time": "a time",
}
_EXPECTED = {
    "str": "a string in quotes",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "paths": "an array of strings",
    "names": "an array of strings",
}


def render_value(value: object) -> str:
    """A value as TOML would spell it, on one line and short enough for a message."""
    text = _render(value, 0)
    return text if len(text) <= _RENDER_LIMIT else text[: _RENDER_LIMIT - 3] + "..."


def _escape(char: str) -> str:
    if char in '"\\':
        return "\\" + char
    if char.isprintable():
        return char
    code = ord(char)
    return f"\\u{code:04X}" if code <= 0xFFFF else f"\\U{code:08X}"


def _render(value: object, depth: int) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + "".join(_escape(c) for c in value[: _RENDER_LIMIT + 1]) + '"'
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        if depth >= 3:
            return "[...]"
        inner = ", ".join(_render(item, depth + 1) for item in value[:8])
        return f"[{inner}{', ...' if len(value) > 8 else ''}]"
    if isinstance(value, dict):
        return "{...}"
    return "".join(_escape(c) for c in str(value))


def _key_text(key: str) -> str:
    """User-chosen key names may hold anything TOML can quote, newlines included."""
    return key if key and all(c in _BARE_KEY for c in key) else render_value(key)


# --- the schema -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Key:
    kind: str  # a key of _EXPECTED
    check: Check | None = None
    rule: str = ""  # for "paths" and "names": the rule behind each entry
    mounts: bool = False  # for "paths": media mount points (at least one, never "/")


_SCHEMA: dict[str, dict[str, _Key]] = {
    "policy": {
        "name": _Key("str", c.policy_name),
        "version": _Key("str", c.version),
        "description": _Key("str", lambda v: None if len(v) <= 1000 else "at most 1000 characters"),
    },
    "crypto": {
        "cipher": _Key("str", c.cipher),
        "key_bits": _Key("int", c.key_bits),
        "segment_size": _Key("int", c.segment_size),
    },
    "storage": {
        "identifiable_action": _Key("str", c.choice(m.IdentifiableAction, "S4")),
        "portable_media_action": _Key("str", c.choice(m.PortableMediaAction, "S2")),
        "portable_media_mount_points": _Key("paths", rule="S2", mounts=True),
        "key_separation": _Key("str", c.choice(m.KeySeparation, "S5")),
        "members_may_hold_key": _Key("bool"),
        "export_plaintext_identifiers": _Key("str", c.choice(m.ExportAction, "S7")),
        "copy_scan_paths": _Key("paths", rule="S1"),
        "identifier_column_share": _Key("float", c.between(0.5, 1.0, "S4")),
        "deidentified_registers": _Key("names", rule="D5"),
    },
    "access": {
        "ended_leader_read": _Key("bool"),
        "auditors_read_data": _Key(
            "bool",
            lambda v: (
                "must be false: auditors read access logs, never data (A2, L8)" if v else None
            ),
        ),
    },
    "anonymisation": {
        "k": _Key(
            "int",
            c.between(
                3, 1000, "L7", below="k must be at least 3: no group may be under 3-5 persons"
            ),
        ),
        "max_suppression": _Key("float", c.between(0.0, 0.5, "L7")),
        "l_diversity": _Key("int", c.l_diversity),
    },
    "retention": {
        "max_years_after_end": _Key(
            "int",
            c.between(0, 5, "L3", below="cannot be negative", above="at most 5 years are allowed"),
        ),
        "clinical_trial_min_years": _Key(
            "int",
            c.between(
                25,
                100,
                "L4",
                below="clinical-trial source data is kept at least 25 years",
                above="at most 100 years",
            ),
        ),
    },
    "lifecycle": {
        "end_action": _Key("str", c.choice(m.EndAction, "L2, L6")),
        "notice_days": _Key("int", c.between(1, 365, "L1")),
        "grace_days": _Key("int", c.between(0, 90, "L2")),
        "sweep_hour": _Key("int", c.between(0, 23, "L2")),
    },
    "audit": {
        "hash": _Key("str", c.choice(m.AuditHash, "A5")),
        "checkpoint_seconds": _Key("int", c.between(1, 3600, "A5")),
        "checkpoint_events": _Key("int", c.between(1, 1_000_000, "A5")),
        "access_log_aggregate_seconds": _Key("int", c.between(1, 3600, "A5")),
    },
}

_KNOWN_PATHS = frozenset(
    [*_SCHEMA, *(f"{section}.{key}" for section, keys in _SCHEMA.items() for key in keys)]
)


# --- validation -------------------------------------------------------------------------------


def _type_ok(kind: str, value: object) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):  # TOML's true is not 1, whatever Python thinks
        return False
    if kind == "int":
        return isinstance(value, int)
    if kind == "float":
        return isinstance(value, int | float)
    if kind == "str":
        return isinstance(value, str)
    return isinstance(value, list)  # "paths", "names": elements are checked one by one


def _wrong_type(kind: str, value: object) -> str:
    actual = _TOML_TYPE.get(type(value).__name__, "something else")
    return f"{render_value(value)}: must be {_EXPECTED[kind]}, not {actual}"


def _path_problem(path: object, mounts: bool) -> str | None:
    if not isinstance(path, str):
        return f"must be a string, not {_TOML_TYPE.get(type(path).__name__, 'something else')}"
    if path == "/":
        return None if not mounts else "the root file system cannot be a mount point for media"
    parts = path.split("/")
    if parts[0] != "" or any(part in ("", ".", "..") for part in parts[1:]):
        return "must be an absolute path without '.', '..', '//' or a trailing '/'"
    if not path.isprintable():
        return "must not hold control characters"
    return None


def _check_paths(dotted: str, value: list[Any], spec: _Key) -> list[Issue]:
    if spec.mounts and not value:
        return [(dotted, f"[]: must list at least one mount point ({spec.rule})")]
    issues: list[Issue] = []
    seen: set[str] = set()
    for index, path in enumerate(value):
        problem = _path_problem(path, spec.mounts)
        if problem is None and path in seen:
            problem = "listed twice"
        if problem is not None:
            issues.append((f"{dotted}[{index}]", f"{render_value(path)}: {problem} ({spec.rule})"))
        elif isinstance(path, str):
            seen.add(path)
    return issues


#: Register names are compared with datasets' sources and shown in violations: one short line.
MAX_NAME_CHARS = 128


def _name_problem(name: object) -> str | None:
    if not isinstance(name, str):
        return f"must be a string, not {_TOML_TYPE.get(type(name).__name__, 'something else')}"
    if not name.strip():
        return "must not be empty"
    if name != name.strip():
        return "must not begin or end with spaces"
    if len(name) > MAX_NAME_CHARS:
        return f"must be at most {MAX_NAME_CHARS} characters"
    if not name.isprintable():
        return "must not hold control characters"
    return None


def _check_names(dotted: str, value: list[Any], spec: _Key) -> list[Issue]:
    """Names are matched case-insensitively, so "NOIS" and "nois" are one name listed twice.

    An empty list is refused: it would switch the rule off, and domain.md names the registers.
    """
    if not value:
        return [(dotted, f"[]: must list at least one name ({spec.rule})")]
    issues: list[Issue] = []
    seen: set[str] = set()
    for index, name in enumerate(value):
        problem = _name_problem(name)
        if problem is None and name.casefold() in seen:
            problem = "listed twice (names are compared ignoring case)"
        if problem is not None:
            issues.append((f"{dotted}[{index}]", f"{render_value(name)}: {problem} ({spec.rule})"))
        elif isinstance(name, str):
            seen.add(name.casefold())
    return issues


def _check_section(
    section: str, table: dict[str, Any], keys: dict[str, _Key], clean: dict[str, Any]
) -> list[Issue]:
    issues: list[Issue] = []
    for key, spec in keys.items():
        dotted = f"{section}.{key}"
        if key not in table:
            issues.append((dotted, MISSING))
            continue
        value = table[key]
        if not _type_ok(spec.kind, value):
            issues.append((dotted, _wrong_type(spec.kind, value)))
            continue
        if spec.kind == "paths":
            problems = _check_paths(dotted, value, spec)
            issues.extend(problems)
            value = tuple(value)
        elif spec.kind == "names":
            problems = _check_names(dotted, value, spec)
            issues.extend(problems)
            value = tuple(value)
        else:
            reason = spec.check(value) if spec.check else None
            problems = [(dotted, f"{render_value(value)}: {reason}")] if reason else []
            issues.extend(problems)
            if spec.kind == "float":
                value = float(value)  # safe: the range check passed, so it is small
        if not problems:
            clean[key] = value
    issues.extend((f"{section}.{_key_text(k)}", UNKNOWN_KEY) for k in table if k not in keys)
    return issues


def _cross_checks(clean: dict[str, dict[str, Any]]) -> list[Issue]:
    """Rules between keys, checked only where both keys are valid on their own."""
    anon = clean["anonymisation"]
    if "k" in anon and anon.get("l_diversity", 0) > anon["k"]:
        value = anon["l_diversity"]
        reason = f"cannot exceed anonymisation.k = {anon['k']}: a group of k holds at most k values"
        return [("anonymisation.l_diversity", f"{value}: {reason} (L7)")]
    return []


def _load(text: str) -> tuple[dict[str, Any] | None, list[Issue]]:
    if not isinstance(text, str):
        return None, [("toml", f"expected text, got {type(text).__name__}")]
    if len(text) > MAX_TEXT_CHARS:
        return None, [("toml", f"longer than {MAX_TEXT_CHARS} characters")]
    try:
        return tomllib.loads(text), []
    except tomllib.TOMLDecodeError as exc:
        message = "".join(_escape(c) for c in " ".join(str(exc).split()))
        return None, [("toml", f"syntax error: {message}")]
    except RecursionError:
        return None, [("toml", "syntax error: arrays or tables nested too deeply")]
    except ValueError:  # int() refuses numbers of thousands of digits
        return None, [("toml", "syntax error: a number is too long to read")]


def _validate(text: str) -> tuple[list[Issue], dict[str, dict[str, Any]]]:
    document, issues = _load(text)
    clean: dict[str, dict[str, Any]] = {section: {} for section in _SCHEMA}
    if document is None:
        return issues, clean
    for section, keys in _SCHEMA.items():
        table = document.get(section)
        if table is None:
            issues.append((section, MISSING))
        elif not isinstance(table, dict):
            issues.append((section, f"{render_value(table)}: must be a table ([{section}])"))
        else:
            issues.extend(_check_section(section, table, keys, clean[section]))
    for name, value in document.items():
        if name not in _SCHEMA:
            reason = UNKNOWN_SECTION if isinstance(value, dict) else UNKNOWN_KEY
            issues.append((_key_text(name), reason))
    issues.extend(_cross_checks(clean))
    return issues, clean


# --- the public functions ---------------------------------------------------------------------


def check_policy_text(text: str) -> list[Issue]:
    """Every problem in ``text`` as (dotted key, reason); empty when it is a valid policy."""
    return _validate(text)[0]


def parse_policy_text(text: str, source: str = "policy") -> m.Policy:
    """The policy in ``text``; raises :class:`PolicyInvalid` (and nothing else) otherwise."""
    issues, v = _validate(text)
    if issues:
        raise PolicyInvalid(issues, source=source)
    return m.Policy(
        meta=m.PolicyMeta(**v["policy"]),
        crypto=m.CryptoPolicy(**v["crypto"]),
        storage=m.StoragePolicy(**v["storage"]),
        access=m.AccessPolicy(**v["access"]),
        anonymisation=m.AnonymisationPolicy(**v["anonymisation"]),
        retention=m.RetentionPolicy(**v["retention"]),
        lifecycle=m.LifecyclePolicy(**v["lifecycle"]),
        audit=m.AuditPolicy(**v["audit"]),
    )


def _carries_value(key: str, reason: str) -> bool:
    base = key.split("[", 1)[0]
    return base in _KNOWN_PATHS and reason not in (MISSING, UNKNOWN_KEY, UNKNOWN_SECTION)


def format_issues(issues: Iterable[Issue]) -> list[str]:
    """One line per issue: ``key = value: reason`` if the value is known, else ``key: reason``."""
    return [
        f"{key}{' = ' if _carries_value(key, reason) else ': '}{reason}" for key, reason in issues
    ]
