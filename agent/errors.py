"""One hierarchy for every refusal and failure in Vokter.

Why one hierarchy: a refusal has to travel. It is raised deep in a decision, audited by the
daemon, carried over the socket as plain data, rebuilt by the client and finally printed by the
CLI as one line with an exit code. Each error therefore carries everything those places need:
a message written for people, the rule ID behind it (``S6``, ``L3``...) when a rule is the
reason, and the exit code. Messages must never contain identity numbers or key material.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from agent.audit.redact import redact_identity_numbers

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2


class VokterError(Exception):
    """Base of every error Vokter reports to a person."""

    exit_code: ClassVar[int] = EXIT_REFUSED
    #: "refused" when a rule or a permission said no, "failed" when something broke.
    outcome: ClassVar[str] = "failed"

    def __init__(self, message: str, *, rule: str | None = None, hint: str | None = None) -> None:
        # Messages often echo what a client sent (a project id, a user name, a path); whatever
        # looks like an identity number is masked here, once, for every error.
        message = redact_identity_numbers(message)
        hint = None if hint is None else redact_identity_numbers(hint)
        super().__init__(message)
        self.message = message
        self.rule = rule
        self.hint = hint

    def one_line(self) -> str:
        """The line the CLI prints: message, rule and what to do next, never a traceback."""
        text = self.message
        if self.rule and f"({self.rule})" not in text:
            text = f"{text} ({self.rule})"
        if self.hint:
            text = f"{text}; {self.hint}"
        return " ".join(text.split())

    def to_wire(self) -> dict[str, Any]:
        """Errors cross the socket as data, never as pickles."""
        return {
            "type": type(self).__name__,
            "message": self.message,
            "rule": self.rule,
            "hint": self.hint,
            "exit": self.exit_code,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, rule={self.rule!r})"


# --- refusals: the request was understood and said no to -------------------------------------


class Refused(VokterError):
    """A rule, a permission or the state of things says no; nothing was changed."""

    outcome = "refused"


class PermissionDenied(Refused):
    """The caller (as the kernel identifies them) may not do this."""


class NotFound(Refused):
    """Unknown project, user or record. Also what an unauthorised caller is told about a project
    they may not see, so that its existence does not leak."""


class AlreadyExists(Refused):
    """The thing to create is already there."""


class InvalidRequest(Refused):
    """Bad input: malformed, impossible, out of range or against a rule."""


class RuleViolation(Refused):
    """A domain rule (always with its rule ID) forbids the request."""


class PolicyInvalid(Refused):
    """A policy file does not hold a valid policy; ``issues`` lists every problem found."""

    def __init__(self, issues: list[tuple[str, str]], *, source: str = "policy") -> None:
        self.issues = list(issues)
        first = f"{issues[0][0]}: {issues[0][1]}" if issues else "invalid"
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        super().__init__(f"{source}: {first}{more}", hint="run 'vokter policy check FILE'")

    def to_wire(self) -> dict[str, Any]:
        wire = super().to_wire()
        wire["issues"] = [list(issue) for issue in self.issues]
        return wire


class ProtocolError(Refused):
    """A socket request that is malformed, oversized, too slow or of an unknown kind."""


class DecryptionFailed(Refused):
    """A ciphertext did not authenticate (S3): a changed byte or header, segments reordered or
    copied in from another file, a truncated file, appended data, or the wrong project's key.
    The message names what was found and where; no plaintext of a failed segment is released."""


class KeyDestroyed(Refused):
    """The project's keyset was crypto-shredded: what was encrypted under it is unreadable for
    good, by design (S3, NIST SP 800-88 cryptographic erase)."""


class AnonymisationImpossible(Refused):
    """No generalisation within the hierarchies makes the table k-anonymous (L7) with at most the
    allowed share of rows suppressed; nothing was written."""


# --- failures: something broke -----------------------------------------------------------------


class Failed(VokterError):
    """The request was allowed but could not be carried out; nothing was changed."""


class AuditUnavailable(Failed):
    """The audit event could not be written, so the action it records was not done (fail closed)."""


class AuditDamaged(Failed):
    """Verifying the audit trail found it damaged: names the first damaged event and the kind
    (rule A5); ``vokter audit verify`` exits 1 with it."""


class KeyStoreUnavailable(Failed):
    """The key store is missing, damaged, open to others, or holds a master key that does not
    match the wrapped keysets (S5). The daemon refuses to start rather than make a new key."""


class StoreError(Failed):
    """The database refused or failed."""


class ConfigError(Failed):
    """The configuration file is missing, unreadable or invalid."""


class DaemonUnreachable(Failed):
    """The client could not talk to vokterd."""


class UsageError(VokterError):
    """The command line itself is wrong."""

    exit_code = EXIT_USAGE
    outcome = "refused"


def _all_subclasses(cls: type[VokterError]) -> list[type[VokterError]]:
    found: list[type[VokterError]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


def error_from_wire(data: Mapping[str, Any]) -> VokterError:
    """Rebuild an error received over the socket; unknown types degrade to ``Failed``."""
    classes: list[type[VokterError]] = [VokterError, *_all_subclasses(VokterError)]
    registry: dict[str, type[VokterError]] = {cls.__name__: cls for cls in classes}
    message = str(data.get("message") or "the daemon reported an error without a message")
    rule = data.get("rule")
    hint = data.get("hint")
    name = str(data.get("type", ""))
    if name == "PolicyInvalid":
        raw = data.get("issues") or []
        issues = [
            (str(i[0]), str(i[1])) for i in raw if isinstance(i, list | tuple) and len(i) == 2
        ]
        policy_error = PolicyInvalid(issues)
        policy_error.message = message
        return policy_error
    cls = registry.get(name, Failed)
    error = cls(message, rule=str(rule) if rule else None, hint=str(hint) if hint else None)
    return error
