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

DuckDB writes the text: `render` gives, for a result column's type, the SQL
expression of its text, so that no value becomes a Python object (that was
most of the cost of a large output). DuckDB's own cast to VARCHAR is used
where it already writes the text above, and corrected where it does not (the
shortest text of a float, the T of a timestamp, the digits of its fraction,
a DECIMAL without integer digits, the sign of NaN). Fractions of a second have
the digits of the type: 3 for TIMESTAMP_MS, 6, 9 for TIMESTAMP_NS and TIME_NS.
Dates before year 1 are DuckDB's own text (0044-03-15 (BC)).
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass

from duckdb.sqltypes import DuckDBPyType

from doorvoer.transforms.errors import TransformError


@dataclass(frozen=True)
class Rendering:
    """One result column as text, in SQL.

    `text` (the CSV text) and `json` (the JSON value) are expressions over the
    column's value and, when `pre` is set, over `pre` computed once a row in a
    projection before them (DuckDB would compute it again for every use).
    Both are NULL for NULL. `chars` holds every character the text can have;
    None when it can have any, so that it may need quotes in CSV. `json` may
    write a control character as DuckDB does, \\u001F: see `lower_escapes`.
    """

    text: str
    json: str
    chars: str | None
    pre: str | None = None


class _Unwritable(Exception):
    """A type that has no text (UNION, GEOMETRY, VARIANT), found while rendering."""

    def __init__(self, type_id: str) -> None:
        super().__init__(type_id)
        self.type_id = type_id


_DIGITS = string.digits
_INTEGERS = frozenset({
    "tinyint", "smallint", "integer", "bigint", "hugeint", "utinyint", "usmallint",
    "uinteger", "ubigint", "uhugeint", "bignum",
})  # fmt: skip
_NUMBER_CHARS = _DIGITS + "-."
_FLOAT_CHARS = _DIGITS + "-+.enaif"
_DATE_CHARS = _DIGITS + "-infty (BC)"
_TIME_CHARS = _DIGITS + ":.+-"
_TIMESTAMP_CHARS = _DATE_CHARS + _TIME_CHARS + "T"
_INTERVAL_CHARS = _DIGITS + "-.PYMDTHS"
_BASE64_CHARS = string.ascii_letters + _DIGITS + "+/="
_UUID_CHARS = _DIGITS + "abcdef-"
_ISO = "%Y-%m-%dT%H:%M:%S"
# DuckDB writes these control characters with capital hex digits (\u001F), Python's json
# with small ones (\u001f); every other escape is the same.
_CAPITAL_ESCAPES = ("000B", "000E", "000F", "001A", "001B", "001C", "001D", "001E", "001F")


def render(type_: DuckDBPyType, index: int, value: str, pre: str) -> Rendering:
    """The rendering of result column `index` (0-based) of `type_`, whose value is the
    SQL name `value`; `pre`, if the rendering has one, is computed as the name `pre`."""
    try:
        return _rendering(type_, value, pre)
    except _Unwritable as exc:
        raise TransformError(
            "output",
            f"column {index + 1} has a type that cannot be written "
            f"({exc.type_id.upper()}); cast it in the SQL",
            column=index + 1,
        ) from None


def literal(text: str) -> str:
    """`text` as a SQL string: control characters as chr(), so the SQL stays one line."""
    parts: list[str] = []
    plain = ""
    for char in text:
        if char >= " ":
            plain += char
            continue
        if plain:
            parts.append("'" + plain.replace("'", "''") + "'")
            plain = ""
        parts.append(f"chr({ord(char)})")
    if plain or not parts:
        parts.append("'" + plain.replace("'", "''") + "'")
    return parts[0] if len(parts) == 1 else "concat(" + ", ".join(parts) + ")"


