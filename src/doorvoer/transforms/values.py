"""How the values of a query result are written as text.

One rendering serves every writer, so CSV and JSON agree:
- NULL is an empty CSV field and JSON null.
- Integers and DECIMALs are exact decimal text (a DECIMAL keeps its scale:
  12.50); in JSON they are numbers, never strings, never rounded.
- Floating point numbers are the shortest text that reads back the same
  (100.0, 0.1, 1e+20); NaN and infinities are nan/inf/-inf in CSV, null in JSON.
- BOOLEAN is true/false.
- DATE is YYYY-MM-DD, TIMESTAMP YYYY-MM-DDTHH:MM:SS[.ffffff] (with the offset
  for TIMESTAMP WITH TIME ZONE), TIME HH:MM:SS[.ffffff], INTERVAL an ISO 8601
  duration; DuckDB's infinite dates are infinity/-infinity. In JSON these are
  strings.
- BLOB is base64. Lists, structs and maps are JSON text in CSV and JSON values
  in JSON.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
from collections.abc import Callable
from decimal import Decimal
from enum import Enum
from json.encoder import encode_basestring
from typing import cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa
import pyarrow.compute as pc

from doorvoer.transforms.errors import TransformError

_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_DATE = dt.date(1970, 1, 1)
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_DIGITS = {"s": 0, "ms": 3, "us": 6, "ns": 9}
_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")
_NON_FINITE = frozenset({"nan", "inf", "-inf"})
_quote: Callable[[str], str] = encode_basestring  # json.dumps for one str, without its overhead


class Kind(Enum):
    STRING = "string"  # text that JSON quotes
    NUMBER = "number"  # text that is a JSON literal as it is (numbers, true/false)
    FLOAT = "float"  # a JSON literal, except nan/inf/-inf which JSON writes as null
    JSON = "json"  # JSON text (lists, structs, maps)


Texts = list[str | None]


def render(column: pa.Array, index: int) -> tuple[pa.Array, Kind]:
    """The text of each value of a result column as an Arrow string array (null for
    NULL), and its kind.

    `index` is the column's 0-based position, for the error of a type that
    cannot be written. Text, integers and booleans stay in Arrow (no Python object per
    value, which is most of a large output's cost); the other types are made text in
    Python (`_python_texts`).
    """
    kind = column.type
    if pa.types.is_dictionary(kind):
        return render(column.dictionary_decode(), index)
    if pa.types.is_string(kind):
        return column, Kind.STRING
    if pa.types.is_large_string(kind) or _is_string_view(kind) or pa.types.is_null(kind):
        return pc.cast(column, pa.string()), Kind.STRING
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        return pc.cast(column, pa.string()), Kind.NUMBER
    texts, text_kind = _python_texts(column, index)
    return pa.array(texts, pa.string()), text_kind


def _python_texts(column: pa.Array, index: int) -> tuple[Texts, Kind]:
    """`render` for the types whose text is made value by value."""
    kind = column.type
    if pa.types.is_decimal(kind):
        return _decimals(column), Kind.NUMBER
    if pa.types.is_floating(kind):
        return _floats(column), Kind.FLOAT
    if pa.types.is_date(kind):
        days = column.cast(pa.date32()).cast(pa.int32())
        return _per_value(days, _date_text), Kind.STRING
    if pa.types.is_timestamp(kind):
        tz = _zone(kind.tz) if kind.tz else None
        unit = kind.unit
        return _per_value(
            column.cast(pa.int64()), lambda v: _timestamp_text(v, unit, tz)
        ), Kind.STRING
    if pa.types.is_time(kind):
        unit = kind.unit
        return _per_value(column.cast(pa.int64()), lambda v: _time_text(v, unit)), Kind.STRING
    if kind == pa.month_day_nano_interval():
        return [None if v is None else _interval_text(*v) for v in column.to_pylist()], Kind.STRING
    if _is_binary(kind):
        return [None if v is None else _base64(v) for v in column.to_pylist()], Kind.STRING
    if _is_nested(kind):
        values = column.to_pylist(maps_as_pydicts="lossy")
        return [None if v is None else _json(v) for v in values], Kind.JSON
    raise TransformError(
        "output",
        f"column {index + 1} has a type that cannot be written ({kind}); cast it in the SQL",
        column=index + 1,
    )


def csv_cells(texts: Texts) -> list[str]:
    return ["" if text is None else text for text in texts]


def json_cells(texts: Texts, kind: Kind) -> list[str]:
    if kind is Kind.STRING:
        return ["null" if t is None else _quote(t) for t in texts]
    if kind is Kind.FLOAT:
        return ["null" if t is None or t in _NON_FINITE else t for t in texts]
    return ["null" if t is None else t for t in texts]


def _is_string_view(kind: pa.DataType) -> bool:
    return bool(getattr(pa.types, "is_string_view", lambda _: False)(kind))


def _is_binary(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_fixed_size_binary(kind)
        or getattr(pa.types, "is_binary_view", lambda _: False)(kind)
    )


def _is_nested(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_list(kind)
        or pa.types.is_large_list(kind)
        or pa.types.is_fixed_size_list(kind)
        or pa.types.is_struct(kind)
        or pa.types.is_map(kind)
        or getattr(pa.types, "is_list_view", lambda _: False)(kind)
    )


def _decimals(column: pa.Array) -> Texts:
    texts: Texts = pc.cast(column, pa.string()).to_pylist()
    if any(text is not None and "E" in text for text in texts):
        # pyarrow writes some values in scientific notation (0E-10): not for us
        return [None if v is None else format(v, "f") for v in column.to_pylist()]
    return texts


def _floats(column: pa.Array) -> Texts:
    if column.type == pa.float64():
        return [None if v is None else repr(v) for v in column.to_pylist()]
    # float32: pyarrow prints the shortest text that reads back as the same float32
    texts = pc.cast(column, pa.string()).to_pylist()
    return [None if t is None else _float_text(t) for t in texts]


def _float_text(text: str) -> str:
    if text in _NON_FINITE or any(c in text for c in ".en"):
        return text
    return text + ".0"


def _per_value(column: pa.Array, text: Callable[[int], str]) -> Texts:
    return [None if v is None else text(int(v)) for v in column.to_pylist()]


def _date_text(days: int) -> str:
    try:
        return (_EPOCH_DATE + dt.timedelta(days=days)).isoformat()
    except OverflowError:
        return "infinity" if days > 0 else "-infinity"


def _timestamp_text(value: int, unit: str, tz: dt.tzinfo | None) -> str:
    seconds, fraction = divmod(value, _PER_SECOND[unit])
    try:
        moment = _EPOCH + dt.timedelta(seconds=seconds)
        if tz is not None:
            moment = moment.replace(tzinfo=dt.UTC).astimezone(tz)
    except (OverflowError, ValueError):
        return "infinity" if value > 0 else "-infinity"
    naive = moment.replace(tzinfo=None).isoformat()
    offset = moment.isoformat()[len(naive) :]
    return naive + _fraction(fraction, unit) + offset


def _time_text(value: int, unit: str) -> str:
    seconds, fraction = divmod(value, _PER_SECOND[unit])
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}" + _fraction(fraction, unit)


def _fraction(fraction: int, unit: str) -> str:
    return f".{fraction:0{_DIGITS[unit]}d}" if fraction else ""


def _interval_text(months: int, days: int, nanoseconds: int) -> str:
    month_sign = -1 if months < 0 else 1
    years, months = (month_sign * part for part in divmod(abs(months), 12))
    date_part = "".join(
        f"{amount}{unit}" for amount, unit in ((years, "Y"), (months, "M"), (days, "D")) if amount
    )
    sign = "-" if nanoseconds < 0 else ""
    seconds, nanos = divmod(abs(nanoseconds), 1_000_000_000)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    second_text = f"{seconds}.{nanos:09d}".rstrip("0") if nanos else str(seconds)
    time_part = "".join(
        f"{sign}{amount}{unit}"
        for amount, unit in ((hours, "H"), (minutes, "M"), (second_text, "S"))
        if amount not in (0, "0")
    )
    if not date_part and not time_part:
        return "PT0S"
    return "P" + date_part + ("T" + time_part if time_part else "")


def _zone(name: str) -> dt.tzinfo:
    match = _OFFSET.match(name)
    if match:
        sign = -1 if match.group(1) == "-" else 1
        delta = dt.timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))
        return dt.timezone(sign * delta)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def _base64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _json(value: object) -> str:
    """JSON text of a nested value, with exact decimals and ISO dates."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "null"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        items = cast(dict[object, object], value).items()
        members = (f"{json.dumps(str(k), ensure_ascii=False)}:{_json(v)}" for k, v in items)
        return "{" + ",".join(members) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_json(v) for v in value) + "]"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return json.dumps(value.isoformat())
    if isinstance(value, bytes):
        return json.dumps(_base64(value))
    if isinstance(value, pa.MonthDayNano):
        return json.dumps(_interval_text(*value))
    return json.dumps(str(value), ensure_ascii=False)
