from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from doorvoer.db import Base, UTCDateTime, new_id, utcnow


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # Contact data, each field for its purposes only (P9): read through
    # tenants.contacts.address_for(tenant, purpose), never directly.
    contact_email: Mapped[str | None] = mapped_column(String(320))
    invoice_email: Mapped[str | None] = mapped_column(String(320))
    breach_email: Mapped[str | None] = mapped_column(String(320))
    breach_webhook: Mapped[str | None] = mapped_column(String(500))  # https://…
    report: Mapped[bool] = mapped_column(default=True)
    usage_stats: Mapped[bool] = mapped_column(default=True)  # counted in P21's statistics
    contract: Mapped[str] = mapped_column(String(16), default="active")  # active | ended
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
