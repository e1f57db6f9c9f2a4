"""Spreadsheet input (`format: xlsx`, which also reads .xlsm, .xlsb, .xls and .ods):
one sheet, read by calamine (python-calamine, Rust).

Behaviour:
- `sheet`: a name, or a 0-based index; default the first sheet.
- `header_row`: the row with the column names, as Excel numbers rows (1 = the first;
  with `range`, 1 = the range's first row); the rows above it are skipped. An empty
  name becomes columnN, a repeated one gets `_1`, `_2`, ...
- `range` (`B3:H500`): only those cells are read.
- Types: numbers are BIGINT when every number of the column is whole, else DOUBLE;
  dates DATE, date-times TIMESTAMP, times TIME, TRUE/FALSE BOOLEAN, text VARCHAR;
  a column that mixes kinds is VARCHAR (each value as its text). Empty cells are NULL;
  rows that are empty throughout are skipped.

The workbook is read whole into memory (a zip is not read as a stream): at most
`MAX_XLSX_BYTES`, and at most `MAX_CELLS` cells from A1 to its last cell (counted from
the sheet's cell references before calamine loads it: calamine holds the range densely).
The rows reach DuckDB through a pipe as text of our own making, as the JSON reader's do
(`pipes.py`); no error quotes a cell.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import re
from collections.abc import Iterator
from enum import IntEnum
from typing import Any, BinaryIO

import duckdb

from doorvoer.transforms.clock import Deadline
from doorvoer.transforms.errors import TransformError
from doorvoer.transforms.pipes import NULL, FedInput, Feed, encode_rows, unique_names, view_sql
from doorvoer.transforms.spec import ReadSpec

MAX_XLSX_BYTES = 256 * 1_048_576
MAX_UNZIPPED_BYTES = 1024 * 1_048_576  # what a zip-based workbook may unpack to
MAX_RATIO = 250  # how much a member may grow when unpacked (text rarely passes 20)
MAX_CELLS = 20_000_000
MAX_COLUMNS = 2048
LARGE_BYTES = 1 << 20
ROW_SLACK_BYTES = 64 * 1024
BATCH_ROWS = 1024


class Kind(IntEnum):
    NULL = 0
    BOOL = 1
    INT = 2
    FLOAT = 3
    DATE = 4
    TIMESTAMP = 5
    TIME = 6
    STR = 7
    TEXT = 8  # mixed


_DUCKDB = {Kind.NULL: "VARCHAR", Kind.BOOL: "BOOLEAN", Kind.INT: "BIGINT",
           Kind.FLOAT: "DOUBLE", Kind.DATE: "DATE", Kind.TIMESTAMP: "TIMESTAMP",
           Kind.TIME: "TIME", Kind.STR: "VARCHAR", Kind.TEXT: "VARCHAR"}


def _kind(value: object) -> Kind:
    if value is None or value == "":
        return Kind.NULL
    if isinstance(value, bool):
        return Kind.BOOL
    if isinstance(value, int):
        return Kind.INT if abs(value) < 2**63 else Kind.FLOAT
    if isinstance(value, float):
        return Kind.INT if value.is_integer() and abs(value) < 2**53 else Kind.FLOAT
    if isinstance(value, dt.datetime):
        return Kind.TIMESTAMP
    if isinstance(value, dt.date):
        return Kind.DATE
    if isinstance(value, dt.time):
        return Kind.TIME
    return Kind.STR


def _merge(a: Kind, b: Kind) -> Kind:
    if a == b or b == Kind.NULL:
        return a
    if a == Kind.NULL:
        return b
    if {a, b} == {Kind.INT, Kind.FLOAT}:
        return Kind.FLOAT
    if {a, b} == {Kind.DATE, Kind.TIMESTAMP}:
        return Kind.TIMESTAMP
    return Kind.TEXT


def _text(value: object, kind: Kind) -> str:
    """A cell as the text DuckDB reads for its column's kind."""
    if value is None or value == "":
        return NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if kind == Kind.INT or (value.is_integer() and kind == Kind.TEXT and abs(value) < 2**53):
            return str(int(value))
        return repr(value) if math.isfinite(value) else NULL
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    return str(value)


