"""JSON and JSON Lines input.

The columns are the union of the keys of all records, in the order they first
appear; a record without a key has NULL there. Since the last record may add a
key, all records are read before the query starts: they are held in memory as
Arrow columns (compact, not as Python objects), and the input may be at most
`MAX_JSON_BYTES`.

Types follow the JSON: true/false are BOOLEAN, whole numbers BIGINT (DOUBLE
when the column also has fractions), other numbers DOUBLE, strings VARCHAR.
Objects and arrays become their JSON text (query them with DuckDB's JSON
functions, e.g. `address->>'city'`). A column whose values have different JSON
types is VARCHAR: strings as they are, other values as their JSON text.

A top-level array is parsed record by record; with `records` ("data.orders")
the document is parsed whole and the array found at that path. For JSON Lines
`max_line_bytes` limits each line; a JSON document may be one long line, so
for it only the size limit applies.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from enum import IntEnum
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

from doorvoer.transforms.clock import Deadline
from doorvoer.transforms.decoding import Utf8Reader
from doorvoer.transforms.errors import TransformError
from doorvoer.transforms.spec import ReadSpec

MAX_JSON_BYTES = 256 * 1_048_576
BATCH_RECORDS = 10_000
_CHUNK = 1 << 20
_WHITESPACE = " \t\n\r"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_DECODER = json.JSONDecoder()


class Kind(IntEnum):
    NULL = 0
    BOOL = 1
    INT = 2
    FLOAT = 3
    STR = 4
    JSON = 5
    TEXT = 6


_ARROW_TYPES = {
    Kind.NULL: pa.string(),
    Kind.BOOL: pa.bool_(),
    Kind.INT: pa.int64(),
    Kind.FLOAT: pa.float64(),
    Kind.STR: pa.string(),
    Kind.JSON: pa.string(),
    Kind.TEXT: pa.string(),
}


class JsonInput:
    """The records of a JSON or JSON Lines stream as one Arrow table."""

    def __init__(self, spec: ReadSpec, source: BinaryIO, deadline: Deadline) -> None:
        self._deadline = deadline
        self.failure: BaseException | None = None
        text = Utf8Reader(
            source,
            spec.encoding,
            max_line_bytes=spec.max_line_bytes if spec.format == "jsonl" else MAX_JSON_BYTES,
            category="json",
            cr_is_break=False,
            max_total_bytes=MAX_JSON_BYTES,
        )
        self._columns = _Columns()
        try:
            if spec.format == "jsonl":
                records = _jsonl_records(text)
            elif spec.records is not None:
                records = _path_records(text, spec.records)
            else:
                records = _array_records(text)
            self._collect(records)
        except TransformError as exc:
            self.failure = exc
        if self.failure is None and text.failure is not None:
            self.failure = text.failure
        if self.failure is not None:
            raise self.failure
        self.arrow: pa.Table | None = self._columns.table()
        self.columns: list[str] = [] if self.arrow is None else self.arrow.column_names
        self.rows_read = self._columns.rows

    @property
    def empty(self) -> bool:
        """No columns: the input has no record (or none with a key)."""
        return self.arrow is None

    def drain(self) -> None:
        """Nothing is left unread: the records were all read up front."""

    def close(self) -> None:
        """Let go of the records: the transform is over."""
        self.arrow = None

    def _collect(self, records: Iterator[list[dict[str, object]]]) -> None:
        for batch in records:
            self._deadline.check()
            self._columns.add(batch)


class _Columns:
    """Record batches turned into typed Arrow columns, unified at the end."""

    def __init__(self) -> None:
        self.rows = 0
        self._kinds: dict[str, Kind] = {}
        self._chunks: dict[str, list[tuple[int, Kind, pa.Array]]] = {}
        self._sizes: list[int] = []

    def add(self, records: list[dict[str, object]]) -> None:
        batch_index = len(self._sizes)
        self._sizes.append(len(records))
        self.rows += len(records)
        keys: dict[str, None] = {}
        for record in records:
            keys.update(dict.fromkeys(record))
        for key in keys:
            values = [record.get(key) for record in records]
            kind = Kind.NULL
            for value in values:
                kind = _merge(kind, _kind_of(value))
            self._kinds[key] = _merge(self._kinds.get(key, Kind.NULL), kind)
            array = _to_arrow(values, kind)
            self._chunks.setdefault(key, []).append((batch_index, kind, array))

    def table(self) -> pa.Table | None:
        if not self._kinds:
            return None
        columns = []
        for key, kind in self._kinds.items():
            present = {index: (chunk_kind, array) for index, chunk_kind, array in self._chunks[key]}
            parts = []
            for index, size in enumerate(self._sizes):
                if index in present:
                    parts.append(_convert(*present[index], kind))
                else:
                    parts.append(pa.nulls(size, _ARROW_TYPES[kind]))
            columns.append(pa.chunked_array(parts, _ARROW_TYPES[kind]))
        return pa.Table.from_arrays(columns, names=list(self._kinds))


def _kind_of(value: object) -> Kind:
    if value is None:
        return Kind.NULL
    if isinstance(value, bool):
        return Kind.BOOL
    if isinstance(value, int):
        return Kind.INT if _INT64_MIN <= value <= _INT64_MAX else Kind.TEXT
    if isinstance(value, float):
        return Kind.FLOAT
    if isinstance(value, str):
        return Kind.STR
    return Kind.JSON


def _merge(a: Kind, b: Kind) -> Kind:
    if a == b or b == Kind.NULL:
        return a
    if a == Kind.NULL:
        return b
    if {a, b} == {Kind.INT, Kind.FLOAT}:
        return Kind.FLOAT
    return Kind.TEXT


def _json_text(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _to_arrow(values: list[object], kind: Kind) -> pa.Array:
    if kind == Kind.JSON:
        values = [None if value is None else _json_text(value) for value in values]
    elif kind == Kind.TEXT:
        values = [
            value if value is None or isinstance(value, str) else _json_text(value)
            for value in values
        ]
    try:
        return pa.array(values, _ARROW_TYPES[kind])
    except UnicodeEncodeError:
        pass
    raise TransformError("json", "a string holds an unpaired surrogate escape (\\ud800-\\udfff)")


def _convert(kind: Kind, array: pa.Array, target: Kind) -> pa.Array:
    """One batch's column in the column's final type."""
    if kind == target:
        return array
    if kind == Kind.NULL:
        return pa.nulls(len(array), _ARROW_TYPES[target])
    if target == Kind.FLOAT:
        return pc.cast(array, pa.float64())
    if kind == Kind.FLOAT:
        return pa.array(
            [None if value is None else _json_text(value) for value in array.to_pylist()],
            pa.string(),
        )
    # BOOL and INT cast to their JSON text; STR and JSON already are text.
    return pc.cast(array, pa.string())


# the three ways records arrive


def _jsonl_records(text: Utf8Reader) -> Iterator[list[dict[str, object]]]:
    batch: list[dict[str, object]] = []
    line = 0
    rest = b""
    while True:
        chunk = text.read(_CHUNK)
        data = rest + chunk
        lines = data.split(b"\n")
        rest = lines.pop() if chunk else b""
        for raw in lines:
            line += 1
            if not raw.strip():
                continue
            batch.append(_jsonl_record(raw, line))
            if len(batch) >= BATCH_RECORDS:
                yield batch
                batch = []
        if not chunk:
            break
    if batch:
        yield batch


def _jsonl_record(raw: bytes, line: int) -> dict[str, object]:
    column: int | None = None
    value: object = None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        column = exc.colno
    except (UnicodeDecodeError, RecursionError):
        column = 0
    if column is not None:
        raise TransformError("json", f"line {line}: invalid JSON", line=line, column=column or None)
    if not isinstance(value, dict):
        raise TransformError("json", f"line {line}: not an object", line=line)
    return value


def _path_records(text: Utf8Reader, path: str) -> Iterator[list[dict[str, object]]]:
    document = _parse_whole(text.read())
    node: object = document
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise TransformError("json", "the records path is not in the document")
        node = node[part]
    if not isinstance(node, list):
        raise TransformError("json", "the records path does not lead to an array")
    for start in range(0, len(node), BATCH_RECORDS):
        batch = node[start : start + BATCH_RECORDS]
        for offset, record in enumerate(batch):
            if not isinstance(record, dict):
                number = start + offset + 1
                raise TransformError("json", f"record {number} is not an object")
        yield batch


def _parse_whole(data: bytes) -> object:
    line = column = 0
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        line, column = exc.lineno, exc.colno
    except (UnicodeDecodeError, RecursionError):
        pass
    if line:
        raise TransformError(
            "json", f"line {line}, column {column}: invalid JSON", line=line, column=column
        )
    raise TransformError("json", "invalid JSON")


def _array_records(text: Utf8Reader) -> Iterator[list[dict[str, object]]]:
    """The records of a top-level array, parsed one by one as the text streams."""
    scanner = _Scanner(text)
    if scanner.next_char() != "[":
        if scanner.at_end():
            raise TransformError("json", "the input is empty")
        raise scanner.error("expected an array of records (or set records to the path of one)")
    scanner.advance(1)
    batch: list[dict[str, object]] = []
    if scanner.next_char() == "]":
        scanner.advance(1)
    else:
        while True:
            record = scanner.value()
            if not isinstance(record, dict):
                raise scanner.error("a record is not an object", at_value=True)
            batch.append(record)
            if len(batch) >= BATCH_RECORDS:
                yield batch
                batch = []
            separator = scanner.next_char()
            scanner.advance(1)
            if separator == "]":
                break
            if separator != ",":
                scanner.advance(-1)
                raise scanner.error("invalid JSON")
    if scanner.next_char() != "":
        raise scanner.error("invalid JSON (text after the array)")
    if batch:
        yield batch


class _Scanner:
    """A window on streaming JSON text that knows the line and column of its position."""

    def __init__(self, text: Utf8Reader) -> None:
        self._text = text
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._buffer = ""
        self._pos = 0
        self._eof = False
        self._line = 1  # line and column of _buffer[0]
        self._column = 1
        self._value_start = 0

    def at_end(self) -> bool:
        return self._eof and self._pos >= len(self._buffer)

    def next_char(self) -> str:
        """The next character that is not whitespace ("" at the end), not consumed."""
        while True:
            while self._pos < len(self._buffer) and self._buffer[self._pos] in _WHITESPACE:
                self._pos += 1
            if self._pos < len(self._buffer) or not self._more():
                return self._buffer[self._pos : self._pos + 1]

    def advance(self, count: int) -> None:
        self._pos += count

    def value(self) -> object:
        """Parse the JSON value at the position, reading more text as needed."""
        self.next_char()
        self._value_start = self._pos
        while True:
            error: json.JSONDecodeError | None = None
            too_deep = False
            try:
                value, end = _DECODER.raw_decode(self._buffer, self._pos)
            except json.JSONDecodeError as exc:
                error = exc
            except RecursionError:
                too_deep = True
            if too_deep:
                raise self.error("invalid JSON (nested too deeply)", at_value=True)
            if error is None:
                self._pos = end
                self._trim()
                return value
            # A value cut off by the end of the buffer fails near that end, or
            # as an unterminated string: read more and parse it again.
            incomplete = error.pos >= len(self._buffer) - 16 or error.msg.startswith(
                "Unterminated string"
            )
            if not (incomplete and self._more(len(self._buffer) - self._pos)):
                self._pos = error.pos
                raise self.error("invalid JSON")

    def error(self, message: str, *, at_value: bool = False) -> TransformError:
        position = self._value_start if at_value else self._pos
        before = self._buffer[:position]
        newlines = before.count("\n")
        if newlines:
            line = self._line + newlines
            column = position - before.rfind("\n")
        else:
            line, column = self._line, self._column + position
        return TransformError(
            "json", f"line {line}, column {column}: {message}", line=line, column=column
        )

    def _more(self, at_least: int = 0) -> bool:
        """Append more text to the buffer; False at the end of the input."""
        if self._eof:
            return False
        want = max(_CHUNK, at_least)
        data = self._text.read(want)
        self._buffer += self._decoder.decode(data, final=not data)
        if not data:
            self._eof = True
            return False
        return True

    def _trim(self) -> None:
        if self._pos < _CHUNK:
            return
        consumed = self._buffer[: self._pos]
        newlines = consumed.count("\n")
        if newlines:
            self._line += newlines
            self._column = self._pos - consumed.rfind("\n")
        else:
            self._column += self._pos
        self._buffer = self._buffer[self._pos :]
        self._pos = 0
