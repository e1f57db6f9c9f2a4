"""Writing CSV, JSON and JSON Lines: types, line endings, encodings."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from unittest import mock

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

from .helpers import Source, failure, stream, transform

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


_CELL = st.one_of(st.none(), st.text(alphabet=st.sampled_from(list('ab;,"\r\n é€')), max_size=6))


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

