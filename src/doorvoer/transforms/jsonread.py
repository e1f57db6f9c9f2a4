"""JSON and JSON Lines input.

The columns are the union of the keys of all records, in the order they first
appear; a record without a key has NULL there. Since the last record may add a
key, all records are read before the query starts: they are held in memory as
the text DuckDB will read from a pipe (see pipes.py: compact, not as Python
objects), and the input may be at most `MAX_JSON_BYTES`.

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

import json
from collections.abc import Callable, Iterator
from enum import IntEnum
from typing import BinaryIO

import duckdb

from doorvoer.transforms.clock import Deadline
from doorvoer.transforms.decoding import Utf8Reader
from doorvoer.transforms.errors import TransformError
from doorvoer.transforms.jsonarray import BATCH_RECORDS, array_records
from doorvoer.transforms.pipes import (
    DELIMITER,
    NULL,
    NULL_MARK,
    FedInput,
    Feed,
    encode_rows,
    view_sql,
)
from doorvoer.transforms.spec import ReadSpec

MAX_JSON_BYTES = 256 * 1_048_576
RECORD_SLACK_BYTES = 64 * 1024
LARGE_BYTES = 1 << 20
_CHUNK = 1 << 20
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class Kind(IntEnum):
    NULL = 0
    BOOL = 1
    INT = 2
    FLOAT = 3
    STR = 4
    JSON = 5
    TEXT = 6


_DUCKDB_TYPES = {
    Kind.NULL: "VARCHAR",
    Kind.BOOL: "BOOLEAN",
    Kind.INT: "BIGINT",
    Kind.FLOAT: "DOUBLE",
    Kind.STR: "VARCHAR",
    Kind.JSON: "VARCHAR",
    Kind.TEXT: "VARCHAR",
}


class JsonInput(FedInput):
    """The records of a JSON or JSON Lines stream, read whole, for the view `input`."""

    def __init__(self, spec: ReadSpec, source: BinaryIO, deadline: Deadline) -> None:
        self._deadline = deadline
        text = Utf8Reader(
            source,
            spec.encoding,
            max_line_bytes=spec.max_line_bytes if spec.format == "jsonl" else MAX_JSON_BYTES,
            category="json",
            cr_is_break=False,
            max_total_bytes=MAX_JSON_BYTES,
        )

        def records() -> Iterator[list[dict[str, object]]]:
            if spec.format == "jsonl":
                return _jsonl_records(text)
            if spec.records is not None:
                return _path_records(text, spec.records)
            return array_records(text)

        self._take(records, lambda: text.failure)

    def _take(self, records: Callable[[], Iterator[list[dict[str, object]]]],
              source_failure: Callable[[], BaseException | None]) -> None:
        """Read every record batch (`records()` makes them) into the columns; raise the
        first failure: the data's, or the source's own (`source_failure()`)."""
        self.failure: BaseException | None = None
        self._columns = _Columns()
        try:
            self._collect(records())
        except TransformError as exc:
            self.failure = exc
        if self.failure is None:
            self.failure = source_failure()
        if self.failure is not None:
            raise self.failure
        self.columns: list[str] = list(self._columns.kinds)
        self.rows_read = self._columns.rows

    @property
    def empty(self) -> bool:
        """No columns: the input has no record (or none with a key)."""
        return not self.columns

    @property
    def large(self) -> bool:
        """Large enough that the database that read it is not reused (see sandbox.py)."""
        return self._columns.size > LARGE_BYTES

    def attach(self, con: duckdb.DuckDBPyConnection, directory: str) -> None:
        """Make the view `input` on `con` over a pipe that a thread writes the rows into."""
        if self.empty:
            return
        self._feed = Feed(directory, self._columns.text())
        types = [_DUCKDB_TYPES[kind] for kind in self._columns.kinds.values()]
        self._feed.start(con, view_sql(self._feed.pipe.path, self.columns, types,
                                       self._columns.longest_row + RECORD_SLACK_BYTES))

    def _release(self) -> None:
        self._columns = _Columns()

    def _collect(self, records: Iterator[list[dict[str, object]]]) -> None:
        for batch in records:
            self._deadline.check()
            self._columns.add(batch)


class _Columns:
    """Record batches as the text DuckDB reads, and each column's type, unified at the end.

    A batch is stored with as many columns as were known then; a key that comes
    later makes the earlier rows one NULL longer when they are written out. A
    batch whose values need quotes is kept as rows (rare): its text is made then.
    """

    def __init__(self) -> None:
        self.rows = 0
        self.kinds: dict[str, Kind] = {}
        self.longest_row = 0
        self.size = 0  # of the text
        self._batches: list[tuple[int, bytes | None, list[tuple[str, ...]] | None]] = []

    def add(self, records: list[dict[str, object]]) -> None:
        self.rows += len(records)
        for record in records:
            for key in record:
                if key not in self.kinds:
                    self.kinds[key] = Kind.NULL
        columns = []
        for key in self.kinds:
            values = [record.get(key) for record in records]
            kind = self.kinds[key]
            for value in values:
                kind = _merge(kind, _kind_of(value))
            self.kinds[key] = kind
            columns.append([_text(value) for value in values])
        rows = list(zip(*columns, strict=True))
        try:
            data = encode_rows(rows)
        except UnicodeEncodeError:
            raise TransformError(
                "json", "a string holds an unpaired surrogate escape (\\ud800-\\udfff)"
            ) from None
        self.size += len(data)
        quoted = b'"' in data
        # the longest record (of a quoted batch, no more than the batch)
        longest = len(data) if quoted else max(map(len, data.split(b"\n")))
        self.longest_row = max(self.longest_row, longest)
        if quoted:  # kept as rows (see above)
            self._batches.append((len(columns), None, rows))
        else:
            self._batches.append((len(columns), data, None))

    def text(self) -> Iterator[bytes]:
        """The rows, batch by batch, each as long as there are columns."""
        width = len(self.kinds)
        null = (DELIMITER + NULL_MARK).encode()
        for columns, data, rows in self._batches:
            missing = width - columns
            if data is not None:
                yield data.replace(b"\n", null * missing + b"\n") if missing else data
            elif rows is not None:
                yield encode_rows([list(row) + [NULL] * missing for row in rows])


def _text(value: object) -> str:
    """A JSON value as the text DuckDB reads: NULL, or its JSON text (strings as they are)."""
    if value is None:
        return NULL
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return _json_text(value)


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
