"""Writing CSV, JSON and JSON Lines: types, line endings, encodings."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import random
import struct
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from unittest import mock
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from doorvoer.transforms import (
    ReadSpec,
    TransformResult,
    TransformSpec,
    WriteSpec,
    run_transform,
    writers,
)

from .helpers import Source, failure, rows, stream, transform

TYPED = """
SELECT 1 AS int, 12.50::DECIMAL(10,2) AS dec, 0::DECIMAL(18,4) AS zero,
       123456789012345678901234567.123::DECIMAL(38,3) AS big, 0.1::DOUBLE AS float,
       100.0::DOUBLE AS whole, 1e20::DOUBLE AS huge, 1.5::FLOAT AS single,
       NULL AS nothing, DATE '2024-03-05' AS day,
       TIMESTAMP '2024-03-05 13:04:05.123' AS ts, TIMESTAMP '2024-03-05 13:04:05' AS ts0,
       TIMESTAMPTZ '2024-03-05 13:04:05+02' AS tstz, TIME '13:04:05' AS tm,
       true AS yes, false AS no, 'tekst "met" quotes' AS text
UNION ALL
SELECT -2, -0.05, NULL, NULL, 'nan'::DOUBLE, 'inf'::DOUBLE, '-inf'::DOUBLE, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL
"""


def test_json_keeps_types() -> None:
    _, output = transform(b"", TYPED, write={"format": "json"})
    parsed = json.loads(output, parse_float=Decimal)
    assert parsed[0] == {
        "int": 1,
        "dec": Decimal("12.50"),
        "zero": Decimal("0.0000"),
        "big": Decimal("123456789012345678901234567.123"),
        "float": Decimal("0.1"),
        "whole": Decimal("100.0"),
        "huge": Decimal("1e+20"),
        "single": Decimal("1.5"),
        "nothing": None,
        "day": "2024-03-05",
        "ts": "2024-03-05T13:04:05.123000",
        "ts0": "2024-03-05T13:04:05",
        "tstz": "2024-03-05T11:04:05+00:00",
        "tm": "13:04:05",
        "yes": True,
        "no": False,
        "text": 'tekst "met" quotes',
    }
    assert parsed[1]["int"] == -2
    assert parsed[1]["dec"] == Decimal("-0.05")
    assert [parsed[1][k] for k in ("float", "whole", "huge")] == [None, None, None]
    text = output.decode()
    assert text.startswith('[\n{"int":1,"dec":12.50,"zero":0.0000,')
    assert '"big":123456789012345678901234567.123,' in text
    assert text.endswith("}\n]\n")


def test_jsonl_keeps_types_and_order() -> None:
    _, output = transform(b"", TYPED + " ORDER BY int DESC", write={"format": "jsonl"})
    lines = output.decode().split("\n")
    assert lines[-1] == ""
    assert len(lines) == 3
    first = json.loads(lines[0])
    assert list(first) == [
        "int", "dec", "zero", "big", "float", "whole", "huge", "single", "nothing", "day", "ts",
        "ts0", "tstz", "tm", "yes", "no", "text",
    ]  # fmt: skip
    assert lines[0].startswith('{"int":1,"dec":12.50,')


def test_csv_values() -> None:
    _, output = transform(b"", TYPED, write={"format": "csv"})
    header, first, second, end = output.decode().split("\n")
    assert header.startswith("int,dec,zero,big,float,whole,huge,single,nothing,day,ts,")
    assert first == (
        "1,12.50,0.0000,123456789012345678901234567.123,0.1,100.0,1e+20,1.5,,2024-03-05,"
        "2024-03-05T13:04:05.123000,2024-03-05T13:04:05,2024-03-05T11:04:05+00:00,13:04:05,"
        'true,false,"tekst ""met"" quotes"'
    )
    assert second == "-2,-0.05,,,nan,inf,-inf,,,,,,,,,,"
    assert end == ""


def test_csv_options_crlf_delimiter_no_header() -> None:
    sql = "SELECT 'a;b' AS x, 'line\nbreak' AS y, 'c' AS z"
    _, output = transform(
        b"", sql, write={"format": "csv", "delimiter": ";", "line_ending": "crlf", "header": False}
    )
    assert output == b'"a;b";"line\nbreak";c\r\n'
    _, output = transform(
        b"", sql + " UNION ALL SELECT 'd', 'e', 'f'", write={"format": "csv", "line_ending": "crlf"}
    )
    assert output == b'x,y,z\r\na;b,"line\nbreak",c\r\nd,e,f\r\n'


def test_csv_bare_carriage_return_is_quoted() -> None:
    _, output = transform(b"", "SELECT 'a\rb' AS x, 1 AS n", write={"format": "csv"})
    assert output == b'x,n\n"a\rb",1\n'


def test_json_crlf() -> None:
    _, output = transform(
        b"", "SELECT * FROM range(2) t(n)", write={"format": "json", "line_ending": "crlf"}
    )
    assert output == b'[\r\n{"n":0},\r\n{"n":1}\r\n]\r\n'
    _, output = transform(
        b"", "SELECT * FROM range(2) t(n)", write={"format": "jsonl", "line_ending": "crlf"}
    )
    assert output == b'{"n":0}\r\n{"n":1}\r\n'


def test_empty_results() -> None:
    sql = "SELECT 1 AS n WHERE false"
    assert transform(b"", sql, write={"format": "json"})[1] == b"[]\n"
    assert transform(b"", sql, write={"format": "jsonl"})[1] == b""
    assert transform(b"", sql, write={"format": "csv"})[1] == b"n\n"


def test_writer_encoding_cp1252() -> None:
    data = "naam;bedrag\nCafé;€ 5\n".encode()
    _, output = transform(
        data,
        read={"delimiter": ";"},
        write={"format": "csv", "delimiter": ";", "encoding": "cp1252"},
    )
    assert output == "naam;bedrag\nCafé;€ 5\n".encode("cp1252")
    _, output = transform(
        data, read={"delimiter": ";"}, write={"format": "jsonl", "encoding": "cp1252"}
    )
    assert output.decode("cp1252") == '{"naam":"Café","bedrag":"€ 5"}\n'


def test_writer_utf8_sig_writes_a_bom() -> None:
    _, output = transform(b"a\nx\n", write={"format": "csv", "encoding": "utf-8-sig"})
    assert output == b"\xef\xbb\xbfa\nx\n"


def test_unencodable_character() -> None:
    data = "id,naam\n1,Jan\n2,Zoë\n3,Łukasz\n".encode()
    error = failure(data, write={"format": "csv", "encoding": "cp1252"})
    assert str(error) == "output: a value cannot be written as cp1252 (row 3, column 2)"
    assert (error.category, error.line, error.column) == ("output", 3, 2)
    error = failure(data, write={"format": "json", "encoding": "latin-1"})
    assert str(error) == "output: a value cannot be written as ISO-8859-1 (row 3, column 2)"
    error = failure("Łódź\n1\n".encode(), write={"format": "csv", "encoding": "cp1252"})
    assert str(error) == "output: a column name cannot be written as cp1252 (column 1)"


def test_json_needs_distinct_column_names() -> None:
    error = failure(b"a\n1\n", "SELECT a, a FROM input", write={"format": "json"})
    assert error.category == "output"
    assert "columns 1 and 2" in str(error)
    _, output = transform(b"a\n1\n", "SELECT a, a FROM input", write={"format": "csv"})
    assert output == b"a,a\n1,1\n"


def test_nested_and_other_types() -> None:
    sql = """SELECT [1, 2] AS list, {'k': 1.50::DECIMAL(4,2), 'd': DATE '2024-01-02'} AS st,
                    MAP {'a': 1} AS m, INTERVAL 3 DAY + INTERVAL 90 MINUTE AS iv,
                    'ab'::BLOB AS bl, 'x'::ENUM('x', 'y') AS en, 42::HUGEINT AS h,
                    TIMESTAMP_NS '2024-01-01 00:00:00.123456789' AS ns,
                    'infinity'::DATE AS forever, 2::UBIGINT AS u"""
    _, output = transform(b"", sql, write={"format": "jsonl"})
    assert json.loads(output) == {
        "list": [1, 2],
        "st": {"k": 1.5, "d": "2024-01-02"},
        "m": {"a": 1},
        "iv": "P3DT1H30M",
        "bl": "YWI=",
        "en": "x",
        "h": 42,
        "ns": "2024-01-01T00:00:00.123456789",
        "forever": "infinity",
        "u": 2,
    }
    assert '"k":1.50,' in output.decode()
    _, output = transform(b"", sql, write={"format": "csv", "header": False})
    assert output.decode().startswith('"[1,2]","{""k"":1.50,""d"":""2024-01-02""}",')


def test_types_that_cannot_be_written_are_named() -> None:
    error = failure(b"", "SELECT 1 AS a, union_value(k := 1) AS u")
    assert str(error) == (
        "output: column 2 has a type that cannot be written (UNION); cast it in the SQL"
    )
    assert (error.category, error.column) == ("output", 2)
    error = failure(b"", "SELECT [union_value(k := 1)] AS u", write={"format": "csv"})
    assert "(UNION)" in str(error)


def test_types_beyond_python() -> None:
    """Values that Python's types cannot hold are written all the same (the Arrow writer
    failed on some, or wrote infinity for year 10000)."""
    sql = """SELECT 340282366920938463463374607431768211455::UHUGEINT AS uh,
                    12345678901234567890123456789::BIGNUM AS big,
                    DATE '10000-01-01' AS late, 'infinity'::TIMESTAMP_NS AS forever,
                    TIMETZ '13:04:05.5+02:30' AS tz, TIME_NS '01:02:03.5' AS tns,
                    '101'::BIT AS bits, '{"a": 1}'::JSON AS j,
                    ['infinity'::DATE] AS days, [INTERVAL 1 DAY] AS ivs,
                    [TIMESTAMP_NS '2024-01-01 00:00:00.123456789'] AS ns"""
    assert rows(b"", sql) == [{
        "uh": 340282366920938463463374607431768211455,
        "big": 12345678901234567890123456789,
        "late": "10000-01-01",
        "forever": "infinity",
        "tz": "13:04:05.500000+02:30",
        "tns": "01:02:03.500000000",
        "bits": "101",
        "j": '{"a": 1}',
        "days": ["infinity"],
        "ivs": ["P1D"],
        "ns": ["2024-01-01T00:00:00.123456789"],
    }]


def test_error_values_are_computed() -> None:
    """A column that is always NULL (error() has no other type) still runs."""
    error = failure(b"", "SELECT 1 AS n, error('x') AS e")
    assert str(error) == "sql: invalid input"


def test_the_end_of_the_statement() -> None:
    """Semicolons and comments after the statement do not end the SELECT around it."""
    for sql in ("SELECT 1 AS n;", "SELECT 1 AS n; -- done", "SELECT 1 AS n -- one",
                "SELECT 1 AS n /* one */ ; ;", "-- a header\nSELECT 1 AS n\n;\n"):
        assert transform(b"", sql)[1] == b'{"n":1}\n', sql
    assert transform(b"", "SELECT ';' AS s --;")[1] == b'{"s":";"}\n'
    assert transform(b"", "SELECT 'é;' AS s; -- é")[1] == '{"s":"é;"}\n'.encode()


def test_errors_while_rows_are_fetched_point_into_the_sql_as_given() -> None:
    """The SELECT around the statement adds a line before it: DuckDB's line numbers are
    taken back to the spec's own."""
    data = b"n\n" + b"".join(b"%d\n" % i for i in range(50_000)) + b"x\n"
    error = failure(data, "SELECT n::INTEGER AS n FROM input; -- all")
    assert str(error) == (
        "sql: conversion error at line 1, column 9: a value could not be converted to INTEGER"
    )
    error = failure(data, "SELECT 1 AS one,\n       n::INTEGER AS n FROM input")
    assert (error.line, error.column) == (2, 9)


