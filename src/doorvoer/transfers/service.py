"""Reading transfers: the list (`transfers list`, the API) and one transfer.

The state machine itself is one module per stage: `inbox` (uploads), `work`
(processing), `outbox` (pickups), `pushes` (push deliveries) and `lifecycle` (the end of
a transfer and the time-driven steps). Nothing here changes a row."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from doorvoer.transfers.models import FINAL, State, Transfer
from doorvoer.unit import Work


def list_transfers(w: Work, tenant_id: str | None = None, limit: int = 1000, *,
                   state: State | None = None, process: str | None = None,
                   since: datetime | None = None) -> list[Transfer]:
    """Newest first. `since` keeps transfers that started at or after that time."""
    q = select(Transfer).order_by(Transfer.opened_at.desc(), Transfer.id).limit(limit)
    if tenant_id is not None:
        q = q.where(Transfer.tenant_id == tenant_id)
    if state is not None:
        q = q.where(Transfer.state == state)
    if process is not None:
        q = q.where(Transfer.process_name == process)
    if since is not None:
        q = q.where(Transfer.opened_at >= since)
    return list(w.session.scalars(q))


def get_transfer(w: Work, transfer_id: str, tenant_id: str | None = None) -> Transfer | None:
    """One transfer; None when it does not exist or belongs to another tenant."""
    t = w.session.get(Transfer, transfer_id)
    if t is None or (tenant_id is not None and t.tenant_id != tenant_id):
        return None
    return t


def live_count(w: Work) -> int:
    """Transfers in flight (not in a final state)."""
    return w.execute(select(func.count()).select_from(Transfer)
                     .where(Transfer.state.not_in(FINAL))).scalar() or 0
