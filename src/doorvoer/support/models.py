"""Support access a tenant opens and closes itself (P10–P13): grants asked for by
support staff and answered by the tenant's admins, instructions the tenant gave, and
the support thread between the tenant's people and support, and inspection windows.

A grant names the staff member and the tenant; its scopes say what it opens
(`access.policy.GRANT_SCOPES`). States: pending → active | refused | expired;
active → revoked | expired. A pending request's `expires_at` is when it lapses
unanswered (48 hours); an active grant's is when its access ends (at most 7 days)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from doorvoer.db import Base, UTCDateTime, new_id, utcnow


class GrantState(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    REFUSED = "refused"
    EXPIRED = "expired"
    REVOKED = "revoked"


class Grant(Base):
    __tablename__ = "support_grants"
    __table_args__ = (Index("ix_support_grants_staff_state", "staff_id", "state"),
                      Index("ix_support_grants_tenant_state", "tenant_id", "state"))

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    staff_id: Mapped[str] = mapped_column(String(32))  # the support user's id
    staff_email: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(String(1000))
    ticket: Mapped[str] = mapped_column(String(100))
    requested_scopes: Mapped[str] = mapped_column(String(100))  # comma-separated
    scopes: Mapped[str] = mapped_column(String(100), default="")  # what was granted
    state: Mapped[str] = mapped_column(String(16), default=GrantState.PENDING.value)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_by: Mapped[str | None] = mapped_column(String(320))  # an admin's e-mail
    first_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_by: Mapped[str | None] = mapped_column(String(320))

    @property
    def scope_list(self) -> list[str]:
        return [s for s in self.scopes.split(",") if s]

    @property
    def requested_list(self) -> list[str]:
        return [s for s in self.requested_scopes.split(",") if s]


class Instruction(Base):
    """A documented instruction of the tenant (P10): who asked, when, how, and what."""

    __tablename__ = "support_instructions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"),
                                           index=True)
    asked_by: Mapped[str] = mapped_column(String(320))  # who at the tenant asked
    asked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    channel: Mapped[str] = mapped_column(String(16))  # portal | email | phone
    reference: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(String(2000))  # what is to be done
    recorded_by: Mapped[str] = mapped_column(String(320))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SupportMessage(Base):
    """One message of a tenant's support thread."""

    __tablename__ = "support_messages"
    __table_args__ = (Index("ix_support_messages_tenant_at", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    author_id: Mapped[str | None] = mapped_column(String(32))
    author_email: Mapped[str] = mapped_column(String(320))
    from_support: Mapped[bool] = mapped_column(default=False)
    grant_id: Mapped[str | None] = mapped_column(String(32))  # a linked grant request
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InspectionWindow(Base):
    """A support user's window on one process (P6), opened under an `inspect` grant for
    at most 24 hours and never past the grant. While it is open the process's failed
    transfers keep their files (`Transfer.kept_for`); closing erases them."""

    __tablename__ = "inspection_windows"
    __table_args__ = (Index("ix_inspection_windows_tenant_opened", "tenant_id", "opened_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    process_id: Mapped[str] = mapped_column(String(32))
    process_name: Mapped[str] = mapped_column(String(63))
    grant_id: Mapped[str] = mapped_column(String(32), index=True)
    staff_id: Mapped[str] = mapped_column(String(32))
    staff_email: Mapped[str] = mapped_column(String(320))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    until: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_by: Mapped[str | None] = mapped_column(String(320))  # who, or why it ended
    kept: Mapped[int] = mapped_column(default=0)  # failed transfers kept while open
    views: Mapped[int] = mapped_column(default=0)

    def open_at(self, now: datetime) -> bool:
        return self.closed_at is None and self.until > now
