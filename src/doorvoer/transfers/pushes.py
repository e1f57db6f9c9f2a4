"""The states of push deliveries (P1): claimed with a lease, SENDING once the output is
on the target under its temporary name, then DELIVERED, retried with a doubling
backoff, or FAILED. The network side is `delivery/`; every state change is here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Table, bindparam, or_, select, update

from doorvoer.audit import service as audit
from doorvoer.audit.events import Event
from doorvoer.db import utcnow
from doorvoer.transfers.lifecycle import settle
from doorvoer.transfers.models import Delivery, DState, Transfer
from doorvoer.unit import Work

_T: Table = Transfer.__table__  # type: ignore[assignment]
_D: Table = Delivery.__table__  # type: ignore[assignment]
_PUSHING = [DState.PENDING, DState.SENDING]
_DUE = (select(_D.c.id).where(_D.c.kind != "pickup", _D.c.state.in_(_PUSHING),
                              _D.c.next_attempt_at <= bindparam("now"),
                              or_(_D.c.lease_until.is_(None),
                                  _D.c.lease_until < bindparam("now")))
        .order_by(_D.c.next_attempt_at).limit(1))
_CLAIM = (update(_D).where(_D.c.id == bindparam("did"),
                           or_(_D.c.lease_until.is_(None), _D.c.lease_until < bindparam("now")))
          .values(lease_owner=bindparam("owner"), lease_until=bindparam("until"),
                  attempts=_D.c.attempts + 1))
_CLAIMED = (select(_D.c.id, _D.c.transfer_id, _D.c.tenant_id, _D.c.state, _D.c.kind,
                   _D.c.connection, _D.c.remote_path, _D.c.attempts, _T.c.output_blob_id,
                   _T.c.bytes_out)
            .select_from(_D.join(_T, _T.c.id == _D.c.transfer_id))
            .where(_D.c.id == bindparam("did")))
_SET = update(_D).where(_D.c.id == bindparam("did"))


@dataclass(frozen=True)
class Push:
    """A claimed push: where the output goes and what it is."""

    delivery_id: str
    transfer_id: str
    tenant_id: str
    kind: str
    state: DState
    connection: str
    remote_path: str
    blob_id: str | None
    size: int


def any_due(w: Work) -> bool:
    """A cheap read first: most polls find nothing."""
    return w.execute(_DUE, {"now": utcnow()}).first() is not None


def claim(w: Work) -> Push | None:
    """Claim the push that is due first (a lease: a node that dies loses it)."""
    now = utcnow()
    due = w.execute(_DUE.with_for_update(skip_locked=True), {"now": now}).scalar()
    if due is None:
        return None
    until = now + timedelta(seconds=w.settings.lease_s)
    if w.execute(_CLAIM, {"did": due, "now": now, "owner": w.ctx.node_id,
                          "until": until}).rowcount != 1:  # type: ignore[attr-defined]
        return None
    d = w.execute(_CLAIMED, {"did": due}).one()
    return Push(d.id, d.transfer_id, d.tenant_id, d.kind, DState(d.state), d.connection or "",
                d.remote_path or "", d.output_blob_id, d.bytes_out or 0)


def sending(w: Work, delivery_id: str) -> None:
    """The output is on the target under its temporary name; the rename comes next. A
    node that dies after it finds the final name on its retry and records a delivery
    instead of sending again."""
    w.execute(_SET, {"did": delivery_id, "state": DState.SENDING})


def delivered(w: Work, push: Push) -> None:
    w.execute(_SET, {"did": push.delivery_id, "state": DState.DELIVERED, "done_at": utcnow(),
                     "error": None, "lease_owner": None, "lease_until": None})
    audit.record(w, push.tenant_id, Event.DELIVERY_DONE,
                 f"{push.transfer_id} to {push.connection}")
    settle(w, push.transfer_id)


def failed(w: Work, push: Push, reason: str, *, retry: bool = True) -> bool:
    """Record a failed attempt: tried again after a doubling backoff, or FAILED when the
    attempts are used up (or `retry` is False). Returns whether it is tried again."""
    attempts = w.execute(select(_D.c.attempts).where(_D.c.id == push.delivery_id)).scalar()
    again = retry and (attempts or 0) < w.settings.push_attempts
    values: dict[str, object] = {"did": push.delivery_id, "error": reason,
                                 "lease_owner": None, "lease_until": None}
    if again:
        backoff = w.settings.push_backoff_s * 2 ** ((attempts or 1) - 1)
        values["next_attempt_at"] = utcnow() + timedelta(seconds=backoff)
    else:
        values.update(state=DState.FAILED, done_at=utcnow())
        audit.record(w, push.tenant_id, Event.DELIVERY_FAILED,
                     f"{push.transfer_id} to {push.connection}: {reason}"[:600])
    w.execute(_SET, values)
    settle(w, push.transfer_id)
    return again
