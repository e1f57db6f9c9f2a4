"""The one audit writer (P23): entries join the unit of work of the change they record,
so a change that commits always has its entry and a rolled-back one never has.

`record` queues an entry on the unit; just before the unit commits, its entries are
chained, three statements per chain: the head row is read and locked (on PostgreSQL
`FOR UPDATE`, so concurrent writers of one chain queue there and the chain stays
unbroken; on SQLite the unit's writer lock already serializes them), the entries are
hashed in order and inserted, and the head takes the last seq and hash. Checkpoints
are signed heads (`notes.py`), issued at once after the events that need one and by
`checkpoint_due` at least hourly while a chain moves.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, delete, func, insert, select, update

from doorvoer.access.policy import Actor, Role
from doorvoer.audit import chain as chains
from doorvoer.audit.events import CHECKPOINT_AT_ONCE, Event
from doorvoer.audit.models import OPERATOR_CHAIN, AuditEntry, AuditHead, Checkpoint
from doorvoer.db import FastRead, FastWrite, new_id, utcnow
from doorvoer.unit import Work

_E: Table = AuditEntry.__table__  # type: ignore[assignment]
_H: Table = AuditHead.__table__  # type: ignore[assignment]
_C: Table = Checkpoint.__table__  # type: ignore[assignment]
_PENDING = "audit"
# The head, locked: on PostgreSQL the row lock queues the chain's writers; on SQLite the
# unit holds the database's one writer lock already (FOR UPDATE compiles away there).
_HEAD = FastRead(select(_H.c.seq, _H.c.hash).where(_H.c.chain == bindparam("c"))
                 .with_for_update())
_SET_HEAD = FastWrite(update(_H).where(_H.c.chain == bindparam("c")))
_INSERT = FastWrite(insert(_E))
# A benchmark-only switch (benchmarks/ingest_compare.py): what audit writes cost is
# measured against the same code without them. Not a setting: no installation runs so.
SKIP = os.environ.get("DOORVOER_BENCH_SKIP_AUDIT") == "1"
CHECKPOINT_EVERY = timedelta(hours=1)


@dataclass(frozen=True)
class Who:
    """An entry's actor: `kind` person, account, staff or system; staff also name the
    grant or instruction they relied on."""

    kind: str
    id: str | None
    name: str | None
    role: str | None
    grant: str | None = None
    instruction: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "id": self.id, "name": self.name,
                               "role": self.role}
        if self.kind == "staff":
            out.update(grant=self.grant, instruction=self.instruction)
        return out


SYSTEM = Who("system", None, "doorvoer", None)


def who(actor: Actor | None, *, grant: str | None = None,
        instruction: str | None = None) -> Who:
    """The audit log's view of an access policy actor; staff name the grant or the
    instruction they relied on."""
    if actor is None:
        return SYSTEM
    if actor.role.is_staff:
        return Who("staff", actor.user_id, actor.name, actor.role.value, grant,
                   instruction or actor.instruction)
    if actor.role == Role.ACCOUNT:
        return Who("account", actor.ref, actor.name, "sftp-account")
    if actor.scopes is not None:
        return Who("account", actor.ref, actor.name, "api-token")
    return Who("person", actor.user_id, actor.name, actor.role.value)


def record(w: Work, chain: str | None, event: Event, obj: str | None = None, *,
           actor: Who | None = None, checkpoint: bool = False) -> None:
    """An entry in `chain` (a tenant's id; None: the operator's own chain), written
    with the unit's commit. The actor is the unit's unless given; the source is the
    unit's. Never pass file content, a secret, or more personal data than needed."""
    if SKIP:
        return
    pending: list[tuple[Any, ...]] = w.state.setdefault(_PENDING, [])
    pending.append((chain or OPERATOR_CHAIN, utcnow(), actor or who(w.actor), str(event),
                    obj, w.source, checkpoint or event in CHECKPOINT_AT_ONCE))
    w.before_commit(_PENDING, lambda: _flush(w))


