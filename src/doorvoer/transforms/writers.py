"""Writers: the query result as CSV, JSON or JSON Lines bytes (fixed width: fixedwrite.py).

DuckDB makes the text. The writer wraps the operator's SQL in a SELECT that
renders each column (see `values.py`) and assembles each row into one JSON
object, or one CSV line (its values joined by \x1f when some may need quotes,
which Python adds, see CsvWriter.statement), so Python gets one string per row
and no object per value (which made a large output cost 4x more than the rest
of the transform).
Python joins a chunk of rows, encodes it and writes it to the sink in one
piece; a chunk is about CHUNK_CHARS of text, so memory stays bounded however
large the result or a value is. A value that the output encoding cannot hold
is located (row, column) only when that happens.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

import duckdb

from doorvoer.transforms.errors import TransformError
from doorvoer.transforms.spec import WriteSpec
from doorvoer.transforms.values import Rendering, literal, lower_escapes, render

if TYPE_CHECKING:
    from duckdb.sqltypes import DuckDBPyType

_DISPLAY = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8",
    "iso8859-1": "ISO-8859-1",
    "iso8859-15": "ISO-8859-15",
}

# The operator's SQL starts on this line of the statement that runs (for error positions).
SQL_LINE = 2
# Rows are fetched in chunks of about this many characters of text, at most MAX_CHUNK_ROWS
# rows; the first chunk, before the size of a row is known, has FIRST_CHUNK_ROWS.
CHUNK_CHARS = 1_048_576
FIRST_CHUNK_ROWS = 256
MAX_CHUNK_ROWS = 32_768

Lines = Sequence[tuple[Any, ...]]  # rows of one string, as DuckDB's fetchmany gives them
_US = "\x1f"  # ASCII's unit separator: between values that Python quotes (CsvWriter)


class Writer(Protocol):
    rows: int
    chunk_rows: int  # how many rows to fetch for the next call of write

    def begin(self, names: list[str], types: list[DuckDBPyType]) -> None: ...

    def statement(self, sql: str) -> str: ...

    def write(self, lines: Lines) -> None: ...

    def finish(self) -> None: ...


def make_writer(spec: WriteSpec, sink: BinaryIO) -> Writer:
    if spec.format == "csv":
        return CsvWriter(spec, sink)
    if spec.format == "fixed":
        from doorvoer.transforms.fixedwrite import FixedWriter  # it builds on _LineWriter

        return FixedWriter(spec, sink)
    if spec.format == "xlsx":
        from doorvoer.transforms.xlsxwrite import XlsxWriter

        return XlsxWriter(spec, sink)
    if spec.format == "xml":
        from doorvoer.transforms.xmlwrite import XmlWriter

        return XmlWriter(spec, sink)
    return JsonWriter(spec, sink, lines=spec.format == "jsonl")


class _Encoder:
    """Encodes text for the sink; reports the value that the encoding cannot hold."""

    def __init__(self, sink: BinaryIO, encoding: str) -> None:
        self._sink = sink
        self._codec = codecs.lookup(encoding).name
        self._encoder = codecs.getincrementalencoder(self._codec)("strict")

    def write(self, text: str, locate: Callable[[], TransformError] | None = None) -> None:
        """Write `text`; when the encoding cannot hold it, raise what `locate` says."""
        data = b""
        failed = False
        try:
            data = self._encoder.encode(text)
        except UnicodeEncodeError:
            failed = True
        if failed:  # raised here, not in the handler: the encoding error quotes the text
            raise locate() if locate else self.failure()
        self._send(data)

    def check_names(self, names: list[str]) -> None:
        for position, name in enumerate(names, start=1):
            if not self.encodable(name):
                raise TransformError(
                    "output",
                    f"a column name cannot be written as {self.display} (column {position})",
                    column=position,
                )

    def finish(self) -> None:
        self._send(self._encoder.encode("", final=True))

    def _send(self, data: bytes) -> None:
        """Write all of `data`, also to a raw stream that may take only part of it."""
        rest = memoryview(data)
        while rest:
            written = self._sink.write(rest if len(rest) < len(data) else data)
            if written is None or written >= len(rest):
                return
            if written <= 0:
                raise OSError("the output stream accepts no more bytes")
            rest = rest[written:]

    @property
    def display(self) -> str:
        return _DISPLAY.get(self._codec, self._codec)

    def encodable(self, text: str) -> bool:
        try:
            text.encode(self._codec)
        except UnicodeEncodeError:
            return False
        return True

    def failure(self) -> TransformError:
        return TransformError("output", f"the output cannot be written as {self.display}")

    def unwritable(self, row: int, values: list[str]) -> TransformError:
        """The error for the first of a row's `values` that the encoding cannot hold."""
        position = next((n for n, v in enumerate(values, start=1) if not self.encodable(v)), None)
        if position is None:
            return self.failure()
        return TransformError(
            "output",
            f"a value cannot be written as {self.display} (row {row}, column {position})",
            line=row,
            column=position,
        )


