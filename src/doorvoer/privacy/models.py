"""The privacy area's tables: a tenant's pending erasure, and what is left after one
(the tombstone, holding no name, slug, contact or any other of the tenant's values)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from doorvoer.db import Base, UTCDateTime, utcnow


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