def _flush(w: Work) -> None:
    pending: list[tuple[Any, ...]] = w.state.pop(_PENDING, [])
    by_chain: dict[str, list[tuple[Any, ...]]] = {}
    for item in pending:
        by_chain.setdefault(item[0], []).append(item)
    for chain, items in sorted(by_chain.items()):  # one lock order: no deadlock
        head = _HEAD.first(w.conn, {"c": chain})
        if head is None:
            start_chain(w, chain)
            head = _HEAD.first(w.conn, {"c": chain})
        seq, prev = head.seq, head.hash
        rows = []
        for _, at, actor, action, obj, source, _ in items:
            seq += 1
            digest = chains.entry_hash(_entry(seq, at, actor, action, obj, source, prev))
            rows.append({"chain": chain, "seq": seq, "at": at, "actor_kind": actor.kind,
                         "actor_id": actor.id, "actor_name": actor.name,
                         "actor_role": actor.role, "grant_id": actor.grant,
                         "instruction_id": actor.instruction, "action": action,
                         "object": obj, "source": source, "prev": prev, "hash": digest})
            prev = digest
        _INSERT(w.conn, *rows)
        _SET_HEAD(w.conn, {"c": chain, "seq": seq, "hash": prev})
        if any(item[6] for item in items):
            sign_head(w, chain, chains.Head(seq, prev))


def start_chain(w: Work, chain: str) -> None:
    """A chain's head, before its first entry (a new tenant's, say). Safe to race."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    dialect_insert = pg_insert if w.ctx.engine.dialect.name == "postgresql" else sqlite_insert
    w.execute(dialect_insert(_H).values(chain=chain, seq=0, hash=chains.GENESIS,
                                        checkpointed_seq=0).on_conflict_do_nothing())


# ---------------------------------------------------------------- checkpoints


def origin(w: Work, chain: str) -> str:
    return f"doorvoer/{w.settings.resolved_node_name}/{chain}"


def checkpoint_text(origin_line: str, head: chains.Head) -> str:
    """A checkpoint's three lines: origin, the head's seq, base64 of its hash."""
    raw = base64.b64encode(bytes.fromhex(head.hash)).decode()
    return f"{origin_line}\n{head.seq}\n{raw}\n"


def sign_head(w: Work, chain: str, head: chains.Head) -> str:
    """Sign the chain's head now and keep the checkpoint; returns the note."""
    note = w.ctx.signer.sign(checkpoint_text(origin(w, chain), head))
    now = utcnow()
    w.execute(insert(_C), {"id": new_id(), "chain": chain, "seq": head.seq,
                           "hash": head.hash, "signed_at": now, "note": note})
    w.execute(update(_H).where(_H.c.chain == chain)
              .values(checkpointed_seq=head.seq, checkpointed_at=now))
    return note


def checkpoint_due(w: Work, now: datetime | None = None) -> int:
    """Sign every chain that moved since its last checkpoint, at least hourly. Returns
    how many were signed."""
    now = now or utcnow()
    due = w.execute(select(_H.c.chain, _H.c.seq, _H.c.hash).where(
        _H.c.seq > _H.c.checkpointed_seq,
        (_H.c.checkpointed_at.is_(None)) | (_H.c.checkpointed_at <= now - CHECKPOINT_EVERY)
    ).with_for_update(skip_locked=True)).all()
    for row in due:
        sign_head(w, row.chain, chains.Head(row.seq, row.hash))
    return len(due)


def checkpoints(w: Work, chain: str) -> list[Checkpoint]:
    return list(w.session.scalars(select(Checkpoint).where(Checkpoint.chain == chain)
                                  .order_by(Checkpoint.seq, Checkpoint.signed_at)))


def seal_chain(w: Work, chain: str) -> chains.Head:
    """Write what is queued now and make sure the chain's head is signed: the head a
    tenant's erasure certificate names. Nothing may be recorded in the chain after."""
    _flush(w)
    head = head_of(w, chain)
    row = w.execute(select(_H.c.checkpointed_seq).where(_H.c.chain == chain)).first()
    if row is None or row.checkpointed_seq < head.seq:
        sign_head(w, chain, head)
    return head


def erase_chain(w: Work, chain: str) -> dict[str, int]:
    """Delete a chain whole (a tenant's erasure, P19): its entries, checkpoints and
    head. Returns the entries and checkpoints deleted."""
    entries = w.changed(delete(_E).where(_E.c.chain == chain))
    signed = w.changed(delete(_C).where(_C.c.chain == chain))
    w.changed(delete(_H).where(_H.c.chain == chain))
    return {"audit_entries": entries, "audit_checkpoints": signed}


# ---------------------------------------------------------------- reading


def _entry(seq: int, at: datetime, actor: Who, action: str, obj: str | None,
           source: str | None, prev: str) -> dict[str, Any]:
    """An entry as the contract has it (docs/audit.md), without its `hash`."""
    return {"seq": seq, "time": chains.rfc3339(at), "actor": actor.as_json(),
            "action": action, "object": obj, "source": source, "prev": prev}


