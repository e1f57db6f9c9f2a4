"""Incidents and breach notices (P18, GDPR Art. 33(2)): operator staff record an
incident with every field of Art. 33(3); every affected tenant is told at once (mail to
its breach-notice contact and its admins, its webhook if it set one, a banner in the
portal until it acknowledges), with the 72 hours its own notice to the authority has,
counted from `became_known_at`. Updates follow in phases, each notified the same way.

A notice is a row per tenant and phase: `sent_at` is set once every mail (and the
webhook) went out; `outbox` gives what is still to send and `jobs.incident_notices`
sends it. A phase whose notices are not all out 15 minutes after it was recorded
alerts every operator admin (`overdue`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select, update

from doorvoer import mail
from doorvoer.access.policy import Role
from doorvoer.accounts.models import User
from doorvoer.audit import service as audit
from doorvoer.audit.chain import rfc3339
from doorvoer.audit.events import Event
from doorvoer.context import Context
from doorvoer.db import utcnow
from doorvoer.privacy import notices
from doorvoer.privacy.errors import IncidentRefused, NoSuchIncident
from doorvoer.privacy.models import Incident, IncidentNotice, IncidentUpdate
from doorvoer.support.notices import tenant_recipients
from doorvoer.tenants.contacts import webhook_for_breach_notices
from doorvoer.tenants.models import Tenant
from doorvoer.tenants.service import get_tenant, list_tenants
from doorvoer.unit import Work
from doorvoer.yamlfile import parse_yaml

AUTHORITY_DEADLINE = timedelta(hours=72)  # Art. 33(1), the controller's own notice
OVERDUE = timedelta(minutes=15)
_TEXT = 5000


class IncidentSpec(BaseModel):
    """An incident as recorded (`doorvoer incident create --from FILE.yaml`, the portal's
    form): the Art. 33(3) fields, and whom it touches."""

    model_config = ConfigDict(extra="forbid")

    became_known_at: datetime
    summary: str = Field(min_length=1, max_length=_TEXT)
    tenants: list[str] | str
    data_categories: list[str] | str
    approximate_subjects: int = Field(ge=0)
    likely_consequences: str = Field(min_length=1, max_length=_TEXT)
    measures_taken: str = Field(min_length=1, max_length=_TEXT)
    measures_proposed: str = Field(min_length=1, max_length=_TEXT)
    contact: str = Field(min_length=1, max_length=500)

    @field_validator("became_known_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("give a time zone, e.g. 2026-12-07T09:30:00+01:00")
        if v > datetime.now(UTC) + timedelta(minutes=5):
            raise ValueError("lies in the future")
        return v

    @field_validator("tenants")
    @classmethod
    def _tenants(cls, v: list[str] | str) -> list[str] | str:
        if isinstance(v, str) and v != "all":
            raise ValueError("a list of tenant slugs, or all")
        if isinstance(v, list) and not v:
            raise ValueError("name at least one tenant, or all")
        return v

    @field_validator("data_categories")
    @classmethod
    def _categories(cls, v: list[str] | str) -> list[str] | str:
        items = [v] if isinstance(v, str) else v
        if not items or any(not c.strip() or len(c) > 200 or "\n" in c for c in items):
            raise ValueError("one or more categories of personal data, one line each")
        return v

    @property
    def categories(self) -> list[str]:
        return [self.data_categories] if isinstance(self.data_categories, str) \
            else list(self.data_categories)


def parse(text: str, source: str) -> IncidentSpec:
    return parse_yaml(text, IncidentSpec, source, IncidentRefused,
                      "an incident is a mapping of fields (became_known_at, summary…)")


def deadline(incident: Incident) -> datetime:
    """When the affected tenants' own notice to the authority is due."""
    return incident.became_known_at + AUTHORITY_DEADLINE


def record(w: Work, spec: IncidentSpec, by: str) -> Incident:
    """Record the incident and a notice for each affected tenant, sent by `outbox`."""
    if spec.tenants == "all":
        tenants = list_tenants(w)
    else:
        tenants = []
        for slug in spec.tenants:
            tenant = get_tenant(w, slug)
            if tenant is None:
                raise IncidentRefused(f"tenants: no tenant {slug!r}")
            tenants.append(tenant)
    incident = Incident(
        became_known_at=spec.became_known_at.astimezone(UTC), summary=spec.summary.strip(),
        data_categories="\n".join(c.strip() for c in spec.categories),
        approximate_subjects=spec.approximate_subjects,
        likely_consequences=spec.likely_consequences.strip(),
        measures_taken=spec.measures_taken.strip(),
        measures_proposed=spec.measures_proposed.strip(), contact=spec.contact.strip(),
        all_tenants=spec.tenants == "all", recorded_by=by)
    w.session.add(incident)
    w.session.flush()
    audit.record(w, None, Event.INCIDENT_RECORDED,
                 f"{incident.id}: {len(tenants)} tenants", checkpoint=True)
    _notify(w, incident, tenants, 0)
    return incident


