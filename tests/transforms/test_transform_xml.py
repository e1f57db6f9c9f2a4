"""XML input (`format: xml`, lxml iterparse): a row per record element at its path,
namespaces, columns from attributes and child elements or from `fields`, elements off
the path ignored; hostile files (entity expansion, external entities, a text of many
megabytes, deep nesting, garbage) fail with a reason and a line, never with content."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from doorvoer.transforms import ReadSpec

from .helpers import failure, rows

ORDERS = b"""<?xml version="1.0" encoding="UTF-8"?>
<o:Orders xmlns:o="urn:example:orders" xmlns:x="urn:example:extra">
  <o:Header><o:Sender>ERP</o:Sender></o:Header>
  <o:Order id="1" x:status="new">
    <o:Customer><o:Name>Jansen &amp; Zn.</o:Name></o:Customer>
    <o:Total>7.50</o:Total>
  </o:Order>
  <!-- a comment between records -->
  <o:Order id="2"><o:Total>3</o:Total><o:Note>bel eerst</o:Note></o:Order>
</o:Orders>
"""
NS = {"o": "urn:example:orders", "x": "urn:example:extra"}


def xml(**extra: Any) -> dict[str, Any]:
    return {"read": {"format": "xml", "record": "/o:Orders/o:Order", "namespaces": NS,
                     **extra}}


def test_attributes_and_child_elements_become_columns_in_first_seen_order() -> None:
    assert rows(ORDERS, **xml()) == [
        {"id": "1", "status": "new", "Customer": "Jansen & Zn.", "Total": "7.50",
         "Note": None},
        {"id": "2", "status": None, "Customer": None, "Total": "3", "Note": "bel eerst"}]


def test_fields_pick_paths_relative_to_the_record() -> None:
    out = rows(ORDERS, "SELECT id, customer, CAST(total AS DECIMAL(9,2)) AS total, status "
               "FROM input", **xml(fields={"id": "@id", "customer": "o:Customer/o:Name",
                                           "total": "o:Total", "status": "@x:status"}))
    assert out == [{"id": "1", "customer": "Jansen & Zn.", "total": 7.5, "status": "new"},
                   {"id": "2", "customer": None, "total": 3.0, "status": None}]


def test_no_record_at_the_path_is_an_empty_input() -> None:
    assert rows(ORDERS, "SELECT 1 AS one", **xml(record="/o:Orders/o:Invoice")) == [{"one": 1}]


def test_many_records_stream_and_are_counted() -> None:
    body = b"".join(b'<r n="%d"><v>%d</v></r>' % (i, i * 2) for i in range(50_000))
    out = rows(b"<all>" + body + b"</all>", "SELECT count(*) AS c, sum(CAST(v AS BIGINT)) AS s "
               "FROM input", read={"format": "xml", "record": "/all/r"})
    assert out == [{"c": 50_000, "s": 2 * sum(range(50_000))}]


LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
          + b"".join(b'<!ENTITY lol%d "%s">' % (i, b"".join([b"&lol%s;" % (
              str(i - 1).encode() if i > 1 else b"")] * 10)) for i in range(1, 10))
          + b']><r><a>&lol9;</a></r>')
EXTERNAL = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b"<r><a>&x;</a></r>")


@pytest.mark.parametrize(("data", "says"), [
    (LAUGHS, "xml: a DOCTYPE is not allowed"),
    (EXTERNAL, "xml: a DOCTYPE is not allowed"),
    (b"<r><a>" + b"x" * (11 * 1_048_576) + b"</a></r>", "xml: line 1: not well-formed XML, or "
     "past the parser's limits"),
    (b"<r>" + b"<x>" * 300 + b"</x>" * 300 + b"</r>", "past the parser's limits"),
    (b"<r>\n<a>1</a>\n<a>2</b>\n</r>", "xml: line 3: not well-formed XML"),
    (b"id,name\n1,Jansen\n", "not well-formed XML"),
    (bytes(range(256)) * 10, "not well-formed XML"),
])
def test_hostile_or_broken_xml_fails_with_its_reason(data: bytes, says: str) -> None:
    error = failure(data, read={"format": "xml", "record": "/r/a"})
    assert str(error).startswith(says) or says in str(error)
    assert "lol" not in str(error) and "passwd" not in str(error) and "Jansen" not in str(error)


@pytest.mark.parametrize(("read", "says"), [
    ({"format": "xml"}, "format xml needs record"),
    ({"format": "xml", "record": "Orders/Order"}, "format xml needs record"),
    ({"format": "xml", "record": "/o:Orders/o:Order"}, "the prefix 'o' of '/o:Orders/o:Order'"),
    ({"format": "xml", "record": "/a", "fields": {"x": "/abs"}}, "needs a path relative"),
    ({"format": "xml", "record": "/a[1]"}, "is not a path of element names"),
    ({"format": "csv", "record": "/a"}, "apply only to format xml"),
])
def test_specs_that_cannot_work_are_refused(read: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(says)):
        ReadSpec(**read)
