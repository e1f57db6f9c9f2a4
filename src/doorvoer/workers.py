"""Transform workers: claim a received transfer, process it, repeat.

By default they run in a process of their own (`worker_processes = 1`). The SFTP and
HTTPS doors share one event loop and one GIL; a transform is CPU work (decoding,
DuckDB, encryption) that would take both from them. In its own process it runs on
another core, and a transform that crashes or exhausts memory takes down only the
worker process: the node starts a new one, the transfer's lease runs out and it is
tried again (at most `transfers.work.MAX_ATTEMPTS` times).

`worker_processes = 0` runs the same worker threads inside the node process (tests,
small installations). Either way there are `workers` threads per host.

A worker process is a fresh interpreter (`python -m doorvoer.worker_main`) that runs
at a lower CPU priority than the node (NICENESS): when the host is busy, the doors
answer first. The node and a worker process talk over a socket pair, one byte at a
time: `w` (node to worker: work arrived, look now), `d` (worker to node: a transfer
was processed and a push is due) and `q` (node to worker: stop when the running
transforms are done, for at most STOP_WAIT_S). End of file without `q` means the node
died: the worker process stops at once, as the node did; the socket is not needed for
correctness, since work is claimed from the database and idle workers look again
every POLL_S.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from doorvoer.config import Settings
from doorvoer.context import Context
from doorvoer.transfers.models import State

if TYPE_CHECKING:
    from doorvoer.transfers.work import Claim

log = logging.getLogger("doorvoer.workers")

POLL_S = 0.5
GATHER_S = 0.05  # after a wake-up, let a burst of uploads gather into one batch
STOP_WAIT_S = 5.0
RESTART_DELAY_S = 1.0
MAX_RESTART_S = 60.0
# Transforms yield the CPU to the doors: an upload waits for its CLOSE reply, a
# received file can wait a little longer for its transform.
NICENESS = 5
WAKE, DONE, QUIT = b"w", b"d", b"q"


def process_batch(ctx: Context, claims: list[Claim]) -> dict[str, State]:
    """Transform claimed transfers (no unit of work is open meanwhile: a transform takes
    as long as it takes), then record every outcome in one unit."""
    from doorvoer.transfers import work

    outcomes = {c.transfer_id: work.transform(ctx, c) for c in claims}
    return ctx.run(work.record, outcomes)


def claim_and_process(ctx: Context, limit: int = 16) -> dict[str, State]:
    """One worker step by hand: claim what is waiting (up to `limit` small files) and
    process it."""
    from doorvoer.transfers import work

    claims = ctx.run(work.claim, limit)
    return process_batch(ctx, claims) if claims else {}


def work_loop(ctx: Context, stop: threading.Event, wake: threading.Event,
              done: Callable[[], None]) -> None:
    """One worker thread. Never raises: a failure is logged and the loop goes on."""
    from doorvoer import transforms
    from doorvoer.transfers import work

    worked = False
    while not stop.is_set():
        try:
            claims = ctx.run(work.claim, work.BATCH_FILES)
            if not claims:
                if worked:  # going idle: what the transforms freed goes back
                    transforms.release_memory()
                    worked = False
                if wake.wait(POLL_S):
                    # Let a burst gather: one claim and one record for many files
                    # leave the doors more of SQLite's single writer.
                    stop.wait(GATHER_S)
                wake.clear()
                continue
            worked = True
            states = process_batch(ctx, claims)
            for tid, state in states.items():
                log.info("processed", extra={"transfer": tid, "state": str(state)})
            if State.DELIVERING in states.values():
                done()  # a push is due
        except Exception:
            # The worker's own code never handles file content outside the transform,
            # which catches its own errors: the traceback is safe to log.
            log.exception("worker loop failed")
            stop.wait(1.0)


def _start_threads(ctx: Context, count: int, stop: threading.Event, wake: threading.Event,
                   done: Callable[[], None]) -> list[threading.Thread]:
    threads = [threading.Thread(target=work_loop, args=(ctx, stop, wake, done),
                                name=f"worker-{i}", daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    return threads


def _send(fd: int, byte: bytes) -> None:
    """Best effort: a full pipe means the other side has a wake-up waiting already."""
    with contextlib.suppress(BlockingIOError, BrokenPipeError, OSError):
        os.write(fd, byte)


# ---------------------------------------------------------------- the worker process


def child_main(fd: int) -> None:
    """A worker process (`python -m doorvoer.worker_main FD`): its settings come as JSON
    on stdin, its end of the node's socket pair is `fd`. It shares no state with the
    node."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the node, which stops us
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    start = json.loads(sys.stdin.buffer.read())
    sys.stdin.close()
    from doorvoer import log as logsetup

    logsetup.setup(start["log_level"])
    ctx = Context.open(Settings(**start["settings"]))
    stop, wake = threading.Event(), threading.Event()
    threads = _start_threads(ctx, ctx.settings.workers, stop, wake, lambda: _send(fd, DONE))
    heartbeat = threading.Thread(target=_heartbeat, args=(ctx, stop), name="heartbeat",
                                 daemon=True)
    heartbeat.start()
    log.info("worker process started", extra={"node": ctx.node_id,
                                               "threads": ctx.settings.workers})
    graceful = False
    try:
        while not graceful:
            try:
                data = os.read(fd, 64)
            except InterruptedError:
                continue
            except OSError:
                data = b""
            if not data:
                break  # the node died: stop at once, as it did
            graceful = QUIT in data
            wake.set()
    finally:
        stop.set()
        wake.set()
        if graceful:  # let running transforms finish, for a while
            deadline = time.monotonic() + STOP_WAIT_S
            for t in threads:
                t.join(max(0.0, deadline - time.monotonic()))
            if not any(t.is_alive() for t in threads):
                ctx.close()
        # A transform still running is cut off here: its lease runs out and the next
        # worker tries again. Exit without interpreter finalization under its feet.
        logging.shutdown()
        os._exit(0)


