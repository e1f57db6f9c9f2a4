"""The input's way into DuckDB: a named pipe in the sandbox database's own directory.

The readers (`csvread.py`, `jsonread.py`) parse the tenant's text in Python and
write its rows, as text of their own making (`encode_rows`), into a pipe that
DuckDB's `read_csv` reads as a file. A pipe's bytes live in the kernel's memory
only: nothing reaches a disk. Arrow is not needed on the way (its libraries
alone cost the worker 50 MiB).

How nothing waits for ever:
- The thread that writes opens the write end itself (`write` does, the first
  time): that open waits until DuckDB opens the pipe to read it, so nothing is
  written before a reader is there (a pipe's data is gone when its last end
  closes), and the end that the writer closes is the end of DuckDB's input.
- Once DuckDB has opened the pipe, the writer opens a read end of its own (the
  guard, which reads nothing until the end) and removes the pipe's name: no one
  else can open it from then on. A query that reads `input` twice finds no file
  the second time (the engine refuses such a query before it runs, see engine.py).
- DuckDB stopped reading (the query needed no more, or failed): `finish()` makes
  `write` drop what it is given from then on, and reads from the guard (or, if
  DuckDB never opened the pipe, from a read end it opens) until the writing
  thread is done: that lets go of a writer that waits for room (DuckDB stopped
  reading without closing) or waits to open.
- DuckDB's own open never waits long: the writing thread opens its end at its
  first write, or at its end when the input fails before that.
- The pipe is removed when the transform ends (and its database's directory
  is emptied after every transform, see sandbox.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import select
import threading
from collections.abc import Iterator, Sequence

import duckdb

_DRAIN_BYTES = 1 << 16
PIPE_BYTES = 1 << 20


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
        # A pipe holds 64 KiB by default: the writer and DuckDB then take turns every
        # 64 KiB. 1 MiB (Linux's default maximum for a process) let a 256 MiB input
        # through in about two thirds of the time. The kernel's memory, not ours.
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(self._writer, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        self._guard = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        os.unlink(self.path)

    def end(self) -> None:
        """No more rows: DuckDB reads to the end of what was written."""
        if not self._opened:
            self.write(b"")  # open (and so close) the write end: an empty input
        writer, self._writer = self._writer, -1
        if writer >= 0:
            os.close(writer)

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

    def close(self) -> None:
        """Close the ends of ours and remove the pipe."""
        for fd in (self._writer, self._guard, self._drain):
            if fd >= 0:
                os.close(fd)
        self._writer = self._guard = self._drain = -1
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


# What separates values, and stands for NULL, in the text DuckDB reads from a pipe.
DELIMITER = "\x1f"  # ASCII's unit separator
NULL_MARK = "\x1e"  # ASCII's record separator


class _Null(str):
    """NULL in a row given to `encode_rows`: known by identity, not by its text."""


NULL = _Null(NULL_MARK)


def encode_rows(rows: Sequence[Sequence[str]]) -> bytes:
    """Rows as the text DuckDB reads (see `view_sql`): values separated by DELIMITER,
    records ended by LF, NULL as NULL_MARK, unquoted.

    Most batches hold none of those characters nor a quote or CR in any value: then
    the values are simply joined (C code, no Python per value). Otherwise every
    value but NULL is quoted, with its quotes doubled.
    """
    if not rows:
        return b""
    text = "\n".join(map(DELIMITER.join, rows)) + "\n"
    if _is_plain(text, rows):
        return text.encode()
    return "".join(
        DELIMITER.join(
            NULL_MARK if value is NULL else '"' + value.replace('"', '""') + '"'
            for value in row
        ) + "\n"
        for row in rows
    ).encode()


def _is_plain(text: str, rows: Sequence[Sequence[str]]) -> bool:
    """Whether `text`, the values of `rows` joined, holds no character that needs quotes."""
    return (
        '"' not in text
        and "\r" not in text
        and text.count("\n") == len(rows)
        and text.count(DELIMITER) == sum(map(len, rows)) - len(rows)
        and (NULL_MARK not in text or text.count(NULL_MARK) == _nulls(rows))
    )


def _nulls(rows: Sequence[Sequence[str]]) -> int:
    return sum(1 for row in rows for value in row if value is NULL)


def view_sql(path: str, names: list[str], types: list[str], record_bytes: int) -> str:
    """`CREATE TEMP VIEW input` over the pipe at `path`: columns `names` of DuckDB `types`.

    DuckDB reads the pipe in buffers of `record_bytes` (the longest record it may
    meet): its default (16 times the longest line, 32 MiB) and `parallel = false`
    (which keeps every buffer it read) each cost a 50 MiB stream 45 MiB more at
    the peak.
    """
    internal = [f"c{i}" for i in range(1, len(names) + 1)]
    columns = ", ".join(
        f"{_literal(name)}: {_literal(kind)}" for name, kind in zip(internal, types, strict=True)
    )
    selected = ", ".join(
        f"{name} AS {identifier(title)}" for name, title in zip(internal, names, strict=True)
    )
    return (
        f"CREATE TEMP VIEW input AS SELECT {selected} FROM read_csv({_literal(path)}, "
        f"header = false, delim = '{DELIMITER}', quote = '\"', escape = '\"', "
        f"new_line = '\\n', nullstr = '{NULL_MARK}', allow_quoted_nulls = false, "
        "auto_detect = false, strict_mode = true, null_padding = false, "
        f"max_line_size = {record_bytes}, buffer_size = {record_bytes}, "
        f"columns = {{{columns}}})"
    )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Feed:
    """A thread that writes `chunks` (text for DuckDB) into a pipe DuckDB reads as `input`.

    `chunks` does the reading and checking of the input as it is iterated; it goes
    on (validating, counting) when DuckDB wants no more, and ends early when
    `abandoned` is set. Its failure, or the source's own error, is kept in
    `failure` (the engine raises it before any error of DuckDB's).
    """

    def __init__(self, directory: str, chunks: Iterator[bytes]) -> None:
        self.pipe = Pipe(directory)
        self.failure: BaseException | None = None
        self.abandoned = threading.Event()
        self._chunks = chunks
        self._thread: threading.Thread | None = None

    def start(self, con: duckdb.DuckDBPyConnection, view: str) -> None:
        con.execute(view)
        self._thread = threading.Thread(target=self._run, name="input-feed", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pipe = self.pipe
        try:
            for chunk in self._chunks:
                if not pipe.stopped:
                    pipe.write(chunk)
                if self.abandoned.is_set():
                    break
        except BaseException as exc:  # noqa: BLE001 - kept for the engine, which raises it
            self.failure = exc
        finally:
            pipe.end()

    def abandon(self) -> None:
        """The query failed: stop reading the input too, and wait for the thread."""
        self.abandoned.set()
        self.wait()

    def wait(self) -> None:
        """Stop writing, and wait for the thread (which reads on, unless abandoned)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self.pipe.finish(thread)
            thread.join()

    def close(self) -> None:
        self.abandon()
        self.pipe.close()


def unique_names(header: list[str]) -> list[str]:
    """Header values as unique column names; names given in the header win."""
    wanted = [value or f"column{position}" for position, value in enumerate(header, start=1)]
    names: list[str | None] = []
    taken: set[str] = set()
    for name in wanted:
        names.append(None if name in taken else name)
        taken.add(name)
    for index, name in enumerate(wanted):
        if names[index] is None:
            suffix = 1
            while f"{name}_{suffix}" in taken:
                suffix += 1
            names[index] = f"{name}_{suffix}"
            taken.add(f"{name}_{suffix}")
    return [name for name in names if name is not None]


class FedInput:
    """What the inputs read whole before the query share (JSON, XML, spreadsheets): the
    pipe that feeds the view `input`, waited for at the end, let go when it is over."""

    _feed: Feed | None = None

    def drain(self) -> None:
        """Nothing is left unread: the records were all read up front."""
        if self._feed is not None:
            self._feed.wait()
            if self._feed.failure is not None:
                raise self._feed.failure

    def abandon(self) -> None:
        if self._feed is not None:
            self._feed.abandon()

    def close(self) -> None:
        """Let go of the pipe and the records: the transform is over."""
        if self._feed is not None:
            self._feed.close()
            self._feed = None
        self._release()

    def _release(self) -> None:
        """Drop what the input holds (each input its own)."""
