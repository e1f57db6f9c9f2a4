"""The transfer state machine (P2): the only code that moves a transfer between states.

RECEIVING -> (HELD ->) RECEIVED -> PROCESSING -> DELIVERING/READY -> ERASED, or FAILED,
INTERRUPTED, DISCARDED. Every step is one database transaction, so a node that dies
mid-way leaves a state that the next one resumes from (leases expire).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, BinaryIO, cast

from sqlalchemy import Connection, Table, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from doorvoer.context import Context
from doorvoer.db import (
    FastRead,
    FastWrite,
    UTCDateTime,
    checkpoint,
    new_id,
    transaction,
    utcnow,
    writing,
)
from doorvoer.processes.models import Process
from doorvoer.processes.service import parsed_spec
from doorvoer.processes.spec import PickupTarget, ProcessSpec
from doorvoer.reports.service import forget_if_unreported, purge_unreported
from doorvoer.transfers.models import DFINAL, FINAL, Delivery, DState, State, Transfer
from doorvoer.transforms import Limits, TransformError
from doorvoer.vault.models import BlobKey
from doorvoer.vault.service import BlobWriter

log = logging.getLogger("doorvoer.transfers")

TEMP_SUFFIXES = (".filepart", ".part", ".partial", ".tmp", "~")
MAX_ATTEMPTS = 3
_T: Table = Transfer.__table__  # type: ignore[assignment]
_P: Table = Process.__table__  # type: ignore[assignment]
# The statements of an upload's open and close, built once (the cache does the rest).
_INSERT_T = FastWrite(insert(_T))
_NAME_OF = FastRead(  # the upload's name now, and the process of its folder
    select(_T.c.folder, _T.c.filename, _P.c.id, _P.c.name, _P.c.spec_yaml)
    .select_from(_T.outerjoin(_P, (_P.c.tenant_id == _T.c.tenant_id)
                              & (_P.c.folder == _T.c.folder)))
    .where(_T.c.id == bindparam("tid")))
_RECEIVED = FastWrite(update(_T).where(_T.c.id == bindparam("tid")))
_PROCESS_OF = select(_P.c.id, _P.c.name, _P.c.spec_yaml).where(
    _P.c.tenant_id == bindparam("tenant"), _P.c.folder == bindparam("folder"))
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
_D: Table = Delivery.__table__  # type: ignore[assignment]
_INSERT_D = insert(_D)
_LEASES_OF = select(_T.c.id, _T.c.state, _T.c.lease_owner, _T.c.tenant_id).where(
    _T.c.id.in_(bindparam("tids", expanding=True)))
_PROCESSED = update(_T).where(_T.c.id == bindparam("tid"))
# The end of a transfer (`_finish`) and the derivation of its state (`_settle`).
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
# The outbox.
_PICKUP = (select(_D.c.id, _D.c.state, _D.c.transfer_id)
           .where(_D.c.tenant_id == bindparam("tenant"), _D.c.kind == "pickup",
                  _D.c.outbox_folder == bindparam("folder"),
                  _D.c.outbox_name == bindparam("name"),
                  _D.c.state.in_([DState.READY, DState.FETCHED]))
           .limit(1))
_PICKED = update(_D).where(_D.c.id == bindparam("did")).values(
    state=bindparam("new_state"),
    done_at=func.coalesce(_D.c.done_at, bindparam("now", type_=UTCDateTime())))
_FETCHED = update(_D).where(_D.c.id == bindparam("did"), _D.c.state == DState.READY).values(
    state=DState.FETCHED, fetched_at=bindparam("now"), done_at=bindparam("now"))
_SETTLED = update(_T).where(_T.c.id == bindparam("tid")).values(
    state=bindparam("new_state"), error=bindparam("reason"))
_WAITING_AMONG = select(_D.c.outbox_name).where(  # which of these names are taken
    _D.c.tenant_id == bindparam("tenant"), _D.c.outbox_folder == bindparam("folder"),
    _D.c.outbox_name.in_(bindparam("names", expanding=True)),
    _D.c.state.in_([DState.READY, DState.FETCHED]))
# What a worker needs of a claimed transfer: its state and its process.
_WORK_OF = FastRead(
    select(_T.c.state, _T.c.lease_owner, _T.c.attempts, _T.c.input_blob_id, _T.c.filename,
           _P.c.spec_yaml)
    .select_from(_T.outerjoin(_P, _P.c.id == _T.c.process_id))
    .where(_T.c.id == bindparam("tid")))
_INBOX = (  # what a client sees of an inbox folder: waiting, or closed within the grace
    select(_T.c.id, _T.c.filename, _T.c.bytes_in, _T.c.received_at, _T.c.opened_at)
    .where(_T.c.tenant_id == bindparam("tenant"), _T.c.folder == bindparam("folder"),
           # (equalities, not IN: a FastRead takes no list parameters)
           or_(_T.c.state == State.RECEIVING, _T.c.state == State.HELD,
               _T.c.state == State.RECEIVED, _T.c.received_at >= bindparam("grace"))))
_INBOX_LIST = _INBOX.order_by(_T.c.opened_at)  # a later upload of a name wins
_INBOX_ENTRY = FastRead(_INBOX.where(_T.c.filename == bindparam("name"))
                        .order_by(_T.c.opened_at.desc()).limit(1))


def is_temporary(name: str) -> bool:
    """Names clients upload under before renaming: they never match a process."""
    return name.startswith(".") or name.lower().endswith(TEMP_SUFFIXES)


class Conflict(Exception):
    """The name is taken, or the transfer is in a state that does not allow this."""


# ---------------------------------------------------------------- receiving


@dataclass
class Upload:
    transfer_id: str
    writer: BlobWriter


def begin_upload(
    ctx: Context, tenant_id: str, account_id: str | None, folder: str, filename: str
) -> Upload:
    """The transfer row exists from OPEN, so even a crash leaves something to report."""
    now = utcnow()
    transfer_id = new_id()
    writer = ctx.vault.prepare(transfer_id, "input")  # the file, outside the write lock
    try:
        with writing(ctx.engine) as conn:
            ctx.vault.register(conn, writer)
            _INSERT_T(conn, {
                "id": transfer_id, "tenant_id": tenant_id, "account_id": account_id,
                "folder": folder, "filename": filename, "state": State.RECEIVING,
                "opened_at": now, "lease_owner": ctx.node_id,
                "lease_until": now + timedelta(seconds=ctx.settings.lease_s),
                "input_blob_id": writer.blob_id, "attempts": 0,
            })
    except BaseException:
        writer.abort()
        raise
    return Upload(transfer_id, writer)


def complete_upload(ctx: Context, upload: Upload) -> State:
    """The client closed the file and every byte from 0 to the end arrived."""
    try:
        size = upload.writer.close()
    except OSError as exc:
        return interrupt_upload(ctx, upload, f"upload could not be stored: {exc.strerror}")
    now = utcnow()
    with writing(ctx.engine) as conn:
        # The name may have changed since OPEN: a rename while the file was open.
        row = _NAME_OF.first(conn, {"tid": upload.transfer_id})
        if row is None:  # erased (the tenant's erasure, say) while it was open
            raise Conflict("the upload was removed while it was open")
        route = _route(ctx, row.folder, row.filename, row if row.id else None, now)
        _RECEIVED(conn, {"tid": upload.transfer_id, "bytes_in": size, "received_at": now,
                         "lease_owner": None, "lease_until": None, "process_id": None,
                         "process_name": None, **route})
    if route["state"] == State.RECEIVED:
        ctx.nudge()
    return cast(State, route["state"])


def interrupt_upload(ctx: Context, upload: Upload, reason: str) -> State:
    """An upload that did not complete is never processed: erase it and report."""
    upload.writer.abort()
    with writing(ctx.engine) as conn:
        _finish(conn, ctx, upload.transfer_id, State.INTERRUPTED, reason)
    return State.INTERRUPTED


def _routing(db: Session | Connection, ctx: Context, tenant_id: str, folder: str,
             filename: str, now: datetime) -> dict[str, Any]:
    """A complete upload under a final name that a process matches is RECEIVED; any
    other waits (HELD) for a rename. Returns the columns to set."""
    process = None
    if not is_temporary(filename):
        process = db.execute(_PROCESS_OF, {"tenant": tenant_id, "folder": folder}).first()
    return _route(ctx, folder, filename, process, now)


def _route(ctx: Context, folder: str, filename: str, process: Any, now: datetime
           ) -> dict[str, Any]:
    """`_routing`, given the process of the folder (id, name, spec_yaml) or None."""
    if (process is not None and not is_temporary(filename)
            and parsed_spec(process.spec_yaml).matches(folder, filename)):
        return {"state": State.RECEIVED, "process_id": process.id,
                "process_name": process.name, "hold_until": None}
    return {"state": State.HELD,
            "hold_until": now + timedelta(seconds=ctx.settings.rename_wait_s)}


def rename_upload(
    ctx: Context, tenant_id: str, old: tuple[str, str], new: tuple[str, str]
) -> None:
    """Rename an inbox file that is still open or held; routing follows the new name."""
    now = utcnow()
    routed = False
    with transaction(ctx.sessions) as s:
        t = _inbox_file(s, ctx, tenant_id, *old, now)
        if t is None:
            raise FileNotFoundError
        if t.state not in (State.RECEIVING, State.HELD):
            raise Conflict("the file is already being processed and cannot be renamed")
        if _inbox_file(s, ctx, tenant_id, *new, now) is not None:
            raise Conflict("a file of that name is waiting already")
        t.folder, t.filename = new
        if t.state == State.HELD:
            route = _routing(s, ctx, tenant_id, *new, now)
            for column, value in route.items():
                setattr(t, column, value)
            routed = route["state"] == State.RECEIVED
    if routed:
        ctx.nudge()


def remove_upload(ctx: Context, tenant_id: str, folder: str, name: str) -> None:
    """The client deletes a file it left under a temporary or unmatched name."""
    now = utcnow()
    with transaction(ctx.sessions) as s:
        t = _inbox_file(s, ctx, tenant_id, folder, name, now)
        if t is None:
            raise FileNotFoundError
        if t.state != State.HELD:
            raise Conflict("only a file waiting for a rename can be removed")
        _finish(s, ctx, t.id, State.DISCARDED, "removed by the client before processing")


def _inbox_file(
    s: Session, ctx: Context, tenant_id: str, folder: str, name: str, now: datetime
) -> Transfer | None:
    grace = now - timedelta(seconds=ctx.settings.stat_grace_s)
    row = _INBOX_ENTRY.first(s, {"tenant": tenant_id, "folder": folder, "name": name,
                                 "grace": grace})
    return s.get(Transfer, row.id) if row is not None else None


@dataclass(frozen=True)
class Entry:
    name: str
    size: int
    mtime: datetime


def inbox_entries(ctx: Context, tenant_id: str, folder: str) -> list[Entry]:
    """What a client may see of its inbox folder: waiting files, and files closed within
    the stat grace (rclone stats what it just wrote). Plain Core: clients list the folder
    they upload to, and it may hold many files waiting for the worker."""
    grace = utcnow() - timedelta(seconds=ctx.settings.stat_grace_s)
    out: dict[str, Entry] = {}
    with ctx.engine.connect() as conn:
        for row in conn.execute(_INBOX_LIST, {"tenant": tenant_id, "folder": folder,
                                              "grace": grace}):
            out[row.filename] = Entry(row.filename, row.bytes_in or 0,
                                      row.received_at or row.opened_at)
    return list(out.values())


def inbox_entry(ctx: Context, tenant_id: str, folder: str, name: str) -> Entry | None:
    """One file of an inbox folder (what the client may stat), in plain Core: clients
    stat every file they put."""
    grace = utcnow() - timedelta(seconds=ctx.settings.stat_grace_s)
    row = _INBOX_ENTRY.first(ctx.engine, {"tenant": tenant_id, "folder": folder, "name": name,
                                          "grace": grace})
    if row is None:
        return None
    return Entry(row.filename, row.bytes_in or 0, row.received_at or row.opened_at)


# ---------------------------------------------------------------- processing


# Small inputs are claimed and finished in batches: one write transaction for many
# files keeps the worker's share of SQLite's single writer small, which the doors'
# uploads would otherwise queue behind. A large input is claimed alone.
BATCH_FILES = 16
BATCH_BYTES = 1 << 20


@dataclass
class Claim:
    """A transfer this worker now holds the processing lease of, with its output blob
    (prepared, its key registered in the claiming transaction)."""

    transfer_id: str
    output: BlobWriter


_CLAIMING = threading.Lock()


def claim_next(ctx: Context, limit: int = 1) -> list[Claim]:
    """Claim RECEIVED transfers (or ones whose processing lease ran out), oldest first:
    one, or up to `limit` small ones."""
    # The worker threads of a process wake together: one at a time here, or each would
    # prepare output blobs for the same transfers and all but one would throw them away.
    with _CLAIMING:
        return _claim_next(ctx, limit)


def _claim_next(ctx: Context, limit: int) -> list[Claim]:
    now = utcnow()
    with ctx.engine.connect() as conn:  # a read first, without the write lock
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
    # The files, outside the write lock.
    outputs = {tid: ctx.vault.prepare(tid, "output") for tid in picked}
    mine: list[str] = []
    try:
        with writing(ctx.engine) as conn:
            # Inside the lock, so that no other claim of this node has the same value.
            until = utcnow() + timedelta(seconds=ctx.settings.lease_s)
            conn.execute(_CLAIM, {"tids": picked, "now": now, "owner": ctx.node_id,
                                  "until": until})
            mine = list(conn.execute(_CLAIMED, {"tids": picked, "owner": ctx.node_id,
                                                "until": until}).scalars())
            if mine:
                # Outputs of an attempt that a crash cut short.
                ctx.vault.erase(conn, *ctx.vault.blobs_of(conn, mine, "output"))
                ctx.vault.register(conn, *(outputs[tid] for tid in mine))
    except BaseException:
        for output in outputs.values():
            output.abort()
        raise
    for tid, output in outputs.items():
        if tid not in mine:
            output.abort()  # another worker was first
    return [Claim(tid, outputs[tid]) for tid in picked if tid in mine]


@dataclass
class _Failed:
    """A transform that failed, and why (never quoting file content)."""

    transfer_id: str
    reason: str | None


@dataclass
class _Done:
    """A transform that succeeded; the shared transaction at the end records it."""

    claim: Claim
    input_blob: str
    output_name: str
    spec: ProcessSpec
    size: int
    rows_in: int
    rows_out: int
    processed_at: datetime


def process_transfer(ctx: Context, claim: Claim) -> State:
    """Transform one claimed transfer (see `process_claims`)."""
    return process_claims(ctx, [claim])[claim.transfer_id]


def process_claims(ctx: Context, claims: list[Claim]) -> dict[str, State]:
    """Transform each input into its output, erase the inputs, create the deliveries.
    Runs in a worker thread (in a worker process by default). The outcomes are recorded
    together at the end, in one short write transaction for the failures and one for
    the successes, whatever the batch: a tenant whose files all fail takes no more of
    SQLite's single writer than one whose files succeed. Returns each transfer's state."""
    states: dict[str, State] = {}
    done: list[_Done] = []
    failed: list[_Failed] = []
    for claim in claims:
        outcome = _transform(ctx, claim)
        if isinstance(outcome, _Done):
            done.append(outcome)
        elif isinstance(outcome, _Failed):
            failed.append(outcome)
        else:
            states[claim.transfer_id] = outcome
    if failed:
        states.update(_record_failures(ctx, failed))
    if done:
        states.update(_record(ctx, done))
    return states


def _transform(ctx: Context, claim: Claim) -> _Done | _Failed | State:
    transfer_id, writer = claim.transfer_id, claim.output
    row = _WORK_OF.first(ctx.engine, {"tid": transfer_id})
    if row is None:  # erased meanwhile (the tenant's erasure, say): nothing to do
        writer.abort()
        return State.DISCARDED
    if row.state != State.PROCESSING or row.lease_owner != ctx.node_id:
        writer.abort()
        return cast(State, row.state)
    attempts, input_blob, filename = row.attempts, row.input_blob_id, row.filename
    spec = parsed_spec(row.spec_yaml) if row.spec_yaml is not None else None
    reason = None
    if spec is None:
        reason = "the process was removed before the file ran"
    elif attempts > MAX_ATTEMPTS:
        reason = f"processing did not finish in {MAX_ATTEMPTS} attempts"
    if reason is not None or spec is None:
        writer.abort()
        return _Failed(transfer_id, reason)
    assert input_blob is not None
    from doorvoer.transforms.engine import render_filename, run_transform  # worker only

    error: str | None = None
    try:
        source = ctx.vault.open(ctx.engine, input_blob)
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
        return _Failed(transfer_id, error)
    now = utcnow()
    return _Done(claim, input_blob, render_filename(spec.write, filename, None, now.date()),
                 spec, size, result.rows_in, result.rows_out, now)


def _record_failures(ctx: Context, failed: list[_Failed]) -> dict[str, State]:
    """End the transfers whose transform failed (their output blobs are aborted
    already) in one short write transaction."""
    states: dict[str, State] = {}
    reasons: dict[str, str | None] = {}
    with writing(ctx.engine) as conn:
        leases = {r.id: r for r in conn.execute(
            _LEASES_OF, {"tids": [f.transfer_id for f in failed]})}
        for f in failed:
            row = leases.get(f.transfer_id)
            if row is None:  # erased meanwhile
                states[f.transfer_id] = State.DISCARDED
            elif row.state != State.PROCESSING or row.lease_owner != ctx.node_id:
                states[f.transfer_id] = cast(State, row.state)  # another node's outcome
            else:
                reasons[f.transfer_id] = f.reason
                states[f.transfer_id] = State.FAILED
        if reasons:
            _finish_all(conn, ctx, State.FAILED, reasons)
    return states


def _record(ctx: Context, done: list[_Done]) -> dict[str, State]:
    """One write transaction for a batch of finished transforms, a statement or two
    per table rather than per file: the doors' uploads queue behind it."""
    states: dict[str, State] = {}
    shredded: list[str] = []
    deliveries: list[dict[str, Any]] = []
    processed: list[dict[str, Any]] = []
    with writing(ctx.engine) as conn:
        leases = {r.id: r for r in conn.execute(
            _LEASES_OF, {"tids": [d.claim.transfer_id for d in done]})}
        names = _OutboxNames(conn)
        names.expect([(leases[d.claim.transfer_id].tenant_id, target.pickup, d.output_name)
                      for d in done if d.claim.transfer_id in leases
                      for target in d.spec.deliver if isinstance(target, PickupTarget)])
        for d in done:
            tid = d.claim.transfer_id
            row = leases.get(tid)
            if row is None or row.state != State.PROCESSING or row.lease_owner != ctx.node_id:
                # Erased meanwhile, or another node took over (its output counts).
                states[tid] = cast(State, row.state) if row is not None else State.DISCARDED
                shredded.append(d.claim.output.blob_id)
                continue
            rows = _deliveries(tid, row.tenant_id, d.output_name, d.spec, d.processed_at,
                               names)
            deliveries += rows
            # Fresh deliveries: none is final yet, so this is what _settle would derive.
            state = (State.DELIVERING if any(r["kind"] != "pickup" for r in rows)
                     else State.READY)
            processed.append({
                "tid": tid, "output_blob_id": d.claim.output.blob_id,
                "output_name": d.output_name, "bytes_out": d.size, "rows_in": d.rows_in,
                "rows_out": d.rows_out, "processed_at": d.processed_at,
                "input_erased_at": utcnow(), "lease_owner": None, "lease_until": None,
                "state": state})
            states[tid] = state
            shredded.append(d.input_blob)
        if deliveries:
            conn.execute(_INSERT_D, deliveries)
        if processed:
            conn.execute(_PROCESSED, processed)
        ctx.vault.erase(conn, *shredded)
    return states


