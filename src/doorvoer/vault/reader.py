"""Random-access reads over a sequential decrypting stream, for outbox downloads.

Clients read ahead, in parallel, past the end or back again (psftp, lftp): keep a window
of recent plaintext in memory and restart the stream when a read goes back further."""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO

CHUNK = 256 * 1024


class WindowReader:
    def __init__(self, open_stream: Callable[[], BinaryIO], window: int = 8 * 1024 * 1024) -> None:
        self._open = open_stream
        self._window = window
        self._stream: BinaryIO | None = None
        self._buf = bytearray()
        self._start = 0  # plaintext offset of _buf[0]
        self._eof = False

    @property
    def _end(self) -> int:
        return self._start + len(self._buf)

    def _restart(self) -> None:
        self.close()
        self._stream = self._open()
        self._buf = bytearray()
        self._start = 0
        self._eof = False

    def read(self, offset: int, size: int) -> bytes:
        if self._stream is None or offset < self._start:
            self._restart()
        want = offset + size
        while self._end < want and not self._eof:
            assert self._stream is not None
            chunk = self._stream.read(CHUNK)
            if not chunk:
                self._eof = True
                break
            self._buf += chunk
            excess = len(self._buf) - self._window
            if excess > 0 and self._start + excess <= offset:
                del self._buf[:excess]
                self._start += excess
        lo = offset - self._start
        return bytes(self._buf[lo : lo + size]) if lo < len(self._buf) else b""

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
