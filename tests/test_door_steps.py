"""The SFTP door runs its short database steps on the event loop when SQLite's writer
lock is free at once, and in a thread otherwise: a writer elsewhere (a CLI command, the
worker process's batch) must never stall the doors."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

from conftest import OwnNode, asftp, transfers_of, wait_for
from doorvoer.context import Context
from doorvoer.db import unless_waiting
from doorvoer.transfers.models import State

CSV = b"id;name;amount\n1;Jansen;7,00\n"
HOLD = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


def _hold_writer_lock(ctx: Context) -> subprocess.Popen[str]:
    """Another process takes the node's SQLite writer lock, until its stdin closes."""
    path = f"{ctx.engine.url.database}.writer-lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, path], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_unless_waiting_takes_only_a_free_sqlite_lock(ctx: Context, database_url: str) -> None:
    sqlite = database_url.startswith("sqlite")
    with unless_waiting(ctx.engine) as free:
        assert free == sqlite  # PostgreSQL's statements travel: always a thread
    if not sqlite:
        return
    holder = _hold_writer_lock(ctx)
    try:
        with unless_waiting(ctx.engine) as free:
            assert not free
    finally:
        holder.communicate("", timeout=10)
    with unless_waiting(ctx.engine) as free:
        assert free


def test_a_held_writer_lock_does_not_stall_the_doors(own_node: OwnNode,
                                                     sqlite_url: str) -> None:
    ctx, node, login = own_node(sqlite_url)
    holder: subprocess.Popen[str] | None = None

    async def go() -> None:
        nonlocal holder
        # Signing in writes (its audit entry), so both sessions start before the lock
        # is taken elsewhere; what follows must not wait for it unless it writes.
        uploader, up = await asftp(node.port, login)
        other, looker = await asftp(node.port, login)
        holder = await asyncio.to_thread(_hold_writer_lock, ctx)

        async def upload() -> None:
            async with up.open("/inbox/orders/week1.csv", "wb") as f:
                await f.write(CSV)

        task = asyncio.create_task(upload())
        await asyncio.sleep(0.5)
        assert not task.done()  # its OPEN waits for the writer, in a thread
        started = time.monotonic()
        # Meanwhile the loop answers others: a listing and a stat, both read-only.
        assert await asyncio.wait_for(looker.listdir("/inbox/orders"), 5) is not None
        assert (await asyncio.wait_for(looker.stat("/inbox/orders"), 5)).permissions
        assert time.monotonic() - started < 2
        assert not task.done()
        assert holder is not None
        holder.communicate("", timeout=10)  # the other writer is done
        await asyncio.wait_for(task, 20)
        uploader.close()
        other.close()

    try:
        asyncio.run(go())
    finally:
        if holder is not None and holder.poll() is None:
            holder.communicate("", timeout=10)
    done = wait_for(lambda: [t for t in transfers_of(ctx) if t.state == State.READY],
                    what="the upload processed once the lock was free")
    assert [t.filename for t in done] == ["week1.csv"]
