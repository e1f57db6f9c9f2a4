"""The input's way into DuckDB: a named pipe in the sandbox database's own directory.

The readers (`csvread.py`) parse the tenant's text in Python and write its rows,
as plain CSV of their own making, into a pipe that DuckDB's `read_csv` reads as a
file. A pipe's bytes live in the kernel's memory only: nothing reaches a disk.
Arrow is not needed on the way (its libraries alone cost the worker 50 MiB).

How nothing waits for ever:
- The thread that writes opens the write end itself (`write` does, the first
  time): that open waits until DuckDB opens the pipe to read it, so nothing is
  written before a reader is there (a pipe's data is gone when its last end
  closes), and the end that the writer closes is the end of DuckDB's input.
- Once DuckDB has opened the pipe, the writer opens a read end of its own (the
  guard, which reads nothing until the end) and removes the pipe's name: no one
  else can open it from then on. A query that reads `input` twice finds no file
  the second time (the engine refuses such a query before it runs, see engine.py).
- DuckDB stopped reading (the query needed no more, or failed): `stop_writing()`
  makes `write` drop what it is given from then on, and `finish()` reads from
  the guard (or, if DuckDB never opened the pipe, from a read end it opens) until
  the writing thread is done: that lets go of a writer that waits for room
  (DuckDB stopped reading without closing) or waits to open.
- `kick()` lets go of an open that waits for the other end: the operator's SQL
  can name the directory and so the pipe, and a read-open of it after the writer
  is done would wait for a writer for ever. The deadline calls it with DuckDB's
  interrupt.
- The pipe is removed when the transform ends (and its database's directory
  is emptied after every transform, see sandbox.py).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import threading

_DRAIN_BYTES = 1 << 16


class Pipe:
    """A named pipe that one thread writes into and DuckDB reads from."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, f"input-{secrets.token_hex(8)}.csv")
        os.mkfifo(self.path, 0o600)
        self._writer = -1
        self._opened = False  # by the writer, once
        self._guard = -1  # our own read end, opened by the writer
        self._drain = -1  # our own read end, opened by finish() if the writer never opened
        self._stop = threading.Event()

    def write(self, data: bytes) -> bool:
        """Write all of `data`; False, writing nothing more, once told to stop."""
        if not self._opened:
            self._open()
        view = memoryview(data)
        while view:
            if self._stop.is_set() or self._writer < 0:
                return False
            try:
                written = os.write(self._writer, view)
            except BrokenPipeError:
                self._stop.set()
                return False
            view = view[written:]
        return True

    def _open(self) -> None:
        self._opened = True
        self._writer = os.open(self.path, os.O_WRONLY)  # waits for a reader
        self._guard = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        os.unlink(self.path)

    def end(self) -> None:
        """No more rows: DuckDB reads to the end of what was written."""
        if not self._opened:
            self.write(b"")  # open (and so close) the write end: an empty input
        writer, self._writer = self._writer, -1
        if writer >= 0:
            os.close(writer)

    def stop_writing(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def finish(self, writing: threading.Thread | None) -> None:
        """Stop writing and wait for `writing` (the thread that writes) to end."""
        self._stop.set()
        while writing is not None and writing.is_alive():
            reader = self._guard
            if reader < 0:
                if self._drain < 0:
                    with contextlib.suppress(FileNotFoundError):  # the writer just opened
                        self._drain = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
                reader = self._drain
            if reader >= 0:
                ready, _, _ = select.select([reader], [], [], 0.05)
                if ready:
                    with contextlib.suppress(BlockingIOError):
                        os.read(reader, _DRAIN_BYTES)
            writing.join(0.01)

    def kick(self) -> None:
        """Let go of an open of the pipe that waits for its other end (see above)."""
        for flags in (os.O_WRONLY | os.O_NONBLOCK, os.O_RDONLY | os.O_NONBLOCK):
            with contextlib.suppress(OSError):
                os.close(os.open(self.path, flags))

    def close(self) -> None:
        """Close the ends of ours and remove the pipe."""
        for fd in (self._writer, self._guard, self._drain):
            if fd >= 0:
                os.close(fd)
        self._writer = self._guard = self._drain = -1
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