def lower_escapes(json_text: str) -> str:
    """SQL: the JSON text with DuckDB's \\u001F escapes written as Python's \\u001f.

    The text is split at its escaped backslashes (\\\\), so that no piece holds a
    backslash that belongs to another escape: a \\u in a piece is an escape.
    """
    piece = "_piece"
    for hex_digits in _CAPITAL_ESCAPES:
        piece = f"replace({piece}, '\\u{hex_digits}', '\\u{hex_digits.lower()}')"
    return (
        f"array_to_string(list_transform(string_split({json_text}, '\\\\'), "
        f"lambda _piece: {piece}), '\\\\')"
    )


def _rendering(type_: DuckDBPyType, v: str, pre: str | None) -> Rendering:
    """`render` for a value `v`; with `pre` None, what `pre` would name is written inline
    (inside a list or a struct, where there is no projection before)."""
    kind = type_.id
    if kind in _INTEGERS:
        return _scalar(f"{v}::VARCHAR", _NUMBER_CHARS, quoted=False)
    if kind == "boolean":
        return _scalar(f"{v}::VARCHAR", "truefals", quoted=False)
    if kind == "decimal":
        return _scalar(_decimal(type_, v), _NUMBER_CHARS, quoted=False)
    if kind == "double":
        return _double(v, pre)
    if kind == "float":
        text = _float(v)
        json_value = f"CASE WHEN isfinite({v}) THEN {text} END"
        return Rendering(text, json_value, _FLOAT_CHARS)
    if kind == "varchar":
        text = v if str(type_) == "VARCHAR" else f"{v}::VARCHAR"  # not JSON's: it is text
        return Rendering(text, f"to_json({text})::VARCHAR", None)
    if kind == "enum":
        return Rendering(f"{v}::VARCHAR", f"to_json({v}::VARCHAR)::VARCHAR", None)
    if kind in _TEMPORAL:
        return _temporal(kind, v, pre)
    if kind == "uuid":
        return _scalar(f"{v}::VARCHAR", _UUID_CHARS, quoted=True)
    if kind == "blob":
        return _scalar(f"to_base64({v})", _BASE64_CHARS, quoted=True)
    if kind == "bit":
        return _scalar(f"{v}::VARCHAR", "01", quoted=True)
    if kind == "null":
        return _scalar(f"{v}::VARCHAR", "", quoted=True)  # computed: error() is NULL
    if kind in ("list", "array", "struct", "map"):
        return _nested(type_, v, pre)
    raise _Unwritable(kind)


def _scalar(text: str, chars: str, *, quoted: bool) -> Rendering:
    """A text that is its JSON value as it is (a number, true), or `quoted` (a date)."""
    return Rendering(text, f"('\"' || {text} || '\"')" if quoted else text, chars)


def _decimal(type_: DuckDBPyType, v: str) -> str:
    precision, scale = (value for _, value in type_.children)  # DECIMAL(precision, scale)
    if precision != scale:
        return f"{v}::VARCHAR"
    # all digits are decimals: DuckDB writes .50 and -.50
    return (f"CASE WHEN {v} < 0 THEN concat('-0', ({v}::VARCHAR)[2:]) "
            f"WHEN {v} >= 0 THEN concat('0', {v}::VARCHAR) END")


def _double(v: str, pre: str | None) -> Rendering:
    """DuckDB's text of a DOUBLE is Python's repr but for a few values (3.584e+25 comes
    out as 3.5840000000000002e+25) and for NaN with the sign bit (-nan).

    A text of 16 characters or less has at most 15 digits, and a DOUBLE is the only one
    that reads back from its 15 digit text: no shorter text reads back the same, DuckDB's
    is right. For the longer ones the 15 and 16 digit texts, rounded exactly, are tried
    before DuckDB's (of 17 digits, where the shortest text is the exactly rounded one).
    Subnormal numbers (below 2.2250738585072014e-308) have fewer digits of their own:
    several 15 digit texts read back as one, so DuckDB's text is kept.
    """
    cast = f"{v}::VARCHAR"
    t = pre or f"({cast})"
    # the same text by format in the test and by printf in the result: DuckDB would
    # compute one expression written twice for every value, not only the long ones
    tests = [f"format('{{:.{digits}e}}', {v})" for digits in (14, 15)]
    texts = [f"printf('%.{digits}e', {v})" for digits in (14, 15)]
    text = (
        f"CASE WHEN isnan({v}) THEN 'nan' "
        f"WHEN strlen({t}) <= 16 OR abs({v}) < 2.2250738585072014e-308 THEN {t} "
        f"WHEN {tests[0]}::DOUBLE = {v} THEN {_python_float(texts[0])} "
        f"WHEN {tests[1]}::DOUBLE = {v} THEN {_python_float(texts[1])} ELSE {t} END"
    )
    json_value = f"CASE WHEN isfinite({v}) THEN {text} END"
    return Rendering(text, json_value, _FLOAT_CHARS, cast if pre else None)


