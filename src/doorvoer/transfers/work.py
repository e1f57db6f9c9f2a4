"""Processing (P2, P3): claim received transfers, transform each input into its output,
erase the inputs, and schedule one delivery per target.

A worker does three steps, each its own unit of work: `claim` (a short write: the
leases, and the output blobs' keys), `transform` (no database writes: the vault and
DuckDB, for as long as it takes) and `record` (a short write for the whole batch).
Small inputs are claimed and recorded in batches: one write transaction for many files
keeps the worker's share of SQLite's single writer small, which the doors' uploads
would otherwise queue behind. A large input is claimed alone.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, BinaryIO, cast

from sqlalchemy import Table, bindparam, insert, or_, select, update

from doorvoer.audit import service as audit
from doorvoer.audit.events import Event
from doorvoer.context import Context
from doorvoer.db import FastRead, new_id, utcnow
from doorvoer.processes.models import Process
from doorvoer.processes.service import parsed_spec
from doorvoer.processes.spec import PickupTarget, ProcessSpec
from doorvoer.transfers.lifecycle import finish_all
from doorvoer.transfers.models import Delivery, DState, State, Transfer
from doorvoer.transfers.outbox import OutboxNames
from doorvoer.transforms import Limits, TransformError
from doorvoer.unit import Work
from doorvoer.vault.service import BlobWriter

log = logging.getLogger("doorvoer.transfers")

MAX_ATTEMPTS = 3
BATCH_FILES = 16
BATCH_BYTES = 1 << 20
_T: Table = Transfer.__table__  # type: ignore[assignment]
_P: Table = Process.__table__  # type: ignore[assignment]
_D: Table = Delivery.__table__  # type: ignore[assignment]
_WAITING = or_(_T.c.state == State.RECEIVED,
               (_T.c.state == State.PROCESSING) & (_T.c.lease_until < bindparam("now")))
_CANDIDATES = (select(_T.c.id, _T.c.bytes_in).where(_WAITING).order_by(_T.c.received_at)
               .limit(bindparam("limit")))
_CLAIM = (update(_T).where(_T.c.id.in_(bindparam("tids", expanding=True)), _WAITING)
          .values(state=State.PROCESSING, lease_owner=bindparam("owner"),
                  lease_until=bindparam("until"), attempts=_T.c.attempts + 1))
_CLAIMED = select(_T.c.id).where(_T.c.id.in_(bindparam("tids", expanding=True)),
                                 _T.c.state == State.PROCESSING,
                                 _T.c.lease_owner == bindparam("owner"),
                                 _T.c.lease_until == bindparam("until"))
_LEASES_OF = select(_T.c.id, _T.c.state, _T.c.lease_owner, _T.c.tenant_id).where(
    _T.c.id.in_(bindparam("tids", expanding=True)))
_PROCESSED = update(_T).where(_T.c.id == bindparam("tid"))
_INSERT_D = insert(_D)
_WORK_OF = FastRead(  # what a worker needs of a claimed transfer: its state, its process
    select(_T.c.state, _T.c.lease_owner, _T.c.attempts, _T.c.input_blob_id, _T.c.filename,
           _P.c.spec_yaml)
    .select_from(_T.outerjoin(_P, _P.c.id == _T.c.process_id))
    .where(_T.c.id == bindparam("tid")))


@dataclass
class Claim:
    """A transfer this worker now holds the processing lease of, with its output blob
    (prepared, its key registered in the claiming transaction)."""

    transfer_id: str
    output: BlobWriter


@dataclass
class Failed:
    """A transform that failed, and why (never quoting file content)."""

    transfer_id: str
    reason: str | None


@dataclass
class Done:
    """A transform that succeeded; `record` records it."""

    claim: Claim
    input_blob: str
    output_name: str
    spec: ProcessSpec
    size: int
    rows_in: int
    rows_out: int
    processed_at: datetime


Outcome = Done | Failed | State  # a State: nothing to record (erased meanwhile, say)
_CLAIMING = threading.Lock()


def claim(w: Work, limit: int = 1) -> list[Claim]:
    """Claim RECEIVED transfers (or ones whose processing lease ran out), oldest first:
    one, or up to `limit` small ones."""
    # The worker threads of a process wake together: one at a time here, until the
    # claim has committed, or each would prepare output blobs for the same transfers
    # and all but one would throw them away.
    _CLAIMING.acquire()
    w.after_commit(_CLAIMING.release)
    w.on_rollback(_CLAIMING.release)
    return _claim(w, limit)


def _claim(w: Work, limit: int) -> list[Claim]:
    now = utcnow()
    with w.ctx.engine.connect() as conn:  # a read first, before the write lock
        rows = conn.execute(_CANDIDATES, {"now": now, "limit": limit}).all()
    picked: list[str] = []
    total = 0
    for tid, size in rows:
        total += size or 0
        if picked and total > BATCH_BYTES:
            break
        picked.append(tid)
    if not picked:
        return []
    outputs = {tid: w.vault.prepare(tid, "output") for tid in picked}  # the files, too
    for output in outputs.values():
        w.on_rollback(output.abort)
    # Inside the lock, so that no other claim of this node has the same value.
    conn = w.conn
    until = utcnow() + timedelta(seconds=w.settings.lease_s)
    conn.execute(_CLAIM, {"tids": picked, "now": now, "owner": w.ctx.node_id, "until": until})
    mine = set(conn.execute(_CLAIMED, {"tids": picked, "owner": w.ctx.node_id,
                                       "until": until}).scalars())
    if mine:
        # Outputs of an attempt that a crash cut short.
        w.vault.erase(w, *w.vault.blobs_of(w, list(mine), "output"))
        w.vault.register(w, *(outputs[tid] for tid in picked if tid in mine))
    for tid, output in outputs.items():
        if tid not in mine:
            output.abort()  # another worker was first
    return [Claim(tid, outputs[tid]) for tid in picked if tid in mine]


def transform(ctx: Context, claim: Claim) -> Outcome:
    """Transform one claimed input into its output blob. Writes nothing to the database:
    the outcome is recorded with the batch's (`record`)."""
    transfer_id, writer = claim.transfer_id, claim.output
    row = _WORK_OF.first(ctx.engine, {"tid": transfer_id})
    if row is None:  # erased meanwhile (the tenant's erasure, say): nothing to do
        writer.abort()
        return State.DISCARDED
    if row.state != State.PROCESSING or row.lease_owner != ctx.node_id:
        writer.abort()
        return cast(State, row.state)
    spec = parsed_spec(row.spec_yaml) if row.spec_yaml is not None else None
    reason = None
    if spec is None:
        reason = "the process was removed before the file ran"
    elif row.attempts > MAX_ATTEMPTS:
        reason = f"processing did not finish in {MAX_ATTEMPTS} attempts"
    if reason is not None or spec is None:
        writer.abort()
        return Failed(transfer_id, reason)
    assert row.input_blob_id is not None
    from doorvoer.transforms.engine import render_filename, run_transform  # worker only

    error: str | None = None
    try:
        source = ctx.vault.open(ctx.engine, row.input_blob_id)
        try:
            result = run_transform(
                spec.read, spec.transform, spec.write, source, cast(BinaryIO, writer),
                Limits(memory_limit_mb=ctx.settings.transform_memory_mb,
                       time_limit_s=ctx.settings.transform_time_s),
            )
        finally:
            source.close()
        size = writer.close()
    except TransformError as exc:
        error = str(exc)
    except OSError as exc:
        error = f"storage: {exc.strerror or 'input/output error'}"
    except Exception as exc:  # noqa: BLE001 - the reason is logged by type, never content
        log.error("transform failed unexpectedly", extra={"transfer": transfer_id,
                                                          "exc_type": type(exc).__name__})
        error = f"internal error ({type(exc).__name__}); the operator has been told"
    if error is not None:
        writer.abort()
        return Failed(transfer_id, error)
    now = utcnow()
    return Done(claim, row.input_blob_id,
                render_filename(spec.write, row.filename, None, now.date()), spec, size,
                result.rows_in, result.rows_out, now)


