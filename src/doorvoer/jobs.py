"""The node's time-driven work, a door like the others: each step is one unit of work,
opened here (`ctx.run`) and passed down. The node's loops (`app.py`) call these; the
transform workers' steps are in `workers.py`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from email.message import EmailMessage

from doorvoer import mail
from doorvoer.audit import service as audit
from doorvoer.context import Context
from doorvoer.delivery import service as delivery
from doorvoer.privacy import erasure, incidents, usage
from doorvoer.support import service as support
from doorvoer.tenants.models import Tenant
from doorvoer.transfers import lifecycle, pushes
from doorvoer.transfers.service import live_count
from doorvoer.unit import Work

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


# ---------------------------------------------------------------- audit and support access


def _with_mail(ctx: Context, fn: Callable[[Work], int]) -> tuple[int, list[EmailMessage]]:
    with ctx.unit() as w:
        done = fn(w)
    return done, w.outgoing


async def grant_expiry(ctx: Context) -> int:
    """Lapse unanswered support requests and end grants whose time is up, and tell the
    tenants (mail goes out once the change committed)."""
    done, outgoing = await asyncio.to_thread(_with_mail, ctx, support.expire_due)
    for msg in outgoing:
        await mail.send(ctx.settings, msg)
    return done


async def erasures_due(ctx: Context) -> int:
    """Erase every tenant whose cooling-off or grace period has run out (P19), each in
    its own unit, and send the certificates. Returns how many were erased."""
    def erase_one(tenant_id: str) -> list[EmailMessage]:
        with ctx.unit() as w:
            tenant = w.session.get(Tenant, tenant_id)
            if tenant is not None and tenant_id in erasure.due(w):  # no other node was first
                erasure.erase(w, tenant)
        return w.outgoing

    due = await asyncio.to_thread(ctx.run, erasure.due, write=False)
    for tenant_id in due:
        for msg in await asyncio.to_thread(erase_one, tenant_id):
            await mail.send(ctx.settings, msg)
        log.info("tenant erased", extra={"tenant": tenant_id})
    return len(due)


async def incident_notices(ctx: Context) -> int:
    """Send the breach notices not yet out, and alert the operator admins of late ones."""
    return await incidents.send_pending(ctx)


def usage_due(ctx: Context) -> int:
    """Release the anonymised usage figures of every day that ended (P21)."""
    return ctx.run(usage.release_due)


def checkpoints_due(ctx: Context) -> int:
    """Sign the head of every chain that moved and was not signed for an hour."""
    return ctx.run(audit.checkpoint_due)
