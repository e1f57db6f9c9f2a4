"""The node's time-driven work, a door like the others: each step is one unit of work,
opened here (`ctx.run`) and passed down. The node's loops (`app.py`) call these; the
transform workers' steps are in `workers.py`."""

from __future__ import annotations

import asyncio
import logging

from doorvoer.context import Context
from doorvoer.delivery import service as delivery
from doorvoer.transfers import lifecycle, pushes
from doorvoer.transfers.service import live_count

log = logging.getLogger("doorvoer.jobs")


# ---------------------------------------------------------------- pushes


async def push_pending(ctx: Context) -> int:
    """Push every due delivery, one after the other. Returns how many were tried."""
    tried = 0
    while True:
        if not await asyncio.to_thread(ctx.run, pushes.any_due, write=False):
            return tried
        job = await asyncio.to_thread(ctx.run, delivery.claim)
        if job is None:
            return tried
        tried += 1
        if job is not False:
            assert not isinstance(job, bool)
            await push_one(ctx, job)


async def push_one(ctx: Context, job: delivery.Job) -> None:
    push = job.push

    async def uploaded() -> None:
        await asyncio.to_thread(ctx.run, pushes.sending, push.delivery_id)

    try:
        await delivery.send(ctx, job, uploaded)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a recorded reason
        why = delivery.reason(exc)
        await asyncio.to_thread(ctx.run, pushes.failed, push, why)
        log.warning("push failed", extra={"delivery": push.delivery_id, "reason": why})
    else:
        await asyncio.to_thread(ctx.run, pushes.delivered, push)
        log.info("delivered", extra={"delivery": push.delivery_id})


# ---------------------------------------------------------------- housekeeping


def heartbeat(ctx: Context) -> None:
    ctx.run(lifecycle.heartbeat)


def housekeeping(ctx: Context) -> int:
    return ctx.run(lifecycle.housekeeping)


def residue_sweep(ctx: Context) -> int:
    return ctx.run(lifecycle.residue_sweep)


def in_flight(ctx: Context) -> int:
    return ctx.run(live_count, write=False)
