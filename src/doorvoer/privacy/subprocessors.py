"""The sub-processor register (P17, GDPR Art. 28(2) and (4)): who else processes the
tenants' data, for what, which categories, where, and under which safeguard when
outside the EEA. An addition or change is announced to every tenant
`subprocessor_notice_days` (30) before it takes effect, and a tenant may object until
then (recorded, audited, the operator admins alerted).

The one rule of use: `used_for(w, tenant)`. A sub-processor outside the EEA is used
for a tenant only with that tenant's recorded consent for that country; without it
the register shows it to the tenant as not used for it, the record of processing lists
no transfer to that country for it, and the operator's register names the tenants it
must not be used for."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import func, select

from doorvoer.access.policy import Role
from doorvoer.accounts.models import User
from doorvoer.audit import service as audit
from doorvoer.audit.events import Event
from doorvoer.db import utcnow
from doorvoer.privacy import notices
from doorvoer.privacy.errors import NoSuchSubprocessor, SubprocessorRefused
from doorvoer.privacy.models import Subprocessor, SubprocessorConsent, SubprocessorObjection
from doorvoer.support.notices import tenant_recipients
from doorvoer.tenants.models import Tenant
from doorvoer.tenants.service import list_tenants
from doorvoer.unit import Work

# The EU's 27 and Iceland, Liechtenstein and Norway.
EEA = frozenset({
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
    "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
    "IS", "LI", "NO"})
KEY = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class SubprocessorSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    purpose: str = Field(min_length=1, max_length=2000)
    data_categories: list[str] = Field(min_length=1)
    country: str
    safeguard: str | None = Field(default=None, max_length=2000)

    @field_validator("country")
    @classmethod
    def _country(cls, v: str) -> str:
        v = v.strip().upper()
        if not re.fullmatch(r"[A-Z]{2}", v):
            raise ValueError("an ISO 3166-1 alpha-2 code such as NL, DE or US")
        return v

    @field_validator("data_categories")
    @classmethod
    def _categories(cls, v: list[str]) -> list[str]:
        items = [c.strip() for c in v if c.strip()]
        if not items or any("\n" in c or len(c) > 200 for c in items):
            raise ValueError("one or more categories of personal data, one line each")
        return items


def spec_of(**fields: object) -> SubprocessorSpec:
    """The entry's fields, checked; SubprocessorRefused naming the first wrong one."""
    try:
        return SubprocessorSpec.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "entry"
        raise SubprocessorRefused(
            f"{where}: {str(first['msg']).removeprefix('Value error, ')}") from None


@dataclass(frozen=True)
class Entry:
    """A sub-processor as the register shows it: the version in force (None before its
    first takes effect) and the one announced (None when nothing is pending)."""

    key: str
    current: Subprocessor | None
    announced: Subprocessor | None

    @property
    def latest(self) -> Subprocessor:
        found = self.announced or self.current
        assert found is not None
        return found


def _check(spec: SubprocessorSpec) -> None:
    if spec.country not in EEA and not spec.safeguard:
        raise SubprocessorRefused(
            f"country {spec.country} is outside the EEA: name the safeguard for the "
            "transfer (an adequacy decision, standard contractual clauses, BCRs)")


def _announce(w: Work, row: Subprocessor, what: str) -> None:
    for tenant in list_tenants(w):
        audit.record(w, tenant.id, Event.SUBPROCESSOR_ANNOUNCED,
                     f"{row.key} v{row.version}: {what}, from {row.effective_at.date()}")
        for to in tenant_recipients(w, tenant):
            w.notify(notices.subprocessor(w.settings, to, tenant, row, what))


def add(w: Work, key: str, spec: SubprocessorSpec, by: str,
        notice_days: float | None = None) -> Subprocessor:
    """A new sub-processor, announced to every tenant now, in effect after the notice."""
    if not KEY.match(key):
        raise SubprocessorRefused(f"key {key!r}: 1-63 lower-case letters, digits, hyphens")
    _check(spec)
    if w.session.scalar(select(Subprocessor.id).where(Subprocessor.key == key)):
        raise SubprocessorRefused(f"sub-processor {key!r} exists: change it instead")
    row = _version(w, key, 1, spec, by, notice_days)
    audit.record(w, None, Event.SUBPROCESSOR_ANNOUNCED, f"{key} v1 added")
    _announce(w, row, "added")
    return row


def change(w: Work, key: str, by: str, notice_days: float | None = None,
           **fields: str | list[str] | None) -> Subprocessor:
    """A new version of an entry (what is given changes, the rest stays), announced."""
    last = latest(w, key)
    merged = {"name": last.name, "purpose": last.purpose,
              "data_categories": last.data_categories.split("\n"), "country": last.country,
              "safeguard": last.safeguard}
    merged.update({k: v for k, v in fields.items() if v is not None})
    spec = spec_of(**merged)
    _check(spec)
    row = _version(w, key, last.version + 1, spec, by, notice_days)
    changed = [k for k in ("name", "purpose", "data_categories", "country", "safeguard")
               if getattr(row, k) != getattr(last, k)]
    if not changed:
        raise SubprocessorRefused("nothing changes: give what is different")
    audit.record(w, None, Event.SUBPROCESSOR_ANNOUNCED, f"{key} v{row.version} changed")
    _announce(w, row, f"changed: {', '.join(changed)}")
    return row


