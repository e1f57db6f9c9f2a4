from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from doorvoer.errors import UserError
from doorvoer.tenants.models import Tenant

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def create_tenant(session: Session, slug: str, name: str, contact_email: str | None) -> Tenant:
    if not SLUG.match(slug):
        raise UserError(
            f"tenant slug {slug!r}: use 1-63 lower-case letters, digits and inner hyphens"
        )
    if get_tenant(session, slug) is not None:
        raise UserError(f"tenant {slug!r} exists already")
    if contact_email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", contact_email):
        raise UserError(f"contact e-mail {contact_email!r} is not an e-mail address")
    tenant = Tenant(slug=slug, name=name, contact_email=contact_email)
    session.add(tenant)
    session.flush()
    return tenant


def get_tenant(session: Session, slug: str) -> Tenant | None:
    return session.scalar(select(Tenant).where(Tenant.slug == slug))


def require_tenant(session: Session, slug: str) -> Tenant:
    tenant = get_tenant(session, slug)
    if tenant is None:
        raise UserError(f"no tenant {slug!r}; create it with `doorvoer tenant create {slug}`")
    return tenant


def list_tenants(session: Session) -> list[Tenant]:
    return list(session.scalars(select(Tenant).order_by(Tenant.slug)))


CONTRACT_STATES = ("active", "ended")


def set_contract(session: Session, tenant: Tenant, status: str) -> None:
    """The state of the tenant's contract with the operator (a label for now; erasure at
    the end of a contract is P19's job)."""
    if status not in CONTRACT_STATES:
        raise UserError(f"contract status {status!r}: use {' or '.join(CONTRACT_STATES)}")
    tenant.contract = status


def set_report(session: Session, tenant: Tenant, on: bool) -> None:
    """Switch per-transfer reporting (P4). Use reports.service.set_reporting, which also
    forgets what was kept so far."""
    tenant.report = on