def _string(value: str | None) -> str:
    """SQL for a string, made without the code under test (from its UTF-8 bytes)."""
    if value is None:
        return "NULL::VARCHAR"
    return f"decode(from_hex('{value.encode().hex()}'))"


def _select(rows: Sequence[Sequence[str]], names: Sequence[str]) -> str:
    """SELECT the rows of SQL values, in order; no rows when there are none."""
    if not rows:
        return f"SELECT {', '.join(f'NULL::VARCHAR AS {n}' for n in names)} WHERE false"
    values = ", ".join("(" + ", ".join(row) + ")" for row in rows)
    return f"SELECT * FROM (VALUES {values}) AS t({', '.join(names)})"


@contextmanager
def _chunks(first: int, chars: int = 1) -> Iterator[None]:
    """Rows fetched `first` at a time, then as few as `chars` of text allows (at least 1)."""
    with mock.patch.object(writers, "FIRST_CHUNK_ROWS", first), \
            mock.patch.object(writers, "CHUNK_CHARS", chars):
        yield


_CELL = st.one_of(st.none(),
                  st.text(alphabet=st.sampled_from(list('ab;,"\r\n é€\x1f')), max_size=6))


@settings(max_examples=300, deadline=None)
@given(
    table=st.integers(min_value=1, max_value=5).flatmap(
        lambda width: st.lists(st.lists(_CELL, min_size=width, max_size=width), max_size=6)
    ),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    chunk=st.integers(min_value=1, max_value=6),
)
def test_csv_quoting_is_pythons_minimal_quoting(
    table: list[list[str | None]], delimiter: str, chunk: int
) -> None:
    """The CSV that DuckDB assembles is byte for byte what Python's csv module writes with
    minimal quoting (whose CR LF terminator makes it quote CR and LF, as ours does),
    across chunks, with NULL as an empty field; and it reads back as written."""
    width = len(table[0]) if table else 1
    names = [f"c{i}" for i in range(width)]
    sql = _select([[_string(cell) for cell in row] for row in table], names)
    with _chunks(chunk):
        result, output = transform(
            b"", sql, write={"format": "csv", "delimiter": delimiter, "line_ending": "crlf"})
    expected = io.StringIO()
    oracle = csv.writer(expected, delimiter=delimiter, lineterminator="\r\n",
                        quoting=csv.QUOTE_MINIMAL)
    oracle.writerow(names)
    oracle.writerows(table)
    assert output.decode() == expected.getvalue()
    assert result.rows_out == len(table)
    back = list(csv.reader(io.StringIO(output.decode(), newline=""), delimiter=delimiter))
    assert back == [names] + [["" if cell is None else cell for cell in row] for row in table]