class _OutboxNames:
    """Names taken in outbox folders (waiting outputs, and those of this batch): an
    output never overwrites another still waiting, its name gets -{seq}. The waiting
    names are looked up by exact name on the outbox index (a folder may hold many
    thousands, and a pattern, LIKE, would read them all on SQLite, where LIKE ignores
    case and so skips the index): for a whole batch at once (`expect`), the first few
    candidates of each name, and NAMES_AT_ONCE more per query where those are taken.
    The batch's write transaction holds SQLite's writer lock, which uploads wait for."""

    NAMES_AT_ONCE = 32
    EXPECTED_AT_ONCE = 4  # candidates per name looked up by `expect`
    MAX_PARAMETERS = 500  # per query

    def __init__(self, db: Connection) -> None:
        self._db = db
        self._checked: dict[tuple[str, str], set[str]] = {}  # looked up, per folder
        # of those, the waiting ones, and the names given out in this batch
        self._taken: dict[tuple[str, str], set[str]] = {}

    def expect(self, wanted: list[tuple[str, str, str]]) -> None:
        """Look up the first candidates of these (tenant, folder, name)s together."""
        per_folder: dict[tuple[str, str], list[str]] = {}
        for tenant_id, folder, name in wanted:
            per_folder.setdefault((tenant_id, folder), []).extend(
                _numbered(name, seq) for seq in range(1, 1 + self.EXPECTED_AT_ONCE))
        for (tenant_id, folder), names in per_folder.items():
            self._look_up(tenant_id, folder, list(dict.fromkeys(names)))

    def free(self, tenant_id: str, folder: str, name: str) -> str:
        checked = self._checked.setdefault((tenant_id, folder), set())
        taken = self._taken.setdefault((tenant_id, folder), set())
        seq = 1
        while True:
            candidate = _numbered(name, seq)
            if candidate not in checked:
                self._look_up(tenant_id, folder, [
                    _numbered(name, n) for n in range(seq, seq + self.NAMES_AT_ONCE)])
            if candidate not in taken:
                taken.add(candidate)
                return candidate
            seq += 1

    def _look_up(self, tenant_id: str, folder: str, names: list[str]) -> None:
        checked = self._checked.setdefault((tenant_id, folder), set())
        taken = self._taken.setdefault((tenant_id, folder), set())
        for at in range(0, len(names), self.MAX_PARAMETERS):
            part = names[at:at + self.MAX_PARAMETERS]
            taken.update(self._db.execute(_WAITING_AMONG, {
                "tenant": tenant_id, "folder": folder, "names": part}).scalars())
            checked.update(part)


