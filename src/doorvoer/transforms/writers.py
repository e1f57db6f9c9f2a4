"""Writers: record batches of the query result to CSV, JSON or JSON Lines bytes.

Each batch is rendered (see `values.py`), encoded and written to the sink in
one piece, so memory stays bounded by one batch.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, BinaryIO, Protocol

import pyarrow as pa

from doorvoer.transforms.errors import TransformError
from doorvoer.transforms.spec import WriteSpec
from doorvoer.transforms.values import Kind, csv_cells, json_cells, render

if TYPE_CHECKING:
    from _csv import Writer as CsvRowWriter

_DISPLAY = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8",
    "iso8859-1": "ISO-8859-1",
    "iso8859-15": "ISO-8859-15",
}


class Writer(Protocol):
    rows: int

    def begin(self, names: list[str]) -> None: ...

    def write_batch(self, batch: pa.RecordBatch) -> None: ...

    def finish(self) -> None: ...


def make_writer(spec: WriteSpec, sink: BinaryIO) -> Writer:
    if spec.format == "csv":
        return CsvWriter(spec, sink)
    return JsonWriter(spec, sink, lines=spec.format == "jsonl")


class _Encoder:
    """Encodes text for the sink; reports the cell that the encoding cannot hold."""

    def __init__(self, sink: BinaryIO, encoding: str) -> None:
        self._sink = sink
        self._codec = codecs.lookup(encoding).name
        self._encoder = codecs.getincrementalencoder(self._codec)("strict")

    def write(self, text: str, cells: list[list[str]], first_row: int) -> None:
        """Write `text`, made of `cells` (per column) for rows from `first_row` (1-based)."""
        data = b""
        failed = False
        try:
            data = self._encoder.encode(text)
        except UnicodeEncodeError:
            failed = True
        if failed:
            raise self._locate(cells, first_row)
        self._send(data)

    def check_names(self, names: list[str]) -> None:
        for position, name in enumerate(names, start=1):
            if not self._encodable(name):
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

    def _encodable(self, text: str) -> bool:
        try:
            text.encode(self._codec)
        except UnicodeEncodeError:
            return False
        return True

    def _locate(self, cells: list[list[str]], first_row: int) -> TransformError:
        for offset, row in enumerate(zip(*cells, strict=True)):
            for position, cell in enumerate(row, start=1):
                if not self._encodable(cell):
                    number = first_row + offset
                    return TransformError(
                        "output",
                        f"a value cannot be written as {self.display} "
                        f"(row {number}, column {position})",
                        line=number,
                        column=position,
                    )
        return TransformError("output", f"the output cannot be written as {self.display}")


class CsvWriter:
    def __init__(self, spec: WriteSpec, sink: BinaryIO) -> None:
        self._spec = spec
        self._encoder = _Encoder(sink, spec.encoding)
        self._terminator = "\r\n" if spec.line_ending == "crlf" else "\n"
        self._buffer = io.StringIO()
        self._csv = self._csv_writer(self._terminator)
        # Python's csv module quotes a field for the characters of its line
        # terminator only: with "\n", a bare "\r" would go out unquoted.
        self._crlf_csv = self._csv_writer("\r\n")
        self.rows = 0

    def _csv_writer(self, terminator: str) -> CsvRowWriter:
        return csv.writer(
            self._buffer,
            delimiter=self._spec.delimiter,
            quotechar='"',
            doublequote=True,
            quoting=csv.QUOTE_MINIMAL,
            lineterminator=terminator,
        )

    def begin(self, names: list[str]) -> None:
        if not self._spec.header:
            return
        self._encoder.check_names(names)
        self._write_rows([names], bare_cr=any("\r" in name for name in names))
        self._flush([[name] for name in names], 0)

    def write_batch(self, batch: pa.RecordBatch) -> None:
        cells: list[list[str]] = []
        bare_cr = False
        for index, column in enumerate(batch.columns):
            texts, kind = render(column, index)
            column_cells = csv_cells(texts)
            if kind is Kind.STRING and not bare_cr:
                bare_cr = "\r" in "".join(column_cells)
            cells.append(column_cells)
        self._write_rows(zip(*cells, strict=True), bare_cr=bare_cr)
        self._flush(cells, self.rows + 1)
        self.rows += batch.num_rows

    def finish(self) -> None:
        self._encoder.finish()

    def _write_rows(self, rows: Iterable[Sequence[str]], *, bare_cr: bool) -> None:
        if not bare_cr or self._terminator != "\n":
            self._csv.writerows(rows)
            return
        for row in rows:
            self._crlf_csv.writerow(row)
            end = self._buffer.tell()
            self._buffer.seek(end - 2)  # the row's "\r\n" becomes the "\n" asked for
            self._buffer.write("\n")
            self._buffer.truncate()

    def _flush(self, cells: list[list[str]], first_row: int) -> None:
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        self._encoder.write(text, cells, first_row)


class JsonWriter:
    """A JSON array of objects, one per line, or JSON Lines."""

    def __init__(self, spec: WriteSpec, sink: BinaryIO, *, lines: bool) -> None:
        self._encoder = _Encoder(sink, spec.encoding)
        self._lines = lines
        self._newline = "\r\n" if spec.line_ending == "crlf" else "\n"
        self._keys: list[str] = []
        self.rows = 0

    def begin(self, names: list[str]) -> None:
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
        self._keys = [json.dumps(name, ensure_ascii=False) + ":" for name in names]
        if not self._lines:
            self._encoder.write("[", [], 0)

    def write_batch(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        cells = [json_cells(*render(column, index)) for index, column in enumerate(batch.columns)]
        # "key":value per column, with the braces on the first and last member
        members = [
            [key + value for value in column] for key, column in zip(self._keys, cells, strict=True)
        ]
        members[0] = ["{" + member for member in members[0]]
        members[-1] = [member + "}" for member in members[-1]]
        objects = map(",".join, zip(*members, strict=True))
        if self._lines:
            text = self._newline.join(objects) + self._newline
        else:
            separator = "," + self._newline
            text = (separator if self.rows else self._newline) + separator.join(objects)
        self._encoder.write(text, cells, self.rows + 1)
        self.rows += batch.num_rows

    def finish(self) -> None:
        if not self._lines:
            self._encoder.write((self._newline if self.rows else "") + "]" + self._newline, [], 0)
        self._encoder.finish()
