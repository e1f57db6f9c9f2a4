"""Type inference for CSV columns, used only when a spec sets `infer: true`.

The type of a column is chosen from the non-empty values of the first block of
rows (about a MiB), in this order: BIGINT, DOUBLE, BOOLEAN, DATE, TIMESTAMP,
else text. A column with a number that has a leading zero ("00123") stays
text, and so does a column with no value in the first block. `decimal: ","`
makes "12,50" a DOUBLE. Empty fields become NULL in typed columns. A later
value that does not fit the chosen type is an error that names its line.

Each value of a typed column is checked and written here in DuckDB's own
notation (`convert`), so DuckDB reads it without a doubt.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass

_INTEGER = re.compile(r"[+-]?[0-9]+")
_LEADING_ZERO = re.compile(r"[+-]?0[0-9]")
_FLOAT_POINT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_FLOAT_COMMA = re.compile(r"[+-]?([0-9]+(,[0-9]*)?|,[0-9]+)([eE][+-]?[0-9]+)?")
_BOOLEAN = re.compile(r"(?i:true|false)")
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_TIMESTAMP = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[T ]([0-9]{2}):([0-9]{2})(:([0-9]{2})(\.([0-9]{1,9}))?)?"
)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True, eq=False)
class ColumnType:
    """A column's type: its name in errors, in DuckDB, and how a value is checked."""

    name: str
    duckdb: str
    convert: Callable[[str], str | None]  # the value in DuckDB's notation, None if it does not fit


def _integer(value: str) -> str | None:
    if not _INTEGER.fullmatch(value):
        return None
    number = int(value)
    return str(number) if _INT64_MIN <= number <= _INT64_MAX else None


def _float_with(pattern: re.Pattern[str], comma: bool) -> Callable[[str], str | None]:
    def convert(value: str) -> str | None:
        if not pattern.fullmatch(value):
            return None
        number = float(value.replace(",", ".") if comma else value)
        return repr(number)

    return convert


def _boolean(value: str) -> str | None:
    return value.lower() if _BOOLEAN.fullmatch(value) else None


def _date(value: str) -> str | None:
    match = _DATE.fullmatch(value)
    if not match:
        return None
    try:
        dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None
    return value


def _timestamp(value: str) -> str | None:
    match = _TIMESTAMP.fullmatch(value)
    if not match or _date(match[1]) is None:
        return None
    hour, minute, second = int(match[2]), int(match[3]), int(match[5] or 0)
    if hour > 23 or minute > 59 or second > 59:
        return None
    fraction = (match[7] or "")[:6]  # to the microsecond, as DuckDB keeps it
    text = f"{match[1]} {match[2]}:{match[3]}:{second:02d}"
    return text + ("." + fraction if fraction else "")


TEXT = ColumnType("VARCHAR", "VARCHAR", lambda value: value)
BIGINT = ColumnType("BIGINT", "BIGINT", _integer)
DOUBLE = ColumnType("DOUBLE", "DOUBLE", _float_with(_FLOAT_POINT, comma=False))
DOUBLE_COMMA = ColumnType("DOUBLE", "DOUBLE", _float_with(_FLOAT_COMMA, comma=True))
BOOLEAN = ColumnType("BOOLEAN", "BOOLEAN", _boolean)
DATE = ColumnType("DATE", "DATE", _date)
TIMESTAMP = ColumnType("TIMESTAMP", "TIMESTAMP", _timestamp)


def infer_types(rows: list[list[str]], width: int, decimal: str | None) -> list[ColumnType]:
    """The type of each of `width` columns, from the fields of `rows`."""
    return [
        _infer([row[index] for row in rows if index < len(row)], decimal == ",")
        for index in range(width)
    ]


def _infer(column: list[str], decimal_comma: bool) -> ColumnType:
    values = [value for value in column if value != ""]
    if not values:
        return TEXT
    candidates = [BIGINT, DOUBLE_COMMA if decimal_comma else DOUBLE, BOOLEAN, DATE, TIMESTAMP]
    if any(_LEADING_ZERO.match(value) for value in values):
        candidates = candidates[2:]
    for candidate in candidates:
        if all(candidate.convert(value) is not None for value in values):
            return candidate
    return TEXT