def _numbered(name: str, seq: int) -> str:
    """An outbox name and its numbered forms: orders.json, orders-2.json, ..."""
    if seq == 1:
        return name
    stem, dot, ext = name.rpartition(".")
    return f"{stem}-{seq}.{ext}" if dot else f"{name}-{seq}"


def _deliveries(transfer_id: str, tenant_id: str, output_name: str, spec: ProcessSpec,
                now: datetime, names: _OutboxNames) -> list[dict[str, Any]]:
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


def _finish(db: Session | Connection, ctx: Context, transfer_id: str, state: State,
            reason: str | None, delivered_at: datetime | None = None) -> None:
    """End a transfer (see `_finish_all`)."""
    _finish_all(db, ctx, state, {transfer_id: reason}, delivered_at)


def _finish_all(db: Session | Connection, ctx: Context, state: State,
                reasons: dict[str, str | None], delivered_at: datetime | None = None) -> None:
    """End transfers (id -> reason): erase every blob they own, record why and when.
    The one place where a transfer ends; plain statements, a batch at a time, so that
    it is as cheap on the doors' and the worker's paths as in housekeeping."""
    if isinstance(db, Session):
        db.flush()  # the caller's changes go first
    now = utcnow()
    tids = list(reasons)
    ctx.vault.erase_owned(db, *tids)
    db.execute(_END_DELIVERIES, {"tids": tids, "now": now})
    db.execute(_END, [{"tid": tid, "end_state": state, "reason": reason, "now": now,
                       "delivered": delivered_at} for tid, reason in reasons.items()])
    # P4: where the tenant or the process keeps no reports, the record goes too.
    for tid in tids:
        forget_if_unreported(db, ctx, tid)


