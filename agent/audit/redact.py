"""Keep identity numbers out of the trail: a path or message is masked before it is recorded.

File names in research data sometimes carry a fødselsnummer (``12345678901.csv``). The audit
trail must name the file (which file drifted, which open was denied) without ever holding the
number, so anything that looks like one (11 digits, optionally split 6+5) is replaced. Masking a
harmless 11-digit run too is the price of never recording a real one. The one exception is a
long lowercase hex token (a key id, a hash) whose 11 digits are no valid number: those digits
are not a number given to a person. The shorter spellings the storage rules read (10 digits
with the leading zero lost, 5+5) are masked when they are valid identity numbers.
"""

from __future__ import annotations

import re
from datetime import date

from agent.storage.identity_numbers import classify

_IDENTITY_NUMBER = re.compile(r"(?<![0-9])[0-9]{6}[ .\-]?[0-9]{5}(?![0-9])")
#: A run of lowercase hex of at least 16 characters with a letter in it: a key id or a hash
#: that Vokter itself printed (1 in 30 key ids holds 11 digits in a row), not a number a
#: person was given. Masking those made key ids in errors unreadable.
_DIGEST = re.compile(r"[0-9a-f]{16,}")
MASK = "[id-number]"
#: The shorter spellings the storage rules also read as identity numbers: 10 digits (a
#: spreadsheet dropped the leading zero) or 5+5. Masked only when they are one, with the zero
#: put back, so timestamps and phone numbers stay readable.
_SHORT = re.compile(r"(?<![0-9])[0-9]{5}[ .\-]?[0-9]{5}(?![0-9])")
#: Any birth date up to the end of time: masking must not depend on the day.
_EVER = date.max


def _valid(spelled: str) -> bool:
    digits = "".join(c for c in spelled if c.isdigit())
    return classify(digits.zfill(11), _EVER) is not None


def _inside_a_digest(text: str, match: re.Match[str]) -> bool:
    if not match.group().isdigit() or _valid(match.group()):
        return False  # a split number, or a valid one, is never let through as a digest
    start, end = match.span()
    while start > 0 and text[start - 1] in "0123456789abcdef":
        start -= 1
    while end < len(text) and text[end] in "0123456789abcdef":
        end += 1
    token = text[start:end]
    return _DIGEST.fullmatch(token) is not None and not token.isdigit()


def redact_identity_numbers(text: str) -> str:
    text = _IDENTITY_NUMBER.sub(
        lambda match: match.group() if _inside_a_digest(text, match) else MASK, text)
    return _SHORT.sub(lambda match: MASK if _valid(match.group()) else match.group(), text)


def has_identity_number(text: str) -> bool:
    """Cheaper than masking when, as almost always, there is nothing to mask."""
    return any(not _inside_a_digest(text, match) for match in _IDENTITY_NUMBER.finditer(text)) \
        or any(_valid(match.group()) for match in _SHORT.finditer(text))