def _version(w: Work, key: str, version: int, spec: SubprocessorSpec, by: str,
             notice_days: float | None) -> Subprocessor:
    now = utcnow()
    days = w.settings.subprocessor_notice_days if notice_days is None else notice_days
    row = Subprocessor(key=key, version=version, name=spec.name, purpose=spec.purpose,
                       data_categories="\n".join(spec.data_categories), country=spec.country,
                       in_eea=spec.country in EEA, safeguard=spec.safeguard or None,
                       announced_at=now, effective_at=now + timedelta(days=days),
                       recorded_by=by)
    w.session.add(row)
    w.session.flush()
    return row


def latest(w: Work, key: str) -> Subprocessor:
    row = w.session.scalar(select(Subprocessor).where(Subprocessor.key == key)
                           .order_by(Subprocessor.version.desc()).limit(1))
    if row is None:
        raise NoSuchSubprocessor(f"no sub-processor {key!r}")
    return row


def register(w: Work, now: datetime | None = None) -> list[Entry]:
    """Every sub-processor: its version in force and its announced one."""
    now = now or utcnow()
    by_key: dict[str, list[Subprocessor]] = {}
    for row in w.session.scalars(select(Subprocessor).order_by(Subprocessor.key,
                                                                Subprocessor.version)):
        by_key.setdefault(row.key, []).append(row)
    out = []
    for key, rows in by_key.items():
        current = [r for r in rows if r.effective_at <= now]
        pending = [r for r in rows if r.effective_at > now]
        out.append(Entry(key, current[-1] if current else None,
                         pending[-1] if pending else None))
    return out


def consents_of(w: Work, tenant_id: str) -> dict[str, SubprocessorConsent]:
    return {c.key: c for c in w.session.scalars(select(SubprocessorConsent).where(
        SubprocessorConsent.tenant_id == tenant_id))}


def may_use(row: Subprocessor, consents: dict[str, SubprocessorConsent]) -> bool:
    """The rule: inside the EEA, yes; outside, only with consent for its country."""
    consent = consents.get(row.key)
    return row.in_eea or (consent is not None and consent.country == row.country)


def used_for(w: Work, tenant: Tenant, now: datetime | None = None) -> list[Subprocessor]:
    """The sub-processors in force that may process this tenant's data."""
    consents = consents_of(w, tenant.id)
    return [e.current for e in register(w, now)
            if e.current is not None and may_use(e.current, consents)]


def not_for(w: Work, row: Subprocessor) -> int:
    """How many tenants this sub-processor may not be used for (no consent)."""
    if row.in_eea:
        return 0
    consented = w.session.scalar(select(func.count()).select_from(SubprocessorConsent).where(
        SubprocessorConsent.key == row.key, SubprocessorConsent.country == row.country)) or 0
    tenants = w.session.scalar(select(func.count()).select_from(Tenant)) or 0
    return tenants - consented


def object_to(w: Work, tenant: Tenant, key: str, reason: str, by: str) -> SubprocessorObjection:
    """The tenant objects to the announced version of `key` (before it takes effect)."""
    entry = next((e for e in register(w) if e.key == key), None)
    if entry is None or entry.announced is None:
        raise SubprocessorRefused(f"{key!r} has no announced change to object to")
    reason = reason.strip()
    if not reason or len(reason) > 2000:
        raise SubprocessorRefused("say why you object, in 1 to 2,000 characters")
    row = SubprocessorObjection(tenant_id=tenant.id, subprocessor_id=entry.announced.id,
                                reason=reason, made_by=by)
    w.session.add(row)
    audit.record(w, tenant.id, Event.SUBPROCESSOR_OBJECTED,
                 f"{key} v{entry.announced.version}", checkpoint=True)
    for to in w.session.scalars(select(User.email).where(
            User.role == Role.OPERATOR_ADMIN.value, User.active)):
        w.notify(notices.objection(w.settings, to, tenant, entry.announced, reason))
    return row


def consent(w: Work, tenant: Tenant, key: str, by: str, given: bool = True) -> None:
    """The tenant consents (or no longer consents) to a sub-processor outside the EEA,
    for the country its newest version names."""
    row = latest(w, key)
    if row.in_eea:
        raise SubprocessorRefused(f"{row.name} is inside the EEA: no consent is needed")
    existing = consents_of(w, tenant.id).get(key)
    if existing is not None:
        w.session.delete(existing)
        w.session.flush()
    if given:
        w.session.add(SubprocessorConsent(tenant_id=tenant.id, key=key, country=row.country,
                                          given_by=by))
    audit.record(w, tenant.id, Event.SUBPROCESSOR_CONSENTED if given
                 else Event.SUBPROCESSOR_CONSENT_WITHDRAWN, f"{key} ({row.country})",
                 checkpoint=True)


__all__ = ["EEA", "Entry", "Subprocessor", "SubprocessorSpec", "add", "change", "consent",
           "consents_of", "latest", "may_use", "not_for", "object_to", "objections",
           "register", "spec_of", "used_for"]


def objections(w: Work, tenant_id: str | None = None) -> list[SubprocessorObjection]:
    q = select(SubprocessorObjection).order_by(SubprocessorObjection.made_at)
    if tenant_id is not None:
        q = q.where(SubprocessorObjection.tenant_id == tenant_id)
    return list(w.session.scalars(q))
