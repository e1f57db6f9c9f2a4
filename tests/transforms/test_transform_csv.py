"""Reading CSV: quoting, lines, encodings, headers, ragged rows, inference."""

from __future__ import annotations

import csv
import io
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from doorvoer.transforms import csvread
from doorvoer.transforms.csvread import MAX_COLUMNS

from .helpers import failure, rows, transform


def test_quoted_delimiters_quotes_and_newlines_are_values() -> None:
    data = b'id,text\n1,"a,b"\n2,"say ""hi"""\n3,"two\nlines"\n4,"crlf\r\ninside"\n'
    assert rows(data) == [
        {"id": "1", "text": "a,b"},
        {"id": "2", "text": 'say "hi"'},
        {"id": "3", "text": "two\nlines"},
        {"id": "4", "text": "crlf\r\ninside"},
    ]


def test_quoted_newlines_keep_later_line_numbers_right() -> None:
    data = (
        b'"multi\nline header",b\n'  # lines 1-2
        b'1,"x\ny\nz"\n'  # lines 3-5
        b"\n"  # line 6, blank
        b'2,"p\r\nq"\r\n'  # lines 7-8
        b"3,4\n"  # line 9
        b"5,6,7\n"  # line 10: one field too many
    )
    error = failure(data)
    assert str(error) == "csv: line 10: expected 2 fields, found 3"
    assert (error.category, error.line) == ("csv", 10)


def test_ragged_row_with_too_few_fields() -> None:
    error = failure(b"a;b;c\n1;2;3\n4;5\n", read={"delimiter": ";"})
    assert str(error) == "csv: line 3: expected 3 fields, found 2"


def test_ragged_row_after_many_blocks_names_its_line() -> None:
    body = b"".join(b'%d,"note\n%d"\n' % (i, i) for i in range(200_000))
    data = b"a,b\n" + body + b"x,y,z\n"
    error = failure(data)
    assert error.line == 1 + 2 * 200_000 + 1


def test_other_delimiter_and_quote() -> None:
    data = b"a\tb\n'x\ty'\t'it''s'\n"
    assert rows(data, read={"delimiter": "\t", "quote": "'"}) == [{"a": "x\ty", "b": "it's"}]


def test_utf8_bom_is_removed() -> None:
    data = "\ufeffnaam,stad\nJosé,Zoë\n".encode()
    assert rows(data) == [{"naam": "José", "stad": "Zoë"}]


def test_utf8_sig_and_latin1_encodings() -> None:
    assert rows("x\nü\n".encode("utf-8-sig"), read={"encoding": "utf-8-sig"}) == [{"x": "ü"}]
    assert rows("x\nü\n".encode("latin-1"), read={"encoding": "latin-1"}) == [{"x": "ü"}]
    assert rows("x\n€\n".encode("iso-8859-15"), read={"encoding": "iso-8859-15"}) == [{"x": "€"}]


def test_invalid_utf8_names_line_and_byte() -> None:
    error = failure(b"a,b\n1,2\n34,5\xff6\n")
    assert str(error) == "encoding: line 3, byte 5: not valid UTF-8"
    assert (error.category, error.line, error.column) == ("encoding", 3, 5)


def test_invalid_utf8_split_across_reads() -> None:
    data = b"a,b\n" + b"x" * 10 + b",\xe2\x82\n"  # a euro sign cut short
    error = failure(data, chunk=3)
    assert (error.category, error.line, error.column) == ("encoding", 2, 12)


def test_undefined_cp1252_byte() -> None:
    error = failure(b"a;b\n1;\x81\n", read={"delimiter": ";", "encoding": "windows-1252"})
    assert str(error) == "encoding: line 2, byte 3: not valid cp1252"


def test_empty_file_has_no_columns() -> None:
    result, output = transform(b"", "SELECT 1 AS one")
    assert (result.rows_in, result.rows_out, output) == (0, 1, b'{"one":1}\n')
    error = failure(b"")
    assert error.category == "sql"
    assert "empty" in str(error)
    assert transform(b"\r\n\n", "SELECT 1 AS one")[0].rows_in == 0


