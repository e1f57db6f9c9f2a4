"""CSV input: parsed by Python's csv module, handed to DuckDB through a pipe.

Behaviour:
- Every column is text unless `infer` is set; then the types are inferred from
  the first block of rows (see `inference.py`).
- Blank lines, and records whose fields are all empty (`;;;` rows that
  spreadsheets leave behind), are skipped.
- Without a header the columns are named column1, column2, ...; an empty
  header name becomes columnN, a repeated one gets `_1`, `_2`, ...
- A quote opens a quoted value at the start of a field only; two quotes in a
  quoted value stand for one; after the closing quote the field goes on
  unquoted (`"c"d` is `cd`). A record with more or fewer fields than the first
  one, and a quoted value that is never closed, are errors that name the
  record's first physical line.
- Lines are CR LF, CR or LF; a line break inside a quoted value is part of it.
- The whole input is read, validated and counted, also when the query needs
  only its first rows.

How the rows reach DuckDB: the first MiB is read when the input is made. An
input that ends within it becomes a temporary table (one list of values per
column, as query parameters). Of a larger one, a thread parses the rest and
writes all rows as CSV of its own making (comma, double quotes, LF, values
already checked and in DuckDB's own notation) into a pipe (`pipes.py`) that the
view `input` reads with DuckDB's `read_csv`. Records are parsed and checked a
batch at a time, so that the Python code per record is C code (the csv module,
`map`, `set`): lines are counted only for an error.

DuckDB never parses the tenant's text, so its own error messages (which quote
rows) cannot come from it; and what DuckDB reads is always well-formed, so every
data error is found here, with its line.

Python's csv module rather than DuckDB's reader: DuckDB's reader refuses a file
whose records end in both LF and CR LF, and a closing quote followed by text;
its errors count records, not lines; and the way it is told what to read
(the file's name) needs the input to be a file. pyarrow's reader did all of
this but costs 50 MiB of libraries in the worker process.
"""

from __future__ import annotations

import csv
import io
import itertools
import threading
from collections.abc import Iterator
from typing import BinaryIO, Literal

import duckdb

from doorvoer.transforms.clock import Deadline
from doorvoer.transforms.decoding import Utf8Reader
from doorvoer.transforms.errors import TransformError
from doorvoer.transforms.inference import TEXT, ColumnType, infer_types
from doorvoer.transforms.pipes import (
    NULL,
    NULL_MARK,
    Feed,
    encode_rows,
    identifier,
    unique_names,
    view_sql,
)
from doorvoer.transforms.spec import ReadSpec

# A record spanning several lines may be at most this long: a quoted value that
# is never closed would otherwise run to the end of the input.
MIN_RECORD_BYTES = 1 << 20
RECORD_SLACK_BYTES = 64 * 1024
# DuckDB's CSV reader holds a vector of 2,048 values per column: 3,000 text
# columns did not fit in the default memory limit of 256 MB, 2,048 did.
MAX_COLUMNS = 2048
# Text decoded, and records parsed and written to the pipe, at a time.
READ_BYTES = 64 * 1024
BATCH_RECORDS = 1024
# The first this many bytes are read before the query starts: the types are
# inferred from their rows (with `infer`), and an input that ends within them
# becomes a table, without a pipe or a thread (most files are small).
FIRST_BYTES = 1 << 20
# Python's csv module ends a quoted value that the input never closes at the end
# of the input, without a word. So one more line follows the input: a quoted
# value of its own, or, if a quoted value is still open, the text that closes it
# and ends it in this mark, which no real value ends in.
_END_MARK = "\x00\x01END\x01\x00"

_field_limit_lock = threading.Lock()


