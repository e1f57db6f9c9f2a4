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

How the rows reach DuckDB: the header (and, with `infer`, the first block) is
read when the input is made; then a thread parses the rest and writes the rows
as CSV of its own making (comma, double quotes, LF, values already checked and
in DuckDB's own notation) into a pipe (`pipes.py`) that the view `input` reads
with DuckDB's `read_csv`. DuckDB never parses the tenant's text, so its own
error messages (which quote rows) cannot come from it; and what DuckDB reads is
always well-formed, so every data error is found here, with its line.

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
from typing import BinaryIO

import duckdb

from doorvoer.transforms.clock import Deadline
from doorvoer.transforms.decoding import Utf8Reader
from doorvoer.transforms.errors import TransformError
from doorvoer.transforms.inference import TEXT, ColumnType, infer_types
from doorvoer.transforms.pipes import Pipe
from doorvoer.transforms.spec import ReadSpec

# A record spanning several lines may be at most this long: a quoted value that
# is never closed would otherwise run to the end of the input.
MIN_RECORD_BYTES = 1 << 20
RECORD_SLACK_BYTES = 64 * 1024
# DuckDB's CSV reader holds a vector of 2,048 values per column: 3,000 text
# columns did not fit in the default memory limit of 256 MB, 2,048 did.
MAX_COLUMNS = 2048
# Text decoded, and rows written to the pipe, at a time.
READ_BYTES = 64 * 1024
WRITE_BYTES = 64 * 1024
# With `infer`, the types come from the rows of the first this many bytes.
INFER_BYTES = 1 << 20
# Python's csv module ends a quoted value that the input never closes at the end
# of the input, without a word. So one more line follows the input: a quoted
# value of its own, or, if a quoted value is still open, the text that closes it
# and ends it in this mark, which no real value ends in.
_END_MARK = "\x00\x01END\x01\x00"

_field_limit_lock = threading.Lock()


class CsvInput:
    """The rows of a CSV stream, read once, for the view `input` of one transform."""

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
        self.failure: BaseException | None = None
        self.columns: list[str] = []
        self._types: list[ColumnType] = []
        self._width = 0
        self._first: list[tuple[int, list[str]]] = []  # rows read before the thread starts
        self._pipe: Pipe | None = None
        self._thread: threading.Thread | None = None
        self._abandon = threading.Event()
        try:
            self._begin()
        except TransformError as exc:
            raise self._fail(exc) from None

    @property
    def empty(self) -> bool:
        """No columns: the input has no record at all (not even a header)."""
        return not self.columns

    def _begin(self) -> None:
        """Read the header (or the first record) and, with `infer`, the first block."""
        records = self._records()
        first = next(records, None)
        if first is None:
            return
        fields = first[1]
        if len(fields) > MAX_COLUMNS:
            raise TransformError("csv", f"more than {MAX_COLUMNS} columns")
        self._width = len(fields)
        if self._spec.header:
            self.columns = _column_names(fields)
        else:
            self.columns = [f"column{i}" for i in range(1, self._width + 1)]
            self._first.append(first)
        if self._spec.infer:
            size = 0
            for record in records:
                self._first.append(record)
                size += sum(map(len, record[1])) + len(record[1])
                if size >= INFER_BYTES:
                    break
            self._types = infer_types(
                [fields for _, fields in self._first if any(fields)], self._width,
                self._spec.decimal,
            )
        else:
            self._types = [TEXT] * self._width

    def attach(self, con: duckdb.DuckDBPyConnection, directory: str) -> None:
        """Make the view `input` on `con` and start writing the rows into its pipe."""
        if self.empty:
            return
        self._pipe = Pipe(directory)
        con.execute(self._view_sql(self._pipe.path))
        self._thread = threading.Thread(target=self._feed, name="csv-input", daemon=True)
        self._thread.start()

    def kick(self) -> None:
        """The deadline passed: let go of any open of the pipe that waits."""
        if self._pipe is not None:
            self._pipe.kick()

    def drain(self) -> None:
        """The query is over: read what it left unread, to validate and count it all."""
        self._wait()
        if self.failure is not None:
            raise self.failure

    def abandon(self) -> None:
        """The query failed: stop reading, keep a failure found so far."""
        self._abandon.set()
        self._wait()

    def close(self) -> None:
        """Let go of the pipe, the thread, the text: the transform is over."""
        self._abandon.set()
        self._wait()
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None
        self._first = []
        self._text.close()

    # the thread that reads and writes

    def _feed(self) -> None:
        pipe = self._pipe
        assert pipe is not None
        try:
            self._feed_rows(pipe)
        except TransformError as exc:
            self._fail(exc)
        except BaseException as exc:  # noqa: BLE001 - the source's own errors pass through
            self._fail(self._text.failure if self._text.failure is not None else exc)
        finally:
            pipe.end()

    def _feed_rows(self, pipe: Pipe) -> None:
        buffer = io.StringIO()
        convert = None if self._all_text else _Converter(self._types)
        # Every value quoted, records ended by LF: DuckDB's reader takes line breaks
        # of any kind inside quoted values only so (see _view_sql for empty values).
        out = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
        width = self._width
        records = self._records()
        pending = iter(self._first)
        self._first = []
        for line, fields in _chain(pending, records):
            if len(fields) != width:
                raise TransformError(
                    "csv", f"line {line}: expected {width} fields, found {len(fields)}", line=line
                )
            if not any(fields):
                continue
            self.rows_read += 1
            if pipe.stopped:
                if convert is not None:
                    convert(line, fields)  # validated all the same
                continue
            out.writerow(fields if convert is None else convert(line, fields))
            if buffer.tell() >= WRITE_BYTES:
                self._send(pipe, buffer)
                if self._abandon.is_set():
                    return
        self._send(pipe, buffer)

    def _send(self, pipe: Pipe, buffer: io.StringIO) -> None:
        if self._deadline.expired:
            raise self._deadline.error()
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if text and not pipe.stopped:
            pipe.write(text.encode("utf-8"))

    @property
    def _all_text(self) -> bool:
        return all(kind is TEXT for kind in self._types)

    def _records(self) -> Iterator[tuple[int, list[str]]]:
        """(first line, fields) of each record; blank lines are skipped."""
        reader = self._reader
        limit = self._record_limit
        deadline = self._deadline
        count = 0
        while True:
            line = reader.line_num + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise self._csv_error(exc, line) from None
            if not fields:
                continue
            if fields == self._end_record:
                return
            if fields[-1].endswith(self._unclosed_end):
                raise TransformError(
                    "csv", f"line {line}: a quoted value is never closed (a closing quote is "
                    "missing)", line=line,
                )
            if reader.line_num > line and sum(map(len, fields)) > limit:
                raise _too_long(line, limit)
            count += 1
            if count % 1024 == 0 and (self._abandon.is_set() or deadline.expired):
                if self._abandon.is_set():
                    return
                raise deadline.error()
            yield line, fields

    # errors

    def _csv_error(self, exc: csv.Error, line: int) -> BaseException:
        if self._text.failure is not None:
            return self._text.failure
        message = str(exc)
        if "field limit" in message:
            return _too_long(line, self._record_limit)
        return TransformError("csv", f"line {line}: the text cannot be read as CSV", line=line)

    def _fail(self, failure: BaseException) -> BaseException:
        if self.failure is None:
            self.failure = failure
        return self.failure

    def _wait(self) -> None:
        thread = self._thread
        if thread is None:
            return
        if self._pipe is not None:
            self._pipe.finish(thread)
        thread.join()
        self._thread = None

    # the view

    def _view_sql(self, path: str) -> str:
        """The view `input` over the pipe. An empty value ("") is text when all columns
        are; with inferred types it is NULL, and text columns make it text again."""
        internal = [f"c{i}" for i in range(1, self._width + 1)]
        columns = ", ".join(
            f"{_literal(name)}: {_literal(kind.duckdb)}"
            for name, kind in zip(internal, self._types, strict=True)
        )
        all_text = self._all_text
        selected = ", ".join(
            (f"coalesce({name}, '')" if kind is TEXT and not all_text else name)
            + " AS " + _identifier(title)
            for name, kind, title in zip(internal, self._types, self.columns, strict=True)
        )
        # A record of ours is at most twice one of the input (quotes doubled). DuckDB
        # reads the pipe in buffers of this size: its default (16 times the longest
        # line, 32 MiB) and `parallel = false` (which keeps every buffer it read)
        # each cost a 50 MiB stream 45 MiB more at the peak.
        limit = 2 * self._record_limit + RECORD_SLACK_BYTES
        return (
            f"CREATE TEMP VIEW input AS SELECT {selected} FROM read_csv({_literal(path)}, "
            "header = false, delim = ',', quote = '\"', escape = '\"', new_line = '\\n', "
            "auto_detect = false, strict_mode = true, null_padding = false, "
            f"allow_quoted_nulls = {'false' if all_text else 'true'}, "
            f"max_line_size = {limit}, buffer_size = {limit}, columns = {{{columns}}})"
        )


class _Converter:
    """The fields of a record in DuckDB's notation for their inferred types."""

    def __init__(self, types: list[ColumnType]) -> None:
        self._types = types

    def __call__(self, line: int, fields: list[str]) -> list[str]:
        out = list(fields)
        for index, kind in enumerate(self._types):
            value = fields[index]
            if kind is TEXT or value == "":
                continue
            converted = kind.convert(value)
            if converted is None:
                raise TransformError(
                    "csv",
                    f"line {line}: a value in column {index + 1} does not fit the type "
                    f"{kind.name} inferred from the first rows (read it as text "
                    "with infer: false and cast it in SQL)",
                    line=line,
                    column=index + 1,
                )
            out[index] = converted
        return out


def _chain(
    first: Iterator[tuple[int, list[str]]], rest: Iterator[tuple[int, list[str]]]
) -> Iterator[tuple[int, list[str]]]:
    yield from first
    yield from rest


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


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _column_names(header: list[str]) -> list[str]:
    """Header values as unique column names; names given in the header win."""
    wanted = [value or f"column{position}" for position, value in enumerate(header, start=1)]
    names: list[str | None] = []
    taken: set[str] = set()
    for name in wanted:
        names.append(None if name in taken else name)
        taken.add(name)
    for index, name in enumerate(wanted):
        if names[index] is None:
            suffix = 1
            while f"{name}_{suffix}" in taken:
                suffix += 1
            names[index] = f"{name}_{suffix}"
            taken.add(f"{name}_{suffix}")
    return [name for name in names if name is not None]
