from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from doorvoer.db import Base, UTCDateTime, utcnow


class BlobKey(Base):
    """The wrapped data key of one vault blob. Deleting the row shreds the blob."""

    __tablename__ = "vault_keys"

    blob_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(32), index=True)  # the transfer
    role: Mapped[str] = mapped_column(String(16))  # input | output
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
