"""Fixed-width output (`write: format: fixed`), on the writers' shared frame
(`writers._LineWriter`): DuckDB renders each value as text, Python pads it."""

from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO

from doorvoer.transforms.errors import TransformError
from doorvoer.transforms.spec import WriteSpec
from doorvoer.transforms.writers import Lines, _LineWriter

if TYPE_CHECKING:
    from duckdb.sqltypes import DuckDBPyType


class FixedWriter(_LineWriter):
    """Fixed-width records, one a line, laid out as the spec's `columns` say: the query
    must return those columns, in that order. A value is aligned and padded to its
    width; NULL is all padding. A value longer than its column fails the transfer naming
    the row and the column (unless the column says `truncate`); one that holds a line
    break always does, since it would break the record in two. No header line."""

    def __init__(self, spec: WriteSpec, sink: BinaryIO) -> None:
        super().__init__(spec, sink)
        self._layout = list(spec.columns or ())

    def begin(self, names: list[str], types: list[DuckDBPyType]) -> None:
        if len(names) != len(self._layout):
            raise TransformError("output", f"the query returns {len(names)} columns; the "
                                 f"layout has {len(self._layout)}")
        for position, (name, column) in enumerate(zip(names, self._layout, strict=True), 1):
            if name.lower() != column.name.lower():  # the query's name is not quoted
                raise TransformError("output", f"column {position} of the query is not the "
                                     f"layout's {column.name!r}: name it so with AS",
                                     column=position)
        self._render(types)

    def statement(self, sql: str) -> str:
        values = ", ".join(f"coalesce({r.text}, '')" for r in self._renderings)
        return self._frame(sql, f"list_value({values})")

    def write(self, lines: Lines) -> None:
        texts = []
        row = self.rows
        for (values,) in lines:
            row += 1
            parts = []
            for position, (value, column) in enumerate(zip(values, self._layout,
                                                           strict=True), start=1):
                if "\n" in value or "\r" in value:
                    raise TransformError("output", f"row {row}, column {position}: the value "
                                         "holds a line break", line=row, column=position)
                if len(value) > column.width:
                    if not column.truncate:
                        raise TransformError(
                            "output", f"row {row}, column {position} ({column.name}): the "
                            f"value has {len(value)} characters; the column is "
                            f"{column.width} wide (or set truncate: true)",
                            line=row, column=position)
                    value = value[:column.width]
                parts.append(value.ljust(column.width, column.pad) if column.align == "left"
                             else value.rjust(column.width, column.pad))
            texts.append("".join(parts))
        self._emit(self._chunk(texts), len(texts), lambda: texts)

    def finish(self) -> None:
        self._encoder.finish()

    def _chunk(self, lines: list[str]) -> str:
        return "".join(line + self._newline for line in lines)

    def _values(self, line: str) -> list[str]:
        out, at = [], 0
        for column in self._layout:
            out.append(line[at:at + column.width])
            at += column.width
        return out
