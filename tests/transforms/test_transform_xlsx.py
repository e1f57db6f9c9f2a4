"""Spreadsheet input (`format: xlsx`, python-calamine): the sheet by name or index, the
header row, a range, types as the cells have them (numbers, dates, date-times, times,
booleans, text; empty cells NULL), the sheet's empty margins dropped, and errors in
our own words (never a cell's content)."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest
import xlsxwriter
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from doorvoer.transforms import ReadSpec

from .helpers import failure, rows


def book(*sheets: tuple[str, list[tuple[int, int, object]]]) -> bytes:
    """A workbook: per sheet, (row, column, value) cells (0-based); dates get a format."""
    out = io.BytesIO()
    wb = xlsxwriter.Workbook(out, {"in_memory": True})
    formats = {dt.datetime: wb.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"}),
               dt.date: wb.add_format({"num_format": "dd-mm-yyyy"}),
               dt.time: wb.add_format({"num_format": "hh:mm"})}
    for name, cells in sheets:
        ws = wb.add_worksheet(name)
        for r, c, v in cells:
            if isinstance(v, dt.datetime):
                ws.write_datetime(r, c, v, formats[dt.datetime])
            elif isinstance(v, dt.date):
                ws.write_datetime(r, c, dt.datetime(v.year, v.month, v.day), formats[dt.date])
            elif isinstance(v, dt.time):
                ws.write_datetime(r, c, dt.datetime(1899, 12, 31, v.hour, v.minute),
                                  formats[dt.time])
            else:
                ws.write(r, c, v)
    wb.close()
    return out.getvalue()


def grid(top: int, left: int, table: list[list[object]]) -> list[tuple[int, int, object]]:
    return [(top + r, left + c, v) for r, row in enumerate(table) for c, v in enumerate(row)
            if v is not None]


PRICES = book(
    ("Notes", [(0, 0, "not this one")]),
    ("Prijzen", [(0, 0, "Prijslijst 2026"), *grid(2, 1, [
        ["sku", "price", "since", "seen", "opens", "active", "qty", "remark"],
        ["A-1", 1.5, dt.date(2026, 12, 1), dt.datetime(2026, 12, 1, 13, 5, 7), dt.time(8, 30),
         True, 3, "first"],
        [None] * 8,
        ["B-2", 2, None, None, None, False, 4, 7],
    ])]),
)


def xlsx(**extra: Any) -> dict[str, Any]:
    return {"read": {"format": "xlsx", **extra}}


def test_the_sheet_by_name_the_header_row_and_the_cells_as_their_types() -> None:
    out = rows(PRICES, "SELECT *, price * 2 AS twice, since + 1 AS next_day, "
               "hour(seen) AS h, qty + 1 AS more FROM input", **xlsx(sheet="Prijzen", header_row=3))
    assert out == [
        {"sku": "A-1", "price": 1.5, "since": "2026-12-01", "seen": "2026-12-01T13:05:07",
         "opens": "08:30:00", "active": True, "qty": 3, "remark": "first", "twice": 3.0,
         "next_day": "2026-12-02", "h": 13, "more": 4},
        {"sku": "B-2", "price": 2.0, "since": None, "seen": None, "opens": None,
         "active": False, "qty": 4, "remark": "7", "twice": 4.0, "next_day": None, "h": None,
         "more": 5}]


def test_the_sheet_by_index_and_a_range() -> None:
    out = rows(PRICES, **xlsx(sheet=1, range="C3:D6"))
    assert out == [{"price": 1.5, "since": "2026-12-01"}, {"price": 2.0, "since": None}]
    assert rows(PRICES, **xlsx()) == []  # the first sheet: a title, no rows under it
    assert rows(book(("S", grid(0, 0, [["a"], ["x"]]))), **xlsx()) == [{"a": "x"}]


def test_empty_and_repeated_header_names() -> None:
    data = book(("S", grid(0, 0, [["n", None, "n"], [1, 2, 3]])))
    assert rows(data, **xlsx()) == [{"n": 1, "column2": 2, "n_1": 3}]


@pytest.mark.parametrize(("read", "says"), [
    ({"sheet": "Nope"}, "xlsx: the workbook has no sheet named 'Nope' (it has 2)"),
    ({"sheet": 5}, "xlsx: there is no sheet 5: the workbook has 2 (counted from 0)"),
])
def test_a_missing_sheet_is_named(read: dict[str, Any], says: str) -> None:
    assert str(failure(PRICES, **xlsx(**read))) == says


@pytest.mark.parametrize("data", [b"id,name\n1,a\n", b"PK\x03\x04" + b"\x00" * 200,
                                  PRICES[: len(PRICES) // 2]])
def test_what_is_not_a_workbook_is_refused_without_quoting_it(data: bytes) -> None:
    error = failure(data, **xlsx())
    assert error.category == "xlsx" and "name" not in str(error)


@pytest.mark.parametrize(("read", "says"), [
    ({"format": "xlsx", "range": "B3"}, "range is two cells"),
    ({"format": "xlsx", "range": "H500:B3"}, "the second cell lies before the first"),
    ({"format": "xlsx", "range": "B3:ZZZZ9"}, "is not a cell"),
    ({"format": "csv", "sheet": "x"}, "apply only to format xlsx"),
    ({"format": "xlsx", "header_row": 0}, "greater than or equal to 1"),
])
def test_options_that_cannot_work_are_refused(read: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        ReadSpec(**read)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(
    st.text(alphabet=st.characters(exclude_categories=("Cc", "Cs")), min_size=1,
            max_size=12).filter(lambda s: s.strip() == s and not s.startswith(("=", "{"))),
    st.integers(-10**12, 10**12), st.floats(-1e9, 1e9, allow_nan=False).map(
        lambda f: round(f, 3)).filter(lambda f: not f.is_integer()),
    st.dates(dt.date(1901, 1, 1), dt.date(2099, 12, 31)), st.booleans()),
    min_size=1, max_size=25))
def test_written_with_xlsxwriter_then_read_gives_the_same_rows(
        records: list[tuple[str, int, float, dt.date, bool]]) -> None:
    table: list[list[object]] = [["name", "n", "x", "day", "ok"],
                                 *[list(r) for r in records]]
    out = rows(book(("S", grid(0, 0, table))), **xlsx())
    assert out == [{"name": name, "n": n, "x": x, "day": day.isoformat(), "ok": ok}
                   for name, n, x, day, ok in records]


def test_a_zip_bomb_is_refused_before_anything_is_unpacked() -> None:
    import zipfile

    good = zipfile.ZipFile(io.BytesIO(PRICES))
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        for item in good.infolist():
            if item.filename == "xl/worksheets/sheet2.xml":
                with z.open(item.filename, "w") as f:  # 64 MiB of spaces: a tiny member
                    for _ in range(64):
                        f.write(b" " * 1_048_576)
            else:
                z.writestr(item, good.read(item))
    data = bomb.getvalue()
    assert len(data) < 1_048_576
    error = failure(data, **xlsx(sheet="Prijzen"))
    assert error.category == "limit" and "a zip bomb?" in str(error)


def test_a_sheet_that_spans_a_million_empty_rows_is_refused_before_it_is_loaded() -> None:
    sparse = book(("S", [(0, 0, "a"), (1, 0, 1), (1_048_575, 25, "far away")]))
    assert len(sparse) < 20_000
    error = failure(sparse, **xlsx())
    assert error.category == "limit"
    assert "1,048,576 rows by 26 columns" in str(error) and "far away" not in str(error)
