"""The SIEM feed's share of the daemon's logging (A5).

Every committed audit event is one JSON line on stderr (``agent.audit.trail``), which journald
or syslog forward to the institution's SIEM. Two processors keep that feed whole and clean:
the log level an operator sets to quiet the daemon never drops an audit line, and every line
the daemon writes, audit or not, has identity numbers masked: the trail masks its events
already, this catches a number that reaches a log by any other way (an error, a traceback).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from structlog import DropEvent

from agent.audit.redact import MASK, redact_identity_numbers
from agent.audit.trail import SIEM_LOGGER

Processor = Callable[[Any, str, MutableMapping[str, Any]], MutableMapping[str, Any]]

#: Values that are hex digests: an 11-digit run inside one is chance, not a person.
DIGEST_KEYS = frozenset({"hash", "head", "prev_hash", "project_prev_hash", "mac", "signature"})
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "exception": 40,
           "critical": 50, "fatal": 50}


def keep_level(minimum: int) -> Processor:
    """Drop lines below ``minimum``, except the audit feed's, which is not the daemon's chatter
    but the record a SIEM must receive whole."""

    def processor(_logger: Any, method: str, event_dict: MutableMapping[str, Any]
                  ) -> MutableMapping[str, Any]:
        if event_dict.get("logger") == SIEM_LOGGER:
            return event_dict
        if _LEVELS.get(method, 20) < minimum:
            raise DropEvent
        return event_dict

    return processor


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return redact_identity_numbers(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return MASK if redact_identity_numbers(str(value)) != str(value) else value
    if isinstance(value, Mapping):
        return {key: value[key] if key in DIGEST_KEYS else _masked(value[key]) for key in value}
    if isinstance(value, list | tuple):
        return [_masked(item) for item in value]
    return value


def mask_identity_numbers(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]
                          ) -> MutableMapping[str, Any]:
    for key, value in event_dict.items():
        if key not in DIGEST_KEYS:
            event_dict[key] = _masked(value)
    return event_dict