def _float(v: str) -> str:
    """A FLOAT's text. DuckDB's is not always the shortest (-2668849.75, for -2668849.8):
    the texts of 1 to 9 digits, rounded exactly, are tried and the first that reads back
    the same is written as Python would write a float (1e-05, 16777216.0, 1e+16)."""
    candidates = f"list_transform(range(0, 9), lambda _k: printf('%.*e', _k, {v}::DOUBLE))"
    shortest = f"list_filter({candidates}, lambda _c: _c::FLOAT = {v})[1]"
    return (
        f"CASE WHEN isnan({v}) THEN 'nan' WHEN isinf({v}) THEN "
        f"CASE WHEN {v} > 0 THEN 'inf' ELSE '-inf' END "
        f"WHEN {v} IS NOT NULL THEN {_python_float(shortest)} END"
    )


def _python_float(scientific: str) -> str:
    """SQL: Python's repr of a float from its text in scientific notation (-1.2340e+05)
    with the digits it needs (trailing zeros are dropped): digits and a decimal point,
    with the exponent only when it is below -4 or 16 and up, as Python does."""
    # m: the mantissa without trailing zeros, d: its digits, e: the exponent (x as text)
    mantissa = "rtrim(rtrim(split_part(_s, 'e', 1), '0'), '.')"
    parts = (
        f"{{'m': {mantissa}, 'x': split_part(_s, 'e', 2), "
        "'e': split_part(_s, 'e', 2)::INTEGER, "
        "'sign': CASE WHEN starts_with(_s, '-') THEN '-' ELSE '' END, "
        f"'d': replace(ltrim({mantissa}, '-'), '.', '')}}"
    )
    text = (
        "CASE WHEN _p.e < -4 OR _p.e >= 16 THEN concat(_p.m, 'e', _p.x) "
        "WHEN _p.e >= strlen(_p.d) - 1 "
        "THEN concat(_p.sign, _p.d, repeat('0', _p.e - strlen(_p.d) + 1), '.0') "
        "WHEN _p.e >= 0 THEN concat(_p.sign, _p.d[1:_p.e + 1], '.', _p.d[_p.e + 2:]) "
        "ELSE concat(_p.sign, '0.', repeat('0', -_p.e - 1), _p.d) END"
    )
    return (f"list_transform([{scientific}], lambda _s: "
            f"list_transform([{parts}], lambda _p: {text})[1])[1]")


_TEMPORAL = frozenset({
    "date", "time", "time_ns", "time with time zone", "timestamp", "timestamp_s",
    "timestamp_ms", "timestamp_ns", "timestamp with time zone", "interval",
})  # fmt: skip


def _temporal(kind: str, v: str, pre: str | None) -> Rendering:
    if kind == "date":
        return _scalar(f"{v}::VARCHAR", _DATE_CHARS, quoted=True)
    if kind == "interval":
        return _scalar(_interval(v), _INTERVAL_CHARS, quoted=True)
    if kind in ("time", "time_ns"):
        return _scalar(_time(v, kind), _TIME_CHARS, quoted=True)
    if kind == "time with time zone":
        local, offset = _time(f"{v}::TIME", "time"), _offset(f"date_part('timezone', {v})")
        text = f"concat({local}, {offset})"
        return _scalar(f"CASE WHEN {v} IS NOT NULL THEN {text} END", _TIME_CHARS, quoted=True)
    if kind == "timestamp with time zone":
        zone = f"strftime({v}, '%z')"
        rendering = _scalar(_timestamp_tz(v, pre or f"({zone})"), _TIMESTAMP_CHARS, quoted=True)
        return Rendering(rendering.text, rendering.json, rendering.chars, zone if pre else None)
    return _scalar(_timestamp(v, kind), _TIMESTAMP_CHARS, quoted=True)