class CsvInput:
    """The rows of a CSV stream, read once, for the view `input` of one transform."""

    category: Literal["csv", "fixed"] = "csv"  # what its errors are about

    def __init__(self, spec: ReadSpec, source: BinaryIO, deadline: Deadline) -> None:
        self._spec = spec
        self._deadline = deadline
        self._record_limit = record_bytes(spec)
        _allow_fields(self._record_limit)
        self._text = Utf8Reader(
            source,
            spec.encoding,
            max_line_bytes=spec.max_line_bytes,
            category="csv",
            final_newline=True,
        )
        lines = io.TextIOWrapper(
            io.BufferedReader(self._text, READ_BYTES), encoding="utf-8", newline=""
        )
        self._end_record = [_END_MARK]
        self._unclosed_end = _END_MARK + spec.quote
        self._reader = csv.reader(
            itertools.chain(lines, [spec.quote + _END_MARK + spec.quote + "\n"]),
            delimiter=spec.delimiter,
            quotechar=spec.quote,
            doublequote=True,
            strict=False,
        )
        self.rows_read = 0
        self._failure: BaseException | None = None
        self.columns: list[str] = []
        self._types: list[ColumnType] = []
        self._width = 0
        self._first: list[list[str]] = []  # checked rows read before the thread starts
        self._whole = False  # _first holds every row of the input
        self._feed: Feed | None = None
        try:
            self._begin()
        except TransformError as exc:
            raise self._fail(exc) from None

    @property
    def empty(self) -> bool:
        """No columns: the input has no record at all (not even a header)."""
        return not self.columns

    def _begin(self) -> None:
        """Read the header (or the first record) and the first block of rows: all of a
        small input; with `infer`, the rows the types are inferred from."""
        first: list[tuple[int, list[list[str]]]] = []
        end = False
        while not self._width and not end:
            start, batch, end = self._read_batch()
            while batch and not batch[0]:  # blank lines before the first record
                start, batch = start + 1, batch[1:]
            if batch:
                self._start(batch[0])
                if self._spec.header:
                    start, batch = start + _lines_of(batch[0]), batch[1:]
                first.append((start, batch))
        if not self._width:
            return
        while not end and self._text.raw_bytes < FIRST_BYTES:
            start, batch, end = self._read_batch()
            first.append((start, batch))
        if self._spec.infer:
            self._types = infer_types(
                [row for _, batch in first for row in batch if len(row) == self._width],
                self._width, self._spec.decimal,
            )
        else:
            self._types = [TEXT] * self._width
        for start, batch in first:
            self._first += self._checked(start, batch)
        self._whole = end

    def _start(self, record: list[str]) -> None:
        if len(record) > MAX_COLUMNS:
            raise TransformError(self.category, f"more than {MAX_COLUMNS} columns")
        self._width = len(record)
        if self._spec.header:
            self.columns = unique_names(record)
        else:
            self.columns = [f"column{i}" for i in range(1, self._width + 1)]

    def attach(self, con: duckdb.DuckDBPyConnection, directory: str) -> None:
        """Make `input` on `con`: a table of a small input, else a view that reads a pipe
        which a thread writes the rows into."""
        if self.empty:
            return
        if self._whole:
            self._table(con)
            return
        self._feed = Feed(directory, self._chunks())
        limit = 2 * self._record_limit + RECORD_SLACK_BYTES  # quotes doubled, at most
        self._feed.start(con, view_sql(self._feed.pipe.path, self.columns,
                                       [kind.duckdb for kind in self._types], limit))

    @property
    def large(self) -> bool:
        """Large enough that the database that read it is not reused (see sandbox.py):
        the rows went through a pipe, not a table."""
        return self._feed is not None

    @property
    def failure(self) -> BaseException | None:
        """What went wrong with the input (its data, or the source's own error)."""
        if self._failure is None and self._feed is not None and self._feed.failure is not None:
            failure = self._feed.failure
            if not isinstance(failure, TransformError) and self._text.failure is not None:
                failure = self._text.failure
            self._failure = failure
        return self._failure

    def drain(self) -> None:
        """The query is over: read what it left unread, to validate and count it all."""
        if self._feed is not None:
            self._feed.wait()
        if self.failure is not None:
            raise self.failure

    def abandon(self) -> None:
        """The query failed: stop reading, keep a failure found so far."""
        if self._feed is not None:
            self._feed.abandon()

    def close(self) -> None:
        """Let go of the pipe, the thread, the text: the transform is over."""
        if self._feed is not None:
            self._feed.close()
            self._feed = None
        self._first = []
        self._text.close()

    def _chunks(self) -> Iterator[bytes]:
        """The rows for the pipe as text for DuckDB, read and checked as they are taken."""
        rows, self._first = self._first, []
        for start in range(0, len(rows), BATCH_RECORDS):
            yield encode_rows(rows[start : start + BATCH_RECORDS])
        del rows
        end = False
        while not end:
            start, batch, end = self._read_batch()
            checked = self._checked(start, batch)
            feed = self._feed
            yield b"" if feed is None or feed.pipe.stopped else encode_rows(checked)

    # reading and checking

    def _read_batch(self) -> tuple[int, list[list[str]], bool]:
        """The next records as Python's csv module reads them ([] for a blank line), the
        line the first starts on, and whether the input ends after them."""
        reader = self._reader
        start = reader.line_num + 1
        batch: list[list[str]] = []
        append = batch.append
        try:
            for record in itertools.islice(reader, BATCH_RECORDS):
                append(record)
        except csv.Error as exc:
            raise self._csv_error(exc, _line_after(start, batch)) from None
        end = not batch or batch[-1] == self._end_record
        if end and batch:
            batch.pop()
        # the record that swallowed the end of the input (a quoted value never closed)
        if batch and batch[-1] and batch[-1][-1].endswith(self._unclosed_end):
            line = _line_after(start, batch[:-1])
            raise TransformError(
                "csv", f"line {line}: a quoted value is never closed (a closing quote is "
                "missing)", line=line,
            )
        if reader.line_num - start + 1 > len(batch) + end:  # a record spans lines
            self._check_lengths(start, batch)
        if self._deadline.expired:
            raise self._deadline.error()
        return start, batch, end

    def _check_lengths(self, start: int, batch: list[list[str]]) -> None:
        line = start
        for record in batch:
            lines = _lines_of(record)
            if lines > 1 and sum(map(len, record)) > self._record_limit:
                raise _too_long(line, self._record_limit)
            line += lines

    def _checked(self, start: int, batch: list[list[str]]) -> list[list[str]]:
        """The rows of a batch that starts on line `start`: blank lines and empty
        records dropped, ragged records refused, values converted (with `infer`)."""
        width = self._width
        if self._spec.infer:
            return self._converted(start, batch)
        if set(map(len, batch)) != {width}:
            for index, record in enumerate(batch):
                if record and len(record) != width:
                    raise self._ragged(_line_after(start, batch[:index]), record)
            batch = [record for record in batch if record]
        if not all(map(any, batch)):
            batch = [record for record in batch if any(record)]
        self.rows_read += len(batch)
        return batch

    def _converted(self, start: int, batch: list[list[str]]) -> list[list[str]]:
        """`_checked` with inferred types: record by record, each value converted."""
        rows: list[list[str]] = []
        line = start
        for record in batch:
            if record and len(record) != self._width:
                raise self._ragged(line, record)
            if any(record):
                rows.append(self._convert(line, record))
            line += _lines_of(record)
        self.rows_read += len(rows)
        return rows

    def _convert(self, line: int, fields: list[str]) -> list[str]:
        """The fields of a record in DuckDB's notation for their inferred types."""
        out = list(fields)
        for index, kind in enumerate(self._types):
            value = fields[index]
            if kind is TEXT:
                continue
            if value == "":
                out[index] = NULL
                continue
            converted = kind.convert(value)
            if converted is None:
                raise TransformError(
                    self.category,
                    f"line {line}: a value in column {index + 1} does not fit the type "
                    f"{kind.name} inferred from the first rows (read it as text "
                    "with infer: false and cast it in SQL)",
                    line=line,
                    column=index + 1,
                )
            out[index] = converted
        return out

    def _ragged(self, line: int, record: list[str]) -> TransformError:
        return TransformError(
            "csv", f"line {line}: expected {self._width} fields, found {len(record)}", line=line
        )

    # a small input: a table

    def _table(self, con: duckdb.DuckDBPyConnection) -> None:
        """`input` as a temporary table of the rows read: one list of values per column."""
        rows, self._first = self._first, []
        columns = [list(values) for values in zip(*rows, strict=True)] if rows else None
        parts = []
        for index, (kind, title) in enumerate(zip(self._types, self.columns, strict=True)):
            # lists of Python strings are VARCHAR[] already: a cast costs a small
            # input's table a third more (2.3 ms instead of 1.5 for 14 columns)
            value = f"unnest(${index + 1}{'' if columns else '::VARCHAR[]'})"
            if kind is not TEXT:
                value = f"nullif({value}, '{NULL_MARK}')::{kind.duckdb}"
            parts.append(f"{value} AS {identifier(title)}")
        parameters = columns if columns is not None else [[] for _ in self.columns]
        con.execute("CREATE TEMP TABLE input AS SELECT " + ", ".join(parts), parameters)

    # errors

    def _csv_error(self, exc: csv.Error, line: int) -> BaseException:
        if self._text.failure is not None:
            return self._text.failure
        if "field limit" in str(exc):
            return _too_long(line, self._record_limit)
        return TransformError("csv", f"line {line}: the text cannot be read as CSV", line=line)

    def _fail(self, failure: BaseException) -> BaseException:
        if self._failure is None:
            self._failure = failure
        return self._failure


def _lines_of(record: list[str]) -> int:
    """How many lines a record spans: one, plus the line breaks inside its values."""
    breaks = 0
    for value in record:
        if "\n" in value or "\r" in value:
            breaks += value.count("\n") + value.count("\r") - value.count("\r\n")
    return 1 + breaks


def _line_after(start: int, records: list[list[str]]) -> int:
    """The line after `records`, which start on line `start`."""
    return start + sum(map(_lines_of, records))


def record_bytes(spec: ReadSpec) -> int:
    """How long a record that spans several lines may be."""
    return max(MIN_RECORD_BYTES, spec.max_line_bytes + RECORD_SLACK_BYTES)


def _allow_fields(size: int) -> None:
    """Let Python's csv module read fields of `size` (its limit is the process's)."""
    with _field_limit_lock:
        if csv.field_size_limit() < size:
            csv.field_size_limit(size)


def _too_long(line: int, limit: int) -> TransformError:
    return TransformError(
        "csv",
        f"line {line}: a record is longer than the limit of {limit} bytes "
        "(is a closing quote missing?)",
        line=line,
    )
