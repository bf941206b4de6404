"""Keep identity numbers out of the trail: a path or message is masked before it is recorded.

File names in research data sometimes carry a fødselsnummer (``12345678901.csv``). The audit
trail must name the file (which file drifted, which open was denied) without ever holding the
number, so anything that looks like one (11 digits, optionally split 6+5) is replaced. Masking a
harmless 11-digit run too is the price of never recording a real one.
"""

from __future__ import annotations

import re

_IDENTITY_NUMBER = re.compile(r"(?<![0-9])[0-9]{6}[ .\-]?[0-9]{5}(?![0-9])")
MASK = "[id-number]"


def redact_identity_numbers(text: str) -> str:
    return _IDENTITY_NUMBER.sub(MASK, text)


def has_identity_number(text: str) -> bool:
    """Cheaper than masking when, as almost always, there is nothing to mask."""
    return _IDENTITY_NUMBER.search(text) is not None