def _settle(db: Session | Connection, ctx: Context, transfer_id: str) -> None:
    """Derive the transfer's state from its deliveries; erase the output when all are
    done."""
    if isinstance(db, Session):
        db.flush()  # the caller's changes to the deliveries go first
    state = db.execute(_STATE_OF, {"tid": transfer_id}).scalar()
    if state not in (State.DELIVERING, State.READY):
        return
    deliveries = db.execute(_DELIVERIES_OF, {"tid": transfer_id}).all()
    failed = [d for d in deliveries if d.state in (DState.FAILED, DState.EXPIRED)]
    # A failed target is reported at once, even while another still waits.
    error = "; ".join(
        f"target {d.target_no + 1} ({d.kind}): {d.error or d.state.lower()}" for d in failed
    ) or None
    if all(d.state in DFINAL for d in deliveries):
        done = [d.done_at for d in deliveries if d.done_at is not None]
        delivered = max(done) if done and not failed else None
        _finish(db, ctx, transfer_id, State.FAILED if failed else State.ERASED, error,
                delivered)
        return
    pending_push = any(d.kind != "pickup" and d.state not in DFINAL for d in deliveries)
    db.execute(_SETTLED, {"tid": transfer_id, "reason": error,
                          "new_state": State.DELIVERING if pending_push else State.READY})


