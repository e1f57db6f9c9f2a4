"""Spreadsheet output (`write: format: xlsx`, XlsxWriter): a header row, numbers as
numbers, dates and times as Excel dates, booleans, text that stays text (no formula),
NULL as an empty cell; its temporary rows only in a memory-backed folder, gone after;
and a round trip: written, then read by the xlsx reader, gives the same rows."""

from __future__ import annotations

import datetime as dt
import glob
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from doorvoer.transforms import WriteSpec

from .helpers import failure, rows, transform

LEFTOVERS = "/dev/shm/doorvoer-xlsx-*"


def xlsx_of(sql: str, data: bytes = b"id\n1\n", **write: Any) -> bytes:
    _, out = transform(data, sql, write={"format": "xlsx", **write})
    return out


def test_types_header_and_formulas_that_stay_text() -> None:
    data = xlsx_of("SELECT 7 AS n, 2.5 AS x, 1.25::DECIMAL(9,2) AS d, DATE '2026-12-01' AS day, "
                   "TIMESTAMP '2026-12-01 10:11:12' AS ts, TIME '08:30:00' AS t, true AS ok, "
                   "'=HYPERLINK(\"http://x\")' AS f, NULL AS nothing, 'Müller' AS name",
                   sheet="Uitvoer")
    assert data[:2] == b"PK"
    assert rows(data, read={"format": "xlsx", "sheet": "Uitvoer"}) == [{
        "n": 7, "x": 2.5, "d": 1.25, "day": "2026-12-01", "ts": "2026-12-01T10:11:12",
        "t": "08:30:00", "ok": True, "f": '=HYPERLINK("http://x")', "nothing": None,
        "name": "Müller"}]
    assert glob.glob(LEFTOVERS) == []


def test_without_a_header_the_rows_start_at_the_top() -> None:
    data = xlsx_of("SELECT 'a' AS k UNION ALL SELECT 'b'", header=False)
    assert rows(data, read={"format": "xlsx"}) == [{"a": "b"}]


def test_a_text_too_long_for_a_cell_fails_naming_row_and_column_and_leaves_nothing() -> None:
    error = failure(b"id\n1\n2\n", "SELECT id, CASE WHEN id = '2' THEN repeat('x', 40000) "
                    "END AS big FROM input", write={"format": "xlsx"})
    assert str(error) == ("output: row 2, column 2: a text of more than 32,767 characters "
                          "does not fit a cell")
    import gc

    gc.collect()
    assert glob.glob(LEFTOVERS) == []


@pytest.mark.parametrize(("write", "says"), [
    ({"format": "xlsx", "sheet": "a/b"}, "sheet: 1 to 31 characters"),
    ({"format": "xlsx", "sheet": "x" * 32}, "sheet: 1 to 31 characters"),
    ({"format": "csv", "sheet": "S"}, "sheet applies only to format xlsx"),
])
def test_a_sheet_name_excel_refuses_is_refused(write: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        WriteSpec(**write)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(
    st.text(alphabet=st.characters(exclude_categories=("Cc", "Cs")), min_size=1,
            max_size=12).filter(lambda s: s.strip() == s),
    st.integers(-10**12, 10**12), st.dates(dt.date(1901, 1, 1), dt.date(2099, 12, 31)),
    st.booleans()), min_size=1, max_size=25))
def test_written_then_read_gives_the_same_rows(
        records: list[tuple[str, int, dt.date, bool]]) -> None:
    csv_in = "name,n,day,ok\n" + "".join(
        '"' + name.replace('"', '""') + f'",{n},{day.isoformat()},{str(ok).lower()}\n'
        for name, n, day, ok in records)
    data = xlsx_of("SELECT name, CAST(n AS BIGINT) AS n, CAST(day AS DATE) AS day, "
                   "CAST(ok AS BOOLEAN) AS ok FROM input", csv_in.encode())
    assert rows(data, read={"format": "xlsx"}) == [
        {"name": name, "n": n, "day": day.isoformat(), "ok": ok} for name, n, day, ok in records]
