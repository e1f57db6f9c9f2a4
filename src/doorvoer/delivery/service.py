"""Pushing outputs to other SFTP servers (P1): exactly once, or a clear failure.

The output is written under a temporary name and renamed when complete, so the target
never sees a partial file. The state SENDING is committed before the rename: a node
that dies between rename and commit finds the final name on its retry and records
the delivery instead of sending it again."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import BinaryIO

import asyncssh
from sqlalchemy import or_, select, update

from doorvoer.context import Context
from doorvoer.db import transaction, utcnow
from doorvoer.secrets.models import Connection
from doorvoer.secrets.service import SftpConnection, open_connection
from doorvoer.transfers.models import Delivery, DState, Transfer
from doorvoer.transfers.service import open_blob, settle

log = logging.getLogger("doorvoer.delivery")

CHUNK = 256 * 1024
CONNECT_TIMEOUT = 20


class PushError(Exception):
    """A push failed; the message names why, never any content."""


@dataclass(frozen=True)
class Job:
    delivery_id: str
    transfer_id: str
    state: DState
    remote_path: str
    blob_id: str
    size: int
    conn: SftpConnection


def claim_push(ctx: Context) -> Job | str | None:
    """Claim one due push. Returns a Job, None when there is none, or the id of a
    delivery that could not even start (its transfer is settled)."""
    now = utcnow()
    due = (select(Delivery)
           .where(Delivery.kind == "sftp",
                  Delivery.state.in_([DState.PENDING, DState.SENDING]),
                  Delivery.next_attempt_at <= now,
                  or_(Delivery.lease_until.is_(None), Delivery.lease_until < now))
           .order_by(Delivery.next_attempt_at)
           .limit(1))
    with ctx.sessions() as s:
        if s.scalar(due.with_only_columns(Delivery.id)) is None:
            return None  # a cheap read first: most polls find nothing
    with transaction(ctx.sessions) as s:
        d = s.scalar(due.with_for_update(skip_locked=True))
        if d is None:
            return None
        claimed = s.execute(
            update(Delivery)
            .where(Delivery.id == d.id,
                   or_(Delivery.lease_until.is_(None), Delivery.lease_until < now))
            .values(lease_owner=ctx.node_id,
                    lease_until=now + timedelta(seconds=ctx.settings.lease_s),
                    attempts=Delivery.attempts + 1)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return None
        t = s.get_one(Transfer, d.transfer_id)
        row = s.scalar(select(Connection).where(Connection.tenant_id == d.tenant_id,
                                                Connection.name == d.connection))
        if row is None or t.output_blob_id is None:
            d.state = DState.FAILED
            d.error = (f"connection {d.connection!r} is not set" if row is None
                       else "the output is gone")
            d.done_at = now
            return d.transfer_id
        assert d.remote_path is not None
        return Job(d.id, d.transfer_id, d.state, d.remote_path, t.output_blob_id,
                   t.bytes_out or 0, open_connection(ctx.sealer, row))


def _mark(ctx: Context, delivery_id: str, **values: object) -> None:
    with transaction(ctx.sessions) as s:
        s.execute(update(Delivery).where(Delivery.id == delivery_id).values(**values))


async def _connect(conn: SftpConnection) -> asyncssh.SSHClientConnection:
    host_key = asyncssh.import_public_key(conn.host_key)
    keys = [asyncssh.import_private_key(conn.private_key)] if conn.private_key else []
    return await asyncio.wait_for(asyncssh.connect(
        conn.host, conn.port, username=conn.username, password=conn.password,
        client_keys=keys, known_hosts=([host_key], [], []), agent_path=None,
        config=[], preferred_auth="publickey,password",
    ), CONNECT_TIMEOUT)


async def _push(ctx: Context, job: Job) -> None:
    folder, _, name = job.remote_path.rpartition("/")
    tmp = f"{folder}/.{name}.{job.delivery_id[:12]}.part"
    async with await _connect(job.conn) as ssh, ssh.start_sftp_client() as sftp:
        if job.state == DState.SENDING:
            if await sftp.exists(job.remote_path):
                return  # the rename went through before a crash: delivered
            if await sftp.exists(tmp) and (await sftp.stat(tmp)).size == job.size:
                await sftp.rename(tmp, job.remote_path)
                return
        if await sftp.exists(job.remote_path):
            raise PushError("a file of that name exists on the target; not overwritten")
        source: BinaryIO = await asyncio.to_thread(open_blob, ctx, job.blob_id)
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
        await asyncio.to_thread(_mark, ctx, job.delivery_id, state=DState.SENDING)
        await sftp.rename(tmp, job.remote_path)


def _reason(exc: BaseException) -> str:
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


async def push_one(ctx: Context, job: Job) -> None:
    try:
        await _push(ctx, job)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a recorded reason
        reason = _reason(exc)
        with transaction(ctx.sessions) as s:
            d = s.get_one(Delivery, job.delivery_id)
            d.error = reason
            d.lease_owner = None
            d.lease_until = None
            if d.attempts >= ctx.settings.push_attempts:
                d.state = DState.FAILED
                d.done_at = utcnow()
            else:
                backoff = ctx.settings.push_backoff_s * 2 ** (d.attempts - 1)
                d.next_attempt_at = utcnow() + timedelta(seconds=backoff)
        log.warning("push failed", extra={"delivery": job.delivery_id, "reason": reason})
    else:
        _mark(ctx, job.delivery_id, state=DState.DELIVERED, done_at=utcnow(), error=None,
              lease_owner=None, lease_until=None)
        log.info("delivered", extra={"delivery": job.delivery_id})
    await asyncio.to_thread(settle, ctx, job.transfer_id)


async def push_pending(ctx: Context) -> int:
    """Push every due delivery, one after the other. Returns how many were tried."""
    tried = 0
    while True:
        job = await asyncio.to_thread(claim_push, ctx)
        if job is None:
            return tried
        tried += 1
        if isinstance(job, str):
            await asyncio.to_thread(settle, ctx, job)
            continue
        await push_one(ctx, job)
