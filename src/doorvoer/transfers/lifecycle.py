"""How a transfer ends (P2, P4), and the time-driven steps around it.

`finish_all` is the one place where a transfer ends: every blob it owns is erased,
why and when is recorded, and where its tenant or process keeps no reports (P4) its
record is forgotten. `settle` derives a delivered transfer's state from its deliveries.
`heartbeat` keeps this node's leases alive, `housekeeping` moves what time has moved
(a rename that never came, an upload cut off, a pickup not fetched), and
`residue_sweep` erases at start-up every blob that no live transfer owns.

Reporting off (the tenant's switch, or `report: false` in a process's spec) means that
no per-transfer record outlives the transfer. Nothing else is kept in its place, no
daily aggregate either. The one exception is what the transfer itself still needs: an
inbox file stays stat-able for `stat_grace_s` after its upload closed (rclone stats
what it just wrote, and uploads again when that fails), so a transfer that ends within
that grace is forgotten by the housekeeping right after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, Table, bindparam, delete, func, or_, select, update

from doorvoer.audit import service as audit
from doorvoer.audit.events import Event
from doorvoer.db import UTCDateTime, checkpoint, utcnow
from doorvoer.processes.models import Process
from doorvoer.processes.service import keeps_reports, unreported_process_ids, window_open_on
from doorvoer.tenants.models import Tenant
from doorvoer.tenants.service import set_report
from doorvoer.transfers.models import DFINAL, FINAL, Delivery, DState, State, Transfer
from doorvoer.unit import Work
from doorvoer.vault.models import BlobKey

_T: Table = Transfer.__table__  # type: ignore[assignment]
_D: Table = Delivery.__table__  # type: ignore[assignment]
LIVE = frozenset({State.RECEIVING, State.HELD, State.RECEIVED, State.PROCESSING,
                  State.DELIVERING, State.READY})
_STATE_OF = select(_T.c.state).where(_T.c.id == bindparam("tid"))
_DELIVERIES_OF = (select(_D.c.kind, _D.c.state, _D.c.target_no, _D.c.error, _D.c.done_at)
                  .where(_D.c.transfer_id == bindparam("tid")).order_by(_D.c.target_no))
_END_DELIVERIES = (update(_D)
                   .where(_D.c.transfer_id.in_(bindparam("tids", expanding=True)),
                          _D.c.state.not_in(list(DFINAL)))
                   .values(state=DState.FAILED, done_at=bindparam("now")))
_END = update(_T).where(_T.c.id == bindparam("tid")).values(
    state=bindparam("end_state"), error=bindparam("reason"), erased_at=bindparam("now"),
    input_erased_at=func.coalesce(_T.c.input_erased_at, bindparam("now", type_=UTCDateTime())),
    delivered_at=func.coalesce(bindparam("delivered", type_=UTCDateTime()), _T.c.delivered_at),
    lease_owner=None, lease_until=None, hold_until=None)
_P: Table = Process.__table__  # type: ignore[assignment]
_ABOUT = (select(_T.c.id, _T.c.tenant_id, _T.c.input_erased_at, _T.c.output_blob_id,
                 _P.c.inspect_window, _P.c.inspect_until)
          .select_from(_T.outerjoin(_P, _P.c.id == _T.c.process_id))
          .where(_T.c.id.in_(bindparam("tids", expanding=True))))
_KEEP = update(_T).where(_T.c.id == bindparam("tid")).values(
    state=State.FAILED, error=bindparam("reason"), kept_for=bindparam("window"),
    lease_owner=None, lease_until=None, hold_until=None)
_KEPT = select(_T.c.id, _T.c.tenant_id, _T.c.input_erased_at, _T.c.output_blob_id).where(
    _T.c.kept_for == bindparam("window"))
_RELEASE = update(_T).where(_T.c.kept_for == bindparam("window")).values(
    kept_for=None, erased_at=bindparam("now"),
    input_erased_at=func.coalesce(_T.c.input_erased_at, bindparam("now", type_=UTCDateTime())))
_SETTLED = update(_T).where(_T.c.id == bindparam("tid")).values(
    state=bindparam("new_state"), error=bindparam("reason"))
_REPORTING = (
    select(_T.c.state, _T.c.received_at, _T.c.kept_for, Tenant.report, Process.spec_yaml)
    .select_from(_T)
    .outerjoin(Tenant, Tenant.id == _T.c.tenant_id)
    .outerjoin(Process, Process.id == _T.c.process_id)
    .where(_T.c.id == bindparam("tid")))


def finish(w: Work, transfer_id: str, state: State, reason: str | None,
           delivered_at: datetime | None = None, event: Event | None = None) -> None:
    """End a transfer (see `finish_all`)."""
    finish_all(w, state, {transfer_id: reason}, delivered_at, event)


def finish_all(w: Work, state: State, reasons: dict[str, str | None],
               delivered_at: datetime | None = None, event: Event | None = None) -> None:
    """End transfers (id -> reason): erase every blob they own, record why and when,
    and put `event` (why they end, if the caller has not recorded it) and each erasure
    in the tenants' audit logs. Plain statements, a batch at a time, so that it is as
    cheap on the doors' and the worker's paths as in housekeeping.

    The one exception (P6): a transfer that fails while an inspection window is open on
    its process keeps its files, encrypted as always, for that window (`kept_for`);
    `erase_kept` erases them when the window closes."""
    now = utcnow()
    tids = list(reasons)
    kept: dict[str, str] = {}
    aborted: list[str] = []  # kept after a failed transform: its output never finished
    for row in w.execute(_ABOUT, {"tids": tids}):
        if event is not None:
            audit.record(w, row.tenant_id, event, row.id)
        window = window_open_on(row.inspect_window, row.inspect_until, now)
        if state == State.FAILED and window is not None:
            kept[row.id] = window
            audit.record(w, row.tenant_id, Event.INSPECT_FILE_KEPT,
                         f"{row.id} (window {window})")
            if row.output_blob_id is None:
                aborted.append(row.id)
        else:
            _record_erasures(w, row)
    gone = [tid for tid in tids if tid not in kept]
    w.vault.erase_owned(w, *gone)
    if aborted:
        w.vault.erase(w, *w.vault.blobs_of(w, aborted, "output"))
    w.execute(_END_DELIVERIES, {"tids": tids, "now": now})
    if gone:
        w.execute(_END, [{"tid": tid, "end_state": state, "reason": reasons[tid], "now": now,
                          "delivered": delivered_at} for tid in gone])
    if kept:
        w.execute(_KEEP, [{"tid": tid, "reason": reasons[tid], "window": window}
                          for tid, window in kept.items()])
    for tid in gone:
        forget_if_unreported(w, tid)


def erase_kept(w: Work, window_id: str) -> int:
    """Erase the files kept for an inspection window that closes, as `finish_all` would
    have erased them; returns how many transfers had files kept."""
    rows = w.execute(_KEPT, {"window": window_id}).all()
    for row in rows:
        _record_erasures(w, row)
    ids = [row.id for row in rows]
    w.vault.erase_owned(w, *ids)
    w.execute(_RELEASE, {"window": window_id, "now": utcnow()})
    for tid in ids:
        forget_if_unreported(w, tid)
    return len(ids)


def _record_erasures(w: Work, row: Row[Any]) -> None:
    if row.input_erased_at is None:
        audit.record(w, row.tenant_id, Event.INPUT_ERASED, row.id)
    if row.output_blob_id is not None:
        audit.record(w, row.tenant_id, Event.OUTPUT_ERASED, row.id)


def settle(w: Work, transfer_id: str) -> None:
    """Derive the transfer's state from its deliveries; end it when all are done."""
    state = w.execute(_STATE_OF, {"tid": transfer_id}).scalar()
    if state not in (State.DELIVERING, State.READY):
        return
    deliveries = w.execute(_DELIVERIES_OF, {"tid": transfer_id}).all()
    failed = [d for d in deliveries if d.state in (DState.FAILED, DState.EXPIRED)]
    # A failed target is reported at once, even while another still waits.
    error = "; ".join(
        f"target {d.target_no + 1} ({d.kind}): {d.error or d.state.lower()}" for d in failed
    ) or None
    if all(d.state in DFINAL for d in deliveries):
        done = [d.done_at for d in deliveries if d.done_at is not None]
        delivered = max(done) if done and not failed else None
        finish(w, transfer_id, State.FAILED if failed else State.ERASED, error, delivered)
        return
    pending_push = any(d.kind != "pickup" and d.state not in DFINAL for d in deliveries)
    w.execute(_SETTLED, {"tid": transfer_id, "reason": error,
                         "new_state": State.DELIVERING if pending_push else State.READY})


