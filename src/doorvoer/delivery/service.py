"""Pushing outputs to other SFTP servers (P1): exactly once, or a clear failure.

The output is written under a temporary name and renamed when complete, so the target
never sees a partial file. The state SENDING is committed before the rename: a node
that dies between rename and commit finds the final name on its retry and records
the delivery instead of sending it again. The states are `transfers.pushes`'s; this
is the network side and the step that finds the connection's secret."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import BinaryIO

import asyncssh

from doorvoer.context import Context
from doorvoer.delivery.errors import PushError
from doorvoer.secrets.service import SftpConnection, connection_for_delivery
from doorvoer.transfers import pushes
from doorvoer.transfers.models import DState
from doorvoer.transfers.pushes import Push
from doorvoer.unit import Work

CHUNK = 256 * 1024
CONNECT_TIMEOUT = 20


@dataclass(frozen=True)
class Job:
    """A claimed push with the target's connection (its secret open, in memory only)."""

    push: Push
    conn: SftpConnection


def claim(w: Work) -> Job | bool | None:
    """Claim a due push with its connection. None when none is due; False when one
    could not even start (it is recorded as failed: look again)."""
    push = pushes.claim(w)
    if push is None:
        return None
    conn = connection_for_delivery(w, push.tenant_id, push.connection)
    if conn is None or push.blob_id is None:
        why = (f"connection {push.connection!r} is not set" if conn is None
               else "the output is gone")
        pushes.failed(w, push, why, retry=False)
        return False
    return Job(push, conn)


async def _connect(conn: SftpConnection) -> asyncssh.SSHClientConnection:
    host_key = asyncssh.import_public_key(conn.host_key)
    keys = [asyncssh.import_private_key(conn.private_key)] if conn.private_key else []
    return await asyncio.wait_for(asyncssh.connect(
        conn.host, conn.port, username=conn.username, password=conn.password,
        client_keys=keys, known_hosts=([host_key], [], []), agent_path=None,
        config=[], preferred_auth="publickey,password",
    ), CONNECT_TIMEOUT)


async def send(ctx: Context, job: Job, uploaded: Callable[[], Awaitable[None]]) -> None:
    """Put the output on the target under a temporary name, call `uploaded` (which
    records SENDING), then rename it. Raises what went wrong."""
    push = job.push
    assert push.blob_id is not None
    folder, _, name = push.remote_path.rpartition("/")
    tmp = f"{folder}/.{name}.{push.delivery_id[:12]}.part"
    async with await _connect(job.conn) as ssh, ssh.start_sftp_client() as sftp:
        if push.state == DState.SENDING:
            if await sftp.exists(push.remote_path):
                return  # the rename went through before a crash: delivered
            if await sftp.exists(tmp) and (await sftp.stat(tmp)).size == push.size:
                await sftp.rename(tmp, push.remote_path)
                return
        if await sftp.exists(push.remote_path):
            raise PushError("a file of that name exists on the target; not overwritten")
        source: BinaryIO = await asyncio.to_thread(ctx.vault.open, ctx.engine, push.blob_id)
        try:
            async with sftp.open(tmp, "wb") as f:
                offset = 0
                while True:
                    chunk = source.read(CHUNK)
                    if not chunk:
                        break
                    await f.write(chunk, offset)
                    offset += len(chunk)
        finally:
            source.close()
        await uploaded()
        await sftp.rename(tmp, push.remote_path)


def reason(exc: BaseException) -> str:
    """Why a push failed, in the words the tenant sees."""
    if isinstance(exc, PushError):
        return str(exc)
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return "the target's host key does not match the pinned key"
    if isinstance(exc, asyncssh.PermissionDenied):
        return "the target refused the login"
    if isinstance(exc, asyncssh.SFTPError):
        return f"the target's SFTP server answered: {exc.reason or type(exc).__name__}"
    if isinstance(exc, TimeoutError):
        return "the target did not answer in time"
    if isinstance(exc, OSError):
        return f"cannot reach the target: {exc.strerror or type(exc).__name__}"
    return f"push failed ({type(exc).__name__})"
