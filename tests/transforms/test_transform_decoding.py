"""The transcoding reader: line numbers, byte positions and limits, however the input is cut."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doorvoer.transforms.decoding import Utf8Reader
from doorvoer.transforms.errors import TransformError

from .helpers import Source, stream

BREAK = re.compile(rb"\r\n|\r|\n")


def reader(
    data: bytes,
    chunk: int,
    encoding: str = "utf-8",
    *,
    max_line_bytes: int = 1000,
    final_newline: bool = False,
) -> Utf8Reader:
    return Utf8Reader(
        stream(Source(data)),
        encoding,
        max_line_bytes=max_line_bytes,
        category="csv",
        chunk_bytes=chunk,
        final_newline=final_newline,
    )


def read_all(
    data: bytes,
    chunk: int,
    encoding: str = "utf-8",
    *,
    max_line_bytes: int = 1000,
    final_newline: bool = False,
) -> bytes:
    text = reader(data, chunk, encoding, max_line_bytes=max_line_bytes, final_newline=final_newline)
    parts = []
    while part := text.read(7):
        parts.append(part)
    return b"".join(parts)


LINES = st.lists(
    st.tuples(st.text(st.characters(codec="cp1252", exclude_characters="\r\n"), max_size=20),
              st.sampled_from([b"\n", b"\r\n", b"\r"])),
    max_size=12,
)  # fmt: skip


@settings(max_examples=200, deadline=None, database=None)
@given(LINES, st.integers(min_value=0, max_value=200), st.integers(min_value=1, max_value=9),
       st.sampled_from(["utf-8", "cp1252"]))  # fmt: skip
def test_bad_byte_is_located_however_the_input_is_cut(
    lines: list[tuple[str, bytes]], where: int, chunk: int, encoding: str
) -> None:
    text = "".join(line + end.decode() for line, end in lines)
    where = min(where, len(text))  # the bad byte goes between two characters
    prefix = text[:where].encode(encoding)
    bad = b"\xff" if encoding == "utf-8" else b"\x81"
    data = prefix + bad + text[where:].encode(encoding)
    breaks = list(BREAK.finditer(prefix))
    expected_line = 1 + len(breaks)
    expected_byte = len(prefix) - (breaks[-1].end() if breaks else 0) + 1
    with pytest.raises(TransformError) as caught:
        read_all(data, chunk, encoding)
    assert (caught.value.line, caught.value.column) == (expected_line, expected_byte)
    assert caught.value.category == "encoding"


@settings(max_examples=200, deadline=None, database=None)
@given(LINES, st.integers(min_value=1, max_value=9), st.integers(min_value=0, max_value=25))
def test_lines_longer_than_the_limit(
    lines: list[tuple[str, bytes]], chunk: int, limit: int
) -> None:
    data = b"".join(text.encode() + end for text, end in lines)
    lengths = [len(line) for line in BREAK.split(data)]
    too_long = [number for number, length in enumerate(lengths, start=1) if length > limit]
    if too_long:
        with pytest.raises(TransformError) as caught:
            read_all(data, chunk, max_line_bytes=limit)
        assert caught.value.line == too_long[0]
        assert str(caught.value) == (
            f"csv: line {too_long[0]} is longer than the limit of {limit} bytes"
        )
    else:
        text = reader(data, chunk, max_line_bytes=limit)
        assert text.read() == data
        assert text.line == len(BREAK.findall(data)) + 1


def test_line_limit_counts_utf8_bytes() -> None:
    data = ("€" * 10 + "\n").encode("cp1252")
    with pytest.raises(TransformError):
        read_all(data, 4, "cp1252", max_line_bytes=29)
    assert read_all(data, 4, "cp1252", max_line_bytes=30) == ("€" * 10 + "\n").encode()


@pytest.mark.parametrize("chunk", [1, 2, 3, 4, 64])
def test_bom_is_dropped_however_the_input_is_cut(chunk: int) -> None:
    assert read_all(b"\xef\xbb\xbfa\n", chunk) == b"a\n"
    assert read_all(b"\xef\xbb\xbf", chunk) == b""
    assert read_all(b"\xef\xbb\xbfa\n", chunk, "utf-8-sig") == b"a\n"
    assert read_all(b"a\xef\xbb\xbf\n", chunk) == b"a\xef\xbb\xbf\n"


def test_final_newline_and_blank_lines() -> None:
    assert read_all(b"a,b", 2, final_newline=True) == b"a,b\n"
    assert read_all(b"a,b\r", 2, final_newline=True) == b"a,b\r"
    assert read_all(b"", 2, final_newline=True) == b""
    text = reader(b"\r\n\n\r\r\na\n", 2)
    assert text.skip_blank_lines() == 4
    assert text.read() == b"a\n"


def test_truncated_sequence_at_the_end() -> None:
    with pytest.raises(TransformError) as caught:
        read_all(b"ab\ncd\xe2\x82", 3)
    assert (caught.value.line, caught.value.column) == (2, 3)


def test_source_errors_pass_through_unchanged() -> None:
    class Broken:
        def read(self, size: int) -> bytes:
            raise ConnectionResetError("storage went away")

    text = Utf8Reader(stream(Broken()), "utf-8", max_line_bytes=10, category="csv")
    with pytest.raises(ConnectionResetError):
        text.read(10)
    assert isinstance(text.failure, ConnectionResetError)