@settings(max_examples=100, deadline=None)
@given(delimiter=st.sampled_from(list("0.-:eT+ ")))
def test_a_delimiter_inside_numbers_and_dates_is_quoted(delimiter: str) -> None:
    sql = ("SELECT -1.5::DECIMAL(3,1) AS d, 1e-05::DOUBLE AS f, "
           "TIMESTAMPTZ '2024-03-05 13:04:05+00' AS ts, 'x' AS t")
    _, output = transform(b"", sql, write={"format": "csv", "delimiter": delimiter})
    back = list(csv.reader(io.StringIO(output.decode(), newline=""), delimiter=delimiter))
    assert back[1][:2] == ["-1.5", "1e-05"]
    assert back[1][2].startswith("2024-03-05T")


_TEXT = st.one_of(st.none(), st.text(max_size=5))  # any code point, controls included


@settings(max_examples=200, deadline=None)
@given(
    table=st.integers(min_value=1, max_value=4).flatmap(
        lambda width: st.lists(st.lists(_TEXT, min_size=width, max_size=width), max_size=6)
    ),
    numbers=st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1),
                               st.floats(allow_nan=True, allow_infinity=True)),
                     min_size=6, max_size=6),
    chunk=st.integers(min_value=1, max_value=6),
    lines=st.booleans(),
)
def test_json_objects_are_pythons_json(
    table: list[list[str | None]], numbers: list[int | float | None], chunk: int, lines: bool
) -> None:
    """Each object is what Python's json writes (no ASCII escapes, no spaces), across
    chunks; floats are the shortest text that reads back the same, NaN and infinities
    null; the whole output parses back."""
    width = len(table[0]) if table else 1
    names = [f"c{i}" for i in range(width)] + ["n", "f"]
    ints = [n for n in numbers if not isinstance(n, float)] or [None]
    floats = [n if isinstance(n, float) else None for n in numbers]
    values = [[*row, ints[i % len(ints)], floats[i % len(floats)]] for i, row in enumerate(table)]
    sql = _select([[*(_string(c) for c in row[:width]),
                    "NULL::BIGINT" if row[width] is None else f"'{row[width]}'::BIGINT",
                    "NULL::DOUBLE" if row[width + 1] is None else f"'{row[width + 1]!r}'::DOUBLE"]
                   for row in values], names)
    with _chunks(chunk):
        _, output = transform(b"", sql, write={"format": "jsonl" if lines else "json"})
    expected = [
        json.dumps(dict(zip(names, [*row[:-1], _finite(row[-1])], strict=True)),
                   ensure_ascii=False, separators=(",", ":"))
        for row in values
    ]
    text = output.decode()
    if lines:
        assert text == "".join(line + "\n" for line in expected)
    else:
        assert text == ("[\n" + ",\n".join(expected) + "\n]\n" if expected else "[]\n")
        assert len(json.loads(text)) == len(values)


