"""A file-like view of the input, transcoded to UTF-8 while it streams.

The readers (csvread.py, jsonread.py) read UTF-8 text, and plaintext may not be
written anywhere to convert it first, so the input is decoded here chunk by
chunk (strictly: a byte that is not valid in the declared encoding is an error,
never replaced), and physical lines are counted on the raw bytes so that errors
can name a line and a byte.
"""

from __future__ import annotations

import codecs
import io
import re
from collections import deque
from typing import BinaryIO, Literal

from doorvoer.transforms.errors import TransformError

# Small, equal pieces: the large transient bytes objects of bigger reads make
# glibc's heap grow with every block (its mmap threshold adapts upwards).
CHUNK_BYTES = 64 * 1024
UTF8_BOM = codecs.BOM_UTF8

_BREAKS = re.compile(rb"\r\n|\r|\n")
_NEWLINES = re.compile(rb"\n")

# How each supported codec is named in an error message.
_DISPLAY = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8",
    "cp1252": "cp1252",
    "iso8859-1": "ISO-8859-1",
    "iso8859-15": "ISO-8859-15",
}


class Utf8Reader(io.RawIOBase):
    """Reads `source` in `encoding` and gives UTF-8 bytes.

    - A UTF-8 byte order mark at the start is dropped (for "utf-8" as well as
      "utf-8-sig").
    - `line` is the physical line (1-based) of the text decoded so far; a line
      break is CR LF, CR or LF when `cr_is_break`, else only LF.
    - A line longer than `max_line_bytes` (counted in UTF-8, without its
      break) is a TransformError of `category`.
    - An undecodable byte is an `encoding` error naming its line and its byte
      within the line (counted in the input's own bytes).
    - With `final_newline`, a line break is added when the text does not end
      with one, so that a last record without one is read like the others.
    - Exceptions raised by `source.read` are kept in `failure` and re-raised
      unchanged: they are the caller's (storage) errors, not data errors.
    """

    def __init__(
        self,
        source: BinaryIO,
        encoding: str,
        *,
        max_line_bytes: int,
        category: Literal["csv", "fixed", "json"],
        cr_is_break: bool = True,
        final_newline: bool = False,
        max_total_bytes: int | None = None,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        super().__init__()
        self._source = source
        self._codec = codecs.lookup(encoding).name
        self._is_utf8 = self._codec in ("utf-8", "utf-8-sig")
        decoder_codec = "utf-8" if self._is_utf8 else self._codec
        self._decoder = codecs.getincrementaldecoder(decoder_codec)("strict")
        self._max_line = max_line_bytes
        self._category: Literal["csv", "fixed", "json"] = category
        self._breaks = _BREAKS if cr_is_break else _NEWLINES
        self._cr_is_break = cr_is_break
        self._final_newline = final_newline
        self._max_total = max_total_bytes
        self._chunk_bytes = chunk_bytes

        self._pieces: deque[bytes] = deque()
        self._offset = 0  # bytes of _pieces[0] already read
        self._buffered = 0
        self._source_eof = False
        self._bom_checked = not self._is_utf8
        self._head = b""
        self._last_text_byte = b""
        self.failure: BaseException | None = None

        self.raw_bytes = 0
        self.line = 1
        self._text_line_bytes = 0  # of the current line, in UTF-8
        self._raw_line_bytes = 0  # of the current line, in the input's encoding
        self._pending_cr = False  # the text so far ends in CR: an LF next completes it

    # io.RawIOBase protocol

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            while self._fill_once():
                pass
            size = self._buffered
        return b"".join(self._take(size))

    def close(self) -> None:
        """Drop the buffered text; the source is the caller's to close."""
        self._pieces.clear()
        self._buffered = self._offset = 0
        self._source_eof = True
        super().close()

    # look-ahead for readers that need to see the start of the text

    def peek(self, size: int) -> bytes:
        self._fill(size)
        parts: list[bytes] = []
        wanted = size
        for index, piece in enumerate(self._pieces):
            part = piece[self._offset :] if index == 0 else piece
            parts.append(part[:wanted])
            wanted -= len(parts[-1])
            if wanted <= 0:
                break
        return b"".join(parts)

    def rest_if_within(self, size: int) -> bytes | None:
        """All the rest of the text if it is at most `size` bytes (then consumed), else None."""
        self._fill(size + 1)
        if not self._source_eof or self._buffered > size:
            return None
        return self.read()

    def skip_blank_lines(self) -> int:
        """Consume line breaks at the current position; return how many."""
        window = 64 * 1024
        skipped = 0
        while True:
            head = self.peek(window)
            blank = len(head) - len(head.lstrip(b"\r\n"))
            if blank == 0:
                return skipped
            if blank == len(head) == window and head.endswith(b"\r"):
                blank -= 1  # the CR may be the first half of a CR LF beyond the window
            part = head[:blank]
            skipped += part.count(b"\n") + part.count(b"\r") - part.count(b"\r\n")
            self._take(blank)

    def _fill(self, size: int) -> None:
        while self._buffered < size and self._fill_once():
            pass

    def _take(self, size: int) -> list[memoryview]:
        """Consume up to `size` buffered bytes, as views on the pieces."""
        self._fill(size)
        parts: list[memoryview] = []
        wanted = min(size, self._buffered)
        while wanted and self._pieces:
            piece = self._pieces[0]
            part = memoryview(piece)[self._offset : self._offset + wanted]
            parts.append(part)
            wanted -= len(part)
            self._buffered -= len(part)
            self._offset += len(part)
            if self._offset == len(piece):
                self._pieces.popleft()
                self._offset = 0
        return parts

    # the work

    def _fill_once(self) -> bool:
        """Decode one more chunk into the output buffer; False at the end."""
        if self._source_eof:
            return False
        raw = self._read_source()
        final = not raw
        if not self._bom_checked:
            self._head += raw
            if len(self._head) < len(UTF8_BOM) and not final:
                return True
            raw, self._head = self._head, b""
            self._bom_checked = True
            if raw.startswith(UTF8_BOM):
                raw = raw[len(UTF8_BOM) :]
        pending = len(self._decoder.getstate()[0])
        bad_at: int | None = None
        text = ""
        try:
            text = self._decoder.decode(raw, final)
        except UnicodeDecodeError as exc:
            bad_at = exc.start - pending
        if bad_at is not None:
            raise self._encoding_error(raw, bad_at)
        # valid UTF-8 goes on as it came; other encodings are re-encoded
        encoded = raw if self._is_utf8 else text.encode("utf-8")
        self._track_lines(raw, encoded)
        if encoded:
            self._pieces.append(encoded)
            self._buffered += len(encoded)
            self._last_text_byte = encoded[-1:]
        if final:
            self._source_eof = True
            if self._final_newline and self._last_text_byte not in (b"", b"\n", b"\r"):
                self._pieces.append(b"\n")
                self._buffered += 1
            return bool(encoded)
        return True

    def _read_source(self) -> bytes:
        try:
            raw = self._source.read(self._chunk_bytes)
        except BaseException as exc:
            self.failure = exc
            raise
        raw = bytes(raw or b"")
        self.raw_bytes += len(raw)
        if self._max_total is not None and self.raw_bytes > self._max_total:
            limit = self._max_total / 1_048_576
            raise self._fail(
                TransformError(
                    "limit",
                    f"the {self._category.upper()} input is larger than the limit of {limit:g} MiB",
                )
            )
        return raw

    def _track_lines(self, raw: bytes, text: bytes) -> None:
        """Count the line breaks of a chunk and check the length of its lines.

        `raw` and `text` are the same chunk before and after transcoding; they
        hold the same line breaks, since every supported encoding is
        ASCII-compatible.
        """
        completes_crlf = self._pending_cr and text.startswith(b"\n")
        start = 1 if completes_crlf else 0
        self._pending_cr = self._cr_is_break and text.endswith(b"\r")
        self._raw_line_bytes = _bytes_after_last_break(raw, self._raw_line_bytes, self._cr_is_break)
        if self._text_line_bytes + len(text) <= self._max_line:
            if self._cr_is_break:
                breaks = text.count(b"\n", start) + text.count(b"\r", start)
                breaks -= text.count(b"\r\n", start)
            else:
                breaks = text.count(b"\n", start)
            self.line += breaks
            self._text_line_bytes = _bytes_after_last_break(
                text, self._text_line_bytes, self._cr_is_break
            )
            return
        length = 0 if completes_crlf else self._text_line_bytes
        line_start = start
        for match in self._breaks.finditer(text, start):
            if length + match.start() - line_start > self._max_line:
                raise self._line_too_long()
            self.line += 1
            length, line_start = 0, match.end()
        self._text_line_bytes = length + len(text) - line_start
        if self._text_line_bytes > self._max_line:
            raise self._line_too_long()

    def _line_too_long(self) -> TransformError:
        return self._fail(
            TransformError(
                self._category,
                f"line {self.line} is longer than the limit of {self._max_line} bytes",
                line=self.line,
            )
        )

    def _encoding_error(self, chunk: bytes, bad_at: int) -> TransformError:
        """The error for an undecodable byte at `bad_at` in `chunk` (not yet counted).

        `bad_at` is negative when the bad sequence began in the previous chunk.
        """
        start = 1 if self._pending_cr and chunk.startswith(b"\n") else 0
        line, byte = self.line, self._raw_line_bytes + bad_at + 1 - start
        for match in self._breaks.finditer(chunk, start, max(bad_at, start)):
            line, byte = line + 1, bad_at - match.end() + 1
        name = _DISPLAY.get(self._codec, self._codec)
        return self._fail(
            TransformError(
                "encoding",
                f"line {line}, byte {byte}: not valid {name}",
                line=line,
                column=byte,
            )
        )

    def _fail(self, error: TransformError) -> TransformError:
        self.failure = error
        return error


def _bytes_after_last_break(chunk: bytes, before: int, cr_is_break: bool) -> int:
    """The length of the line at the end of `chunk`, which had `before` bytes before it."""
    last = chunk.rfind(b"\n")
    if cr_is_break:
        last = max(last, chunk.rfind(b"\r"))
    return before + len(chunk) if last < 0 else len(chunk) - last - 1
