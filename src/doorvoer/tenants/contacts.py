"""A tenant's contact data, each field for its purposes only (P9). Code that needs an
address names the purpose: `address_for(tenant, "breach-notice")`. A field serves its
own purpose, and the general contact serves a purpose whose own field is empty, so the
purposes of each field follow from what is filled in (`purposes_of`)."""

from __future__ import annotations

import re

from doorvoer.tenants.models import Tenant

PURPOSES = ("contact", "invoicing", "breach-notice")
FIELDS = {"contact": "contact_email", "invoicing": "invoice_email",
          "breach-notice": "breach_email"}
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def address_for(tenant: Tenant, purpose: str) -> str | None:
    """The address to use for `purpose`, or None when the tenant gave none."""
    if purpose not in FIELDS:
        raise ValueError(f"no contact purpose {purpose!r}")
    own = getattr(tenant, FIELDS[purpose])
    return own if own else tenant.contact_email


def purposes_of(tenant: Tenant) -> dict[str, list[str]]:
    """Each filled-in field (its column name) and the purposes it serves."""
    out: dict[str, list[str]] = {}
    for purpose in PURPOSES:
        own = getattr(tenant, FIELDS[purpose])
        field = FIELDS[purpose] if own else ("contact_email" if tenant.contact_email else None)
        if field is not None:
            out.setdefault(field, []).append(purpose)
    return out


def webhook_for_breach_notices(tenant: Tenant) -> str | None:
    return tenant.breach_webhook


def as_set(tenant: Tenant) -> dict[str, str]:
    """Each purpose's own field as the tenant set it ('' when empty): for the tenant's
    settings, where it edits them, and nowhere else."""
    return {purpose: getattr(tenant, column) or "" for purpose, column in FIELDS.items()}
