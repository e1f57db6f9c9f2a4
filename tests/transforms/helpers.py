"""Helpers for the transform tests: streams that only read or only write."""

from __future__ import annotations

import io
import json
from typing import Any, BinaryIO, cast

import pytest

from doorvoer.transforms import (
    Limits,
    ReadSpec,
    TransformError,
    TransformResult,
    TransformSpec,
    WriteSpec,
    run_transform,
)


class Source:
    """A readable stream that cannot seek, tell or peek: only read(n)."""

    def __init__(self, data: bytes, chunk: int | None = None) -> None:
        self._data = io.BytesIO(data)
        self._chunk = chunk

    def read(self, size: int = -1) -> bytes:
        if self._chunk is not None and size > self._chunk:
            size = self._chunk
        return self._data.read(size)


class Sink:
    """A writable stream: only write(b); records whether someone closed it."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def close(self) -> None:
        self.closed = True

    @property
    def value(self) -> bytes:
        return b"".join(self._parts)


def stream(obj: object) -> BinaryIO:
    """A stand-in stream as the BinaryIO the engine's signature names."""
    return cast(BinaryIO, obj)


def transform(
    data: bytes,
    sql: str = "SELECT * FROM input",
    *,
    read: dict[str, Any] | None = None,
    write: dict[str, Any] | None = None,
    limits: Limits | None = None,
    chunk: int | None = None,
) -> tuple[TransformResult, bytes]:
    """Run a transform over `data`; return the result and the output bytes."""
    sink = Sink()
    result = run_transform(
        ReadSpec(**{"format": "csv", **(read or {})}),
        TransformSpec(sql=sql),
        WriteSpec(**{"format": "jsonl", **(write or {})}),
        stream(Source(data, chunk)),
        stream(sink),
        limits or Limits(),
    )
    assert not sink.closed
    return result, sink.value


def rows(data: bytes, sql: str = "SELECT * FROM input", **kwargs: Any) -> list[dict[str, Any]]:
    """The output rows of a transform to JSON Lines, parsed."""
    _, output = transform(data, sql, **kwargs)
    # JSON Lines are split on "\n" only: str.splitlines would also split on U+0085 etc.
    return [json.loads(line) for line in output.decode("utf-8").split("\n") if line]


def failure(data: bytes, sql: str = "SELECT * FROM input", **kwargs: Any) -> TransformError:
    """The TransformError a transform raises."""
    with pytest.raises(TransformError) as caught:
        transform(data, sql, **kwargs)
    return caught.value
