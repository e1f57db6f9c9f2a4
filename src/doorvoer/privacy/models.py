"""The privacy area's tables: a tenant's pending erasure, and what is left after one
(the tombstone, holding no name, slug, contact or any other of the tenant's values)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from doorvoer.db import Base, UTCDateTime, new_id, utcnow


class Erasure(Base):
    """A tenant's erasure, scheduled: on the tenant's request (after the cooling-off
    period, cancellable until then) or at the end of its contract (after the grace
    period). It goes with the tenant's other rows when it runs."""

    __tablename__ = "erasure_requests"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    reason: Mapped[str] = mapped_column(String(16))  # request | contract-end
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    requested_by: Mapped[str | None] = mapped_column(String(32))  # a user's id
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Tombstone(Base):
    """What remains of an erased tenant: its internal id, the dates, the counts erased
    per kind of data, and the signed certificate (whose text holds the same)."""

    __tablename__ = "tenant_tombstones"

    tenant_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    reason: Mapped[str] = mapped_column(String(16))  # request | contract-end | operator
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the tenant's
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime)
    counts: Mapped[str] = mapped_column(Text)  # JSON: kind -> rows, blobs or entries erased
    certificate: Mapped[str] = mapped_column(Text)  # a signed note (docs/erasure.md)


class Incident(Base):
    """A personal data breach or other incident the operator records (P18), with every
    field of GDPR Art. 33(3). Which tenants it touches is in its notices, never here."""

    __tablename__ = "incidents"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    became_known_at: Mapped[datetime] = mapped_column(UTCDateTime)
    summary: Mapped[str] = mapped_column(Text)
    data_categories: Mapped[str] = mapped_column(Text)  # one per line
    approximate_subjects: Mapped[int] = mapped_column()
    likely_consequences: Mapped[str] = mapped_column(Text)
    measures_taken: Mapped[str] = mapped_column(Text)
    measures_proposed: Mapped[str] = mapped_column(Text)
    contact: Mapped[str] = mapped_column(String(500))
    all_tenants: Mapped[bool] = mapped_column(default=False)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    recorded_by: Mapped[str] = mapped_column(String(320))
    phase: Mapped[int] = mapped_column(default=0)  # the newest update's number
    alerted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # notices overdue


class IncidentUpdate(Base):
    """A later phase of an incident: what is known now, notified like the first."""

    __tablename__ = "incident_updates"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    incident_id: Mapped[str] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    phase: Mapped[int] = mapped_column()
    text: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    recorded_by: Mapped[str] = mapped_column(String(320))


class IncidentNotice(Base):
    """One tenant told of one phase of an incident: when it went out (mail to the
    breach-notice contact and the admins, and the webhook), and when the tenant
    acknowledged it (the banner shows until then)."""

    __tablename__ = "incident_notices"
    __table_args__ = (Index("ix_incident_notices_tenant", "tenant_id", "acknowledged_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    incident_id: Mapped[str] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    phase: Mapped[int] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(String(300))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(320))


class Subprocessor(Base):
    """One version of a sub-processor's entry in the register (P17). A change is a new
    version of the same `key`; the one in force is the newest whose `effective_at` has
    come; a later one is announced, and tenants may object until it takes effect."""

    __tablename__ = "subprocessors"
    __table_args__ = (Index("ix_subprocessors_key_version", "key", "version", unique=True),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(63))
    version: Mapped[int] = mapped_column()
    name: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(Text)
    data_categories: Mapped[str] = mapped_column(Text)  # one per line
    country: Mapped[str] = mapped_column(String(2))  # ISO 3166-1 alpha-2
    in_eea: Mapped[bool] = mapped_column()
    safeguard: Mapped[str | None] = mapped_column(Text)  # for a transfer outside the EEA
    announced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_by: Mapped[str] = mapped_column(String(320))


class SubprocessorObjection(Base):
    """A tenant's objection to an announced sub-processor (or change), with its reason."""

    __tablename__ = "subprocessor_objections"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"),
                                           index=True)
    subprocessor_id: Mapped[str] = mapped_column(
        ForeignKey("subprocessors.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(Text)
    made_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    made_by: Mapped[str] = mapped_column(String(320))


class SubprocessorConsent(Base):
    """A tenant's consent to a sub-processor outside the EEA (for the country it names):
    without it, that sub-processor is never used for the tenant."""

    __tablename__ = "subprocessor_consents"
    __table_args__ = (Index("ix_subprocessor_consents_tenant_key", "tenant_id", "key",
                            unique=True),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(63))
    country: Mapped[str] = mapped_column(String(2))
    given_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    given_by: Mapped[str] = mapped_column(String(320))


class UsageRelease(Base):
    """One released figure of the anonymised usage statistics (P21): for one day and one
    feature, how many tenants used it, with noise (OpenDP's discrete Laplace). No tenant
    id, name or count without noise is stored anywhere."""

    __tablename__ = "usage_releases"
    __table_args__ = (Index("ix_usage_releases_day_feature", "day", "feature", unique=True),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    day: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD, UTC
    feature: Mapped[str] = mapped_column(String(32))
    value: Mapped[int] = mapped_column()  # noisy, clamped at 0
    epsilon: Mapped[float] = mapped_column(Float)  # of the whole day's release
    released_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