# ---------------------------------------------------------------- time-driven


def heartbeat(w: Work) -> None:
    """Extend this node's leases: open uploads, processing, pushes."""
    until = utcnow() + timedelta(seconds=w.settings.lease_s)
    node = w.ctx.node_id
    w.execute(update(_T).where(_T.c.lease_owner == node,
                               _T.c.state.in_([State.RECEIVING, State.PROCESSING]))
              .values(lease_until=until))
    w.execute(update(_D).where(_D.c.lease_owner == node,
                               _D.c.state.in_([DState.PENDING, DState.SENDING]))
              .values(lease_until=until))


def housekeeping(w: Work) -> int:
    """Time-driven transitions. Returns how many transfers changed."""
    now = utcnow()
    grace = timedelta(seconds=w.settings.fetch_grace_s)
    held = w.execute(select(_T.c.id).where(_T.c.state == State.HELD,
                                           _T.c.hold_until < now)).scalars().all()
    if held:
        finish_all(w, State.DISCARDED, dict.fromkeys(
            held, "no process matches this name, and it was not renamed in time"),
            event=Event.UPLOAD_DISCARDED)
    cut = w.execute(select(_T.c.id).where(_T.c.state == State.RECEIVING,
                                          _T.c.lease_until < now)).scalars().all()
    if cut:
        finish_all(w, State.INTERRUPTED, dict.fromkeys(
            cut, "the upload was cut off (the node stopped before the client closed)"),
            event=Event.UPLOAD_INTERRUPTED)
    expired = w.execute(
        update(_D).where(_D.c.state == DState.READY, _D.c.expires_at < now)
        .values(state=DState.EXPIRED, error="not fetched within pickup_within", done_at=now)
        .returning(_D.c.transfer_id, _D.c.tenant_id)).all()
    for row in expired:
        audit.record(w, row.tenant_id, Event.OUTBOX_EXPIRED, row.transfer_id)
    touched = {row.transfer_id for row in expired}
    touched |= set(w.execute(
        update(_D).where(_D.c.state == DState.FETCHED, _D.c.fetched_at < now - grace)
        .values(state=DState.PICKED_UP).returning(_D.c.transfer_id)).scalars())
    for tid in touched:
        settle(w, tid)
    # P4: records that ended within the stat grace of a tenant without reports.
    return len(held) + len(cut) + len(touched) + purge_unreported(w, now)


