"""Serve the portal over HTTPS (only) on the node's event loop."""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from doorvoer.context import Context
from doorvoer.web.app import create_app


class WebServer:
    def __init__(self, ctx: Context, host: str, port: int) -> None:
        cert, key = ctx.settings.tls_paths
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(ctx), ssl_certfile=str(cert), ssl_keyfile=str(key),
            log_config=None, access_log=False, lifespan="off", server_header=False,
            proxy_headers=False, timeout_graceful_shutdown=5,
            limit_concurrency=500, h11_max_incomplete_event_size=64 * 1024,
        )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
