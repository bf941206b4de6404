"""Reading and writing the tables anonymisation works on: CSV, Parquet, Stata and SPSS.

The input is opened once; its format comes from its extension and must be confirmed by its
first bytes, and every reader then reads that same open file (through ``/proc/self/fd``), so
what was checked is what is read. The output keeps the input's format and everything that
describes a column which still holds what it held (see :mod:`agent.anonymise.tables_meta`),
except what would leak: labels of values no longer there, identity numbers in any metadata.

Nothing is ever lost (L7): the output is written to a new temporary file beside OUT, flushed to
disk and only then renamed into place, refusing an existing OUT unless asked; the input can
never be the output, under any name, so it is never changed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from agent.anonymise.tables_delimited import read_delimited, write_delimited
from agent.anonymise.tables_labelled import output_dictionary, read_labelled, write_labelled
from agent.anonymise.tables_meta import (
    DelimitedMeta,
    FileIdentity,
    ParquetMeta,
    TableFormat,
    TableMeta,
    frozen_mapping,
    masked_bytes,
    not_readable,
)
from agent.durable import rename_noreplace
from agent.errors import AlreadyExists, Failed, InvalidRequest, VokterError

__all__ = ["TableFile", "TableFormat", "TableMeta", "read_table", "write_table"]

_EXTENSIONS: dict[str, TableFormat] = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv",
    ".parquet": "parquet", ".pq": "parquet",
    ".dta": "stata",
    ".sav": "spss", ".zsav": "spss",
}
_NAMES: dict[TableFormat, str] = {"csv": "CSV", "parquet": "Parquet", "stata": "Stata",
                                  "spss": "SPSS"}
#: How much of the start of a file the format checks and the CSV sniffing look at.
_SAMPLE_SIZE = 64 * 1024
_PARQUET_CODECS = {"snappy", "gzip", "brotli", "zstd", "lz4", "none"}
#: Written by pyarrow itself, or describing a pandas index and columns the output may lack.
_ARROW_SCHEMA_KEY = b"ARROW:schema"
_PANDAS_KEY = b"pandas"
#: Field metadata polars writes itself (a Categorical's or an Enum's categories).
_POLARS_PREFIX = b"_PL_"


@dataclass(frozen=True)
class TableFile:
    """A table as read, with what writing it back in the same format needs. CSV columns are
    all text (``pl.Utf8``), exactly as written in the file."""

    path: str
    format: TableFormat
    frame: pl.DataFrame
    meta: TableMeta


def _magic_format(sample: bytes) -> TableFormat | None:
    if sample.startswith(b"PAR1"):
        return "parquet"
    if sample.startswith(b"<stata_dta>") or (
            # Stata 8-12 (formats 113-115): release, byte order 1 or 2, file type 1, a zero.
            len(sample) >= 4 and sample[0] in (0x71, 0x72, 0x73) and sample[1] in (1, 2)
            and sample[2] == 1 and sample[3] == 0):
        return "stata"
    if sample.startswith((b"$FL2", b"$FL3")):
        return "spss"
    return None


def _open_input(path: Path) -> tuple[int, os.stat_result]:
    name = str(path)
    try:
        # O_NONBLOCK: a FIFO named like a table must not hang the reader.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise InvalidRequest(f"{name}: no such file", hint="check the path") from None
    except PermissionError:
        raise InvalidRequest(f"{name}: you may not read this file") from None
    except OSError as error:
        raise InvalidRequest(f"{name}: cannot be opened ({error.strerror})") from None
    status = os.fstat(fd)
    if stat.S_ISDIR(status.st_mode):
        os.close(fd)
        raise InvalidRequest(f"{name}: a folder, not a file", hint="name the table file")
    if not stat.S_ISREG(status.st_mode):
        os.close(fd)
        raise not_readable(name, "not a regular file")
    return fd, status


def _read_parquet(reopen: str, name: str, identity: FileIdentity) -> tuple[pl.DataFrame,
                                                                            ParquetMeta]:
    try:
        parquet = pq.ParquetFile(reopen)
        schema = parquet.schema_arrow
        layout = parquet.metadata
        codec = "zstd"
        if layout.num_row_groups and layout.num_columns:
            codec = str(layout.row_group(0).column(0).compression).lower()
            codec = {"uncompressed": "none", "lz4_raw": "lz4"}.get(codec, codec)
        frame = pl.read_parquet(reopen)
    except Exception:  # any library failure on a damaged file is one answer
        raise not_readable(name, "a damaged or truncated Parquet file") from None
    meta = ParquetMeta(
        identity=identity,
        fields=frozen_mapping({field.name: field for field in schema}),
        schema_metadata=frozen_mapping(dict(schema.metadata or {})),
        compression=codec if codec in _PARQUET_CODECS else "zstd")
    return frame, meta


def read_table(path: Path | str) -> TableFile:
    """Read CSV/TSV (.csv, .tsv, .txt), Parquet (.parquet, .pq), Stata (.dta) or SPSS (.sav,
    .zsav). Missing values are null; Stata/SPSS dates and datetimes are pl.Date/pl.Datetime.
    Anything else raises InvalidRequest with one line naming the file."""
    path = Path(path)
    name = str(path)
    format_name = _EXTENSIONS.get(path.suffix.lower())
    if format_name is None:
        raise not_readable(name, f"unknown extension '{path.suffix}'")
    fd, status = _open_input(path)
    try:
        if status.st_size == 0:
            raise not_readable(name, "the file is empty")
        sample = os.pread(fd, _SAMPLE_SIZE, 0)
        found = _magic_format(sample)
        if format_name == "csv" and found is not None:
            raise not_readable(name, f"{_NAMES[found]} content under a text name")
        if format_name != "csv" and found != format_name:
            raise not_readable(name, f"the content is not {_NAMES[format_name]}")
        reopen = f"/proc/self/fd/{fd}"
        identity = (status.st_dev, status.st_ino)
        frame: pl.DataFrame
        meta: TableMeta
        try:
            if format_name == "csv":
                frame, meta = read_delimited(reopen, name, sample, path.suffix.lower(), identity)
            elif format_name == "parquet":
                frame, meta = _read_parquet(reopen, name, identity)
            else:
                frame, meta = read_labelled(reopen, name, format_name, sample, identity)
        except VokterError:
            raise
        except Exception:  # bad input gives one line, never a traceback
            raise not_readable(name, "it could not be parsed") from None
    finally:
        os.close(fd)
    return TableFile(path=name, format=format_name, frame=frame, meta=meta)


def _kept(frame: pl.DataFrame, source: pl.DataFrame, generalised: Collection[str]) -> set[str]:
    """The columns that still hold what they held: same type, not generalised."""
    return {column for column in frame.columns if column not in generalised
            and column in source.schema and frame.schema[column] == source.schema[column]}


def _with_occurring_categories(frame: pl.DataFrame) -> pl.DataFrame:
    """An Enum's categories are written with it, the values no row holds any more too (a
    suppressed municipality); each Enum keeps the categories that occur, in their order."""
    enums: list[pl.Expr] = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Enum):
            occurring = set(frame.get_column(name).drop_nulls().cast(pl.Utf8).to_list())
            categories = [c for c in dtype.categories.to_list() if c in occurring]
            enums.append(pl.col(name).cast(pl.Utf8).cast(pl.Enum(categories)))
    return frame.with_columns(enums) if enums else frame


def _restored(original: pa.Field, written: pa.Field, nulls: int) -> pa.Field:
    """The input's field, but with polars' own entries (the categories) as written now."""
    metadata = {key: value for key, value in (original.metadata or {}).items()
                if not key.startswith(_POLARS_PREFIX)}
    metadata |= {key: value for key, value in (written.metadata or {}).items()
                 if key.startswith(_POLARS_PREFIX)}
    field = original.with_nullable(original.nullable or nulls > 0)
    return field.with_metadata(metadata) if metadata else field.remove_metadata()


def _write_parquet(frame: pl.DataFrame, source: pl.DataFrame, meta: ParquetMeta, target: str,
                   generalised: Collection[str]) -> int:
    """Kept columns get their arrow type and field metadata back; the file's key-value
    metadata is kept, except pandas' own, which describes columns only while none changed.
    Returns how many metadata values had an identity number masked."""
    kept = _kept(frame, source, generalised)
    table = _with_occurring_categories(frame).to_arrow()
    arrays: list[Any] = []
    fields: list[pa.Field] = []
    masked = 0
    for column, field in zip(table.columns, table.schema, strict=True):
        original = meta.fields.get(field.name)
        if original is not None and field.name in kept:
            try:
                column = column.cast(original.type)
            except pa.ArrowException:
                pass
            else:
                field = _restored(original, field, column.null_count)
        if field.metadata:
            metadata, count = masked_bytes(field.metadata)
            field, masked = field.with_metadata(metadata), masked + count
        arrays.append(column)
        fields.append(field)
    untouched = frame.columns == source.columns and kept == set(frame.columns)
    metadata, count = masked_bytes({key: value for key, value in meta.schema_metadata.items()
                                    if key != _ARROW_SCHEMA_KEY
                                    and (untouched or key != _PANDAS_KEY)})
    schema = pa.schema(fields, metadata=metadata or None)
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), target,
                   compression=meta.compression)
    return masked + count


def _write_format(source: TableFile, frame: pl.DataFrame, target: str,
                  generalised: Collection[str]) -> int:
    meta = source.meta
    if isinstance(meta, DelimitedMeta):
        write_delimited(frame, meta, target)
        return 0
    if isinstance(meta, ParquetMeta):
        return _write_parquet(frame, source.frame, meta, target, generalised)
    dictionary, masked = output_dictionary(frame, source.frame.schema, meta, generalised)
    write_labelled(frame, dictionary, source.format, target)
    return masked


def _refuse_input_as_output(source: TableFile, out: Path) -> None:
    """The output must not be the input by any name: the same path, a symlink to it or a hard
    link (one inode, as recorded when the input was read and as the input's path is now)."""
    try:
        target = os.stat(out)
    except OSError:
        return
    inputs = {source.meta.identity}
    with contextlib.suppress(OSError):
        now = os.stat(source.path)
        inputs.add((now.st_dev, now.st_ino))
    if (target.st_dev, target.st_ino) in inputs:
        raise InvalidRequest(f"{out}: that is the input file {source.path}",
                             hint="write the output to a new file; the input is never changed")
    if stat.S_ISDIR(target.st_mode):
        raise InvalidRequest(f"{out}: a folder", hint="name the output file")


def _open_folder(out: Path) -> int:
    if out.name in ("", ".", ".."):
        raise InvalidRequest(f"{out}: not a file name", hint="name the output file")
    try:
        return os.open(out.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise InvalidRequest(f"{out}: the folder {out.parent} does not exist") from None
    except OSError as error:
        raise InvalidRequest(f"{out}: the folder {out.parent} cannot be opened "
                             f"({error.strerror})") from None


def _write_failure(out: Path, source: TableFile, error: Exception) -> VokterError:
    if isinstance(error, VokterError):
        return error
    if isinstance(error, UnicodeEncodeError):
        encoding = getattr(source.meta, "encoding", error.encoding)
        return InvalidRequest(f"{out}: a value has no spelling in the input's encoding "
                              f"{encoding}; nothing was written")
    if isinstance(error, OSError):
        return Failed(f"{out}: could not be written ({error.strerror or error}); "
                      "nothing was written")
    return Failed(f"{out}: could not be written as {_NAMES[source.format]} "
                  f"({type(error).__name__}); nothing was written")


def write_table(source: TableFile, frame: pl.DataFrame, out: Path | str, *,
                overwrite: bool = False, generalised: Collection[str] = ()) -> int:
    """Write ``frame`` (the anonymised ``source.frame``) to ``out`` in the source's format;
    returns how many metadata texts had an identity number masked (0 almost always).

    ``generalised`` names the columns written at a level above their original values: they
    keep their variable label only, whatever their type, as does any column whose type
    changed. Value labels are written for values that occur in the output only (L6).

    Crash-safe: a new temporary file in OUT's folder (mode 0o666 less the umask), fsync,
    rename into place, fsync of the folder; on any failure the temporary is removed and OUT is
    as it was. An existing OUT is refused (AlreadyExists) unless ``overwrite``; the input as
    OUT, by any name, is refused (InvalidRequest) always.
    """
    out = Path(out)
    _refuse_input_as_output(source, out)
    folder = _open_folder(out)
    try:
        if not overwrite and os.path.lexists(out):
            raise AlreadyExists(f"{out}: already exists",
                                hint="choose another name, or allow overwriting it")
        temporary = f".{out.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o666, dir_fd=folder)
        except OSError as error:
            raise _write_failure(out, source, error) from None
        try:
            try:
                masked = _write_format(source, frame, f"/proc/self/fd/{fd}", generalised)
                os.fsync(fd)
            finally:
                os.close(fd)
            if overwrite:
                os.rename(temporary, out.name, src_dir_fd=folder, dst_dir_fd=folder)
            else:
                rename_noreplace(folder, temporary, folder, out.name)
            os.fsync(folder)
        except BaseException as error:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=folder)
            if isinstance(error, FileExistsError):
                raise AlreadyExists(f"{out}: already exists",
                                    hint="choose another name, or allow overwriting it"
                                    ) from None
            if isinstance(error, Exception):
                raise _write_failure(out, source, error) from None
            raise
    finally:
        os.close(folder)
    return masked
