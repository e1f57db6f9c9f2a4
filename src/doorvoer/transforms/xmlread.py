"""XML input (`format: xml`): one row per record element, streamed with lxml's
iterparse, each record cleared once it is read.

Behaviour:
- `record`: the record element's path from the root, `/Orders/Order`, with prefixes
  from `namespaces` (`/o:Orders/o:Order`, `namespaces: {o: "urn:…"}`).
- Columns by default: each attribute of the record (`@id` becomes `id`) and each child
  element's text (its local name), in the order they first appear; a record without
  one has NULL there. With `fields` (`{customer: "o:Customer/o:Name", id: "@id"}`) the
  columns are exactly those, each a path relative to the record (`@attr`,
  `child/@attr`, `child/grandchild`).
- Every column is text; cast in SQL.
- Hostile input: a DOCTYPE is refused (so no entity is declared, none expands, no
  external entity or DTD is fetched: `resolve_entities`, `load_dtd` and network access
  are off as well), a text node longer than libxml2's 10 MB limit and a nesting deeper
  than 256 levels are errors with their line, and the records read are held as the
  text DuckDB reads, at most `MAX_XML_TEXT` of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

from doorvoer.transforms.clock import Deadline
from doorvoer.transforms.errors import TransformError
from doorvoer.transforms.jsonread import JsonInput
from doorvoer.transforms.spec import ReadSpec

MAX_XML_TEXT = 256 * 1_048_576
MAX_DEPTH = 256
BATCH = 1024


def _clark(path: str, namespaces: dict[str, str], what: str) -> list[str]:
    """`/o:A/o:B` as lxml's tags, `{urn…}A`, `{urn…}B`."""
    tags = []
    for part in path.strip("/").split("/"):
        prefix, sep, local = part.rpartition(":")
        if sep:
            if prefix not in namespaces:
                raise TransformError("xml", f"{what}: the prefix {prefix!r} is not in "
                                     "namespaces")
            tags.append(f"{{{namespaces[prefix]}}}{local}")
        else:
            tags.append(part)
    return tags


_DOCTYPE = (b"<!DOCTYPE", "<!DOCTYPE".encode("utf-16-le"),
            "<!DOCTYPE".encode("utf-16-be"))
_PROLOG_BYTES = 64 * 1024


class _Prefixed:
    """A stream with its first bytes read already (to look at the prolog)."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head, self._rest = head, rest

    def read(self, size: int = -1) -> bytes:
        if self._head:
            out, self._head = (self._head, b"") if size < 0 or size >= len(self._head) \
                else (self._head[:size], self._head[size:])
            return out
        return self._rest.read(size)


def _without_doctype(source: BinaryIO) -> Any:
    """Refuse a DOCTYPE before the parser sees it: no entity is ever declared, so none
    can expand (billion laughs) or fetch a file (external entities)."""
    head = source.read(_PROLOG_BYTES)
    if any(mark in head for mark in _DOCTYPE):
        raise TransformError("xml", "a DOCTYPE is not allowed (it could declare entities "
                             "that expand or read files)")
    return _Prefixed(head, source)


def _local(tag: object) -> str:
    text = str(tag)
    return text.rpartition("}")[2] if text.startswith("{") else text


class XmlInput(JsonInput):
    """The records of an XML stream, read once, for the view `input`: the JSON reader's
    columns and pipe, with records from `iterparse` (every value text)."""

    def __init__(self, spec: ReadSpec, source: BinaryIO, deadline: Deadline) -> None:
        self._deadline = deadline
        namespaces = dict(spec.namespaces or {})
        self._path = _clark(spec.record or "", namespaces, "record")
        self._namespaces = namespaces
        self._fields = dict(spec.fields or {})
        self._take(lambda: self._records(source), lambda: None)

    def _collect(self, records: Iterator[list[dict[str, object]]]) -> None:
        for batch in records:
            self._deadline.check()
            self._columns.add(batch)
            if self._columns.size > MAX_XML_TEXT:
                raise TransformError("limit", f"the records of the XML input are more than "
                                     f"{MAX_XML_TEXT // 1_048_576} MiB of text")

    def _records(self, source: BinaryIO) -> Iterator[list[dict[str, object]]]:
        from lxml import etree

        source = _without_doctype(source)
        context = etree.iterparse(
            source, events=("start", "end"), resolve_entities=False, load_dtd=False,
            no_network=True, huge_tree=False, remove_comments=True, remove_pis=True)
        depth, matched, checked = 0, 0, False
        path, batch = self._path, []
        try:
            for event, elem in context:
                if event == "start":
                    if not checked:  # one later than the prolog's first 64 KiB
                        checked = True
                        if elem.getroottree().docinfo.doctype:
                            raise TransformError("xml", "a DOCTYPE is not allowed (it could "
                                                 "declare entities that expand or read "
                                                 "files)")
                    if depth < len(path) and matched == depth and elem.tag == path[depth]:
                        matched += 1
                    depth += 1
                    if depth > MAX_DEPTH:
                        raise TransformError("xml", f"line {elem.sourceline}: elements are "
                                             f"nested more than {MAX_DEPTH} deep",
                                             line=elem.sourceline)
                    continue
                depth -= 1
                if depth == len(path) - 1 and matched == len(path):
                    batch.append(self._record(elem))
                    elem.clear()
                    parent = elem.getparent()
                    while parent is not None and elem.getprevious() is not None:
                        del parent[0]
                    if len(batch) >= BATCH:
                        yield batch
                        batch = []
                elif not (matched == len(path) and depth >= len(path)):
                    elem.clear()  # not inside a record: keep the tree small
                if matched > depth:
                    matched = depth
        except etree.XMLSyntaxError as exc:
            line = exc.lineno or None  # lxml's message quotes the file: not used
            where = f"line {line}: " if line else ""
            raise TransformError("xml", f"{where}not well-formed XML, or past the parser's "
                                 "limits (a text over 10 MB, nesting over 256 levels)",
                                 line=line) from None
        if batch:
            yield batch

    def _record(self, e: Any) -> dict[str, object]:  # an lxml element
        if self._fields:
            return {name: self._field(e, path) for name, path in self._fields.items()}
        out: dict[str, object] = {}
        for key, value in e.attrib.items():
            out.setdefault(_local(key), value)
        for child in e:
            if not isinstance(child.tag, str):
                continue
            name = _local(child.tag)
            if name not in out:
                out[name] = "".join(child.itertext())
        return out

    def _field(self, e: Any, path: str) -> object:
        target, at, attr = path.rpartition("@")
        if at:
            node = e if not target.strip("/") else e.find(target.rstrip("/"),
                                                           self._namespaces)
            if node is None:
                return None
            prefix, sep, local = attr.rpartition(":")
            key = f"{{{self._namespaces[prefix]}}}{local}" if sep and prefix in \
                self._namespaces else attr
            return node.get(key)
        node = e.find(path, self._namespaces)
        return None if node is None else "".join(node.itertext())
