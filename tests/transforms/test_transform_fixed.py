"""Fixed-width input (`format: fixed`): columns by start and width or by width in order,
trimming, header lines skipped, encodings, types inferred on request, a large input
through the pipe, and errors that name the line (and the spec's field)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from doorvoer.transforms import ReadSpec

from .helpers import failure, rows

LAYOUT: list[dict[str, Any]] = [{"name": "id", "start": 1, "width": 6},
                                {"name": "name", "width": 12},
                                {"name": "amount", "start": 20, "width": 8}]
DATA = ("KLANTNR NAAM        BEDRAG\r\n"
        "000101Jansen & Zn.X00007,95\r\n"
        "\r\n"
        "000102Müller GmbH  00004,25   filler\r\n")


def fixed(**extra: Any) -> dict[str, Any]:
    return {"read": {"format": "fixed", "columns": LAYOUT, "skip_lines": 1, **extra}}


def test_columns_by_start_and_width_trimmed_header_skipped_blank_lines_dropped() -> None:
    out = rows(DATA.encode("cp1252"), **fixed(encoding="cp1252"))
    assert out == [{"id": "000101", "name": "Jansen & Zn.", "amount": "00007,95"},
                   {"id": "000102", "name": "Müller GmbH", "amount": "00004,25"}]


def test_without_trim_the_spaces_stay() -> None:
    out = rows(DATA.encode(), **fixed(trim=False))
    assert out[1]["name"] == "Müller GmbH "


def test_the_sql_sees_the_columns_by_their_names_and_infer_types_them() -> None:
    data = b"id  n     when\n   1    42 2026-12-01\n   2     7 2026-12-02\n"
    layout = [{"name": "id", "width": 4}, {"name": "n", "width": 6},
              {"name": "day", "start": 12, "width": 10}]
    out = rows(data, "SELECT id + 1 AS next, n * 2 AS twice, day + 1 AS later FROM input",
               read={"format": "fixed", "columns": layout, "skip_lines": 1, "infer": True})
    assert out == [{"next": 2, "twice": 84, "later": "2026-12-02"},
                   {"next": 3, "twice": 14, "later": "2026-12-03"}]


def test_a_short_record_is_refused_naming_its_line() -> None:
    bad = DATA + "000103Kort\n"
    error = failure(bad.encode(), **fixed())
    assert str(error) == "fixed: line 5: the record has 10 characters; the layout needs 27"
    assert error.line == 5


def test_a_short_record_deep_in_a_large_input_is_found_even_when_the_query_stops_early(
) -> None:
    good = "".join(f"{i:06d}{'naam':12} {i:8d}\n" for i in range(1, 120_001))
    bad = good + "000000kort\n" + good
    out = rows(good.encode(), "SELECT count(*) AS n, max(CAST(amount AS INT)) AS top "
               "FROM input", read={"format": "fixed", "columns": LAYOUT})
    assert out == [{"n": 120_000, "top": 120_000}]
    error = failure(bad.encode(), "SELECT * FROM input LIMIT 1",
                    read={"format": "fixed", "columns": LAYOUT})
    assert error.line == 120_001 and "layout needs 27" in str(error)


def test_a_file_in_another_encoding_than_declared_names_the_line() -> None:
    data = "000101Jansen & Zn. 0000795\n000102Müller GmbH  0000425\n".encode("cp1252")
    error = failure(data, read={"format": "fixed", "columns": LAYOUT})
    assert error.category == "encoding" and "line 2" in str(error)


@pytest.mark.parametrize(("read", "says"), [
    ({"format": "fixed"}, "format fixed needs columns"),
    ({"format": "fixed", "columns": [{"name": "a", "width": 4},
                                     {"name": "b", "start": 3, "width": 2}]},
     "column 'b' starts at 3, inside the column before it (which ends at 4)"),
    ({"format": "fixed", "columns": [{"name": "a", "width": 4}, {"name": "A", "width": 2}]},
     "column 'A' is named twice"),
    ({"format": "fixed", "columns": [{"name": "a", "width": 0}]}, "greater than or equal to 1"),
    ({"format": "fixed", "columns": [{"name": "a", "start": 0, "width": 3}]},
     "greater than or equal to 1"),
    ({"format": "csv", "columns": [{"name": "a", "width": 3}]},
     "columns, trim and skip_lines apply only to format fixed"),
    ({"format": "csv", "skip_lines": 2}, "apply only to format fixed"),
])
def test_a_layout_that_cannot_work_is_refused_with_the_reason(read: dict[str, Any],
                                                              says: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(says)):
        ReadSpec(**read)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.text(alphabet=st.characters(codec="cp1252", exclude_categories=(
    "Cc", "Cs", "Zl", "Zp")), max_size=9).map(str.strip), st.integers(0, 10**9)),
    min_size=1, max_size=40))
def test_what_is_laid_out_is_read_back_exactly(records: list[tuple[str, int]]) -> None:
    layout = [{"name": "name", "width": 9}, {"name": "n", "width": 10}]
    data = "".join(f"{name:<9}{n:>10}\r\n" for name, n in records).encode("cp1252")
    out = rows(data, "SELECT name, CAST(n AS BIGINT) AS n FROM input",
               read={"format": "fixed", "columns": layout, "encoding": "cp1252"})
    expected = [{"name": name, "n": n} for name, n in records if f"{name:<9}{n:>10}".strip()]
    assert out == expected
