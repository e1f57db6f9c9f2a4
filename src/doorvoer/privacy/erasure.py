"""A tenant's erasure (P19, GDPR Art. 28(3)(g)): on its request, after a cooling-off
period it can cancel in; at the end of its contract, after a grace period; or at once
by the operator at the shell. It erases every row, blob and key of the tenant in one
unit of work, each area its own part, and keeps only a tombstone (the internal id,
the dates, the counts per kind) and a signed certificate (`certificate.py`) naming the
last signed head of the tenant's audit chain, so it proves which history went.

Before the first row goes, the tenant's chain gets its last entry
(`privacy:erasure:started`) and a checkpoint; the erasure itself is recorded in the
operator's chain, by internal id only."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select

from doorvoer import db
from doorvoer.accounts import erasure as accounts
from doorvoer.audit import service as audit
from doorvoer.audit.chain import rfc3339
from doorvoer.audit.events import Event
from doorvoer.db import utcnow
from doorvoer.privacy import notices
from doorvoer.privacy.certificate import REASONS, Certificate, issue
from doorvoer.privacy.errors import ErasureRefused
from doorvoer.privacy.models import (
    Erasure,
    IncidentNotice,
    SubprocessorConsent,
    SubprocessorObjection,
    Tombstone,
)
from doorvoer.processes import service as processes
from doorvoer.secrets import service as secrets
from doorvoer.support import service as support
from doorvoer.support.notices import tenant_recipients
from doorvoer.tenants import service as tenants
from doorvoer.tenants.models import Tenant
from doorvoer.transfers import lifecycle
from doorvoer.unit import Work

REQUEST, CONTRACT_END, OPERATOR = REASONS  # why an erasure ran (the certificate says it)


@dataclass(frozen=True)
class Erased:
    certificate: Certificate
    note: str  # the signed note


def pending(w: Work, tenant: Tenant) -> Erasure | None:
    return w.session.get(Erasure, tenant.id)


def _confirmed(tenant: Tenant, typed: str) -> None:
    if typed.strip() not in (tenant.name, tenant.slug):
        raise ErasureRefused(f"type the tenant's name ({tenant.slug}) to confirm the erasure")


def request(w: Work, tenant: Tenant, typed: str, by: str | None) -> Erasure:
    """The tenant asks for its erasure: it runs after the cooling-off period, unless
    cancelled before. `typed` must be the tenant's name or slug."""
    _confirmed(tenant, typed)
    if (already := pending(w, tenant)) is not None:
        raise ErasureRefused(f"an erasure is already scheduled for {rfc3339(already.due_at)}")
    now = utcnow()
    due = now + timedelta(days=w.settings.erasure_cooling_off_days)
    row = Erasure(tenant_id=tenant.id, reason=REQUEST, requested_at=now, requested_by=by,
                  due_at=due)
    w.session.add(row)
    audit.record(w, tenant.id, Event.ERASURE_REQUESTED, f"runs at {rfc3339(due)}")
    for to in tenant_recipients(w, tenant):
        w.notify(notices.scheduled(w.settings, to, tenant, row))
    return row


def cancel(w: Work, tenant: Tenant) -> None:
    """The tenant takes its request back (a contract's end is undone by the operator
    setting the contract active again)."""
    row = pending(w, tenant)
    if row is None:
        raise ErasureRefused("no erasure is scheduled")
    if row.reason != REQUEST:
        raise ErasureRefused("the erasure follows the contract's end: the operator can "
                             "stop it by setting the contract active again")
    w.session.delete(row)
    audit.record(w, tenant.id, Event.ERASURE_CANCELLED, "request")
    for to in tenant_recipients(w, tenant):
        w.notify(notices.cancelled(w.settings, to, tenant))