def _finite(value: object) -> object:
    return None if isinstance(value, float) and not math.isfinite(value) else value


EDGE_FLOATS = [
    100.0, 0.1, 1e20, 1e16, 1e15, 1e22, 1e-05, 0.0001, 1e-07, 5e-324, 2.2250738585072014e-308,
    1.7976931348623157e308, -0.0, 0.0, 0.30000000000000004, 9007199254740993.0,
    1234567890123456.7, 123456789012345678.0, -1.5, 2.5, 9999999999999998.0,
    # DuckDB's own cast writes these with 17 digits (3.5840000000000002e+25)
    3.584e25, 9.4208e25, 1.4336e26, 7.7824e25, 5.7344e26, 1.14688e27,
]  # fmt: skip


def _float_sql(value: float) -> str:
    return f"'{value!r}'::DOUBLE"


def _csv_texts(sql_values: Sequence[str]) -> list[str]:
    """The CSV text of each of the SQL values (of one type), a row each."""
    _, output = transform(b"", _select([[v] for v in sql_values], ["v"]),
                          write={"format": "csv", "header": False})
    return output.decode().split("\n")[:-1]


def test_floats_are_pythons_shortest_text() -> None:
    assert _csv_texts([_float_sql(v) for v in EDGE_FLOATS]) == [repr(v) for v in EDGE_FLOATS]
    special = ["'nan'::DOUBLE", "-('nan'::DOUBLE)", "'inf'::DOUBLE", "'-inf'::DOUBLE"]
    assert _csv_texts(special) == ["nan", "nan", "inf", "-inf"]  # not -nan
    _, output = transform(b"", _select([[v] for v in special], ["f"]))
    assert output == b'{"f":null}\n' * 4


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=200))
def test_any_float_is_pythons_repr(values: list[float]) -> None:
    assert _csv_texts([_float_sql(v) for v in values]) == [repr(v) for v in values]


