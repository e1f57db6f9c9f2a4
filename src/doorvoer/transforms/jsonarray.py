"""A top-level JSON array of records, parsed one record at a time as the text streams,
so a large document never has to be held as Python objects all at once; errors name
the line and column."""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator

from doorvoer.transforms.decoding import Utf8Reader
from doorvoer.transforms.errors import TransformError

BATCH_RECORDS = 10_000
_CHUNK = 1 << 20
_WHITESPACE = " \t\n\r"

_DECODER = json.JSONDecoder()


def array_records(text: Utf8Reader) -> Iterator[list[dict[str, object]]]:
    """The records of a top-level array, parsed one by one as the text streams."""
    scanner = _Scanner(text)
    if scanner.next_char() != "[":
        if scanner.at_end():
            raise TransformError("json", "the input is empty")
        raise scanner.error("expected an array of records (or set records to the path of one)")
    scanner.advance(1)
    batch: list[dict[str, object]] = []
    if scanner.next_char() == "]":
        scanner.advance(1)
    else:
        while True:
            record = scanner.value()
            if not isinstance(record, dict):
                raise scanner.error("a record is not an object", at_value=True)
            batch.append(record)
            if len(batch) >= BATCH_RECORDS:
                yield batch
                batch = []
            separator = scanner.next_char()
            scanner.advance(1)
            if separator == "]":
                break
            if separator != ",":
                scanner.advance(-1)
                raise scanner.error("invalid JSON")
    if scanner.next_char() != "":
        raise scanner.error("invalid JSON (text after the array)")
    if batch:
        yield batch


class _Scanner:
    """A window on streaming JSON text that knows the line and column of its position."""

    def __init__(self, text: Utf8Reader) -> None:
        self._text = text
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._buffer = ""
        self._pos = 0
        self._eof = False
        self._line = 1  # line and column of _buffer[0]
        self._column = 1
        self._value_start = 0

    def at_end(self) -> bool:
        return self._eof and self._pos >= len(self._buffer)

    def next_char(self) -> str:
        """The next character that is not whitespace ("" at the end), not consumed."""
        while True:
            while self._pos < len(self._buffer) and self._buffer[self._pos] in _WHITESPACE:
                self._pos += 1
            if self._pos < len(self._buffer) or not self._more():
                return self._buffer[self._pos : self._pos + 1]

    def advance(self, count: int) -> None:
        self._pos += count

    def value(self) -> object:
        """Parse the JSON value at the position, reading more text as needed."""
        self.next_char()
        self._value_start = self._pos
        while True:
            error: json.JSONDecodeError | None = None
            too_deep = False
            try:
                value, end = _DECODER.raw_decode(self._buffer, self._pos)
            except json.JSONDecodeError as exc:
                error = exc
            except RecursionError:
                too_deep = True
            if too_deep:
                raise self.error("invalid JSON (nested too deeply)", at_value=True)
            if error is None:
                self._pos = end
                self._trim()
                return value
            # A value cut off by the end of the buffer fails near that end, or
            # as an unterminated string: read more and parse it again.
            incomplete = error.pos >= len(self._buffer) - 16 or error.msg.startswith(
                "Unterminated string"
            )
            if not (incomplete and self._more(len(self._buffer) - self._pos)):
                self._pos = error.pos
                raise self.error("invalid JSON")

    def error(self, message: str, *, at_value: bool = False) -> TransformError:
        position = self._value_start if at_value else self._pos
        before = self._buffer[:position]
        newlines = before.count("\n")
        if newlines:
            line = self._line + newlines
            column = position - before.rfind("\n")
        else:
            line, column = self._line, self._column + position
        return TransformError(
            "json", f"line {line}, column {column}: {message}", line=line, column=column
        )

    def _more(self, at_least: int = 0) -> bool:
        """Append more text to the buffer; False at the end of the input."""
        if self._eof:
            return False
        want = max(_CHUNK, at_least)
        data = self._text.read(want)
        self._buffer += self._decoder.decode(data, final=not data)
        if not data:
            self._eof = True
            return False
        return True

    def _trim(self) -> None:
        if self._pos < _CHUNK:
            return
        consumed = self._buffer[: self._pos]
        newlines = consumed.count("\n")
        if newlines:
            self._line += newlines
            self._column = self._pos - consumed.rfind("\n")
        else:
            self._column += self._pos
        self._buffer = self._buffer[self._pos :]
        self._pos = 0
