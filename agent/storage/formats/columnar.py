"""Parquet, Stata (.dta) and SPSS (.sav, .zsav): typed binary tables from analysis tools.

Parquet is read by row group through pyarrow's batches; Stata and SPSS through pyreadstat in
row chunks with ``output_format="dict"``, so pandas is not needed at run time. Both libraries
get a positional file object over the daemon's descriptor, never a path.

Damage shows up as whatever the library raises (pyarrow's ArrowInvalid, pyreadstat's
ReadstatError, OSError, ValueError...). Each boundary below turns any of it into one
UnreadableFile naming the format and the kind of failure; the library's own message is left
out, since it may quote what it failed to parse.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pyreadstat

from agent.storage.formats.model import Table, UnreadableFile, open_bytes
from agent.storage.formats.values import cell_text, float_text

#: Rows per batch: large enough to amortise the per-batch cost, small enough to bound memory.
BATCH_ROWS = 64 * 1024


def _damaged(format_name: str, error: BaseException) -> UnreadableFile:
    return UnreadableFile(f"{format_name}: the file is damaged or truncated "
                          f"({type(error).__name__})")


def _parquet_file(fd: int) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(open_bytes(fd))
    except Exception as error:  # any library failure on a damaged file
        raise _damaged("parquet", error) from None


def _texts(column: pa.Array | pa.ChunkedArray) -> list[str]:
    """One column of a batch as text; whole columns at once where arrow can."""
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return pc.fill_null(column, "").to_pylist()  # type: ignore[no-any-return]
    if pa.types.is_integer(kind):
        return pc.fill_null(pc.cast(column, pa.string()), "").to_pylist()  # type: ignore[no-any-return]
    if pa.types.is_floating(kind):
        return ["" if v is None else float_text(v) for v in column.to_pylist()]
    return [cell_text(v) for v in column.to_pylist()]


def _parquet_rows(fd: int) -> Iterator[tuple[str, ...]]:
    parquet = _parquet_file(fd)
    try:
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
            yield from zip(*(_texts(c) for c in batch.columns), strict=True)
    except UnreadableFile:
        raise
    except Exception as error:  # any library failure on a damaged file
        raise _damaged("parquet", error) from None


def read_parquet(fd: int) -> Table:
    header = tuple(_parquet_file(fd).schema_arrow.names)
    return Table(name="", header=header, rows=lambda: _parquet_rows(fd))


Reader = Callable[..., tuple[Any, Any]]
_STATISTICAL: dict[str, Reader] = {"stata": pyreadstat.read_dta, "spss": pyreadstat.read_sav}


def _statistical_header(fd: int, format_name: str) -> tuple[str, ...]:
    try:
        _, meta = _STATISTICAL[format_name](open_bytes(fd), metadataonly=True,
                                            output_format="dict")
    except Exception as error:  # any library failure on a damaged file
        raise _damaged(format_name, error) from None
    return tuple(meta.column_names)


def _statistical_rows(fd: int, format_name: str,
                      header: Sequence[str]) -> Iterator[tuple[str, ...]]:
    read = _STATISTICAL[format_name]
    offset = 0
    while True:
        try:
            data, _ = read(open_bytes(fd), output_format="dict", row_offset=offset,
                           row_limit=BATCH_ROWS, disable_datetime_conversion=True)
        except Exception as error:  # any library failure on a damaged file
            raise _damaged(format_name, error) from None
        columns = [[cell_text(v) for v in data[name]] for name in header]
        count = len(columns[0]) if columns else 0
        yield from zip(*columns, strict=True)
        if count < BATCH_ROWS:
            return
        offset += count


def read_statistical(fd: int, format_name: str) -> Table:
    """A Stata or SPSS file (``format_name`` "stata" or "spss"). Doubles with integral values
    come out as integers: that is how these tools hold identity numbers."""
    header = _statistical_header(fd, format_name)
    return Table(name="", header=header,
                 rows=lambda: _statistical_rows(fd, format_name, header))
