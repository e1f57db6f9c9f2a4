"""Reading JSON arrays, records paths and JSON Lines."""

from __future__ import annotations

import json

from .helpers import failure, rows, transform

JSON = {"format": "json"}
JSONL = {"format": "jsonl"}


def test_array_of_objects_with_differing_keys() -> None:
    data = b'[{"id": 1, "name": "a"}, {"id": 2, "extra": true}, {"name": null}]'
    result, output = transform(data, "SELECT *, typeof(id) AS t FROM input", read=JSON)
    assert [json.loads(line) for line in output.splitlines()] == [
        {"id": 1, "name": "a", "extra": None, "t": "BIGINT"},
        {"id": 2, "name": None, "extra": True, "t": "BIGINT"},
        {"id": None, "name": None, "extra": None, "t": "BIGINT"},
    ]
    assert (result.rows_in, result.columns_out) == (3, ["id", "name", "extra", "t"])


def test_types_nested_values_and_mixed_columns() -> None:
    data = json.dumps(
        [
            {"n": 1, "x": 1.5, "nested": {"city": "Gouda"}, "mixed": "a"},
            {"n": 2.25, "x": 2, "nested": [1, 2], "mixed": 3},
        ]
    ).encode()
    got = rows(
        data,
        "SELECT n, x, nested, mixed, typeof(n) AS tn, nested->>'city' AS city FROM input",
        read=JSON,
    )
    assert got == [
        {"n": 1.0, "x": 1.5, "nested": '{"city": "Gouda"}', "mixed": "a", "tn": "DOUBLE",
         "city": "Gouda"},
        {"n": 2.25, "x": 2.0, "nested": "[1, 2]", "mixed": "3", "tn": "DOUBLE", "city": None},
    ]  # fmt: skip


def test_union_of_keys_and_types_across_batches() -> None:
    records = [{"id": i} for i in range(25_000)] + [{"id": "x", "late": True}]
    got = rows(json.dumps(records).encode(), "SELECT * FROM input WHERE late", read=JSON)
    assert got == [{"id": "x", "late": True}]
    got = rows(json.dumps(records).encode(), "SELECT id FROM input LIMIT 2", read=JSON)
    assert got == [{"id": "0"}, {"id": "1"}]


def test_records_path() -> None:
    data = b'{"meta": {"n": 2}, "data": {"orders": [{"id": 1}, {"id": 2}]}}'
    assert rows(data, read={**JSON, "records": "data.orders"}) == [{"id": 1}, {"id": 2}]
    error = failure(data, read={**JSON, "records": "data.missing"})
    assert str(error) == "json: the records path is not in the document"
    error = failure(data, read={**JSON, "records": "meta.n"})
    assert str(error) == "json: the records path does not lead to an array"


def test_object_without_records_path() -> None:
    error = failure(b'\n  {"data": []}', read=JSON)
    assert error.category == "json"
    assert (error.line, error.column) == (2, 3)


def test_invalid_json_names_line_and_column() -> None:
    error = failure(b'[\n  {"id": 1},\n  {"id": 2,,}\n]', read=JSON)
    assert str(error) == "json: line 3, column 12: invalid JSON"
    error = failure(b'{"data": [1,\n 2,, 3]}', read={**JSON, "records": "data"})
    assert str(error) == "json: line 2, column 4: invalid JSON"


def test_invalid_json_far_into_a_long_array() -> None:
    head = b"[" + b",\n".join(b'{"id": %d, "text": "%s"}' % (i, b"x" * 50) for i in range(40_000))
    error = failure(head + b",\n{oops}]", read=JSON)
    assert (error.line, error.column) == (40_001, 2)
    error = failure(head + b"\n", read=JSON)
    assert error.category == "json"


def test_array_element_that_is_not_an_object() -> None:
    error = failure(b'[{"a": 1},\n  [1, 2]]', read=JSON)
    assert str(error) == "json: line 2, column 3: a record is not an object"


def test_empty_array_and_empty_input() -> None:
    result, _ = transform(b" [ ] ", "SELECT 1 AS one", read=JSON)
    assert result.rows_in == 0
    assert failure(b"", read=JSON).category == "json"


def test_jsonl() -> None:
    data = b'{"a": 1}\r\n\n{"a": 2, "b": "x"}\n{"b": "y"}'
    assert rows(data, read=JSONL) == [
        {"a": 1, "b": None},
        {"a": 2, "b": "x"},
        {"a": None, "b": "y"},
    ]


def test_jsonl_bad_lines() -> None:
    error = failure(b'{"a": 1}\n{"a": \n', read=JSONL)
    assert str(error) == "json: line 2: invalid JSON"
    assert error.line == 2
    error = failure(b'{"a": 1}\n\n[1]\n', read=JSONL)
    assert str(error) == "json: line 3: not an object"


def test_jsonl_line_limit_and_encoding() -> None:
    error = failure(b'{"a": "' + b"x" * 200 + b'"}\n', read={**JSONL, "max_line_bytes": 100})
    assert str(error) == "json: line 1 is longer than the limit of 100 bytes"
    error = failure(b'{"a": 1}\n{"a": "\xff"}\n', read=JSONL)
    assert str(error) == "encoding: line 2, byte 8: not valid UTF-8"
    data = '{"a": "€"}\n'.encode("cp1252")
    assert rows(data, read={**JSONL, "encoding": "cp1252"}) == [{"a": "€"}]


def test_jsonl_many_lines_stream_in_batches() -> None:
    data = b"".join(b'{"i": %d}\n' % i for i in range(30_000))
    result, _ = transform(data, "SELECT sum(i) AS total FROM input", read=JSONL)
    assert result.rows_in == 30_000
    assert rows(data, "SELECT sum(i) AS total FROM input", read=JSONL) == [
        {"total": sum(range(30_000))}
    ]


def test_big_integers_and_surrogates() -> None:
    data = b'[{"n": 123456789012345678901234567890}, {"n": 1}]'
    assert rows(data, read=JSON) == [{"n": "123456789012345678901234567890"}, {"n": "1"}]
    error = failure(b'[{"s": "\\ud800"}]', read=JSON)
    assert error.category == "json"