def _float32(value: float) -> float:
    result: float = struct.unpack("f", struct.pack("f", value))[0]
    return result


def _float32_text(value: float) -> str:
    """The shortest text of 1 to 9 digits that reads back as the same FLOAT, as Python
    writes a float."""
    for digits in range(1, 10):
        text = f"{value:.{digits - 1}e}"
        if _float32(float(text)) == value:
            return repr(float(text))
    raise AssertionError(value)


def test_float32_is_the_shortest_text() -> None:
    generator = random.Random(32)
    values = [_float32(v) for v in (
        1.5, 0.1, 16777216.0, 1e20, 3.4028235e38, 1.4e-45, 1e-05, 1e16, 123456.7, -0.0,
        -2668849.75, -88003184.0, 24754.5625,  # DuckDB's own cast writes these with more digits
    )] + [_float32(generator.uniform(-1, 1) * 10.0 ** generator.randint(-45, 38))
          for _ in range(2000)]
    sql = [f"'{v!r}'::DOUBLE::FLOAT" for v in values]
    assert _csv_texts(sql) == [_float32_text(v) for v in values]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(min_value=1, max_value=38), st.data()), min_size=1,
                max_size=20))
def test_decimals_are_exact_with_their_scale(columns: list[tuple[int, st.DataObject]]) -> None:
    sql, expected = [], []
    for precision, data in columns:
        scale = data.draw(st.integers(min_value=0, max_value=precision))
        nines = "9" * (precision - scale) + "." + "9" * scale  # (Decimal's - would round)
        value = data.draw(st.decimals(min_value=Decimal("-" + nines), max_value=Decimal(nines),
                                      places=scale))
        sql.append(f"'{value:f}'::DECIMAL({precision},{scale}) AS c{len(sql)}")
        expected.append(f"{abs(value) if value == 0 else value:.{scale}f}")  # no -0.00
    _, output = transform(b"", f"SELECT {', '.join(sql)}", write={"format": "csv",
                                                                  "header": False})
    assert output.decode() == ",".join(expected) + "\n"