def settle(ctx: Context, transfer_id: str) -> None:
    with writing(ctx.engine) as conn:
        _settle(conn, ctx, transfer_id)


# ---------------------------------------------------------------- the outbox


@dataclass(frozen=True)
class Pickup:
    delivery_id: str
    transfer_id: str
    blob_id: str
    size: int


_OUTBOX = (  # waiting pickups of a folder, with what a listing or a download needs
    select(_D.c.id, _D.c.outbox_name, _T.c.id.label("tid"), _T.c.output_blob_id,
           _T.c.bytes_out, _T.c.processed_at, _T.c.opened_at)
    .select_from(_D.join(_T, _T.c.id == _D.c.transfer_id))
    .where(_D.c.tenant_id == bindparam("tenant"), _D.c.kind == "pickup",
           _D.c.outbox_folder == bindparam("folder"),
           _D.c.state.in_([DState.READY, DState.FETCHED])))
_OUTBOX_ALL = _OUTBOX.order_by(_D.c.outbox_name)
_OUTBOX_ONE = _OUTBOX.where(_D.c.outbox_name == bindparam("name")).limit(1)


def _entry_of(row: Any) -> Entry:
    return Entry(row.outbox_name, row.bytes_out or 0, row.processed_at or row.opened_at)


def outbox_entries(ctx: Context, tenant_id: str, folder: str) -> list[Entry]:
    with ctx.engine.connect() as conn:
        return [_entry_of(r) for r in conn.execute(_OUTBOX_ALL, {"tenant": tenant_id,
                                                                  "folder": folder})]