class _LineWriter:
    """What the writers share: the statement's frame, chunks of lines to the encoder."""

    def __init__(self, spec: WriteSpec, sink: BinaryIO) -> None:
        self._encoder = _Encoder(sink, spec.encoding)
        self._newline = "\r\n" if spec.line_ending == "crlf" else "\n"
        self._renderings: list[Rendering] = []
        self.rows = 0
        self.chunk_rows = FIRST_CHUNK_ROWS

    def _render(self, types: list[DuckDBPyType]) -> None:
        self._renderings = [render(type_, index, f"v{index + 1}", f"t{index + 1}")
                            for index, type_ in enumerate(types)]

    def _frame(self, sql: str, line: str, k: str | None = None) -> str:
        """SELECT `line`, over the result's columns v1.., the renderings' `pre` t1.. and
        `k`; the operator's SQL on lines of its own from SQL_LINE, as the error
        positions expect. (A projection of one text per column before the line would
        hold a vector per column: a result of thousands of columns would need more
        memory than DuckDB may use.)"""
        names = ", ".join(f"v{n}" for n in range(1, len(self._renderings) + 1))
        source = f"(\n{_statement_body(sql)}\n) AS q({names})"
        pres = [f"{r.pre} AS t{n}" for n, r in enumerate(self._renderings, start=1) if r.pre]
        if pres:
            source = f"(SELECT {', '.join([names, *pres])} FROM {source}) AS p"
        if k is not None:
            source = f"(SELECT *, {k} AS k FROM {source}) AS r"
        return f"SELECT {line} FROM {source}"

    def write(self, lines: Lines) -> None:
        texts: list[str] = [line for (line,) in lines]
        self._emit(self._chunk(texts), len(texts), lambda: texts)

    def _emit(self, text: str, rows: int, lines: Callable[[], list[str]]) -> None:
        """Write the text of a chunk of `rows` rows; `lines` gives them one by one, to
        locate a value that the encoding cannot hold."""
        self._encoder.write(text, lambda: self._locate(lines()))
        self.rows += rows
        # the next chunk: about CHUNK_CHARS, as many rows as this chunk's average size gives
        self.chunk_rows = max(1, min(MAX_CHUNK_ROWS, CHUNK_CHARS * rows // max(len(text), 1)))

    def _chunk(self, lines: list[str]) -> str:
        """The text of a chunk of lines."""
        raise NotImplementedError

    def _values(self, line: str) -> list[str]:
        """The text of each value of a line, to find the one the encoding cannot hold."""
        raise NotImplementedError

    def _locate(self, lines: list[str]) -> TransformError:
        for offset, line in enumerate(lines):
            if not self._encoder.encodable(line):
                return self._encoder.unwritable(self.rows + offset + 1, self._values(line))
        return self._encoder.failure()


def _statement_body(sql: str) -> str:
    """The operator's statement without the semicolons and comments at its end, which
    would end the SELECT around it early (it is checked to be one statement)."""
    data = sql.encode()
    tokens = duckdb.tokenize(sql)
    end = len(data)
    for start, kind in reversed(tokens):  # token positions are byte offsets
        semicolon = kind == duckdb.token_type.operator and data[start:end].strip() == b";"
        if not (semicolon or kind == duckdb.token_type.comment):
            break
        end = start
    return data[:end].decode()


class CsvWriter(_LineWriter):
    """CSV with minimal quoting, as Python's csv module writes it.

    A field is quoted when it holds the delimiter, a quote, CR or LF (also a bare CR
    with LF line endings), quotes inside doubled; the only field of a row is quoted
    when it is empty, so that the row is not a blank line. NULL is an empty field. A
    row whose values hold none of these (found in one pass over them all) is joined
    as it is.
    """

    def __init__(self, spec: WriteSpec, sink: BinaryIO) -> None:
        super().__init__(spec, sink)
        self._spec = spec
        self._delimiter = spec.delimiter
        self._separated = False  # rows come as values joined by \x1f (see statement)

    def begin(self, names: list[str], types: list[DuckDBPyType]) -> None:
        self._render(types)
        if not self._spec.header:
            return
        self._encoder.check_names(names)
        fields = [self._quoted(name, single=len(names) == 1) for name in names]
        self._encoder.write(self._delimiter.join(fields) + self._newline)  # names checked

    def statement(self, sql: str) -> str:
        fields = [r.text for r in self._renderings]
        # the texts that can hold what needs quotes: text, JSON, a delimiter such as "."
        quotable = [r.chars is None or self._delimiter in r.chars for r in self._renderings]
        delimiter = literal(self._delimiter)
        if len(fields) == 1:
            [field] = fields
            line = f"CASE WHEN coalesce({field}, '') = '' THEN '\"\"' "
            if quotable[0]:
                line += f"WHEN {self._special(field)} THEN {self._quote(field)} "
            return self._frame(sql, line + f"ELSE {field} END")
        if not any(quotable):
            return self._frame(sql, _concat(fields, delimiter))
        # The values joined by \x1f, quoted in Python (see write): an expression per
        # column that quotes made DuckDB plan a 14-column statement in 6 ms, more than
        # the rest of a small file's transform. A row whose values hold \x1f itself
        # (found in k, those values together) comes as a list of its values instead.
        self._separated = True
        k = [f for f, q in zip(fields, quotable, strict=True) if q]
        line = (f"CASE WHEN contains(k, chr(31)) THEN NULL ELSE {_concat(fields, 'chr(31)')} "
                f"END, CASE WHEN contains(k, chr(31)) THEN list_value({', '.join(fields)}) END")
        return self._frame(sql, line, f"concat({', '.join(k)})")

    def write(self, lines: Lines) -> None:
        if not self._separated:
            super().write(lines)
            return
        # rows as (values joined by \x1f, None) or (None, [values]): to CSV lines
        joined = [line for line, _ in lines]
        if None not in joined:
            text = "\n".join(joined)
            if (self._delimiter not in text and '"' not in text and "\r" not in text
                    and text.count("\n") == len(joined) - 1):  # no value needs quotes
                text = text.replace(_US, self._delimiter) + "\n"
                if self._newline != "\n":
                    text = text.replace("\n", self._newline)
                self._emit(text, len(joined), lambda: text.split(self._newline)[:-1])
                return
        texts = [self._line(line, values) for line, values in lines]
        self._emit(self._chunk(texts), len(texts), lambda: texts)

    def _line(self, line: str | None, values: list[str | None] | None) -> str:
        fields = line.split(_US) if line is not None else values or []
        return self._delimiter.join(self._quoted("" if field is None else field, single=False)
                                    for field in fields)

    def finish(self) -> None:
        self._encoder.finish()

    def _chunk(self, lines: list[str]) -> str:
        return self._newline.join(lines) + self._newline

    def _values(self, line: str) -> list[str]:
        return next(csv.reader(io.StringIO(line, newline=""), delimiter=self._delimiter))

    def _special(self, text: str) -> str:
        return " OR ".join(f"contains({text}, {char})" for char in
                           (literal(self._delimiter), "'\"'", "chr(10)", "chr(13)"))

    def _quote(self, text: str) -> str:
        return f"concat('\"', replace({text}, '\"', '\"\"'), '\"')"

    def _quoted(self, text: str, *, single: bool) -> str:
        """The quoting rule for one field (of the header, or of a row that needs it)."""
        if any(c in text for c in (self._delimiter, '"', "\r", "\n")) or (single and not text):
            return '"' + text.replace('"', '""') + '"'
        return text


def _concat(parts: list[str], separator: str) -> str:
    """SQL: the parts with the separator between them; NULL is nothing (concat skips it)."""
    joined: list[str] = []
    for part in parts:
        joined += [part, separator]
    return f"concat({', '.join(joined[:-1])})"


class JsonWriter(_LineWriter):
    """A JSON array of objects, one per line, or JSON Lines: each object as Python's json
    writes it (no spaces, no ASCII escapes); strings are escaped by DuckDB's to_json,
    whose few capital escapes (\\u001F) are made small in the rare rows that have one."""

    def __init__(self, spec: WriteSpec, sink: BinaryIO, *, lines: bool) -> None:
        super().__init__(spec, sink)
        self._lines = lines
        self._names: list[str] = []

    def begin(self, names: list[str], types: list[DuckDBPyType]) -> None:
        seen: dict[str, int] = {}
        for position, name in enumerate(names, start=1):
            if name in seen:
                raise TransformError(
                    "output",
                    f"columns {seen[name]} and {position} of the query result have the same "
                    "name; give them different names with AS",
                    column=position,
                )
            seen[name] = position
        self._encoder.check_names(names)
        self._names = names
        self._render(types)
        if not self._lines:
            self._encoder.write("[")

    def statement(self, sql: str) -> str:
        members: list[str] = []
        for n, name in enumerate(self._names, start=1):
            key = ("{" if n == 1 else ",") + json.dumps(name, ensure_ascii=False) + ":"
            members += [literal(key), f"coalesce({self._renderings[n - 1].json}, 'null')"]
        line = f"concat({', '.join(members)}, '}}')"
        if not any(r.chars is None for r in self._renderings):
            return self._frame(sql, line)
        # strings, through to_json: its escapes made Python's, in a projection of their own
        return (f"SELECT CASE WHEN contains(o, '\\u00') THEN {lower_escapes('o')} ELSE o END "
                f"FROM ({self._frame(sql, f'{line} AS o')}) AS s")

    def _chunk(self, lines: list[str]) -> str:
        if self._lines:
            return self._newline.join(lines) + self._newline
        separator = "," + self._newline
        # the first object follows "[" on a line of its own, the others a comma
        return (self._newline if self.rows == 0 else separator) + separator.join(lines)

    def _values(self, line: str) -> list[str]:
        pairs: list[tuple[str, object]] = json.loads(line, object_pairs_hook=list)
        return [json.dumps(value, ensure_ascii=False) for _, value in pairs]

    def finish(self) -> None:
        if not self._lines:
            self._encoder.write((self._newline if self.rows else "") + "]" + self._newline)
        self._encoder.finish()