@settings(max_examples=50, deadline=None)
@given(
    days=st.lists(st.dates(), min_size=1, max_size=10),
    moments=st.lists(st.datetimes(), min_size=1, max_size=10),
    times=st.lists(st.times(), min_size=1, max_size=10),
)
def test_dates_and_times_are_iso(
    days: list[dt.date], moments: list[dt.datetime], times: list[dt.time]
) -> None:
    assert _csv_texts([f"DATE '{d.isoformat()}'" for d in days]) == [
        d.isoformat() for d in days]
    assert _csv_texts([f"TIMESTAMP '{m.isoformat(' ')}'" for m in moments]) == [
        m.isoformat() for m in moments]
    assert _csv_texts([f"TIME '{t.isoformat()}'" for t in times]) == [
        t.isoformat() for t in times]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2100, 1, 1),
                             timezones=st.sampled_from([dt.UTC, ZoneInfo("Europe/Amsterdam"),
                                                        ZoneInfo("America/St_Johns")])),
                min_size=1, max_size=10))
def test_timestamps_with_time_zone_are_in_duckdbs_time_zone(moments: list[dt.datetime]) -> None:
    [setting] = rows(b"", "SELECT current_setting('TimeZone') AS zone")
    zone = ZoneInfo(setting["zone"])
    sql = [f"TIMESTAMPTZ '{m.isoformat(' ')}'" for m in moments]
    assert _csv_texts(sql) == [m.astimezone(zone).isoformat() for m in moments]


