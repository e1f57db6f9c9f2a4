from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from doorvoer.db import Base, UTCDateTime, new_id, utcnow


class Process(Base):
    __tablename__ = "processes"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(63))
    folder: Mapped[str] = mapped_column(String(63))
    spec_yaml: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # An open inspection window (P6, kept by `support.inspection`): failed transfers of
    # this process keep their files for it until `inspect_until`.
    inspect_window: Mapped[str | None] = mapped_column(String(32))
    inspect_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The output columns, as parsed from the SQL when the spec was applied (P8: JSON).
    columns: Mapped[str | None] = mapped_column(Text)
