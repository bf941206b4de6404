"""The policy room's only I/O: turning a path into text, then into a Policy.

Why every failure becomes ``PolicyInvalid`` with the key ``file``: ``vokter policy check FILE``
and the daemon's start-up both print one clear line and exit, whether the file is missing, a
directory, binary or malformed; a traceback would tell an operator nothing they can act on.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from agent.errors import PolicyInvalid
from agent.policy.checks import is_policy_name
from agent.policy.model import Policy
from agent.policy.parse import parse_policy_text, render_value

#: A policy is a few kilobytes; anything near this is not a policy, and reading it whole
#: would let a mistaken path (a log file, a device) cost memory.
MAX_POLICY_BYTES = 1 << 20


def default_policy_path() -> Path:
    """The shipped default policy, inside the package so that a wheel install has it too.

    ``policies/default.toml`` in the repository is the canonical copy; a test keeps the two
    byte-identical.
    """
    return Path(__file__).with_name("default.toml")


def _refuse(path: Path, reason: str) -> PolicyInvalid:
    return PolicyInvalid([("file", reason)], source=str(path))


def _read_bytes(path: Path) -> bytes:
    # O_NONBLOCK: opening a FIFO by mistake must not hang the daemon's start-up.
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise _refuse(path, "not found") from None
    except PermissionError:
        raise _refuse(path, "not readable: permission denied") from None
    except OSError as exc:
        raise _refuse(path, f"cannot be opened: {exc.strerror or type(exc).__name__}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise _refuse(path, "is a directory, not a policy file")
        if not stat.S_ISREG(mode):
            raise _refuse(path, "is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as stream:
            data = stream.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise _refuse(path, f"cannot be read: {exc.strerror or type(exc).__name__}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_POLICY_BYTES:
        raise _refuse(path, f"larger than {MAX_POLICY_BYTES} bytes (1 MiB): not a policy file")
    return data


def load_policy_file(path: Path) -> Policy:
    """The policy in the file at ``path``; ``PolicyInvalid`` (never a traceback) otherwise."""
    data = _read_bytes(path)
    try:
        text = data.decode("utf-8-sig")  # tolerate the BOM some editors write
    except UnicodeDecodeError as exc:
        raise _refuse(path, f"not UTF-8 text (invalid byte at offset {exc.start})") from None
    return parse_policy_text(text, source=str(path))


def load_named_policy(policies_dir: Path, name: str) -> Policy:
    """The policy ``<policies_dir>/<name>.toml``, whose ``policy.name`` must be ``name``.

    Why the name is checked before any path is built: it may come from a project record or a
    request, and must not be able to point outside ``policies_dir`` (``../x``, ``/etc/x``).
    Why the inner name must match: audit events and certificates cite the name, and it must
    lead back to the file that was enforced.
    """
    if not is_policy_name(name):
        raise PolicyInvalid(
            [("file", f"policy name {render_value(name)} is not 1-64 of a-z, 0-9, '-', '_'")],
            source=str(policies_dir),
        )
    path = policies_dir / f"{name}.toml"
    policy = load_policy_file(path)
    if policy.name != name:
        reason = f"{render_value(policy.name)}: does not match the file name {name}.toml"
        raise PolicyInvalid([("policy.name", reason)], source=str(path))
    return policy


def load_default_policy() -> Policy:
    """The shipped default policy (domain.md's numbers), e.g. for tests and ``vokter demo``."""
    return load_policy_file(default_policy_path())