def add_update(w: Work, incident_id: str, text: str, by: str) -> IncidentUpdate:
    """A new phase: what is known now, notified to every tenant the incident touches."""
    incident = get(w, incident_id)
    text = text.strip()
    if not text or len(text) > _TEXT:
        raise IncidentRefused(f"an update says what changed, in 1 to {_TEXT} characters")
    incident.phase += 1
    row = IncidentUpdate(incident_id=incident.id, phase=incident.phase, text=text,
                         recorded_by=by)
    w.session.add(row)
    tenants = list(w.session.scalars(select(Tenant).join(
        IncidentNotice, IncidentNotice.tenant_id == Tenant.id).where(
        IncidentNotice.incident_id == incident.id, IncidentNotice.phase == 0)))
    audit.record(w, None, Event.INCIDENT_UPDATED, f"{incident.id}: phase {incident.phase}",
                 checkpoint=True)
    _notify(w, incident, tenants, incident.phase)
    return row


def _notify(w: Work, incident: Incident, tenants: list[Tenant], phase: int) -> None:
    for tenant in tenants:
        w.session.add(IncidentNotice(incident_id=incident.id, tenant_id=tenant.id,
                                     phase=phase))
        audit.record(w, tenant.id, Event.INCIDENT_NOTIFIED, f"{incident.id}: phase {phase}")


def get(w: Work, incident_id: str) -> Incident:
    incident = w.session.get(Incident, incident_id)
    if incident is None:
        raise NoSuchIncident(f"no incident {incident_id!r}")
    return incident


def acknowledge(w: Work, tenant: Tenant, incident_id: str, by: str) -> int:
    """The tenant has read the incident's notices (every phase so far): the banner goes.
    Returns how many notices it acknowledged."""
    now = utcnow()
    done = w.changed(update(IncidentNotice).where(
        IncidentNotice.tenant_id == tenant.id, IncidentNotice.incident_id == incident_id,
        IncidentNotice.acknowledged_at.is_(None)).values(acknowledged_at=now,
                                                         acknowledged_by=by))
    if not done:
        raise NoSuchIncident("no unacknowledged notice of that incident")
    audit.record(w, tenant.id, Event.INCIDENT_ACKNOWLEDGED, incident_id, checkpoint=True)
    return done


# ---------------------------------------------------------------- what a tenant sees


@dataclass(frozen=True)
class Told:
    """An incident as one tenant was told of it."""

    incident: Incident
    updates: list[IncidentUpdate]
    first_sent_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None

    @property
    def deadline(self) -> datetime:
        return deadline(self.incident)


def of_tenant(w: Work, tenant_id: str) -> list[Told]:
    """Every incident the tenant was told of, newest first, with its updates."""
    notes = list(w.session.scalars(select(IncidentNotice).where(
        IncidentNotice.tenant_id == tenant_id).order_by(IncidentNotice.created_at)))
    by_incident: dict[str, list[IncidentNotice]] = {}
    for n in notes:
        by_incident.setdefault(n.incident_id, []).append(n)
    out = []
    for incident_id, rows in by_incident.items():
        incident = w.session.get_one(Incident, incident_id)
        phases = {n.phase for n in rows}
        updates = [u for u in w.session.scalars(select(IncidentUpdate).where(
            IncidentUpdate.incident_id == incident_id).order_by(IncidentUpdate.phase))
            if u.phase in phases]
        open_rows = [n for n in rows if n.acknowledged_at is None]
        last = rows[-1]
        out.append(Told(incident, updates, rows[0].sent_at,
                        None if open_rows else last.acknowledged_at,
                        None if open_rows else last.acknowledged_by))
    return sorted(out, key=lambda t: t.incident.recorded_at, reverse=True)


def unacknowledged(w: Work, tenant_id: str) -> list[Incident]:
    """The incidents whose banner the tenant still sees."""
    return list(w.session.scalars(select(Incident).where(Incident.id.in_(
        select(IncidentNotice.incident_id).where(
            IncidentNotice.tenant_id == tenant_id,
            IncidentNotice.acknowledged_at.is_(None)))).order_by(Incident.recorded_at)))


def register(w: Work) -> list[dict[str, Any]]:
    """The incident register (the operator's, exportable): each incident, its phases,
    and per tenant (by internal id) when it was told and when it acknowledged."""
    return [_entry(w, i) for i in w.session.scalars(select(Incident)
                                                    .order_by(Incident.recorded_at))]


def register_of(w: Work, incident_id: str) -> dict[str, Any]:
    return _entry(w, get(w, incident_id))


def _entry(w: Work, i: Incident) -> dict[str, Any]:
    notes = w.session.scalars(select(IncidentNotice).where(
        IncidentNotice.incident_id == i.id).order_by(IncidentNotice.phase))
    return {
        "id": i.id, "became_known_at": rfc3339(i.became_known_at),
        "recorded_at": rfc3339(i.recorded_at), "recorded_by": i.recorded_by,
        "summary": i.summary, "data_categories": i.data_categories.split("\n"),
        "approximate_subjects": i.approximate_subjects,
        "likely_consequences": i.likely_consequences,
        "measures_taken": i.measures_taken, "measures_proposed": i.measures_proposed,
        "contact": i.contact, "all_tenants": i.all_tenants,
        "authority_deadline": rfc3339(deadline(i)),
        "updates": [{"phase": u.phase, "text": u.text, "recorded_at": rfc3339(u.recorded_at),
                     "recorded_by": u.recorded_by} for u in w.session.scalars(
            select(IncidentUpdate).where(IncidentUpdate.incident_id == i.id)
            .order_by(IncidentUpdate.phase))],
        "notices": [{"tenant_id": n.tenant_id, "phase": n.phase,
                     "sent_at": rfc3339(n.sent_at) if n.sent_at else None,
                     "acknowledged_at": rfc3339(n.acknowledged_at)
                     if n.acknowledged_at else None} for n in notes]}