def test_header_only_gives_its_columns_and_no_rows() -> None:
    for data in (b"a,b\n", b"a,b"):
        result, output = transform(data, write={"format": "csv"})
        assert (result.rows_in, result.rows_out, result.columns_out) == (0, 0, ["a", "b"])
        assert output == b"a,b\n"


def test_no_header_names_columns() -> None:
    assert rows(b"1,2\n3,4", read={"header": False}) == [
        {"column1": "1", "column2": "2"},
        {"column1": "3", "column2": "4"},
    ]


def test_empty_and_repeated_header_names() -> None:
    assert rows(b"a,,a,a_1\n1,2,3,4\n") == [{"a": "1", "column2": "2", "a_2": "3", "a_1": "4"}]


def test_text_is_never_guessed() -> None:
    data = b"artikel,postcode,datum,bedrag\n00123,0123AB,01-02-2024,12\n"
    result, output = transform(data, "SELECT * FROM input", write={"format": "json"})
    assert json.loads(output) == [
        {"artikel": "00123", "postcode": "0123AB", "datum": "01-02-2024", "bedrag": "12"}
    ]
    assert result.rows_in == 1


def test_blank_lines_and_empty_records_are_skipped() -> None:
    data = b"a;b\n\n1;2\n;\n\r\n3;\n"
    result, output = transform(data, read={"delimiter": ";"})
    assert [json.loads(line) for line in output.splitlines()] == [
        {"a": "1", "b": "2"},
        {"a": "3", "b": ""},
    ]
    assert result.rows_in == 2


def test_a_quoted_value_never_closed() -> None:
    for data in (b'a,b\n1,2\n3,"open\n4,5\n', b'a,b\n1,2\n3,"open'):
        error = failure(data)
        assert str(error) == (
            "csv: line 3: a quoted value is never closed (a closing quote is missing)")
        assert error.line == 3
    # a quoted value that ends in a line break, at the end of the input, is closed
    assert rows(b'a,b\n1,"x\n"\n') == [{"a": "1", "b": "x\n"}]
    # in a large input (through the pipe)
    body = b"".join(b"%d,x\n" % i for i in range(100_000))
    assert failure(b"a,b\n" + body + b'7,"y\n').line == 100_002


def test_values_with_the_separators_of_the_text_duckdb_reads() -> None:
    # The rows reach DuckDB as text with \x1f between values and \x1e for NULL
    # (csvread.DELIMITER, NULL_MARK): values holding them are quoted there.
    tricky = ["\x1f", "\x1e", "a\x1fb", "", '"', "\r", "x\ny"]
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["v", "n"])
    body = [[value, str(i)] for i in range(30_000) for value in tricky]
    writer.writerows(body)
    data = text.getvalue().encode()
    assert len(data) > csvread.FIRST_BYTES  # through the pipe, not a small table
    got = rows(data)
    assert len(got) == len(body)
    assert all(row == {"v": value, "n": n} for row, (value, n) in zip(got, body, strict=True))
    _, output = transform(data, "SELECT count(*) FILTER (WHERE v IS NULL) AS nulls FROM input",
                          read={"infer": True})
    assert json.loads(output) == {"nulls": 0}


def test_last_line_without_newline() -> None:
    assert rows(b"a,b\n1,2") == [{"a": "1", "b": "2"}]


def test_line_longer_than_the_limit() -> None:
    data = b"a,b\n1,2\n" + b"3," + b"x" * 200 + b"\n"
    error = failure(data, read={"max_line_bytes": 100})
    assert str(error) == "csv: line 3 is longer than the limit of 100 bytes"
    assert rows(b"a,b\n" + b"1," + b"x" * 98 + b"\n", read={"max_line_bytes": 100})


def test_counts_cover_the_whole_input_even_with_limit() -> None:
    data = b"n\n" + b"".join(b"%d\n" % i for i in range(50_000))
    result, output = transform(data, "SELECT * FROM input LIMIT 3")
    assert (result.rows_in, result.rows_out) == (50_000, 3)
    assert len(output.splitlines()) == 3


