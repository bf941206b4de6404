"""Excel workbooks (.xlsx, .xlsm): every sheet a table, its first row the header.

openpyxl's read-only mode streams rows from the sheet XML instead of building the workbook in
memory; ``data_only`` gives the values formulas last computed, which is what a person sees.
Numbers that hold identity numbers come back as ints or integral floats, written as integers;
a number that lost its leading zero is restored by the evidence module, not here.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from functools import partial
from typing import Any

import openpyxl

from agent.storage.formats.model import Table, UnreadableFile, open_bytes
from agent.storage.formats.values import cell_text

_EXCEL_PART = "xl/workbook.xml"


def is_workbook(fd: int) -> bool:
    """Whether a zip file is an Excel workbook (a .docx or a plain archive is not). Raises
    UnreadableFile for a zip that cannot be opened."""
    try:
        with zipfile.ZipFile(open_bytes(fd)) as archive:
            return _EXCEL_PART in archive.namelist()
    except Exception as error:  # a damaged zip raises BadZipFile, OSError, ValueError...
        raise UnreadableFile(f"zip: the archive is damaged or truncated "
                             f"({type(error).__name__})") from None


def _damaged(error: BaseException) -> UnreadableFile:
    return UnreadableFile(f"excel: the workbook is damaged or truncated ({type(error).__name__})")


def _workbook(fd: int) -> Any:
    try:
        return openpyxl.load_workbook(open_bytes(fd), read_only=True, data_only=True)
    except Exception as error:  # any library failure on a damaged workbook
        raise _damaged(error) from None


def _row_text(row: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple(cell_text(v) for v in row)


def _header(rows: Iterator[tuple[Any, ...]]) -> tuple[str, ...]:
    """The first row, without the empty cells a sheet reports after its last column."""
    first = list(_row_text(next(rows, ())))
    while first and not first[-1].strip():
        first.pop()
    return tuple(first)


def _sheet_rows(fd: int, sheet: str) -> Iterator[tuple[str, ...]]:
    workbook = _workbook(fd)
    try:
        rows = workbook[sheet].iter_rows(values_only=True)
        next(rows, None)
        for row in rows:
            text = _row_text(row)
            if any(text):
                yield text
    except Exception as error:  # any library failure on a damaged workbook
        raise _damaged(error) from None
    finally:
        workbook.close()


def read_workbook(fd: int) -> list[Table]:
    workbook = _workbook(fd)
    try:
        # Worksheets only: a chart sheet has no cells.
        headers = [(sheet.title, _header(sheet.iter_rows(values_only=True)))
                   for sheet in workbook.worksheets]
    except Exception as error:  # any library failure on a damaged workbook
        raise _damaged(error) from None
    finally:
        workbook.close()
    return [Table(name=name, header=header, rows=partial(_sheet_rows, fd, name))
            for name, header in headers]