# The strftime code and the epoch function of a timestamp type's fraction of a second
_FRACTIONS = {
    "timestamp": (".%f", "epoch_us", 1_000_000),
    "timestamp_ms": (".%g", "epoch_us", 1_000_000),
    "timestamp_ns": (".%n", "epoch_ns", 1_000_000_000),
    "timestamp_s": ("", "epoch_us", 1_000_000),
}


def _timestamp(v: str, kind: str) -> str:
    """strftime writes the ISO text (zero-padded years) of years 1 to 9999 and beyond,
    and infinity; not before year 1, where DuckDB's own text with a T is written
    (TIMESTAMP_NS starts in 1677)."""
    code, epoch, per_second = _FRACTIONS[kind]
    whole = f"strftime({v}, '{_ISO}')"
    if code:  # the epoch of an infinite timestamp is NULL
        whole = (f"CASE WHEN {epoch}({v}) % {per_second} = 0 THEN {whole} "
                 f"ELSE strftime({v}, '{_ISO}{code}') END")
    if kind == "timestamp_ns":
        return whole
    return (f"CASE WHEN {v} < TIMESTAMP '0001-01-01' "
            f"THEN regexp_replace({v}::VARCHAR, ' ', 'T') ELSE {whole} END")


def _timestamp_tz(v: str, zone: str) -> str:
    """In DuckDB's TimeZone setting, with the offset there: +01:00 (strftime's %z is +01)."""
    offset = (f"CASE WHEN NOT isfinite({v}) OR {v} < TIMESTAMP '0001-01-01' THEN '' "
              f"WHEN strlen({zone}) = 3 THEN concat({zone}, ':00') ELSE {zone} END")
    return f"({_timestamp(v, 'timestamp')} || {offset})"


def _time(v: str, kind: str) -> str:
    """DuckDB writes a TIME's fraction without its trailing zeros (13:04:05.25)."""
    epoch, per_second, width = ("epoch_ns", 1_000_000_000, 18) if kind == "time_ns" else (
        "epoch_us", 1_000_000, 15)
    return (f"rpad({v}::VARCHAR, "
            f"CASE WHEN {epoch}({v}) % {per_second} = 0 THEN 8 ELSE {width} END, '0')")


def _offset(seconds: str) -> str:
    """SQL: +HH:MM, or +HH:MM:SS, of an offset east of UTC in seconds."""
    return (
        f"list_transform([{seconds}], lambda _o: concat("
        "CASE WHEN _o < 0 THEN '-' ELSE '+' END, lpad((abs(_o) // 3600)::VARCHAR, 2, '0'), "
        "':', lpad((abs(_o) // 60 % 60)::VARCHAR, 2, '0'), "
        "CASE WHEN _o % 60 <> 0 THEN concat(':', lpad((abs(_o) % 60)::VARCHAR, 2, '0')) END))[1]"
    )


