"""Whether a file's first bytes are text, and in which encoding.

A room of its own, outside the format readers' package, so that the anonymisation's CSV reader
judges text exactly as the storage rules do without importing every reader (Excel, Parquet)
on the way.
"""

from __future__ import annotations

import codecs

#: Control characters other than whitespace: text has almost none, binary has many.
_CONTROL = bytes(c for c in range(32) if c not in b"\t\n\r\f\x1b")


def encoding(sample: bytes) -> str | None:
    """The encoding a text file is read with, or None for binary. UTF-8 when the sample
    decodes as UTF-8 (a character cut at the end of the sample is fine), else latin-1, which
    decodes any byte: so the test for text is the share of control characters."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in sample:
        return None
    if sample and len(sample) - len(sample.translate(None, _CONTROL)) > len(sample) // 100:
        return None
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8"
