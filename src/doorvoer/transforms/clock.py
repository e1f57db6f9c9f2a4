"""The wall-clock budget of one transform, shared by readers, DuckDB and writers."""

from __future__ import annotations

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
        """Call `interrupt` when the deadline passes while the block runs."""
        timer = threading.Timer(max(0.0, self._end - time.monotonic()), interrupt)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