def _heartbeat(ctx: Context, stop: threading.Event) -> None:
    """Keep this process's leases alive; they run out if it dies."""
    from doorvoer.transfers import lifecycle

    while not stop.wait(ctx.settings.lease_s / 3):
        try:
            ctx.run(lifecycle.heartbeat)
        except Exception:
            log.exception("worker heartbeat failed")


# ---------------------------------------------------------------- in the node


class Workers:
    """The node's side: starts the workers, wakes them, restarts a worker process that
    died, stops them. `on_done` is called (from another thread) after each transfer."""

    def __init__(self, ctx: Context, on_done: Callable[[], None]) -> None:
        self.ctx = ctx
        self._on_done = on_done
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._children: list[_Child] = []

    @property
    def in_process(self) -> bool:
        return self.ctx.settings.worker_processes == 0

    def start(self) -> None:
        if self.in_process:
            self._threads = _start_threads(self.ctx, self.ctx.settings.workers, self._stop,
                                           self._wake, self._on_done)
            return
        for i in range(self.ctx.settings.worker_processes):
            child = _Child(self.ctx.settings, i, self._on_done)
            child.start()
            self._children.append(child)

    def nudge(self) -> None:
        """Work arrived. Safe from any thread."""
        self._wake.set()
        for child in self._children:
            child.nudge()

    def supervise(self) -> None:
        """Restart a worker process that died (called by the node's housekeeping)."""
        for child in self._children:
            if not self._stop.is_set():
                child.restart_if_dead()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(STOP_WAIT_S)
        for child in self._children:
            child.stop()


class _Child:
    def __init__(self, settings: Settings, index: int, on_done: Callable[[], None]) -> None:
        self._settings = settings
        self._index = index
        self._on_done = on_done
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._lock = threading.Lock()
        self._died_at: float | None = None
        self._started_at: float | None = None
        self._delay = RESTART_DELAY_S

    def start(self) -> None:
        ours, theirs = socket.socketpair()
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        start = json.dumps({"settings": self._settings.model_dump(mode="json"),
                            "log_level": level}).encode()
        try:
            # A fresh interpreter that imports only what a worker needs (not the CLI,
            # the doors or multiprocessing's resource tracker): never fork a process
            # that has threads. A session of its own: Ctrl-C in the node's terminal
            # reaches only the node, which stops its workers itself.
            proc = subprocess.Popen(
                [sys.executable, "-m", "doorvoer.worker_main", str(theirs.fileno())],
                stdin=subprocess.PIPE, pass_fds=(theirs.fileno(),), close_fds=True,
                start_new_session=True)
        finally:
            theirs.close()
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(start)
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        self._started_at = time.monotonic()
        ours.setblocking(False)
        with self._lock:
            self._proc, self._sock = proc, ours
        self._reader = threading.Thread(target=self._read, args=(ours,), daemon=True,
                                        name=f"worker-{self._index}-pipe")
        self._reader.start()
        log.info("worker process spawned", extra={"pid": proc.pid})

    def _read(self, sock: socket.socket) -> None:
        while True:
            try:
                ready, _, _ = select.select([sock], [], [], 1.0)
                if not ready:
                    if sock.fileno() < 0:
                        return
                    continue
                data = sock.recv(64)
            except (OSError, ValueError):
                return
            if not data:
                return
            if DONE in data:
                self._on_done()

    def nudge(self) -> None:
        with self._lock:
            if self._sock is not None and self._sock.fileno() >= 0:
                _send(self._sock.fileno(), WAKE)

    def restart_if_dead(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is None:
            return
        now = time.monotonic()
        if self._died_at is None:
            self._died_at = now
            # A process that keeps dying (it cannot start, say) is restarted less often.
            quick = self._started_at is not None and now - self._started_at < MAX_RESTART_S
            self._delay = min(self._delay * 2, MAX_RESTART_S) if quick else RESTART_DELAY_S
            log.error("worker process died", extra={"pid": proc.pid, "exitcode": proc.returncode,
                                                    "restart_in_s": self._delay})
        if now - self._died_at < self._delay:
            return
        self._died_at = None
        self._close_sock()
        self.start()

    def _close_sock(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def stop(self) -> None:
        proc = self._proc
        with self._lock:
            if self._sock is not None and self._sock.fileno() >= 0:
                self._sock.setblocking(True)
                _send(self._sock.fileno(), QUIT)
        self._close_sock()
        if proc is None:
            return
        for end in (proc.terminate, proc.kill, None):
            try:
                proc.wait(STOP_WAIT_S + 1 if end is proc.terminate else 5)
                return
            except subprocess.TimeoutExpired:
                if end is None:
                    log.error("worker process did not stop", extra={"pid": proc.pid})
                    return
                end()  # in the middle of a long transform: its lease runs out