def as_entry(row: Any) -> dict[str, Any]:
    """A stored entry as the export has it."""
    actor = Who(row.actor_kind, row.actor_id, row.actor_name, row.actor_role,
                row.grant_id, row.instruction_id)
    return {**_entry(row.seq, row.at, actor, row.action, row.object, row.source, row.prev),
            "hash": row.hash}


def entries(w: Work, chain: str, batch: int = 1000) -> Iterator[dict[str, Any]]:
    """The whole chain, oldest first, a batch at a time (bounded memory)."""
    after = 0
    while True:
        rows = w.execute(select(_E).where(_E.c.chain == chain, _E.c.seq > after)
                         .order_by(_E.c.seq).limit(batch)).all()
        for row in rows:
            yield as_entry(row)
        if len(rows) < batch:
            return
        after = rows[-1].seq


def after(w: Work, chain: str, seq: int, *, kind: str | None = None,
          action: str | None = None, since: datetime | None = None,
          limit: int = 100) -> list[dict[str, Any]]:
    """Entries after `seq`, oldest first, filtered (the API's paging)."""
    conds = [_E.c.chain == chain, _E.c.seq > seq, *_filters(kind, action, since, None)]
    rows = w.execute(select(_E).where(*conds).order_by(_E.c.seq).limit(limit)).all()
    return [as_entry(r) for r in rows]


def _filters(kind: str | None, action: str | None, since: datetime | None,
             until: datetime | None) -> list[Any]:
    conds: list[Any] = []
    if kind:
        conds.append(_E.c.actor_kind == kind)
    if action:
        conds.append(_E.c.action.startswith(action, autoescape=True))
    if since is not None:
        conds.append(_E.c.at >= since)
    if until is not None:
        conds.append(_E.c.at < until)
    return conds


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    total: int


def search(w: Work, chain: str, *, kind: str | None = None, action: str | None = None,
           since: datetime | None = None, until: datetime | None = None,
           offset: int = 0, limit: int = 50) -> Page:
    """Entries newest first, filtered by actor kind, action (a prefix: `sftp:` or
    `upload:file:accepted`) and time."""
    conds = [_E.c.chain == chain, *_filters(kind, action, since, until)]
    total = w.execute(select(func.count()).select_from(_E).where(*conds)).scalar() or 0
    rows = w.execute(select(_E).where(*conds).order_by(_E.c.seq.desc())
                     .offset(offset).limit(limit)).all()
    return Page([as_entry(r) for r in rows], total)


def under_instructions(w: Work, chain: str) -> dict[str, list[dict[str, Any]]]:
    """What was done under each instruction of the chain (its id -> the entries, oldest
    first), in one walk of the chain."""
    done: dict[str, list[dict[str, Any]]] = {}
    for row in w.execute(select(_E).where(_E.c.chain == chain,
                                          _E.c.instruction_id.is_not(None))
                         .order_by(_E.c.seq)):
        done.setdefault(row.instruction_id, []).append(as_entry(row))
    return done


def actions_between(w: Work, chain: str, since: datetime, until: datetime) -> set[str]:
    """The actions recorded in `chain` from `since` to before `until`. Entries are in
    time order by seq, so the range is found by bisecting seq (point reads on the key):
    no index on time, and no walk of the whole chain."""
    def first_at_or_after(moment: datetime) -> int:
        lo, hi = 1, head_of(w, chain).seq + 1  # the answer lies in [lo, hi]
        while lo < hi:
            mid = (lo + hi) // 2
            at = w.execute(select(_E.c.at).where(_E.c.chain == chain, _E.c.seq == mid)
                           ).scalar()
            if at is not None and at < moment:
                lo = mid + 1
            else:
                hi = mid
        return lo

    start, end = first_at_or_after(since), first_at_or_after(until)
    if start >= end:
        return set()
    return set(w.execute(select(_E.c.action).distinct().where(
        _E.c.chain == chain, _E.c.seq >= start, _E.c.seq < end)).scalars())


def head_of(w: Work, chain: str) -> chains.Head:
    row = w.execute(select(_H.c.seq, _H.c.hash).where(_H.c.chain == chain)).first()
    return chains.Head(row.seq, row.hash) if row is not None else chains.Head(0, chains.GENESIS)
