"""Instructions of a tenant (P10, P11): a change to a tenant's data made by staff is
refused unless it names one, and the change's audit entries name it, so the tenant
sees every instruction and each action done under it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from doorvoer.audit import service as audit
from doorvoer.audit.events import Event
from doorvoer.db import utcnow
from doorvoer.support.errors import InstructionRefused
from doorvoer.support.models import Instruction
from doorvoer.tenants.models import Tenant
from doorvoer.unit import Work

CHANNELS = ("portal", "email", "phone")
MAX_TEXT = 2000


def file_instruction(w: Work, tenant: Tenant, asked_by: str, channel: str, reference: str,
                     text: str, asked_at: datetime | None = None) -> Instruction:
    """Write down an instruction of the tenant: who there asked, when, through which
    channel, a reference, and what is to be done. Filed on the portal by the tenant's
    own people (channel `portal`), or by the operator for an e-mail or a phone call."""
    asked_by, reference, text = asked_by.strip(), reference.strip(), text.strip()
    if channel not in CHANNELS:
        raise InstructionRefused(f"channel: use {', '.join(CHANNELS)}")
    if not asked_by:
        raise InstructionRefused("say who at the tenant gave the instruction (asked by)")
    if len(asked_by) > 320:
        raise InstructionRefused("asked by: at most 320 characters")
    if not reference:
        raise InstructionRefused("give a reference (the e-mail's subject or date, a "
                                 "ticket, a call note)")
    if len(reference) > 200:
        raise InstructionRefused("the reference is too long: at most 200 characters")
    if not text:
        raise InstructionRefused("say what is to be done")
    if len(text) > MAX_TEXT:
        raise InstructionRefused(f"the text is too long: at most {MAX_TEXT} characters")
    now = utcnow()
    if asked_at is not None and asked_at > now:
        raise InstructionRefused("asked at: that is in the future")
    row = Instruction(tenant_id=tenant.id, asked_by=asked_by, asked_at=asked_at or now,
                      channel=channel, reference=reference, text=text,
                      recorded_by=(w.actor.name if w.actor and w.actor.name else "operator"),
                      recorded_at=now)
    w.session.add(row)
    w.session.flush()
    audit.record(w, tenant.id, Event.INSTRUCTION_FILED,
                 f"{row.id} ({channel}, asked by {asked_by}, ref {reference})"[:600])
    return row


def instruction_for(w: Work, tenant: Tenant, instruction_id: str | None) -> Instruction:
    """The instruction a staff change relies on: refused unless it names one of this
    tenant's (P10). The change's audit entries then name it."""
    if not instruction_id:
        raise InstructionRefused(
            f"a change to {tenant.name}'s data by staff needs an instruction of the "
            "tenant: record it with `doorvoer instruction add` (or the tenant files one on "
            "the portal) and name it with --instruction")
    row = w.session.get(Instruction, instruction_id)
    if row is None or row.tenant_id != tenant.id:
        raise InstructionRefused(f"no instruction {instruction_id!r} of {tenant.name}")
    return row


def instructions_of(w: Work, tenant_id: str) -> list[Instruction]:
    return list(w.session.scalars(select(Instruction).where(
        Instruction.tenant_id == tenant_id).order_by(Instruction.recorded_at.desc())))


