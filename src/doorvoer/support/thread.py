"""A tenant's support thread (P13): messages between the tenant's people and support,
with support's access requests linked, kept and shown on the portal. Support reaches a
thread without a grant (it is how they talk to the tenant), and every visit is in the
tenant's audit log like any staff request; a message's text is never in the log."""

from __future__ import annotations

from sqlalchemy import select

from doorvoer.access.policy import Role
from doorvoer.accounts.models import User
from doorvoer.audit import service as audit
from doorvoer.audit.events import Event
from doorvoer.db import utcnow
from doorvoer.mail import message
from doorvoer.support.errors import MessageRefused
from doorvoer.support.models import SupportMessage
from doorvoer.support.notices import tenant_recipients
from doorvoer.tenants.models import Tenant
from doorvoer.unit import Work

MAX_BODY = 5000


def post(w: Work, tenant: Tenant, author: User, body: str,
         grant_id: str | None = None) -> SupportMessage:
    """Add a message to the tenant's thread; a message from support is e-mailed to the
    tenant's admins and contact (without its text: they read it on the portal)."""
    body = body.strip()
    if not body:
        raise MessageRefused("write a message first")
    if len(body) > MAX_BODY:
        raise MessageRefused(f"the message is too long: at most {MAX_BODY} characters")
    from_support = author.role == Role.SUPPORT.value
    row = SupportMessage(tenant_id=tenant.id, author_id=author.id, author_email=author.email,
                         from_support=from_support, grant_id=grant_id, body=body,
                         created_at=utcnow())
    w.session.add(row)
    w.session.flush()
    audit.record(w, tenant.id, Event.SUPPORT_MESSAGE,
                 row.id + (f" (grant {grant_id})" if grant_id else ""))
    if from_support:
        link = f"{w.settings.base_url}/t/{tenant.slug}/thread"
        for to in tenant_recipients(w, tenant):
            w.notify(message(w.settings, to, f"A message from support for {tenant.name}",
                             f"{author.email} (Doorvoer support) wrote in {tenant.name}'s "
                             f"support thread. Read it at {link}"))
    return row


def link_request(w: Work, tenant: Tenant, staff: User, grant_id: str, text: str) -> None:
    """Support's access request in the thread, linked to it (the request itself is in
    the audit log and mailed already)."""
    w.session.add(SupportMessage(tenant_id=tenant.id, author_id=staff.id,
                                 author_email=staff.email, from_support=True,
                                 grant_id=grant_id, body=text, created_at=utcnow()))


def messages_of(w: Work, tenant_id: str) -> list[SupportMessage]:
    """The thread, oldest first."""
    return list(w.session.scalars(select(SupportMessage).where(
        SupportMessage.tenant_id == tenant_id).order_by(SupportMessage.created_at,
                                                        SupportMessage.id)))
