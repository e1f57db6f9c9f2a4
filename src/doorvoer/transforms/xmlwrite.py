"""XML output (`write: format: xml`): `<root>` (default `rows`) around one `<record>`
(default `row`) element per row, streamed a chunk of rows at a time. The columns named
in `attributes` become attributes of the record, the others child elements in column
order; NULL is an absent attribute or element; `namespace` puts every element in that
namespace. Text is escaped; a character XML 1.0 cannot hold fails the transfer naming
the row and the column."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, BinaryIO
from xml.sax.saxutils import escape, quoteattr

from doorvoer.transforms.errors import TransformError
from doorvoer.transforms.spec import XML_NAME, WriteSpec
from doorvoer.transforms.writers import Lines, _LineWriter

if TYPE_CHECKING:
    from duckdb.sqltypes import DuckDBPyType

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_DISPLAY = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8", "cp1252": "windows-1252",
            "iso8859-1": "ISO-8859-1", "iso8859-15": "ISO-8859-15"}


class XmlWriter(_LineWriter):
    def __init__(self, spec: WriteSpec, sink: BinaryIO) -> None:
        super().__init__(spec, sink)
        self._spec = spec
        self._root = spec.root or "rows"
        self._record = spec.record or "row"
        self._attrs: set[str] = set(spec.attributes or ())
        self._names: list[str] = []

    def begin(self, names: list[str], types: list[DuckDBPyType]) -> None:
        for position, name in enumerate(names, start=1):
            if not XML_NAME.match(name):  # the name is the query's: not quoted
                raise TransformError("output", f"column {position}'s name is not an XML "
                                     "name: name it with AS (letters, digits, _ . -)",
                                     column=position)
        missing = sorted(self._attrs - set(names))
        if missing:
            raise TransformError("output", f"attributes: the query has no column "
                                 f"{missing[0]!r}")
        if len(set(names)) != len(names):
            raise TransformError("output", "two columns of the query have the same name; "
                                 "give them different names with AS")
        self._names = names
        self._render(types)
        xmlns = f" xmlns={quoteattr(self._spec.namespace)}" if self._spec.namespace else ""
        encoding = _DISPLAY.get(self._spec.encoding, self._spec.encoding)
        self._encoder.write(f'<?xml version="1.0" encoding="{encoding}"?>{self._newline}'
                            f"<{self._root}{xmlns}>{self._newline}")

    def statement(self, sql: str) -> str:
        values = ", ".join(r.text for r in self._renderings)
        return self._frame(sql, f"list_value({values})")

    def write(self, lines: Lines) -> None:
        texts = []
        row = self.rows
        record, names, attrs = self._record, self._names, self._attrs
        for (values,) in lines:
            row += 1
            head, body = [f"<{record}"], []
            for position, (name, value) in enumerate(zip(names, values, strict=True), 1):
                if value is None:
                    continue
                if _NOT_XML.search(value):
                    raise TransformError("output", f"row {row}, column {position}: the value "
                                         "holds a character XML cannot hold", line=row,
                                         column=position)
                if name in attrs:
                    head.append(f" {name}={quoteattr(value)}")
                else:
                    body.append(f"<{name}>{escape(value)}</{name}>")
            texts.append("".join(head) + (">" + "".join(body) + f"</{record}>" if body
                                          else "/>"))
        self._emit(self._chunk(texts), len(texts), lambda: texts)

    def finish(self) -> None:
        self._encoder.write(f"</{self._root}>{self._newline}")
        self._encoder.finish()

    def _chunk(self, lines: list[str]) -> str:
        return "".join(f"  {line}{self._newline}" for line in lines)

    def _values(self, line: str) -> list[str]:
        return re.findall(r">([^<]*)<", line) or [line]
