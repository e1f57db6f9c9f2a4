"""Type inference for CSV columns, used only when a spec sets `infer: true`.

The type of a column is chosen from the non-empty values of the first block of
rows (a few MiB), in this order: BIGINT, DOUBLE, BOOLEAN, DATE, TIMESTAMP,
else text. A column with a number that has a leading zero ("00123") stays
text, and so does a column with no value in the first block. `decimal: ","`
makes "12,50" a DOUBLE. Empty fields become NULL in typed columns. A later
value that does not fit the chosen type is an error that names its line.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

_INTEGER = r"^[+-]?[0-9]+$"
_LEADING_ZERO = r"^[+-]?0[0-9]"
_FLOAT_POINT = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_FLOAT_COMMA = r"^[+-]?([0-9]+(,[0-9]*)?|,[0-9]+)([eE][+-]?[0-9]+)?$"
_BOOLEAN = r"^(?i:true|false)$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_TIMESTAMP = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?$"


@dataclass(frozen=True)
class ColumnCaster:
    """Casts the text of one column to its inferred type."""

    type: pa.DataType
    type_name: str
    decimal_comma: bool = False

    def cast(self, column: pa.Array) -> pa.Array | None:
        """The column in its type, or None if a value does not fit."""
        if pa.types.is_string(self.type):
            return column
        values = pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)
        if self.decimal_comma:
            values = pc.replace_substring(values, ",", ".")
        try:
            return pc.cast(values, self.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None

    def first_failure(self, column: pa.Array) -> int:
        """The index of the first value that does not fit (the column has one)."""
        low, high = 0, len(column)
        while high - low > 1:
            middle = (low + high) // 2
            if self.cast(column.slice(low, middle - low)) is None:
                high = middle
            else:
                low = middle
        return low


TEXT = ColumnCaster(pa.string(), "VARCHAR")


def infer_casters(columns: list[pa.Array], decimal: str | None) -> list[ColumnCaster]:
    return [_infer(column, decimal == ",") for column in columns]


def _infer(column: pa.Array, decimal_comma: bool) -> ColumnCaster:
    values = column.filter(pc.not_equal(column, ""))
    if len(values) == 0:
        return TEXT
    candidates = [
        (_INTEGER, ColumnCaster(pa.int64(), "BIGINT")),
        (
            _FLOAT_COMMA if decimal_comma else _FLOAT_POINT,
            ColumnCaster(pa.float64(), "DOUBLE", decimal_comma=decimal_comma),
        ),
        (_BOOLEAN, ColumnCaster(pa.bool_(), "BOOLEAN")),
        (_DATE, ColumnCaster(pa.date32(), "DATE")),
        (_TIMESTAMP, ColumnCaster(pa.timestamp("us"), "TIMESTAMP")),
    ]
    if pc.any(pc.match_substring_regex(values, _LEADING_ZERO)).as_py():
        candidates = candidates[2:]
    for pattern, caster in candidates:
        matches = pc.all(pc.match_substring_regex(values, pattern)).as_py()
        if matches and caster.cast(values) is not None:
            return caster
    return TEXT
