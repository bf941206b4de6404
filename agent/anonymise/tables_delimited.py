"""CSV and TSV for anonymisation: every cell is text, exactly as it stands in the file.

Why text only: "0301" is a municipality number, "5,0" a Norwegian decimal; inferring types would
turn the first into 301 and the second into a string or a wrong float, and the output would no
longer say what the input said. Only the empty field means "missing" (null); a quoted empty
field ("") stays an empty text, so both come out as they went in.

Polars parses the table (these files can have a million rows). A row with too few fields is
something polars silently pads with nulls, so the field counts are checked first: by polars
over whole lines when the file has no quotes (a line is then a record), else by the csv module
in C, one length per record, no Python loop.
"""

from __future__ import annotations

import csv
import io
import mmap
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from agent.anonymise.tables_meta import DelimitedMeta, FileIdentity, not_readable
from agent.storage.text_encoding import encoding as text_encoding

#: Delimiters a header is tried with; the extension's own goes first on a tie.
_DELIMITERS = (";", ",", "\t")
#: A byte no text table holds: reading with it as the separator gives whole lines.
_LINE_SEPARATOR = "\x1f"


class _NotUtf8(Exception):
    """Polars met a byte sequence that is not UTF-8 past the sniffed sample."""


def _header(text: str, extension: str) -> tuple[str, tuple[str, ...]]:
    """The delimiter that splits the first record into the most fields, and those fields."""
    preferred = "\t" if extension == ".tsv" else ","
    order = (preferred, *(d for d in _DELIMITERS if d != preferred))
    best: tuple[str, list[str]] | None = None
    for delimiter in order:
        try:
            fields = next(csv.reader(io.StringIO(text), delimiter=delimiter), [])
        except csv.Error:
            continue
        if best is None or len(fields) > len(best[1]):
            best = (delimiter, fields)
    if best is None or not best[1]:
        return preferred, ()
    return best[0], tuple(best[1])


def _line_terminator(text: str) -> str:
    end = text.find("\n")
    return "\r\n" if end > 0 and text[end - 1] == "\r" else "\n"


def _has_byte(source: str | bytes, needles: tuple[bytes, ...]) -> bool:
    if isinstance(source, bytes):
        return any(needle in source for needle in needles)
    with open(source, "rb") as file, mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ) as view:
        return any(view.find(needle) >= 0 for needle in needles)


def _field_counts(source: str | bytes, delimiter: str) -> npt.NDArray[np.int64]:
    """The number of fields of every record, the header first."""
    if not _has_byte(source, (b'"', _LINE_SEPARATOR.encode())):
        lines = pl.read_csv(io.BytesIO(source) if isinstance(source, bytes) else source,
                            has_header=False, separator=_LINE_SEPARATOR, quote_char=None,
                            infer_schema=False, new_columns=["line"],
                            empty_string_is_null=False)
        separators = lines.get_column("line").str.count_matches(delimiter, literal=True)
        counts: npt.NDArray[np.int64] = separators.fill_null(0).cast(pl.Int64).to_numpy() + 1
        return counts
    binary = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
    with io.TextIOWrapper(binary, encoding="utf-8", newline="") as stream:
        return np.fromiter(map(len, csv.reader(stream, delimiter=delimiter)), dtype=np.int64)


def _check_records(source: str | bytes, delimiter: str, width: int, name: str) -> None:
    try:
        counts = _field_counts(source, delimiter)
    except (csv.Error, pl.exceptions.PolarsError) as error:
        if "utf-8" in str(error):
            raise _NotUtf8 from None
        raise not_readable(name, "its records cannot be told apart") from None
    except UnicodeDecodeError:
        raise _NotUtf8 from None
    wrong = np.flatnonzero(counts != width)
    if wrong.size:
        record = int(wrong[0])
        raise not_readable(name, f"record {record + 1} has {int(counts[record])} fields, "
                                 f"the header has {width}")


def _parse(source: str | bytes, name: str, delimiter: str,
           header: tuple[str, ...]) -> pl.DataFrame:
    if len(set(header)) != len(header):
        raise not_readable(name, "a column name appears twice in the header")
    _check_records(source, delimiter, len(header), name)
    try:
        return pl.read_csv(io.BytesIO(source) if isinstance(source, bytes) else source,
                           separator=delimiter, quote_char='"', infer_schema=False,
                           raise_if_empty=True, truncate_ragged_lines=False)
    except pl.exceptions.NoDataError:
        raise not_readable(name, "the file holds no header") from None
    except pl.exceptions.PolarsError as error:
        if "utf-8" in str(error):
            raise _NotUtf8 from None
        raise not_readable(name, "not readable as delimited records") from None


def read_delimited(reopen: str, name: str, sample: bytes, extension: str,
                   identity: FileIdentity) -> tuple[pl.DataFrame, DelimitedMeta]:
    """``reopen`` is a path to the already opened input (``/proc/self/fd/N``); ``name`` is
    what messages call it."""
    # The same judgement of text and encoding as the storage rules make of the file.
    encoding = text_encoding(sample)
    if encoding is None:
        raise not_readable(name, "binary content where text was expected")
    text = sample.decode(encoding, errors="ignore")
    delimiter, header = _header(text, extension)
    if not header:
        raise not_readable(name, "the file holds no header")
    terminator = _line_terminator(text)
    if encoding in ("utf-8", "utf-8-sig"):
        try:
            frame = _parse(reopen, name, delimiter, header)
            return frame, DelimitedMeta(identity, delimiter, encoding, terminator)
        except _NotUtf8:
            if encoding == "utf-8-sig":
                raise not_readable(name, "it starts as UTF-8 but is not UTF-8 throughout") from None
            encoding = "latin-1"
    try:
        data = Path(reopen).read_bytes().decode(encoding).encode("utf-8")
    except UnicodeError:
        raise not_readable(name, f"not valid {encoding} text") from None
    try:
        frame = _parse(data, name, delimiter, header)
    except _NotUtf8:
        raise not_readable(name, "its text encoding is unknown") from None
    return frame, DelimitedMeta(identity, delimiter, encoding, terminator)


def write_delimited(frame: pl.DataFrame, meta: DelimitedMeta, target: str) -> None:
    """Text is written exactly as given, quoted only where the delimiter, a quote or a line
    break makes it necessary; null is the empty field. Raises UnicodeEncodeError when a value
    has no spelling in the input's encoding."""
    include_bom = meta.encoding == "utf-8-sig"
    if meta.encoding in ("utf-8", "utf-8-sig"):
        with open(target, "wb") as file:
            frame.write_csv(file, include_bom=include_bom, separator=meta.delimiter,
                            line_terminator=meta.line_terminator, quote_style="necessary")
        return
    text = frame.write_csv(None, separator=meta.delimiter, line_terminator=meta.line_terminator,
                           quote_style="necessary")
    with open(target, "wb") as file:
        file.write(text.encode(meta.encoding))
