"""Writers: record batches of the query result to CSV, JSON or JSON Lines bytes.

Each batch is rendered (see `values.py`), assembled into text by Arrow's compute
functions (fields, quotes, separators: no Python object per value), encoded and
written to the sink in one piece, so memory stays bounded by one batch.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator
from typing import BinaryIO, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from doorvoer.transforms.errors import TransformError
from doorvoer.transforms.spec import WriteSpec
from doorvoer.transforms.values import Kind, csv_cells, json_cells, render

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
        self._utf8 = self._codec in ("utf-8", "utf-8-sig")

    def write(self, data: bytes | memoryview, cells: Callable[[], list[list[str]]],
              first_row: int) -> None:
        """Write `data`, UTF-8 text made of `cells()` (per column) for rows from
        `first_row` (1-based). A UTF-8 sink takes it as it is (after utf-8-sig's BOM);
        any other encoding transcodes it, and a character it cannot hold is located."""
        if self._utf8:
            bom = self._encoder.encode("")  # utf-8-sig's BOM, the first time
            if bom:
                self._send(bom)
            self._send(data)
            return
        encoded = b""
        failed = False
        try:
            encoded = self._encoder.encode(bytes(data).decode("utf-8"))
        except UnicodeEncodeError:
            failed = True
        if failed:
            raise self._locate(cells(), first_row)
        self._send(encoded)

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

    def _send(self, data: bytes | memoryview) -> None:
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


# A batch is assembled in slices of about this many bytes (see _pieces).
PIECE_BYTES = 32 * 1_048_576
HOLDS_WINDOW = 1_048_576
_EMPTY = pa.scalar("", pa.string())
_QUOTE = pa.scalar('"', pa.string())
_COMMA = pa.scalar(",", pa.string())
_OPEN_BRACE = pa.scalar("{", pa.string())
_CLOSE_BRACE = pa.scalar("}", pa.string())
_NULL = pa.scalar("null", pa.string())
_NON_FINITE = pa.array(["nan", "inf", "-inf"], pa.string())
# What Python's json escapes in a string (ensure_ascii off): quote, backslash, controls
_JSON_ESCAPES = bytes(range(0x20)) + b'"\\'


class CsvWriter:
    """CSV with minimal quoting, assembled in Arrow, a batch at a time.

    A field is quoted when it holds the delimiter, a quote, CR or LF (also a bare
    CR with LF line endings), quotes inside doubled; the only field of a row is
    quoted when it is empty, so that the row is not a blank line. NULL is an empty
    field. Fields and rows are joined by Arrow's compute functions: no Python
    object per value, which made a large output cost 4x more than the rest of the
    transform. A value that the output encoding cannot hold is located (row,
    column) only when that happens.
    """

    def __init__(self, spec: WriteSpec, sink: BinaryIO) -> None:
        self._spec = spec
        self._encoder = _Encoder(sink, spec.encoding)
        self._terminator = "\r\n" if spec.line_ending == "crlf" else "\n"
        self._special = "[" + re.escape(spec.delimiter) + '"\r\n]'  # for RE2: what is quoted
        self._special_bytes = [c.encode() for c in (spec.delimiter, '"', "\r", "\n")]
        # Python values given to Arrow's compute functions are converted on every call
        # (which tries to import dateutil each time): the constants are made once.
        self._delimiter = pa.scalar(spec.delimiter, pa.string())
        self._line_end = pa.scalar(self._terminator, pa.string())
        self.rows = 0

    def begin(self, names: list[str]) -> None:
        if not self._spec.header:
            return
        self._encoder.check_names(names)
        fields = [self._quoted(name, single=len(names) == 1) for name in names]
        line = self._spec.delimiter.join(fields) + self._terminator
        self._encoder.write(line.encode(), list, 0)  # the names were checked

    def write_batch(self, batch: pa.RecordBatch) -> None:
        for piece in _pieces(batch):
            texts = [render(column, index)[0] for index, column in enumerate(piece.columns)]
            self._write(texts, self.rows + 1)
            self.rows += piece.num_rows

    def finish(self) -> None:
        self._encoder.finish()

    def _write(self, texts: list[pa.Array], first_row: int) -> None:
        fields = [self._field(text, single=len(texts) == 1) for text in texts]
        # field, delimiter, field, ..., field, line end: each row made in one pass
        parts: list[pa.Array | pa.Scalar] = []
        for field in fields:
            parts += (field, self._delimiter)
        parts[-1] = self._line_end
        rows = pc.binary_join_element_wise(*parts, _EMPTY)
        self._encoder.write(  # the rows back to back: the text
            _string_data(rows), lambda: [csv_cells(t.to_pylist()) for t in texts], first_row)

    def _field(self, text: pa.Array, *, single: bool) -> pa.Array:
        """One column's fields: quoted where needed, NULL as empty."""
        if text.null_count:
            text = pc.fill_null(text, _EMPTY)
        if not single and not _holds_any(_string_data(text), self._special_bytes):
            return text  # the common case, found without a call into Arrow per rule
        quote = pc.match_substring_regex(text, self._special)
        if single:
            quote = pc.or_(quote, pc.equal(pc.binary_length(text), 0))
        doubled = pc.replace_substring(text, pattern='"', replacement='""')
        quoted = pc.binary_join_element_wise(_QUOTE, doubled, _QUOTE, _EMPTY)
        return pc.if_else(quote, quoted, text)

    def _quoted(self, text: str, *, single: bool) -> str:
        """The same rule for one field of the header."""
        if _holds_any(text.encode(), self._special_bytes) or (single and not text):
            return '"' + text.replace('"', '""') + '"'
        return text


def _pieces(batch: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
    """The batch in slices of at most about PIECE_BYTES (no copy): Arrow's string arrays
    hold at most 2 GiB, and the text of a batch may be several times its size (quotes
    doubled, JSON's escapes)."""
    if batch.num_rows == 0:
        return
    pieces = min(batch.num_rows, 1 + batch.nbytes // PIECE_BYTES)
    rows = -(-batch.num_rows // pieces)  # rounded up
    for start in range(0, batch.num_rows, rows):
        yield batch.slice(start, rows)


def _holds_any(data: bytes | memoryview, needles: list[bytes]) -> bool:
    """Whether `data` holds any of `needles`: bytes.find over copies of at most
    HOLDS_WINDOW bytes (16x faster than a regex over the buffer; a huge value is not
    copied whole), overlapping by the longest needle less one byte."""
    overlap = max(len(needle) for needle in needles) - 1
    view = memoryview(data)
    for start in range(0, max(len(view) - overlap, 1), HOLDS_WINDOW):
        window = bytes(view[start:start + HOLDS_WINDOW + overlap])
        if any(window.find(needle) >= 0 for needle in needles):
            return True
    return False


def _holds_byte_of(data: memoryview, chars: bytes) -> bool:
    """Whether `data` holds any byte of `chars` (bytes.translate, window by window)."""
    for start in range(0, len(data), HOLDS_WINDOW):
        window = bytes(data[start:start + HOLDS_WINDOW])
        if len(window.translate(None, chars)) != len(window):
            return True
    return False


def _string_data(array: pa.Array) -> memoryview:
    """The bytes of a string array's values, back to back (no copy)."""
    _, offsets, data = array.buffers()
    if data is None or len(array) == 0:
        return memoryview(b"")
    ends = memoryview(offsets).cast("i")
    start, end = ends[array.offset], ends[array.offset + len(array)]
    return memoryview(data)[start:end]


class JsonWriter:
    """A JSON array of objects, one per line, or JSON Lines."""

    def __init__(self, spec: WriteSpec, sink: BinaryIO, *, lines: bool) -> None:
        self._encoder = _Encoder(sink, spec.encoding)
        self._lines = lines
        self._newline = "\r\n" if spec.line_ending == "crlf" else "\n"
        self._newline_scalar = pa.scalar(self._newline, pa.string())
        self._separator = pa.scalar("," + self._newline, pa.string())
        self._keys: list[pa.Scalar] = []
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
        self._keys = [pa.scalar(json.dumps(name, ensure_ascii=False) + ":", pa.string())
                      for name in names]
        if not self._lines:
            self._encoder.write(b"[", list, 0)

    def write_batch(self, batch: pa.RecordBatch) -> None:
        for piece in _pieces(batch):
            self._write_piece(piece)

    def _write_piece(self, batch: pa.RecordBatch) -> None:
        """The batch's objects, assembled in Arrow like CSV's rows (see CsvWriter)."""
        members = [
            pc.binary_join_element_wise(key, self._value(column, index), _EMPTY)
            for index, (key, column) in enumerate(zip(self._keys, batch.columns, strict=True))
        ]
        objects = pc.binary_join_element_wise(*members, _COMMA)
        # each object with what goes before it: a separator (array) or nothing (lines)
        before, after = (_EMPTY, self._newline_scalar) if self._lines else (self._separator, _EMPTY)
        text = _string_data(
            pc.binary_join_element_wise(before, _OPEN_BRACE, objects, _CLOSE_BRACE, after, _EMPTY)
        )
        if not self._lines and self.rows == 0:
            text = text[1:]  # the first object follows "[" on a new line, without the comma
        self._encoder.write(text, lambda: [
            json_cells(texts.to_pylist(), kind)
            for texts, kind in (render(column, index) for index, column in enumerate(batch.columns))
        ], self.rows + 1)
        self.rows += batch.num_rows

    def _value(self, column: pa.Array, index: int) -> pa.Array:
        """One column's JSON values."""
        texts, kind = render(column, index)
        if kind is Kind.STRING:
            if not _holds_byte_of(_string_data(texts), _JSON_ESCAPES):  # nothing to escape
                texts = pc.binary_join_element_wise(_QUOTE, texts, _QUOTE, _EMPTY)
            else:  # rare: the escapes are Python's json's own
                texts = pa.array(json_cells(texts.to_pylist(), kind), pa.string())
        elif kind is Kind.FLOAT:
            texts = pc.if_else(pc.is_in(texts, _NON_FINITE), _NULL, texts)
        return pc.fill_null(texts, _NULL) if texts.null_count else texts

    def finish(self) -> None:
        if not self._lines:
            end = (self._newline if self.rows else "") + "]" + self._newline
            self._encoder.write(end.encode(), list, 0)
        self._encoder.finish()
