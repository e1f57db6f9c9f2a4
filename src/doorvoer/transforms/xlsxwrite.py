"""Spreadsheet output (`write: format: xlsx`), written by XlsxWriter in its
constant-memory mode: a header row of the column names, numbers as numbers, dates,
date-times and times as Excel dates with a date format, booleans as TRUE/FALSE, text as
text (never a formula: `=…` stays text), NULL as an empty cell.

Constant memory means XlsxWriter keeps each sheet's rows in a temporary file until the
workbook is zipped. That file would hold the output in plain text, so it goes only to a
memory-backed folder (/dev/shm, a private 0700 folder of its own, removed at the end);
where there is none the workbook is built in memory instead. The zip is then written to
the sink (the vault, encrypting) as it is made.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from decimal import Decimal
from typing import TYPE_CHECKING, Any, BinaryIO

from doorvoer.transforms.errors import TransformError
from doorvoer.transforms.spec import WriteSpec
from doorvoer.transforms.writers import Lines, _statement_body

if TYPE_CHECKING:
    from duckdb.sqltypes import DuckDBPyType

MAX_ROWS = 1_048_575  # Excel's rows, but the header's
MAX_COLUMNS = 16_384
MAX_TEXT = 32_767
SHM = "/dev/shm"  # noqa: S108 - memory-backed on Linux: where plaintext may be, briefly


class _Sink:
    """The sink as zipfile sees it: a stream it can only write to."""

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            written = self._sink.write(view)
            if written is None:
                break
            view = view[written:]
        return len(data)

    def flush(self) -> None:
        pass


class XlsxWriter:
    rows = 0
    chunk_rows = 4096

    def __init__(self, spec: WriteSpec, sink: BinaryIO) -> None:
        import xlsxwriter

        self._spec = spec
        self._folder: str | None = None
        options: dict[str, Any] = {"strings_to_formulas": False, "strings_to_urls": False,
                                   "strings_to_numbers": False, "nan_inf_to_errors": True}
        if os.path.isdir(SHM) and os.access(SHM, os.W_OK):
            self._folder = tempfile.mkdtemp(prefix="doorvoer-xlsx-", dir=SHM)
            options.update(constant_memory=True, tmpdir=self._folder)
        else:
            options.update(in_memory=True)
        self._book = xlsxwriter.Workbook(_Sink(sink), options)
        self._sheet = self._book.add_worksheet(spec.sheet or "Sheet1")
        self._formats = {
            "date": self._book.add_format({"num_format": "yyyy-mm-dd"}),
            "datetime": self._book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"}),
            "time": self._book.add_format({"num_format": "hh:mm:ss"}),
        }
        self.rows = 0

    def begin(self, names: list[str], types: list[DuckDBPyType]) -> None:
        if len(names) > MAX_COLUMNS:
            raise TransformError("output", f"more than {MAX_COLUMNS:,} columns do not fit a "
                                 "sheet")
        if self._spec.header:
            for column, name in enumerate(names):
                self._sheet.write_string(0, column, name)

    def statement(self, sql: str) -> str:
        return f"SELECT *\nFROM (\n{_statement_body(sql)}\n) AS q"

    def write(self, lines: Lines) -> None:
        sheet, formats = self._sheet, self._formats
        first = 1 if self._spec.header else 0
        for values in lines:
            self.rows += 1
            if self.rows > MAX_ROWS:
                raise TransformError("output", f"more than {MAX_ROWS:,} rows do not fit a "
                                     "sheet", line=self.rows)
            r = self.rows - 1 + first
            for c, v in enumerate(values):
                if v is None:
                    continue
                if isinstance(v, bool):
                    sheet.write_boolean(r, c, v)
                elif isinstance(v, int | float | Decimal):
                    sheet.write_number(r, c, float(v))
                elif isinstance(v, dt.datetime):
                    if v.tzinfo is not None:  # Excel has no zones: in UTC
                        v = v.astimezone(dt.UTC).replace(tzinfo=None)
                    sheet.write_datetime(r, c, v, formats["datetime"])
                elif isinstance(v, dt.date):
                    sheet.write_datetime(r, c, dt.datetime(v.year, v.month, v.day),
                                         formats["date"])
                elif isinstance(v, dt.time):
                    sheet.write_datetime(r, c, v.replace(tzinfo=None), formats["time"])
                else:
                    text = v if isinstance(v, str) else str(v)
                    if len(text) > MAX_TEXT:
                        raise TransformError("output", f"row {self.rows}, column {c + 1}: a "
                                             f"text of more than {MAX_TEXT:,} characters does "
                                             "not fit a cell", line=self.rows, column=c + 1)
                    sheet.write_string(r, c, text)

    def finish(self) -> None:
        try:
            self._book.close()
        finally:
            self._discard()

    def _discard(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def __del__(self) -> None:  # a transform that failed half-way: no file stays behind
        self._discard()