def residue_sweep(w: Work) -> int:
    """At start-up: erase every blob that no live transfer owns. Returns how many."""
    keys = w.execute(
        select(BlobKey.blob_id, _T.c.state, _T.c.input_blob_id, _T.c.output_blob_id,
               _T.c.kept_for)
        .select_from(BlobKey.__table__.outerjoin(_T, _T.c.id == BlobKey.owner_id))).all()
    residue = [k.blob_id for k in keys if not (
        (k.state in LIVE or k.kept_for is not None)  # kept: until its window closes (P6)
        and (k.blob_id in (k.input_blob_id, k.output_blob_id)
             or k.state in (State.RECEIVING, State.PROCESSING)))]
    w.vault.erase(w, *residue)
    w.after_commit(lambda: checkpoint(w.ctx.engine))
    return len(residue) + w.vault.sweep_files(w)


# ---------------------------------------------------------------- forgetting (P4)


def forget_if_unreported(w: Work, transfer_id: str) -> None:
    """Called where a transfer ends: forget its record when its tenant or process keeps
    no reports. Within the stat grace the row stays (the client may still stat the file
    it just wrote); `purge_unreported` forgets it then."""
    row = w.execute(_REPORTING, {"tid": transfer_id}).first()
    if row is None or State(row.state) not in FINAL or row.kept_for is not None:
        return
    if row.report and (row.spec_yaml is None or keeps_reports(row.spec_yaml)):
        return
    grace = timedelta(seconds=w.settings.stat_grace_s)
    if row.received_at is None or row.received_at < utcnow() - grace:
        _forget(w, [transfer_id])