def record(w: Work, outcomes: dict[str, Outcome]) -> dict[str, State]:
    """Record a batch of outcomes (transfer id -> outcome) in `w`: a statement or two per
    table rather than per file, since the doors' uploads queue behind it. Only
    transfers whose lease is still this worker's are changed (another node may have
    taken over, or the tenant erased it). Returns each transfer's state."""
    states = {tid: o for tid, o in outcomes.items() if isinstance(o, State)}
    todo = [tid for tid, o in outcomes.items() if not isinstance(o, State)]
    if not todo:
        return states
    leases = {r.id: r for r in w.execute(_LEASES_OF, {"tids": todo})}
    ours = {tid for tid in todo if (row := leases.get(tid)) is not None
            and row.state == State.PROCESSING and row.lease_owner == w.ctx.node_id}
    for tid in todo:
        if tid not in ours:  # erased meanwhile, or another node's outcome counts
            row = leases.get(tid)
            states[tid] = cast(State, row.state) if row is not None else State.DISCARDED
            outcome = outcomes[tid]
            if isinstance(outcome, Done):
                w.vault.erase(w, outcome.claim.output.blob_id)
    failed = {tid: o.reason for tid, o in outcomes.items()
              if isinstance(o, Failed) and tid in ours}
    if failed:
        finish_all(w, State.FAILED, failed, event=Event.TRANSFER_FAILED)
        states.update(dict.fromkeys(failed, State.FAILED))
    done = [o for tid, o in outcomes.items() if isinstance(o, Done) and tid in ours]
    if done:
        states.update(_record_done(w, done, {d.claim.transfer_id: leases[
            d.claim.transfer_id].tenant_id for d in done}))
    return states