def _outbox_file(ctx: Context, tenant_id: str, folder: str, name: str) -> Any:
    with ctx.engine.connect() as conn:
        return conn.execute(_OUTBOX_ONE, {"tenant": tenant_id, "folder": folder,
                                          "name": name}).first()


def outbox_entry(ctx: Context, tenant_id: str, folder: str, name: str) -> Entry | None:
    row = _outbox_file(ctx, tenant_id, folder, name)
    return _entry_of(row) if row is not None else None


def open_pickup(ctx: Context, tenant_id: str, folder: str, name: str) -> Pickup | None:
    row = _outbox_file(ctx, tenant_id, folder, name)
    if row is None or row.output_blob_id is None:
        return None
    return Pickup(row.id, row.tid, row.output_blob_id, row.bytes_out or 0)


def open_blob(ctx: Context, blob_id: str) -> BinaryIO:
    return ctx.vault.open(ctx.engine, blob_id)


def mark_fetched(ctx: Context, delivery_id: str) -> None:
    """A complete download: the output is erased after the fetch grace."""
    with writing(ctx.engine) as conn:
        conn.execute(_FETCHED, {"did": delivery_id, "now": utcnow()})


def remove_pickup(ctx: Context, tenant_id: str, folder: str, name: str) -> None:
    """The client deletes an output from its outbox: picked up if it was fetched whole,
    removed unread otherwise. Plain statements: clients delete every file they fetch."""
    with writing(ctx.engine) as conn:
        row = conn.execute(_PICKUP, {"tenant": tenant_id, "folder": folder,
                                     "name": name}).first()
        if row is None:
            raise FileNotFoundError
        conn.execute(_PICKED, {
            "did": row.id, "now": utcnow(),
            "new_state": DState.PICKED_UP if row.state == DState.FETCHED else DState.REMOVED})
        _settle(conn, ctx, row.transfer_id)


