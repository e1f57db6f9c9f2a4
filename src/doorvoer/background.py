"""Work a door starts and nothing waits for (the audit entry of an SFTP login, mail a
route queued): a task on the running event loop, kept referenced until it ends (the loop
holds tasks only weakly), its failure logged, never raised into the door."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

import anyio.from_thread

log = logging.getLogger("doorvoer.background")
_RUNNING: set[asyncio.Task[None]] = set()


def spawn(work: Coroutine[Any, Any, None], what: str) -> None:
    """Run `work` on the running loop; from a thread of the web server's pool, ask the
    loop to (anyio's portal)."""

    async def guarded() -> None:
        try:
            await work
        except Exception:
            log.exception("background step failed", extra={"step": what})

    def start() -> None:
        task = asyncio.get_running_loop().create_task(guarded())
        _RUNNING.add(task)
        task.add_done_callback(_RUNNING.discard)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        anyio.from_thread.run_sync(start)
    else:
        start()
