"""Writing CSV, JSON and JSON Lines: types, line endings, encodings."""

from __future__ import annotations

import csv
import io
import json
import math
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doorvoer.transforms import writers
from doorvoer.transforms.spec import WriteSpec
from doorvoer.transforms.writers import CsvWriter, make_writer

from .helpers import failure, transform

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


class _Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes | memoryview) -> int:
        self.data += data
        return len(data)


_CELL = st.one_of(st.none(), st.text(alphabet=st.sampled_from(list('ab;,"\r\n é€')), max_size=6))


@settings(max_examples=300, deadline=None)
@given(
    rows=st.integers(min_value=1, max_value=5).flatmap(
        lambda width: st.lists(st.lists(_CELL, min_size=width, max_size=width), max_size=6)
    ),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    split=st.integers(min_value=0, max_value=6),
)
def test_csv_quoting_is_pythons_minimal_quoting(
    rows: list[list[str | None]], delimiter: str, split: int
) -> None:
    """The Arrow-assembled CSV is byte for byte what Python's csv module writes with
    minimal quoting (whose CR LF terminator makes it quote CR and LF, as ours does),
    across batches, with NULL as an empty field; and it reads back as written."""
    width = len(rows[0]) if rows else 1
    names = [f"c{i}" for i in range(width)]
    sink = _Sink()
    writer = CsvWriter(WriteSpec(format="csv", delimiter=delimiter, line_ending="crlf"), sink)
    writer.begin(names)
    for part in (rows[:split], rows[split:]):
        columns = [pa.array([row[i] for row in part], pa.string()) for i in range(width)]
        writer.write_batch(pa.RecordBatch.from_arrays(columns, names=names))
    writer.finish()

    expected = io.StringIO()
    oracle = csv.writer(expected, delimiter=delimiter, lineterminator="\r\n",
                        quoting=csv.QUOTE_MINIMAL)
    oracle.writerow(names)
    oracle.writerows(rows)
    assert sink.data.decode() == expected.getvalue()
    assert writer.rows == len(rows)
    back = list(csv.reader(io.StringIO(sink.data.decode(), newline=""), delimiter=delimiter))
    assert back == [names] + [["" if cell is None else cell for cell in row] for row in rows]


_TEXT = st.one_of(st.none(), st.text(max_size=5))  # any code point, controls included


@settings(max_examples=200, deadline=None)
@given(
    rows=st.integers(min_value=1, max_value=4).flatmap(
        lambda width: st.lists(st.lists(_TEXT, min_size=width, max_size=width), max_size=6)
    ),
    numbers=st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1),
                               st.floats(allow_nan=True, allow_infinity=True)),
                     min_size=6, max_size=6),
    split=st.integers(min_value=0, max_value=6),
    lines=st.booleans(),
)
def test_json_objects_are_pythons_json(
    rows: list[list[str | None]], numbers: list[int | float | None], split: int, lines: bool
) -> None:
    """Each object is what Python's json writes (no ASCII escapes, no spaces), across
    batches; NaN and infinities are null; the whole output parses back."""
    width = len(rows[0]) if rows else 1
    names = [f"c{i}" for i in range(width)] + ["n"]
    ints = [n for n in numbers if not isinstance(n, float)]
    floats = [n if isinstance(n, float) else None for n in numbers]
    sink = _Sink()
    writer = make_writer(WriteSpec(format="jsonl" if lines else "json"), sink)
    writer.begin(names)
    counts = (ints or [None]) * len(rows)
    values = [[*row, counts[i]] for i, row in enumerate(rows)]
    for part in (values[:split], values[split:]):
        columns = [pa.array([row[i] for row in part], pa.string()) for i in range(width)]
        columns.append(pa.array([row[width] for row in part], pa.int64()))
        writer.write_batch(pa.RecordBatch.from_arrays(columns, names=names))
    writer.finish()
    expected = [
        json.dumps(dict(zip(names, row, strict=True)), ensure_ascii=False, separators=(",", ":"))
        for row in values
    ]
    text = sink.data.decode()
    if lines:
        assert text == "".join(line + "\n" for line in expected)
    else:
        assert text == ("[\n" + ",\n".join(expected) + "\n]\n" if expected else "[]\n")
    # floats: shortest text that reads back the same, non-finite as null
    sink = _Sink()
    writer = make_writer(WriteSpec(format="jsonl"), sink)
    writer.begin(["f"])
    writer.write_batch(pa.RecordBatch.from_arrays([pa.array(floats, pa.float64())], names=["f"]))
    writer.finish()
    assert [json.loads(line)["f"] for line in sink.data.decode().splitlines()] == [
        f if f is not None and math.isfinite(f) else None for f in floats
    ]


def test_large_batches_are_written_in_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch larger than a slice comes out exactly as when written whole (Arrow's
    string arrays stop at 2 GiB; a batch's text can be larger than the batch)."""
    values = [f'waarde "{i}"\n' if i % 3 else None for i in range(1000)]
    batch = pa.RecordBatch.from_arrays(
        [pa.array(values, pa.string()), pa.array(range(1000), pa.int64())], names=["v", "n"]
    )
    outputs = []
    for piece_bytes in (1 << 30, 1000):
        monkeypatch.setattr(writers, "PIECE_BYTES", piece_bytes)
        for fmt in ("csv", "json", "jsonl"):
            sink = _Sink()
            writer = make_writer(WriteSpec(format=fmt), sink)
            writer.begin(["v", "n"])
            writer.write_batch(batch)
            writer.finish()
            assert writer.rows == 1000
            outputs.append(bytes(sink.data))
    assert outputs[:3] == outputs[3:]
    assert json.loads(outputs[1])[2] == {"v": 'waarde "2"\n', "n": 2}
    assert len(list(writers._pieces(batch))) > 1  # it did slice


def test_looking_for_characters_window_by_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """A huge value is searched in windows, not copied whole: a delimiter of several
    bytes that straddles two windows is still found."""
    delimiter = "§".encode()  # two bytes in UTF-8
    for window in (1, 2, 3, 5, 1 << 20):
        monkeypatch.setattr(writers, "HOLDS_WINDOW", window)
        for at in range(9):
            data = b"x" * at + delimiter + b"y" * 5
            assert writers._holds_any(memoryview(data), [delimiter, b'"'])
            assert writers._holds_byte_of(memoryview(b"a" * at + b"\x01" + b"b"),
                                          writers._JSON_ESCAPES)
        assert not writers._holds_any(memoryview(b"x" * 9 + b"\xc2y"), [delimiter, b'"'])
        assert not writers._holds_any(memoryview(b""), [delimiter])
        assert not writers._holds_byte_of(memoryview(b"plain text"), writers._JSON_ESCAPES)
