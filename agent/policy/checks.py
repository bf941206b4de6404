"""The checks a policy value must pass, one per kind of rule: choices, ranges, the cipher and
key size (S3), segment sizes, names. Pure; each returns the reason a value breaks its rule,
without the value (the parser puts the value in front), or None.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, get_args

import agent.policy.model as m

#: A check gets a value already known to be of the right type; it returns the reason (without
#: the value) when the value breaks a rule, else None.
Check = Callable[[Any], str | None]

_SLUG_FIRST = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_SLUG_REST = _SLUG_FIRST | frozenset("_-")


def is_policy_name(name: str) -> bool:
    """Policy names become file names and appear in audit events: keep them boring."""
    return 1 <= len(name) <= 64 and name[0] in _SLUG_FIRST and all(c in _SLUG_REST for c in name)


def choice(alias: object, rule: str) -> Check:
    allowed: tuple[str, ...] = get_args(alias)

    def check(value: str) -> str | None:
        if value in allowed:
            return None
        for option in allowed:
            if option.lower() == value.lower():
                return f'write it as "{option}" ({rule})'
        return f"not allowed; choose one of {' | '.join(allowed)} ({rule})"

    return check


def between(low: float, high: float, rule: str = "", *, below: str = "", above: str = "") -> Check:
    """Range check; ``below``/``above`` replace the generic reason where a rule has words."""
    tag = f" ({rule})" if rule else ""

    def check(value: float) -> str | None:
        if low <= value <= high:
            return None
        if below and value < low:
            return below + tag
        if above and value > high:
            return above + tag
        return f"must be between {low} and {high}{tag}"

    return check


#: Strong ciphers Vokter has no file format for (a policy naming one would not be honoured).
_NOT_IMPLEMENTED = ("AES-256-GCM", "AES-256-SIV", "AES-256-GCM-SIV", "AES-256-CTR-HMAC")
_WEAK_CIPHER_MARKS = ("128", "192", "DES", "RC2", "RC4", "BLOWFISH", "IDEA", "CAST", "CBC", "ECB")


def cipher(value: str) -> str | None:
    allowed: tuple[str, ...] = get_args(m.Cipher)
    choose = f"choose one of {' | '.join(allowed)}"
    if value in allowed:
        return None
    if any(mark in value.upper() for mark in _WEAK_CIPHER_MARKS):
        return f"weaker than AES-256; {choose} (S3)"
    if value.upper() in allowed:
        return f'write it as "{value.upper()}" (S3)'
    if value.upper() in _NOT_IMPLEMENTED:
        return (f"not implemented: files are sealed in Tink's streaming format; {choose} (S3)")
    return f"not an allowed AES-256 cipher; {choose} (S3)"


def key_bits(value: int) -> str | None:
    if value == 256:
        return None
    if value < 256:
        return "weaker than AES-256: keys must be 256 bits (S3)"
    return "must be 256: the allowed ciphers are AES-256 (S3)"


def segment_size(value: int) -> str | None:
    if 4096 <= value <= 1 << 24 and value & (value - 1) == 0:
        return None
    return "must be a power of two between 4096 (4 KiB) and 16777216 (16 MiB) (S3)"


def policy_name(value: str) -> str | None:
    if is_policy_name(value):
        return None
    return "must be 1-64 lowercase letters, digits, '-' or '_', starting with a letter or digit"


def version(value: str) -> str | None:
    if 1 <= len(value) <= 64 and value.isprintable():
        return None
    return "must be 1-64 printable characters on one line"


def l_diversity(value: int) -> str | None:
    if value == 0 or 2 <= value <= 1000:
        return None
    return "must be 0 (off) or between 2 and 1000 (L7)"