# ---------------------------------------------------------------- housekeeping


def heartbeat(ctx: Context) -> None:
    """Extend this node's leases: open uploads, processing, pushes."""
    until = utcnow() + timedelta(seconds=ctx.settings.lease_s)
    with transaction(ctx.sessions) as s:
        s.execute(update(Transfer)
                  .where(Transfer.lease_owner == ctx.node_id,
                         Transfer.state.in_([State.RECEIVING, State.PROCESSING]))
                  .values(lease_until=until))
        s.execute(update(Delivery)
                  .where(Delivery.lease_owner == ctx.node_id,
                         Delivery.state.in_([DState.PENDING, DState.SENDING]))
                  .values(lease_until=until))


def housekeeping(ctx: Context) -> int:
    """Time-driven transitions. Returns how many transfers changed."""
    now = utcnow()
    grace = timedelta(seconds=ctx.settings.fetch_grace_s)
    changed = 0
    with transaction(ctx.sessions) as s:
        for t in s.scalars(select(Transfer).where(
                Transfer.state == State.HELD, Transfer.hold_until < now)):
            _finish(s, ctx, t.id, State.DISCARDED,
                    "no process matches this name, and it was not renamed in time")
            changed += 1
        for t in s.scalars(select(Transfer).where(
                Transfer.state == State.RECEIVING, Transfer.lease_until < now)):
            _finish(s, ctx, t.id, State.INTERRUPTED,
                    "the upload was cut off (the node stopped before the client closed)")
            changed += 1
        touched: set[str] = set()
        for d in s.scalars(select(Delivery).where(
                Delivery.state == DState.READY, Delivery.expires_at < now)):
            d.state = DState.EXPIRED
            d.error = "not fetched within pickup_within"
            d.done_at = now
            touched.add(d.transfer_id)
        for d in s.scalars(select(Delivery).where(
                Delivery.state == DState.FETCHED, Delivery.fetched_at < now - grace)):
            d.state = DState.PICKED_UP
            touched.add(d.transfer_id)
        for tid in touched:
            _settle(s, ctx, tid)
            changed += 1
        # P4: records that ended within the stat grace of a tenant without reports.
        changed += purge_unreported(s, ctx, now)
    return changed


