"""Fixed-width output (`write: format: fixed`): each column aligned and padded to its
width, NULL as padding, CR LF or LF, the output encoding; a value that does not fit
fails naming its row and column unless the column truncates; and what is written is
read back by the fixed reader as it was (a round trip)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from doorvoer.transforms import WriteSpec

from .helpers import failure, rows, transform

DATA = b"id,name,amount\n1,Jansen,7.50\n22,,12\n"
LAYOUT: list[dict[str, Any]] = [
    {"name": "id", "width": 4, "align": "right", "pad": "0"},
    {"name": "name", "width": 8},
    {"name": "amount", "width": 7, "align": "right"}]


def out(data: bytes = DATA, sql: str = "SELECT * FROM input", **write: Any) -> bytes:
    _, text = transform(data, sql, write={"format": "fixed", "columns": LAYOUT, **write})
    return text


def test_values_are_aligned_and_padded_and_null_is_padding() -> None:
    assert out(sql="SELECT id, nullif(name, '') AS name, amount FROM input") == (
        b"0001Jansen     7.50\n"
        b"0022" + b" " * 13 + b"12\n")


def test_crlf_and_the_output_encoding() -> None:
    data = "id,name,amount\n1,Müller,1\n".encode()
    assert out(data, newline="crlf", encoding="cp1252") == "0001Müller        1\r\n".encode(
        "cp1252")


def test_a_value_too_wide_fails_naming_row_and_column_unless_it_truncates() -> None:
    data = b"id,name,amount\n1,Jansen,7\n2,Vermeulen-Jansen,8\n"
    error = failure(data, write={"format": "fixed", "columns": LAYOUT})
    assert str(error) == ("output: row 2, column 2 (name): the value has 16 characters; the "
                          "column is 8 wide (or set truncate: true)")
    cut = [dict(c, truncate=True) if c["name"] == "name" else c for c in LAYOUT]
    _, text = transform(data, write={"format": "fixed", "columns": cut})
    assert text.splitlines()[1] == b"0002Vermeule      8"


def test_the_query_must_return_the_layout_s_columns_in_its_order() -> None:
    error = failure(DATA, "SELECT name, id, amount FROM input",
                    write={"format": "fixed", "columns": LAYOUT})
    assert "column 1 of the query is not the layout's 'id'" in str(error)
    error = failure(DATA, "SELECT id FROM input", write={"format": "fixed", "columns": LAYOUT})
    assert "the query returns 1 columns; the layout has 3" in str(error)
    error = failure(b"id,name,amount\n1,\"a\nb\",1\n", write={"format": "fixed",
                                                               "columns": LAYOUT})
    assert "row 1, column 2: the value holds a line break" in str(error)


@pytest.mark.parametrize(("write", "says"), [
    ({"format": "fixed"}, "format fixed needs columns"),
    ({"format": "csv", "columns": LAYOUT}, "columns apply only to format fixed"),
    ({"format": "fixed", "columns": [{"name": "a", "width": 2, "pad": "ab"}]},
     "pad must be exactly one character"),
    ({"format": "fixed", "columns": [{"name": "a", "width": 2, "align": "centre"}]},
     "'left' or 'right'"),
])
def test_a_layout_that_cannot_work_is_refused(write: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        WriteSpec(**write)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(
    st.text(alphabet=st.characters(codec="cp1252", exclude_categories=("Cc", "Cs", "Zl",
                                                                       "Zp")),
            max_size=10).map(str.strip),
    st.integers(-10**8, 10**9)), min_size=1, max_size=30))
def test_written_then_read_gives_the_same_rows(records: list[tuple[str, int]]) -> None:
    layout = [{"name": "name", "width": 10}, {"name": "n", "width": 11, "align": "right"}]
    csv_in = "name,n\n" + "".join(
        '"' + name.replace('"', '""') + f'",{n}\n' for name, n in records)
    _, fixed = transform(csv_in.encode(), "SELECT name, CAST(n AS BIGINT) AS n FROM input",
                         write={"format": "fixed", "columns": layout, "encoding": "cp1252"})
    back = rows(fixed, "SELECT name, CAST(n AS BIGINT) AS n FROM input",
                read={"format": "fixed", "encoding": "cp1252",
                      "columns": [{"name": c["name"], "width": c["width"]} for c in layout]})
    assert back == [{"name": name, "n": n} for name, n in records]
