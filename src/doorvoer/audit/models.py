"""The audit log's tables (P23): one hash chain per tenant (and one for the operator's
own events), its head, and the signed checkpoints the node issued.

No foreign keys to the rest: an entry outlives what it names (a user removed, a
transfer forgotten), and only the tenant's erasure takes its chain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from doorvoer.db import Base, UTCDateTime, new_id

OPERATOR_CHAIN = "operator"  # the chain of events of no tenant (staff, unknown names)


class AuditEntry(Base):
    """No index beside the key (chain, seq): every change writes an entry, and each
    index would cost every upload its own B-tree insert (measured: a fifth of the audit
    log's cost on an upload's CLOSE). Filtered views walk the tenant's chain by key."""

    __tablename__ = "audit_entries"

    chain: Mapped[str] = mapped_column(String(32), primary_key=True)  # the tenant's id
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_kind: Mapped[str] = mapped_column(String(16))  # person|account|staff|system
    actor_id: Mapped[str | None] = mapped_column(String(64))
    actor_name: Mapped[str | None] = mapped_column(String(320))
    actor_role: Mapped[str | None] = mapped_column(String(32))
    grant_id: Mapped[str | None] = mapped_column(String(32))  # staff: what they relied on
    instruction_id: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))  # area:subject:verb
    object: Mapped[str | None] = mapped_column(String(600))
    source: Mapped[str | None] = mapped_column(String(64))  # an address
    prev: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """Each chain's newest entry: writers of one chain queue on this row."""

    __tablename__ = "audit_heads"

    chain: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64))
    checkpointed_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    checkpointed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Checkpoint(Base):
    """A signed head of a chain, as issued (kept for ever, like the chain)."""

    __tablename__ = "audit_checkpoints"
    __table_args__ = (Index("ix_audit_checkpoints_chain_seq", "chain", "seq"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    chain: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(Text)