class XlsxInput(FedInput):
    """The rows of one sheet, read whole, for the view `input` of one transform."""

    def __init__(self, spec: ReadSpec, source: BinaryIO, deadline: Deadline) -> None:
        self._deadline = deadline
        self.failure: BaseException | None = None
        self.columns: list[str] = []
        self.rows_read = 0
        self._kinds: list[Kind] = []
        self._rows: list[list[object]] = []
        self._size = 0
        self._longest = 0
        data = _read_all(source)
        rows = _sheet_rows(data, spec)
        del data
        self._take(rows, spec)

    def _take(self, rows: list[list[object]], spec: ReadSpec) -> None:
        cells = spec.cells
        if cells is not None:
            r0, c0, r1, c1 = cells
            rows = [row[c0:c1 + 1] for row in rows[r0:r1 + 1]]
        header = spec.header_row - 1
        if header >= len(rows):
            return  # the sheet ends before its header: no columns, no rows
        names = rows[header]
        body = rows[header + 1:]
        width = max([len(names), *(len(r) for r in body)]) if body else len(names)

        def blank(i: int) -> bool:  # no name and no value: the sheet's own margin
            return all((r[i] if i < len(r) else "") in ("", None) for r in [names, *body])

        while width and blank(width - 1):
            width -= 1
        left = 0
        while left < width and blank(left):
            left += 1
        if left:
            names, body = names[left:], [r[left:] for r in body]
            width -= left
        if width > MAX_COLUMNS:
            raise TransformError("xlsx", f"more than {MAX_COLUMNS} columns")
        if not width:
            return
        self.columns = unique_names([_text(n, Kind.TEXT) if n not in ("", None) else ""
                                     for n in (list(names) + [""] * width)[:width]])
        kinds = [Kind.NULL] * width
        kept: list[list[object]] = []
        for index, row in enumerate(body):
            if index % 4096 == 0:
                self._deadline.check()
            values = (list(row) + [""] * width)[:width]
            if all(v in ("", None) for v in values):
                continue
            for i, v in enumerate(values):
                kinds[i] = _merge(kinds[i], _kind(v))
            kept.append(values)
        self._kinds = [Kind.STR if k == Kind.NULL else k for k in kinds]
        self._rows = kept
        self.rows_read = len(kept)

    @property
    def empty(self) -> bool:
        return not self.columns

    @property
    def large(self) -> bool:
        return self.rows_read * max(1, len(self.columns)) > LARGE_BYTES // 8

    def _text_rows(self) -> Iterator[bytes]:
        kinds = self._kinds
        for start in range(0, len(self._rows), BATCH_ROWS):
            batch = [[_text(v, kinds[i]) for i, v in enumerate(row)]
                     for row in self._rows[start:start + BATCH_ROWS]]
            yield encode_rows(batch)

    def attach(self, con: duckdb.DuckDBPyConnection, directory: str) -> None:
        if self.empty:
            return
        longest = max((sum(len(_text(v, Kind.TEXT)) for v in row) for row in self._rows),
                      default=0)
        self._feed = Feed(directory, self._text_rows())
        self._feed.start(con, view_sql(self._feed.pipe.path, self.columns,
                                       [_DUCKDB[k] for k in self._kinds],
                                       4 * longest + ROW_SLACK_BYTES))

    def _release(self) -> None:
        self._rows = []


def _read_all(source: BinaryIO) -> bytes:
    parts, size = [], 0
    while chunk := source.read(1 << 20):
        size += len(chunk)
        if size > MAX_XLSX_BYTES:
            raise TransformError("limit", f"the workbook is larger than the limit of "
                                 f"{MAX_XLSX_BYTES // 1_048_576} MiB")
        parts.append(chunk)
    return b"".join(parts)