def set_contract(w: Work, tenant: Tenant, status: str) -> Erasure | None:
    """The operator marks the contract ended (the erasure runs by itself after the grace
    period) or active again (which stops an erasure the end had scheduled)."""
    was = tenant.contract
    tenants.set_contract(w, tenant, status)
    row = pending(w, tenant)
    if status == "ended" and was != "ended" and row is None:
        now = utcnow()
        row = Erasure(tenant_id=tenant.id, reason=CONTRACT_END, requested_at=now,
                      due_at=now + timedelta(days=w.settings.contract_grace_days))
        w.session.add(row)
        audit.record(w, tenant.id, Event.ERASURE_REQUESTED,
                     f"contract ended; runs at {rfc3339(row.due_at)}")
        for to in tenant_recipients(w, tenant):
            w.notify(notices.scheduled(w.settings, to, tenant, row))
    elif status == "active" and row is not None and row.reason == CONTRACT_END:
        w.session.delete(row)
        audit.record(w, tenant.id, Event.ERASURE_CANCELLED, "contract active again")
        row = None
    return row


def due(w: Work, now: datetime | None = None) -> list[str]:
    """The tenants whose erasure is due."""
    return list(w.session.scalars(select(Erasure.tenant_id).where(
        Erasure.due_at <= (now or utcnow())).order_by(Erasure.due_at)))


def erase(w: Work, tenant: Tenant, reason: str = OPERATOR) -> Erased:
    """Erase the tenant whole in `w` and issue the certificate; the certificate goes by
    mail to its contact and admins with the unit's commit."""
    row = pending(w, tenant)
    requested_at = row.requested_at if row is not None else utcnow()
    reason = row.reason if row is not None else reason
    tenant_id, created_at = tenant.id, tenant.created_at
    to = tenant_recipients(w, tenant)  # read before they are erased
    audit.record(w, tenant_id, Event.ERASURE_STARTED, reason, checkpoint=True)
    head = audit.seal_chain(w, tenant_id)
    counts: dict[str, int] = {}
    for part in (lifecycle.erase_tenant, support.erase_tenant, processes.erase_tenant,
                 secrets.erase_tenant, accounts.erase_tenant):
        counts.update(part(w, tenant))
    counts["erasure_requests"] = w.changed(delete(Erasure).where(Erasure.tenant_id == tenant_id))
    for kind, table in (("incident_notices", IncidentNotice),
                        ("subprocessor_objections", SubprocessorObjection),
                        ("subprocessor_consents", SubprocessorConsent)):
        counts[kind] = w.changed(delete(table).where(table.tenant_id == tenant_id))
    counts.update(audit.erase_chain(w, tenant_id))
    counts.update(tenants.erase_tenant(w, tenant))
    now = utcnow()
    cert, note = issue(w.ctx.signer, w.settings.resolved_node_name, tenant_id, reason,
                       created_at, requested_at, now, audit.origin(w, tenant_id),
                       head.seq, head.hash, counts)
    w.session.add(Tombstone(tenant_id=tenant_id, reason=reason, created_at=created_at,
                            requested_at=requested_at, erased_at=now,
                            counts=json.dumps(cert.counts, sort_keys=True), certificate=note))
    audit.record(w, None, Event.TENANT_ERASED, f"{tenant_id}: {cert.total} records")
    for address in to:
        w.notify(notices.certificate(w.settings, address, note))
    folder = w.settings.data_dir / "tmp"
    w.after_commit(lambda: _scrub(w, folder, tenant_id))
    return Erased(cert, note)


def _scrub(w: Work, folder: Path, tenant_id: str) -> None:
    """After the commit: no copy of an erased row in the database's files (SQLite's
    log, PostgreSQL's dead rows), no export of the tenant left half-sent."""
    for left in folder.glob(f"export-{tenant_id}-*"):
        left.unlink(missing_ok=True)
    db.scrub(w.ctx.engine)


def scheduled(w: Work) -> list[Erasure]:
    return list(w.session.scalars(select(Erasure).order_by(Erasure.due_at)))


def tombstones(w: Work) -> list[Tombstone]:
    return list(w.session.scalars(select(Tombstone).order_by(Tombstone.erased_at.desc())))
