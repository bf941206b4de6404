"""Cell values as the text a person would read, so every format is judged the same way.

Statistical packages store identity numbers as doubles (Stata and SPSS have no 11-digit
integer type), so a double with an integral value is written as an integer:
1.2345678901e10 becomes "12345678901", not "12345678901.0". Missing values are "".
"""

from __future__ import annotations

import math
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

#: Integral doubles below this are exact and written as integers; above it a double has lost
#: digits, and its scientific notation says so.
_EXACT = 2.0**53


def float_text(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        return ""
    if value.is_integer() and abs(value) < _EXACT:
        return str(int(value))
    return repr(value)


def cell_text(value: Any) -> str:
    """Any scalar a reader library returns, as text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return float_text(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            return ""
        return str(int(value)) if value == value.to_integral_value() else str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    # numpy scalars (pyreadstat) carry .item(); anything else is written as Python writes it.
    item = getattr(value, "item", None)
    if callable(item):
        return cell_text(item())
    return str(value)