def _interval_text(months: int, days: int, microseconds: int) -> str:
    """ISO 8601 as the rule says, written the way the Arrow writer made it."""
    month_sign = -1 if months < 0 else 1
    years, months = (month_sign * part for part in divmod(abs(months), 12))
    date_part = "".join(
        f"{amount}{unit}" for amount, unit in ((years, "Y"), (months, "M"), (days, "D")) if amount
    )
    sign = "-" if microseconds < 0 else ""
    seconds, fraction = divmod(abs(microseconds), 1_000_000)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    second_text = f"{seconds}.{fraction:06d}".rstrip("0") if fraction else str(seconds)
    time_part = "".join(
        f"{sign}{amount}{unit}"
        for amount, unit in ((hours, "H"), (minutes, "M"), (second_text, "S"))
        if amount not in (0, "0")
    )
    if not date_part and not time_part:
        return "PT0S"
    return "P" + date_part + ("T" + time_part if time_part else "")


_PARTS = st.tuples(st.integers(-30_000, 30_000), st.integers(-100_000, 100_000),
                   st.one_of(st.integers(-(10**14), 10**14), st.integers(-3, 3)))


@settings(max_examples=50, deadline=None)
@given(st.lists(_PARTS, min_size=1, max_size=20))
def test_intervals_are_iso_durations(parts: list[tuple[int, int, int]]) -> None:
    sql = [f"to_months({m}) + to_days({d}) + to_microseconds({us})" for m, d, us in parts]
    assert _csv_texts(sql) == [_interval_text(*p) for p in parts]
    _, output = transform(b"", f"SELECT [{sql[0]}] AS l")
    assert json.loads(output) == {"l": [_interval_text(*parts[0])]}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=5)), max_size=5))
def test_nested_strings_are_pythons_json(texts: list[str | None]) -> None:
    """Escapes inside lists and structs are Python's too (DuckDB's \\u001F made small)."""
    items = ", ".join(_string(t) for t in texts)
    sql = f"SELECT [{items}]::VARCHAR[] AS l, {{'k': [{items}]::VARCHAR[]}} AS s"
    _, output = transform(b"", sql)
    as_json = json.dumps(texts, ensure_ascii=False, separators=(",", ":"))
    assert output.decode() == f'{{"l":{as_json},"s":{{"k":{as_json}}}}}\n'
    _, output = transform(b"", sql, write={"format": "csv", "header": False})
    assert next(csv.reader(io.StringIO(output.decode(), newline=""))) == [
        as_json, f'{{"k":{as_json}}}']


