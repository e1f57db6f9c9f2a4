"""Fixed-width input (`format: fixed`): mainframe-style records, one a line, each column
at a place of its own (`columns:` with `start` and `width`, or `width` only, in order).

Behaviour:
- `encoding` as for CSV (decoded strictly: a byte the encoding does not have is an
  error naming its line); lines end in LF, CR LF or CR.
- `skip_lines` header lines are skipped; blank lines are skipped.
- A record shorter than the layout is an error naming its line and the length the
  layout needs; characters past the last column are ignored (filler).
- `trim` (default true) strips the spaces around each value; every column is text
  unless `infer` is set, as for CSV.

The rows take CSV's way to DuckDB (`csvread.CsvInput`: the first MiB a table, a larger
input through a pipe, every value checked here first); only reading a batch of records
and naming the columns differ.
"""

from __future__ import annotations

import io
import itertools
from typing import BinaryIO

from doorvoer.transforms.clock import Deadline
from doorvoer.transforms.csvread import BATCH_RECORDS, READ_BYTES, CsvInput, record_bytes
from doorvoer.transforms.decoding import Utf8Reader
from doorvoer.transforms.errors import TransformError
from doorvoer.transforms.inference import ColumnType
from doorvoer.transforms.pipes import Feed
from doorvoer.transforms.spec import ReadSpec


class FixedInput(CsvInput):
    """The rows of a fixed-width stream, read once, for the view `input`."""

    category = "fixed"

    def __init__(self, spec: ReadSpec, source: BinaryIO, deadline: Deadline) -> None:
        # CsvInput's machinery with a header-less spec: the names are the layout's
        self._spec = spec.model_copy(update={"header": False})
        self._deadline = deadline
        self._record_limit = record_bytes(spec)
        self._layout = spec.layout
        self._need = max(end for _, _, end in self._layout)
        self._text = Utf8Reader(source, spec.encoding, max_line_bytes=spec.max_line_bytes,
                                category="fixed", final_newline=True)
        self._lines = io.TextIOWrapper(io.BufferedReader(self._text, READ_BYTES),
                                       encoding="utf-8", newline="")
        self._line = 0
        self.rows_read = 0
        self._failure: BaseException | None = None
        self.columns: list[str] = []
        self._types: list[ColumnType] = []
        self._width = 0
        self._first: list[list[str]] = []
        self._whole = False
        self._feed: Feed | None = None
        try:
            for _ in itertools.islice(self._lines, spec.skip_lines):
                self._line += 1
            self._begin()
        except TransformError as exc:
            raise self._fail(exc) from None
        except UnicodeDecodeError:  # Utf8Reader has the reason, with its line
            raise self._fail(self._text.failure or TransformError(
                "encoding", "the input is not in the declared encoding")) from None

    def _start(self, record: list[str]) -> None:
        self._width = len(self._layout)
        self.columns = [name for name, _, _ in self._layout]

    def _read_batch(self) -> tuple[int, list[list[str]], bool]:
        """The next records (one a line; [] for a blank one), the line the first is on,
        and whether the input ends after them."""
        start = self._line + 1
        batch: list[list[str]] = []
        append = batch.append
        layout, need, trim = self._layout, self._need, self._spec.trim
        try:
            lines = list(itertools.islice(self._lines, BATCH_RECORDS))
        except UnicodeDecodeError:
            raise self._fail(self._text.failure or TransformError(
                "encoding", "the input is not in the declared encoding")) from None
        if self._text.failure is not None:
            raise self._fail(self._text.failure)
        for raw in lines:
            self._line += 1
            line = raw.rstrip("\r\n")
            if not line.strip():
                append([])
                continue
            if len(line) < need:
                raise TransformError(
                    "fixed", f"line {self._line}: the record has {len(line)} characters; "
                    f"the layout needs {need}", line=self._line)
            fields = [line[a:b] for _, a, b in layout]
            append([f.strip() for f in fields] if trim else fields)
        if self._deadline.expired:
            raise self._deadline.error()
        return start, batch, len(lines) < BATCH_RECORDS