def _check_unpacked(data: bytes) -> None:
    """A zip-based workbook (xlsx, ods) must not unpack to more than MAX_UNZIPPED_BYTES,
    nor any part of it grow more than MAX_RATIO times: a zip bomb is refused before
    anything is unpacked. Read from the zip's directory, which says what each part is."""
    import zipfile

    if not data.startswith(b"PK"):
        return  # .xls and .xlsb parts are not checked here; calamine reads them as they are
    try:
        book = zipfile.ZipFile(io.BytesIO(data))
        parts = book.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise TransformError("xlsx", "the file is not a workbook that can be read (xlsx, "
                             "xlsm, xlsb, xls or ods)") from None
    total = sum(p.file_size for p in parts)
    if total > MAX_UNZIPPED_BYTES or any(
            p.file_size > MAX_RATIO * max(p.compress_size, 1) and p.file_size > 1_048_576
            for p in parts):
        raise TransformError("limit", f"the workbook unpacks to {total / 1_048_576:,.0f} MiB "
                             f"or a part grows more than {MAX_RATIO} times (a zip bomb?); the "
                             f"limit is {MAX_UNZIPPED_BYTES // 1_048_576} MiB")
    for part in parts:
        if part.filename.startswith("xl/worksheets/") and part.filename.endswith(".xml"):
            rows, columns = _extent(book, part.filename)
            if rows * columns > MAX_CELLS:
                raise TransformError("limit", f"a sheet spans {rows:,} rows by {columns:,} "
                                     f"columns: more than {MAX_CELLS:,} cells, most of them "
                                     "empty (calamine would hold them all)")


_REF = re.compile(rb'<c r="([A-Z]{1,3})([0-9]{1,7})"')


def _extent(book: Any, name: str) -> tuple[int, int]:
    """The rows and columns a sheet's cells span (calamine holds that range densely),
    read from the cells' references as the part unpacks, a chunk at a time."""
    rows = columns = 0
    tail = b""
    with book.open(name) as f:
        while chunk := f.read(1 << 20):
            text = tail + chunk
            for m in _REF.finditer(text):
                rows = max(rows, int(m.group(2)))
                col = 0
                for ch in m.group(1):
                    col = col * 26 + ch - 64
                columns = max(columns, col)
            tail = text[-32:]
    return rows, columns


def _sheet_rows(data: bytes, spec: ReadSpec) -> list[list[object]]:
    """The sheet's cells as rows, from the sheet's first row and column (A1)."""
    import python_calamine as calamine

    _check_unpacked(data)
    try:
        book = calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    except Exception:  # noqa: BLE001 - calamine's errors quote the file: say it in our words
        raise TransformError("xlsx", "the file is not a workbook that can be read (xlsx, "
                             "xlsm, xlsb, xls or ods)") from None
    try:
        count = len(book.sheet_names)
        if isinstance(spec.sheet, int):
            if not 0 <= spec.sheet < count:
                raise TransformError("xlsx", f"there is no sheet {spec.sheet}: the workbook "
                                     f"has {count} (counted from 0)")
            sheet = book.get_sheet_by_index(spec.sheet)
        elif spec.sheet is not None:
            if spec.sheet not in book.sheet_names:
                raise TransformError("xlsx", f"the workbook has no sheet named {spec.sheet!r} "
                                     f"(it has {count})")
            sheet = book.get_sheet_by_name(spec.sheet)
        else:
            if not count:
                raise TransformError("xlsx", "the workbook has no sheet")
            sheet = book.get_sheet_by_index(0)
        end = sheet.end or (-1, -1)
        height, width = end[0] + 1, end[1] + 1
        if height * width > MAX_CELLS:
            raise TransformError("limit", f"the sheet has more than {MAX_CELLS:,} cells "
                                 f"({height:,} rows by {width:,} columns)")
        rows = sheet.to_python(skip_empty_area=False)  # from A1, as Excel numbers them
    except TransformError:
        raise
    except Exception:  # noqa: BLE001 - see above
        raise TransformError("xlsx", "the sheet cannot be read: the file is damaged") from None
    finally:
        book.close()
    return [list(r) for r in rows]