def test_input_is_read_to_the_end_and_validated_when_the_query_stops_early() -> None:
    data = b"n\n" + b"".join(b"%d\n" % i for i in range(100_000)) + b"1,2\n"
    error = failure(data, "SELECT * FROM input LIMIT 1")
    assert error.line == 100_002


def test_infer_types() -> None:
    data = (
        b"id;amount;paid;day;at;code;note\n"
        b"1;12,50;true;2024-03-05;2024-03-05 10:00:00;007;x\n"
        b"2;;false;2024-03-06;2024-03-06T11:30:00;008;\n"
    )
    _, output = transform(
        data,
        'SELECT id + 1 AS next, amount, paid, day, "at", code, typeof(amount) AS t FROM input',
        read={"delimiter": ";", "infer": True, "decimal": ","},
    )
    first, second = (json.loads(line) for line in output.splitlines())
    assert first == {
        "next": 2,
        "amount": 12.5,
        "paid": True,
        "day": "2024-03-05",
        "at": "2024-03-05T10:00:00",
        "code": "007",
        "t": "DOUBLE",
    }
    assert second["amount"] is None


def test_infer_later_value_that_does_not_fit() -> None:
    body = b"".join(b"%d\n" % i for i in range(300_000))
    error = failure(b"n\n" + body + b"oops\n", read={"infer": True, "max_line_bytes": 1000})
    assert error.category == "csv"
    assert error.line == 300_002
    assert "BIGINT" in str(error)


CELL = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)


@settings(max_examples=60, deadline=None, database=None)
@given(
    st.integers(min_value=1, max_value=4).flatmap(
        lambda width: st.lists(
            st.lists(CELL, min_size=width, max_size=width).filter(lambda r: any(r)),
            max_size=8,
        ).map(lambda body: (width, body))
    ),
    st.sampled_from([",", ";", "\t", "|"]),
)
def test_round_trip_of_any_text(table: tuple[int, list[list[str]]], delimiter: str) -> None:
    width, body = table
    header = [f"c{i}" for i in range(width)]
    text = io.StringIO()
    csv.writer(text, delimiter=delimiter).writerows([header, *body])
    data = text.getvalue().encode()
    got = rows(data, read={"delimiter": delimiter})
    assert got == [dict(zip(header, row, strict=True)) for row in body]


def test_first_records_with_quotes_and_line_breaks() -> None:
    assert rows(b'"a,b",c\n1,2\n') == [{"a,b": "1", "c": "2"}]
    assert rows(b'"a\r\n,b""",c;d,e\n1,2,3\n') == [{'a\r\n,b"': "1", "c;d": "2", "e": "3"}]
    assert rows(b'a"b,"c"d,e\n1,2,3\n') == [{'a"b': "1", "cd": "2", "e": "3"}]
    assert rows(b'"x,y","z"\r"1,2",3\r', read={"header": False}) == [
        {"column1": "x,y", "column2": "z"},
        {"column1": "1,2", "column2": "3"},
    ]
    assert rows(b"a;b\n1;2\n", read={"delimiter": ";", "quote": "'"}) == [{"a": "1", "b": "2"}]
    # a first record longer than a read of the text (64 KiB)
    wide = [f"een nogal lange kolomnaam, met een komma {i}" for i in range(2000)]
    header = ",".join(f'"{name}"' for name in wide).encode()
    assert len(header) > 64 * 1024
    [row] = rows(header + b"\n" + b",".join(b"1" for _ in wide) + b"\n")
    assert list(row) == wide


def test_columns_up_to_the_maximum() -> None:
    header = ",".join(f"c{i}" for i in range(MAX_COLUMNS)).encode()
    result, _ = transform(header + b"\n" + b",".join([b"x"] * MAX_COLUMNS) + b"\n")
    assert (result.rows_in, len(result.columns_out)) == (1, MAX_COLUMNS)
    for values in (b"x", b"1", b""):  # text, numbers, empty
        wider = ",".join(f"c{i}" for i in range(MAX_COLUMNS + 1)).encode()
        error = failure(wider + b"\n" + b",".join([values] * (MAX_COLUMNS + 1)) + b"\n")
        assert str(error) == f"csv: more than {MAX_COLUMNS} columns"
