from __future__ import annotations

import re

from sqlalchemy import delete, select

from doorvoer.audit import service as audit
from doorvoer.audit.events import Event
from doorvoer.tenants.contacts import EMAIL, FIELDS
from doorvoer.tenants.errors import NoSuchTenant, TenantRefused
from doorvoer.tenants.models import Tenant
from doorvoer.unit import Work

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def create_tenant(w: Work, slug: str, name: str, contact_email: str | None) -> Tenant:
    if not SLUG.match(slug):
        raise TenantRefused(
            f"tenant slug {slug!r}: use 1-63 lower-case letters, digits and inner hyphens"
        )
    if get_tenant(w, slug) is not None:
        raise TenantRefused(f"tenant {slug!r} exists already")
    if contact_email is not None and not EMAIL.fullmatch(contact_email):
        raise TenantRefused(f"contact e-mail {contact_email!r} is not an e-mail address")
    tenant = Tenant(slug=slug, name=name, contact_email=contact_email)
    w.session.add(tenant)
    w.session.flush()
    audit.start_chain(w, tenant.id)
    audit.record(w, tenant.id, Event.TENANT_CREATED, slug)
    return tenant


def get_tenant(w: Work, slug: str) -> Tenant | None:
    return w.session.scalar(select(Tenant).where(Tenant.slug == slug))


def require_tenant(w: Work, slug: str) -> Tenant:
    tenant = get_tenant(w, slug)
    if tenant is None:
        raise NoSuchTenant(f"no tenant {slug!r}; create it with `doorvoer tenant create {slug}`")
    return tenant


def list_tenants(w: Work) -> list[Tenant]:
    return list(w.session.scalars(select(Tenant).order_by(Tenant.slug)))


CONTRACT_STATES = ("active", "ended")


def set_contract(w: Work, tenant: Tenant, status: str) -> None:
    """The state of the tenant's contract with the operator (a label for now; erasure at
    the end of a contract is P19's job)."""
    if status not in CONTRACT_STATES:
        raise TenantRefused(f"contract status {status!r}: use {' or '.join(CONTRACT_STATES)}")
    if tenant.contract != status:
        audit.record(w, tenant.id, Event.TENANT_CONTRACT_CHANGED, status)
    tenant.contract = status


def set_report(w: Work, tenant: Tenant, on: bool) -> None:
    """Switch per-transfer reporting (P4). Use transfers.lifecycle.set_reporting, which
    also forgets what was kept so far."""
    tenant.report = on


def erase_tenant(w: Work, tenant: Tenant) -> dict[str, int]:
    """A tenant's erasure (P19), the last step: its own row, name, slug and contact."""
    w.session.expunge(tenant)
    gone = w.changed(delete(Tenant).where(Tenant.id == tenant.id))
    return {"tenant": gone}


def set_usage_stats(w: Work, tenant: Tenant, on: bool) -> None:
    """Whether the tenant is counted in the anonymised usage statistics (P21)."""
    if tenant.usage_stats != on:
        tenant.usage_stats = on
        audit.record(w, tenant.id, Event.USAGE_OPTED, "in" if on else "out")


def change_contacts(w: Work, tenant: Tenant, **fields: str | None) -> list[str]:
    """Change contact fields (`contact`, `invoicing`, `breach_notice`, `webhook`: the
    breach-notice webhook); '' clears one, None leaves it. Returns what changed."""
    changed = []
    for key, value in fields.items():
        if value is None:
            continue
        value = value.strip() or None
        purpose = key.replace("_", "-")
        if key == "webhook":
            if value is not None and not value.startswith("https://"):
                raise TenantRefused("the breach-notice webhook must be an https:// URL")
            column = "breach_webhook"
        elif purpose in FIELDS:
            if value is not None and not EMAIL.fullmatch(value):
                raise TenantRefused(f"{purpose} e-mail {value!r} is not an e-mail address")
            column = FIELDS[purpose]
        else:
            raise TenantRefused(f"no contact field {key!r}")
        if getattr(tenant, column) != value:
            setattr(tenant, column, value)
            changed.append(purpose)
    if changed:
        audit.record(w, tenant.id, Event.TENANT_CONTACTS_CHANGED, ", ".join(changed))
    return changed