def purge_unreported(w: Work, now: datetime | None = None,
                     tenant_id: str | None = None) -> int:
    """Forget the records of finished transfers that no report may keep: of tenants with
    reporting off and of processes with `report: false`. Returns how many."""
    now = now or utcnow()
    grace = now - timedelta(seconds=w.settings.stat_grace_s)
    off: ColumnElement[bool] = _T.c.tenant_id.in_(
        select(Tenant.id).where(Tenant.report.is_(False)))
    processes = unreported_process_ids(w, tenant_id)
    if processes:
        off = or_(off, _T.c.process_id.in_(processes))
    q = select(_T.c.id).where(_T.c.state.in_(FINAL), off, _T.c.kept_for.is_(None),
                              or_(_T.c.received_at.is_(None), _T.c.received_at < grace))
    if tenant_id is not None:
        q = q.where(_T.c.tenant_id == tenant_id)
    ids = list(w.execute(q).scalars())
    _forget(w, ids)
    return len(ids)


def set_reporting(w: Work, tenant: Tenant, on: bool) -> int:
    """The tenant's switch (P4). Off forgets at once the records kept so far (of finished
    transfers), so that "no per-transfer records are kept" is true from that moment.
    Returns how many records were forgotten."""
    set_report(w, tenant, on)
    forgotten = 0 if on else purge_unreported(w, tenant_id=tenant.id)
    audit.record(w, tenant.id, Event.TENANT_REPORTING_CHANGED,
                 "on" if on else f"off ({forgotten} records forgotten)")
    return forgotten


def _forget(w: Work, ids: Sequence[str]) -> None:
    if not ids:
        return
    for chunk in (ids[i:i + 500] for i in range(0, len(ids), 500)):
        w.execute(delete(_D).where(_D.c.transfer_id.in_(chunk)))
        w.execute(delete(_T).where(_T.c.id.in_(chunk)))
    session = w.open_session
    if session is not None:
        gone = set(ids)
        for obj in list(session.identity_map.values()):
            if (isinstance(obj, Transfer) and obj.id in gone) or (
                    isinstance(obj, Delivery) and obj.transfer_id in gone):
                session.expunge(obj)


def erase_tenant(w: Work, tenant: Tenant) -> dict[str, int]:
    """A tenant's erasure (P19), this area's part: every blob its transfers own (keys
    now, files after the commit), its deliveries and its transfer records, live or not.
    A worker still transforming one of them finds its claim gone and discards its
    output. Returns the rows per kind."""
    transfers = select(_T.c.id).where(_T.c.tenant_id == tenant.id)
    blobs = list(w.execute(select(BlobKey.blob_id).where(
        BlobKey.owner_id.in_(transfers))).scalars())
    w.vault.erase(w, *blobs)
    deliveries = w.changed(delete(_D).where(or_(_D.c.tenant_id == tenant.id,
                                                _D.c.transfer_id.in_(transfers))))
    records = w.changed(delete(_T).where(_T.c.tenant_id == tenant.id))
    return {"blobs": len(blobs), "deliveries": deliveries, "transfers": records}