# ---------------------------------------------------------------- sending


@dataclass(frozen=True)
class Outgoing:
    notice_id: str
    mails: list[EmailMessage]
    webhook: str | None
    payload: dict[str, Any]


def outbox(w: Work) -> list[Outgoing]:
    """Every notice not yet sent, with its mails and webhook call."""
    out = []
    for n in w.session.scalars(select(IncidentNotice).where(IncidentNotice.sent_at.is_(None))
                               .order_by(IncidentNotice.created_at).limit(200)):
        incident = w.session.get_one(Incident, n.incident_id)
        tenant = w.session.get_one(Tenant, n.tenant_id)
        update_row = None if n.phase == 0 else w.session.scalar(select(IncidentUpdate).where(
            IncidentUpdate.incident_id == incident.id, IncidentUpdate.phase == n.phase))
        mails = [notices.incident(w.settings, to, tenant, incident, update_row, deadline(incident))
                 for to in tenant_recipients(w, tenant, "breach-notice")]
        payload = {"event": "incident.notice", "incident": incident.id, "phase": n.phase,
                   "tenant": tenant.slug, "became_known_at": rfc3339(incident.became_known_at),
                   "authority_deadline": rfc3339(deadline(incident)),
                   "summary": incident.summary, "update": update_row.text if update_row else None,
                   "portal": f"{w.settings.base_url}/t/{tenant.slug}/incidents"}
        out.append(Outgoing(n.id, mails, webhook_for_breach_notices(tenant), payload))
    return out


def mark(w: Work, notice_id: str, error: str | None) -> None:
    """The outcome of sending one notice: sent, or why not (tried again later)."""
    row = w.session.get(IncidentNotice, notice_id)
    if row is None:  # its tenant was erased meanwhile
        return
    row.attempts += 1
    if error is None:
        row.sent_at, row.error = utcnow(), None
    else:
        row.error = error[:300]


def overdue(w: Work, now: datetime | None = None) -> int:
    """Alert every operator admin of each incident with notices still unsent 15 minutes
    after their phase was recorded (again every 15 minutes while some stay unsent)."""
    now = now or utcnow()
    late = list(w.session.scalars(select(Incident).where(Incident.id.in_(
        select(IncidentNotice.incident_id).where(
            IncidentNotice.sent_at.is_(None), IncidentNotice.created_at <= now - OVERDUE)),
        (Incident.alerted_at.is_(None)) | (Incident.alerted_at < now - OVERDUE))))
    if not late:
        return 0
    admins = list(w.session.scalars(select(User.email).where(
        User.role == Role.OPERATOR_ADMIN.value, User.active)))
    for incident in late:
        unsent = w.session.scalars(select(IncidentNotice).where(
            IncidentNotice.incident_id == incident.id, IncidentNotice.sent_at.is_(None)))
        reasons = sorted({n.error or "not tried yet" for n in unsent})
        incident.alerted_at = now
        audit.record(w, None, Event.INCIDENT_OVERDUE, incident.id)
        w.notify(*(notices.incident_overdue(w.settings, to, incident, reasons)
                   for to in admins))
    return len(late)


async def send_pending(ctx: Context) -> int:
    """Send every breach notice not yet out (mail, and the tenant's webhook if set), mark
    each one sent or why not, and alert the operator admins of notices late by 15
    minutes. Returns how many notices went out."""
    sent = 0
    for job in await asyncio.to_thread(ctx.run, outbox, write=False):
        error = None
        for msg in job.mails:
            if not await mail.send(ctx.settings, msg):
                error = "the mail server did not take the mail"
        if job.webhook and error is None:
            error = await _post_webhook(job.webhook, job.payload)
        await asyncio.to_thread(ctx.run, mark, job.notice_id, error)
        sent += error is None

    def alert() -> list[EmailMessage]:
        with ctx.unit() as w:
            overdue(w)
        return w.outgoing

    for msg in await asyncio.to_thread(alert):
        await mail.send(ctx.settings, msg)
    return sent


async def _post_webhook(url: str, payload: dict[str, Any]) -> str | None:
    """POST the notice (JSON, never file content); None when the receiver answered 2xx."""
    try:
        async with httpx.AsyncClient(timeout=10, follow_redirects=False) as client:
            r = await client.post(url, json=payload)
    except httpx.HTTPError as exc:
        return f"the webhook could not be reached ({type(exc).__name__})"
    return None if 200 <= r.status_code < 300 else f"the webhook answered {r.status_code}"