class _Writes:
    """A sink that keeps what it was given and the size of each write."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.sizes: list[int] = []

    def write(self, data: bytes) -> int:
        self.data += data
        self.sizes.append(len(data))
        return len(data)


def _csv_out(sql: str) -> tuple[TransformResult, _Writes]:
    sink = _Writes()
    result = run_transform(ReadSpec(format="csv"), TransformSpec(sql=sql),
                           WriteSpec(format="csv"), stream(Source(b"")), stream(sink))
    return result, sink


def test_a_large_result_is_written_in_bounded_chunks() -> None:
    """Rows are fetched about CHUNK_CHARS of text at a time, and each chunk goes to the
    sink in one write, so memory is bounded by a chunk, not by the result."""
    sql = "SELECT i AS n, 'rij \"' || i AS t FROM range(100000) r(i)"
    with _chunks(first=100, chars=64 * 1024):
        result, sink = _csv_out(sql)
    assert result.rows_out == 100_000
    assert len(sink.sizes) > 20
    assert max(sink.sizes) < 2 * 64 * 1024
    expected = "n,t\n" + "".join(f'{i},"rij ""{i}"\n' for i in range(100_000))
    assert sink.data == expected.encode()


def test_a_huge_value_is_written_whole() -> None:
    """A value of many MiB comes out exactly; the chunk after it has a single row."""
    sql = ("SELECT 1 AS n, 'x' AS v UNION ALL SELECT 2, repeat('ab\"\n', 2000000) "
           "UNION ALL SELECT 3, 'y' ORDER BY n")
    big = 'ab"\n' * 2_000_000
    with _chunks(first=2, chars=writers.CHUNK_CHARS):
        _, sink = _csv_out(sql)
    assert sink.data == ("n,v\n1,x\n2,\"" + big.replace('"', '""') + '"\n3,y\n').encode()
    assert len(sink.sizes) == 3  # the header, two rows, the last row
    _, output = transform(b"", sql, write={"format": "jsonl"})
    assert [json.loads(line)["v"] for line in output.decode().split("\n")[:-1]] == [
        "x", big, "y"]


def test_an_unwritable_value_in_a_later_chunk_is_located() -> None:
    data = "id,naam\n" + "".join(f"{i},Jan\n" for i in range(1, 5000)) + "5000,Łukasz\n"
    with _chunks(first=10, chars=1000):
        error = failure(data.encode(), write={"format": "csv", "encoding": "cp1252"})
    assert str(error) == "output: a value cannot be written as cp1252 (row 5000, column 2)"
    with _chunks(first=10, chars=1000):
        error = failure(data.encode(), write={"format": "jsonl", "encoding": "latin-1"})
    assert str(error) == "output: a value cannot be written as ISO-8859-1 (row 5000, column 2)"


WITHOUT_PYARROW = textwrap.dedent(
    """
    import importlib.abc, io, json, sys

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] == "pyarrow":
                raise ImportError("pyarrow is not to be loaded")
            return None

    sys.meta_path.insert(0, Refuse())
    from doorvoer.transforms import ReadSpec, TransformSpec, WriteSpec, run_transform

    sql = sys.argv[1]
    small = b"n,s\\n" + b"".join(b"%d,x;%d\\n" % (i, i) for i in range(3))
    large = b"n,s\\n" + b"".join(b"%d,x;%d\\n" % (i, i) for i in range(300_000))
    outputs = {}
    for name, data in (("small", small), ("large", large)):
        for fmt in ("csv", "json"):
            sink = io.BytesIO()
            run_transform(ReadSpec(format="csv"), TransformSpec(sql=sql),
                          WriteSpec(format=fmt), io.BytesIO(data), sink)
            text = sink.getvalue().decode()
            outputs[f"{name} {fmt}"] = text if name == "small" else len(text.splitlines())
    print(json.dumps({"outputs": outputs, "pyarrow": "pyarrow" in sys.modules}))
    """
)


def test_transforms_need_no_pyarrow() -> None:
    """A transform loads no pyarrow (its libraries alone cost a worker 50 MiB), with a
    small input (a table) or a large one (a pipe)."""
    sql = ("SELECT n::INTEGER AS n, s, DATE '2024-01-02' AS d, n::DOUBLE / 2 AS f, "
           "[n::INTEGER] AS l, TIMESTAMPTZ '2024-01-02 03:04:05+00' AS t FROM input")
    done = subprocess.run([sys.executable, "-c", WITHOUT_PYARROW, sql], capture_output=True,
                          text=True, timeout=300, check=True)
    report = json.loads(done.stdout)
    assert report["pyarrow"] is False
    assert report["outputs"] == {
        "small csv": "n,s,d,f,l,t\n0,x;0,2024-01-02,0.0,[0],2024-01-02T03:04:05+00:00\n"
                     "1,x;1,2024-01-02,0.5,[1],2024-01-02T03:04:05+00:00\n"
                     "2,x;2,2024-01-02,1.0,[2],2024-01-02T03:04:05+00:00\n",
        "small json": '[\n{"n":0,"s":"x;0","d":"2024-01-02","f":0.0,"l":[0],'
                      '"t":"2024-01-02T03:04:05+00:00"},\n'
                      '{"n":1,"s":"x;1","d":"2024-01-02","f":0.5,"l":[1],'
                      '"t":"2024-01-02T03:04:05+00:00"},\n'
                      '{"n":2,"s":"x;2","d":"2024-01-02","f":1.0,"l":[2],'
                      '"t":"2024-01-02T03:04:05+00:00"}\n]\n',
        "large csv": 300_001,
        "large json": 300_002,
    }