def _interval(v: str) -> str:
    """ISO 8601: P1Y2M3DT4H5M6.5S. DuckDB keeps months, days and microseconds apart, each
    with its own sign; the time's sign goes on each of its parts (PT-1H-30M), a part that
    is zero is left out, and a zero interval is PT0S."""
    parts = (
        f"{{'y': datepart('year', {v}), 'mo': datepart('month', {v}), "
        f"'d': datepart('day', {v}), 'us': datepart('hour', {v})::BIGINT * 3600000000 "
        f"+ datepart('minute', {v}) * 60000000 + datepart('microseconds', {v})}}"
    )
    sign = "CASE WHEN _i.us < 0 THEN '-' ELSE '' END"
    us = "abs(_i.us)"
    fraction = (f"CASE WHEN {us} % 1000000 <> 0 "
                f"THEN rtrim(concat('.', lpad(({us} % 1000000)::VARCHAR, 6, '0')), '0') END")
    date_part = (
        "concat(CASE WHEN _i.y <> 0 THEN concat(_i.y, 'Y') END, "
        "CASE WHEN _i.mo <> 0 THEN concat(_i.mo, 'M') END, "
        "CASE WHEN _i.d <> 0 THEN concat(_i.d, 'D') END)"
    )
    time_part = (
        f"concat(CASE WHEN {us} >= 3600000000 THEN concat({sign}, {us} // 3600000000, 'H') END, "
        f"CASE WHEN {us} // 60000000 % 60 <> 0 "
        f"THEN concat({sign}, {us} // 60000000 % 60, 'M') END, "
        f"CASE WHEN {us} % 60000000 <> 0 "
        f"THEN concat({sign}, {us} // 1000000 % 60, {fraction}, 'S') END)"
    )
    whole = (
        "CASE WHEN _t.d = '' AND _t.t = '' THEN 'PT0S' "
        "ELSE concat('P', _t.d, CASE WHEN _t.t <> '' THEN concat('T', _t.t) END) END"
    )
    return (
        f"CASE WHEN {v} IS NOT NULL THEN list_transform([{parts}], lambda _i: list_transform("
        f"[{{'d': {date_part}, 't': {time_part}}}], lambda _t: {whole})[1])[1] END"
    )


def _nested(type_: DuckDBPyType, v: str, pre: str | None) -> Rendering:
    """Lists, structs and maps as JSON text, written by DuckDB like the other values."""
    json_text = _json(type_, v, 1)
    t = pre or f"({json_text})"
    # in CSV the JSON is the value's text: with Python's escapes (JSON output fixes them
    # for the whole object, see JsonWriter)
    text = f"CASE WHEN contains({t}, '\\u00') THEN {lower_escapes(t)} ELSE {t} END"
    return Rendering(text, t, None, json_text if pre else None)


def _json(type_: DuckDBPyType, v: str, depth: int) -> str:
    """SQL: the JSON text of `v` inside a nested value, NULL for NULL."""
    kind = type_.id
    if kind in ("list", "array"):
        element = f"_e{depth}"
        item = _element(_children(type_)[0][1], element, depth + 1)
        return (f"CASE WHEN {v} IS NOT NULL THEN concat('[', array_to_string("
                f"list_transform({v}, lambda {element}: {item}), ','), ']') END")
    if kind == "struct":
        members: list[str] = []
        for position, (name, child) in enumerate(_children(type_), start=1):
            key = ("{" if position == 1 else ",") + json.dumps(name, ensure_ascii=False) + ":"
            members += [literal(key), _element(child, f"struct_extract_at({v}, {position})", depth)]
        return f"CASE WHEN {v} IS NOT NULL THEN concat({', '.join(members)}, '}}') END"
    if kind == "map":
        entry = f"_e{depth}"
        key_type, value_type = (child for _, child in _children(type_))
        key = f"to_json({_rendering(key_type, f'{entry}.key', None).text})::VARCHAR"
        item = f"concat({key}, ':', {_element(value_type, f'{entry}.value', depth + 1)})"
        return (f"CASE WHEN {v} IS NOT NULL THEN concat('{{', array_to_string("
                f"list_transform(map_entries({v}), lambda {entry}: {item}), ','), '}}') END")
    return _rendering(type_, v, None).json


def _children(type_: DuckDBPyType) -> list[tuple[str, DuckDBPyType]]:
    """The member types of a nested type (not an ARRAY's size)."""
    return [(name, child) for name, child in type_.children if isinstance(child, DuckDBPyType)]


def _element(type_: DuckDBPyType, v: str, depth: int) -> str:
    return f"coalesce({_json(type_, v, depth)}, 'null')"