def residue_sweep(ctx: Context) -> int:
    """At start-up: erase every blob that no live transfer owns. Returns how many."""
    erased = 0
    with transaction(ctx.sessions) as s:
        live = {State.RECEIVING, State.HELD, State.RECEIVED, State.PROCESSING,
                State.DELIVERING, State.READY}
        for key in list(s.scalars(select(BlobKey))):
            t = s.get(Transfer, key.owner_id)
            keep = t is not None and t.state in live and (
                key.blob_id in (t.input_blob_id, t.output_blob_id)
                or t.state in (State.RECEIVING, State.PROCESSING))
            if not keep:
                ctx.vault.erase(s, key.blob_id)
                erased += 1
        erased += ctx.vault.sweep_files(s)
    checkpoint(ctx.engine)
    return erased


def list_transfers(ctx: Context, tenant_id: str | None = None, limit: int = 1000, *,
                   state: State | None = None, process: str | None = None,
                   since: datetime | None = None) -> list[Transfer]:
    """Newest first. `since` keeps transfers that started at or after that time."""
    with ctx.sessions() as s:
        q = select(Transfer).order_by(Transfer.opened_at.desc(), Transfer.id).limit(limit)
        if tenant_id is not None:
            q = q.where(Transfer.tenant_id == tenant_id)
        if state is not None:
            q = q.where(Transfer.state == state)
        if process is not None:
            q = q.where(Transfer.process_name == process)
        if since is not None:
            q = q.where(Transfer.opened_at >= since)
        return list(s.scalars(q))


def get_transfer(ctx: Context, transfer_id: str, tenant_id: str | None = None) -> Transfer | None:
    """One transfer; None when it does not exist or belongs to another tenant."""
    with ctx.sessions() as s:
        t = s.get(Transfer, transfer_id)
        if t is None or (tenant_id is not None and t.tenant_id != tenant_id):
            return None
        return t


def live_count(ctx: Context) -> int:
    with ctx.sessions() as s:
        return len(list(s.scalars(select(Transfer.id).where(Transfer.state.not_in(FINAL)))))
