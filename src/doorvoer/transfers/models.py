from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Enum, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from doorvoer.db import Base, UTCDateTime, new_id, utcnow


class State(StrEnum):
    RECEIVING = "RECEIVING"  # open over SFTP/HTTPS, bytes arriving
    HELD = "HELD"  # closed under a temporary or unmatched name: waits for a rename
    RECEIVED = "RECEIVED"  # complete, waiting for a worker
    PROCESSING = "PROCESSING"
    DELIVERING = "DELIVERING"  # output written, input erased, targets pending
    READY = "READY"  # only pickups left waiting
    ERASED = "ERASED"  # done: every blob erased
    FAILED = "FAILED"
    INTERRUPTED = "INTERRUPTED"  # the upload never completed
    DISCARDED = "DISCARDED"  # never renamed to a name a process matches

    @property
    def final(self) -> bool:
        return self in FINAL


FINAL = frozenset({State.ERASED, State.FAILED, State.INTERRUPTED, State.DISCARDED})


class DState(StrEnum):
    PENDING = "PENDING"  # push not yet done
    SENDING = "SENDING"  # uploaded under a temporary name; rename pending
    READY = "READY"  # in the outbox
    FETCHED = "FETCHED"  # completely downloaded; erased after the grace
    PICKED_UP = "PICKED_UP"
    DELIVERED = "DELIVERED"
    REMOVED = "REMOVED"  # deleted by the tenant from its outbox
    EXPIRED = "EXPIRED"  # not fetched within pickup_within
    FAILED = "FAILED"


DFINAL = frozenset(
    {DState.DELIVERED, DState.PICKED_UP, DState.REMOVED, DState.EXPIRED, DState.FAILED}
)


def _enum(cls: type[StrEnum]) -> Enum:
    """Stored as its text, read back as the enum member."""
    return Enum(cls, native_enum=False, create_constraint=False, length=16,
                values_callable=lambda e: [m.value for m in e])


class Transfer(Base):
    """One file's passage. Holds metadata only: never file content (P3, P4)."""

    __tablename__ = "transfers"
    __table_args__ = (
        Index("ix_transfers_state_lease", "state", "lease_until"),
        Index("ix_transfers_tenant_received", "tenant_id", "received_at"),
        Index("ix_transfers_inbox_name", "tenant_id", "folder", "filename"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    account_id: Mapped[str | None] = mapped_column(String(32))
    process_id: Mapped[str | None] = mapped_column(String(32))
    process_name: Mapped[str | None] = mapped_column(String(63))
    folder: Mapped[str] = mapped_column(String(63))
    filename: Mapped[str] = mapped_column(String(255))  # name inside the folder
    state: Mapped[State] = mapped_column(_enum(State), default=State.RECEIVING)
    error: Mapped[str | None] = mapped_column(Text)

    input_blob_id: Mapped[str | None] = mapped_column(String(32))
    output_blob_id: Mapped[str | None] = mapped_column(String(32))
    output_name: Mapped[str | None] = mapped_column(String(255))

    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hold_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    input_erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    bytes_in: Mapped[int | None] = mapped_column()
    bytes_out: Mapped[int | None] = mapped_column()
    rows_in: Mapped[int | None] = mapped_column()
    rows_out: Mapped[int | None] = mapped_column()

    attempts: Mapped[int] = mapped_column(default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Failed while an inspection window was open on its process (P6): its files are kept
    # (encrypted) until that window closes. Never set otherwise.
    kept_for: Mapped[str | None] = mapped_column(String(32), index=True)

    @property
    def path(self) -> str:
        return f"{self.folder}/{self.filename}"

    @property
    def residence_seconds(self) -> float | None:
        start = self.received_at or self.opened_at
        if self.erased_at is None:
            return None
        return (self.erased_at - start).total_seconds()


class Delivery(Base):
    """One target of one transfer's output: exactly one row per target."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("transfer_id", "target_no"),
        Index("ix_deliveries_state_next", "state", "next_attempt_at"),
        Index("ix_deliveries_outbox", "tenant_id", "outbox_folder", "outbox_name"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    transfer_id: Mapped[str] = mapped_column(ForeignKey("transfers.id", ondelete="CASCADE"))
    tenant_id: Mapped[str] = mapped_column(String(32))
    target_no: Mapped[int] = mapped_column()
    kind: Mapped[str] = mapped_column(String(16))  # pickup | sftp
    state: Mapped[DState] = mapped_column(_enum(DState), default=DState.PENDING)
    outbox_folder: Mapped[str | None] = mapped_column(String(63))
    outbox_name: Mapped[str | None] = mapped_column(String(255))
    connection: Mapped[str | None] = mapped_column(String(63))
    remote_path: Mapped[str | None] = mapped_column(String(1024))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