def _record_done(w: Work, done: list[Done], tenant_of: dict[str, str]) -> dict[str, State]:
    states: dict[str, State] = {}
    deliveries: list[dict[str, Any]] = []
    processed: list[dict[str, Any]] = []
    names = OutboxNames(w)
    names.expect([(tenant_of[d.claim.transfer_id], target.pickup, d.output_name)
                  for d in done for target in d.spec.deliver
                  if isinstance(target, PickupTarget)])
    for d in done:
        tid = d.claim.transfer_id
        rows = _deliveries(tid, tenant_of[tid], d.output_name, d.spec, d.processed_at, names)
        deliveries += rows
        # Fresh deliveries: none is final yet, so this is what `settle` would derive.
        state = State.DELIVERING if any(r["kind"] != "pickup" for r in rows) else State.READY
        processed.append({
            "tid": tid, "output_blob_id": d.claim.output.blob_id,
            "output_name": d.output_name, "bytes_out": d.size, "rows_in": d.rows_in,
            "rows_out": d.rows_out, "processed_at": d.processed_at,
            "input_erased_at": utcnow(), "lease_owner": None, "lease_until": None,
            "state": state})
        states[tid] = state
        audit.record(w, tenant_of[tid], Event.TRANSFER_PROCESSED, tid)
        audit.record(w, tenant_of[tid], Event.INPUT_ERASED, tid)
    if deliveries:
        w.execute(_INSERT_D, deliveries)
    w.execute(_PROCESSED, processed)
    w.vault.erase(w, *(d.input_blob for d in done))
    return states


def _deliveries(transfer_id: str, tenant_id: str, output_name: str, spec: ProcessSpec,
                now: datetime, names: OutboxNames) -> list[dict[str, Any]]:
    """The rows of one delivery per target."""
    rows: list[dict[str, Any]] = []
    for no, target in enumerate(spec.deliver):
        row: dict[str, Any] = {
            "id": new_id(), "transfer_id": transfer_id, "tenant_id": tenant_id,
            "target_no": no, "attempts": 0, "outbox_folder": None, "outbox_name": None,
            "expires_at": None, "connection": None, "remote_path": None,
            "next_attempt_at": None}
        if isinstance(target, PickupTarget):
            row.update(kind="pickup", state=DState.READY, outbox_folder=target.pickup,
                       outbox_name=names.free(tenant_id, target.pickup, output_name),
                       expires_at=now + spec.retention.pickup_within)
        else:
            row.update(kind="sftp", state=DState.PENDING,
                       connection=target.sftp.connection,
                       remote_path=target.sftp.path.rstrip("/") + "/" + output_name,
                       next_attempt_at=now)
        rows.append(row)
    return rows
