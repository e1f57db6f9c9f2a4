"""The running node: the SFTP and HTTPS doors, deliveries and housekeeping on one event
loop; transforms in worker processes (see workers.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncssh
import uvloop

from doorvoer import jobs
from doorvoer.context import Context
from doorvoer.db import checkpoint
from doorvoer.sftp.server import start_server
from doorvoer.web.server import WebServer
from doorvoer.workers import Workers

log = logging.getLogger("doorvoer.node")
T = TypeVar("T")

POLL_S = 0.5
HOUSEKEEPING_S = 1.0
GRANTS_AND_CHECKPOINTS_S = 10.0  # grants end and chains are signed this soon after due
CHECKPOINT_S = 10.0


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run the node's event loop: uvloop's, which moves SSH packets with a fifth less
    CPU than asyncio's own (a 256 MiB upload: 460 instead of 370 MB/s here)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def free_ports(host: str, *preferred: int) -> list[int]:
    """A free port for each of `preferred` (that one if it is free, else one the OS
    picks), all different: each stays bound until all are found, or the OS could hand
    out the same port twice. (Bound as the servers bind, with SO_REUSEADDR, which lets
    sockets that do not listen share a port: the list itself keeps them apart.)"""
    with contextlib.ExitStack() as held:
        ports: list[int] = []
        for wanted in preferred:
            for port in (wanted, 0, 0, 0):
                if port and port in ports:
                    continue
                s = held.enter_context(socket.socket())
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((host, port))
                except OSError:
                    continue
                got = int(s.getsockname()[1])
                if got not in ports:
                    ports.append(got)
                    break
            else:
                raise OSError("no free port")
        return ports


@dataclass
class Node:
    ctx: Context
    host: str
    port: int
    http_host: str = "127.0.0.1"
    http_port_wanted: int | None = None  # None: no portal (tests of the SFTP side)
    acceptor: asyncssh.SSHAcceptor | None = None
    web: WebServer | None = None
    workers: Workers | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stopping: bool = False
    _checkpointed: float = 0.0
    _signed_at: float = 0.0

    @property
    def http_port(self) -> int:
        assert self.web is not None
        return self.web.port

    @property
    def sftp_port(self) -> int:
        assert self.acceptor is not None
        return int(self.acceptor.sockets[0].getsockname()[1])

    async def start(self) -> None:
        loop = asyncio.get_running_loop()

        def processed() -> None:  # a push is due
            loop.call_soon_threadsafe(self._wake.set)

        erased = await asyncio.to_thread(jobs.residue_sweep, self.ctx)
        if erased:
            log.info("residue sweep", extra={"erased_blobs": erased})
        self.acceptor = await start_server(self.ctx, self.host, self.port)
        if self.http_port_wanted is not None:
            self.web = WebServer(self.ctx, self.http_host, self.http_port_wanted)
            await self.web.start()
        self.workers = Workers(self.ctx, processed)
        self.workers.start()
        self.ctx.nudge = self.workers.nudge
        self._spawn("deliveries", self._deliveries)
        self._spawn("housekeeping", self._housekeeping)
        log.info("node started", extra={"sftp_port": self.sftp_port, "node": self.ctx.node_id,
                                        "https_port": self.web.port if self.web else None})

    def _spawn(self, name: str, fn: Callable[[], Awaitable[None]]) -> None:
        self._tasks.append(asyncio.create_task(self._forever(name, fn), name=name))

    async def _forever(self, name: str, fn: Callable[[], Awaitable[None]]) -> None:
        while not self._stopping:
            try:
                await fn()
            except asyncio.CancelledError:
                raise
            except Exception:
                # These loops never touch file content (transforms catch their own
                # errors), so the traceback is safe to log.
                log.exception("loop failed", extra={"loop": name})
                await asyncio.sleep(1)

    async def _wait_for_work(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), POLL_S)
        self._wake.clear()

    async def _deliveries(self) -> None:
        pushed = await jobs.push_pending(self.ctx)
        if not pushed:
            await self._wait_for_work()

    async def _housekeeping(self) -> None:
        if self.workers is not None:
            self.workers.supervise()
        await asyncio.to_thread(jobs.heartbeat, self.ctx)
        await asyncio.to_thread(jobs.housekeeping, self.ctx)
        loop = asyncio.get_running_loop()
        if loop.time() - self._signed_at >= GRANTS_AND_CHECKPOINTS_S:
            await jobs.grant_expiry(self.ctx)
            await jobs.erasures_due(self.ctx)
            await jobs.incident_notices(self.ctx)
            await asyncio.to_thread(jobs.usage_due, self.ctx)
            await asyncio.to_thread(jobs.checkpoints_due, self.ctx)
            self._signed_at = loop.time()
        if loop.time() - self._checkpointed >= CHECKPOINT_S:
            # Erased keys leave SQLite's WAL file within this time (P3).
            await asyncio.to_thread(checkpoint, self.ctx.engine)
            self._checkpointed = loop.time()
        await asyncio.sleep(HOUSEKEEPING_S)

    async def stop(self) -> None:
        self._stopping = True
        if self.web is not None:
            await self.web.stop()
        if self.acceptor is not None:
            self.acceptor.close()
            await self.acceptor.wait_closed()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.workers is not None:
            await asyncio.to_thread(self.workers.stop)
            self.workers = None

    async def idle(self, timeout: float = 30.0) -> bool:
        """Wait until no transfer is in flight (for the demo and tests)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if await asyncio.to_thread(jobs.in_flight, self.ctx) == 0:
                return True
            await asyncio.sleep(0.1)
        return False
