"""The wall-clock budget of one transform, shared by readers, DuckDB and writers."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from doorvoer.transforms.errors import TransformError


class Deadline:
    """Fails the transform once `seconds` have passed since it was made.

    Python code calls `check()` between batches; DuckDB, which runs without
    the GIL, is stopped by `interrupting()`, a timer that interrupts it.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self._end

    def error(self) -> TransformError:
        return TransformError(
            "limit", f"query interrupted after the time limit of {self.seconds:g} s"
        )

    def check(self) -> None:
        if self.expired:
            raise self.error()

    @contextmanager
    def interrupting(self, interrupt: Callable[[], object]) -> Iterator[None]:
        """Call `interrupt` when the deadline passes while the block runs.

        Once the block is left, `interrupt` is not running and will not run.
        """
        token = _WATCHDOG.add(self._end, interrupt)
        try:
            yield
        finally:
            _WATCHDOG.remove(token)


class _Watchdog:
    """One thread that calls the interrupts of all deadlines that pass.

    (A thread per transform, as a threading.Timer, costs more than the rest of
    the transform of a small file.)
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._due: dict[int, tuple[float, Callable[[], object]]] = {}
        self._tokens = itertools.count()
        self._calling: int | None = None
        self._wakes_at: float | None = None  # the thread's next wake-up; None: when notified
        self._thread: threading.Thread | None = None

    def add(self, at: float, callback: Callable[[], object]) -> int:
        with self._changed:
            token = next(self._tokens)
            self._due[token] = (at, callback)
            if self._thread is None or not self._thread.is_alive():
                # (also after a fork, which keeps only the forking thread)
                self._thread = threading.Thread(
                    target=self._run, name="doorvoer-transform-deadlines", daemon=True
                )
                self._thread.start()
            if self._wakes_at is None or at < self._wakes_at:
                self._changed.notify_all()
        return token

    def remove(self, token: int) -> None:
        """Forget a callback; wait for it to return if it is running now."""
        with self._changed:
            self._due.pop(token, None)
            while self._calling == token:
                self._changed.wait()

    def _run(self) -> None:
        while True:
            with self._changed:
                now = time.monotonic()
                due = [(token, call) for token, (at, call) in self._due.items() if at <= now]
                if not due:
                    self._wakes_at = min((at for at, _ in self._due.values()), default=None)
                    self._changed.wait(None if self._wakes_at is None else self._wakes_at - now)
                    self._wakes_at = None
                    continue
                token, callback = due[0]
                del self._due[token], due
                self._calling = token
            try:
                callback()
            except Exception:  # noqa: BLE001, S110 - a query that ended meanwhile is fine
                pass
            finally:
                del callback  # it holds the transform's connection: not while waiting
                with self._changed:
                    self._calling = None
                    self._changed.notify_all()


_WATCHDOG = _Watchdog()
