"""XML output (`write: format: xml`): root and record elements, columns as attributes
or child elements in column order, NULL absent, a namespace, the declared encoding,
escaping; characters XML cannot hold and names that are no XML names fail with the
row and column; and written XML read back by the XML reader gives the same rows."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from doorvoer.transforms import WriteSpec

from .helpers import failure, rows, transform

DATA = b"id,name,note\n1,M\xc3\xbcller & Zn.,\n2,<b>,ok\n"


def test_records_attributes_elements_null_absent_namespace_and_encoding() -> None:
    _, out = transform(DATA, "SELECT id, name, nullif(note, '') AS note FROM input",
                       write={"format": "xml", "root": "Orders", "record": "Order",
                              "attributes": ["id"], "namespace": "urn:example:orders",
                              "encoding": "cp1252", "newline": "crlf"})
    assert out == (
        '<?xml version="1.0" encoding="windows-1252"?>\r\n'
        '<Orders xmlns="urn:example:orders">\r\n'
        '  <Order id="1"><name>Müller &amp; Zn.</name></Order>\r\n'
        '  <Order id="2"><name>&lt;b&gt;</name><note>ok</note></Order>\r\n'
        "</Orders>\r\n").encode("cp1252")


def test_defaults_and_a_row_of_nulls_only() -> None:
    _, out = transform(b"a\n\n", "SELECT NULL::VARCHAR AS a", write={"format": "xml"})
    assert out == b'<?xml version="1.0" encoding="UTF-8"?>\n<rows>\n  <row/>\n</rows>\n'


@pytest.mark.parametrize(("sql", "write", "says"), [
    ("SELECT chr(1) AS a", {}, "output: row 1, column 1: the value holds a character XML "
                               "cannot hold"),
    ('SELECT 1 AS "1st"', {}, "column 1's name is not an XML name"),
    ("SELECT 1 AS a", {"attributes": ["b"]}, "attributes: the query has no column 'b'"),
])
def test_what_xml_cannot_hold_fails_with_its_place(sql: str, write: dict[str, Any],
                                                   says: str) -> None:
    assert says in str(failure(b"x\n1\n", sql, write={"format": "xml", **write}))


@pytest.mark.parametrize(("write", "says"), [
    ({"format": "xml", "root": "1rows"}, "root: '1rows' is not an XML name"),
    ({"format": "xml", "attributes": ["a b"]}, "is not an XML name"),
    ({"format": "csv", "root": "r"}, "apply only to format xml"),
])
def test_names_that_are_no_xml_names_are_refused(write: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        WriteSpec(**write)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(
    st.text(alphabet=st.characters(exclude_categories=("Cc", "Cs")), max_size=15),
    st.text(alphabet=st.characters(exclude_categories=("Cc", "Cs")), min_size=1,
            max_size=15)), min_size=1, max_size=25))
def test_written_then_read_gives_the_same_rows(records: list[tuple[str, str]]) -> None:
    csv_in = "k,v\n" + "".join('"' + k.replace('"', '""') + '","' + v.replace('"', '""')
                               + '"\n' for k, v in records)
    _, xml = transform(csv_in.encode(), "SELECT nullif(k, '') AS k, v FROM input",
                       write={"format": "xml", "record": "r", "attributes": ["k"]})
    back = rows(xml, "SELECT k, v FROM input",
                read={"format": "xml", "record": "/rows/r", "fields": {"k": "@k", "v": "v"}})
    assert back == [{"k": k or None, "v": v} for k, v in records]
