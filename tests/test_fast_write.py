"""FastWrite runs an upload's INSERT and UPDATE on SQLite's own cursor: the rows must be
exactly those that SQLAlchemy's `Connection.execute` writes, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from doorvoer.context import Context
from doorvoer.db import FastRead, FastWrite, new_id
from doorvoer.tenants.models import Tenant
from doorvoer.transfers.models import State, Transfer

T: Any = Transfer.__table__
WHEN = datetime(2026, 11, 28, 23, 59, 58, 123456, tzinfo=UTC)


def _row(tenant_id: str, transfer_id: str) -> dict[str, Any]:
    return {"id": transfer_id, "tenant_id": tenant_id, "account_id": None, "folder": "orders",
            "filename": "week 48 – €.csv", "state": State.RECEIVING, "opened_at": WHEN,
            "lease_owner": "node:1", "lease_until": WHEN + timedelta(seconds=30),
            "input_blob_id": new_id(), "attempts": 0}


def _read(ctx: Context, transfer_id: str) -> dict[str, Any]:
    with ctx.engine.connect() as conn:
        row = conn.execute(select(T).where(T.c.id == transfer_id)).one()
    return {k: v for k, v in row._mapping.items() if k != "id"}


def test_rows_are_those_sqlalchemy_writes(ctx: Context) -> None:
    with ctx.unit() as w:
        tenant = Tenant(slug="acme", name="Acme")
        w.session.add(tenant)
        w.session.flush()
        tenant_id = tenant.id
    fast, slow = new_id(), new_id()
    received = {"tid": None, "state": State.RECEIVED, "received_at": WHEN, "bytes_in": 4096,
                "lease_owner": None, "lease_until": None, "hold_until": None}
    stmt = update(T).where(T.c.id == bindparam("tid"))
    with ctx.unit() as w:
        conn = w.conn
        FastWrite(insert(T))(conn, _row(tenant_id, fast))
        conn.execute(insert(T), _row(tenant_id, slow))
        FastWrite(stmt)(conn, {**received, "tid": fast})
        conn.execute(stmt, {**received, "tid": slow})
    written = _read(ctx, fast)
    assert written == {**_read(ctx, slow), "input_blob_id": written["input_blob_id"]}
    assert written["state"] == State.RECEIVED
    assert written["received_at"] == WHEN
    with ctx.engine.connect() as conn:  # stored alike, to the byte: SQLite compares text
        raw = {tid: tuple(conn.exec_driver_sql(
            "SELECT state, opened_at, lease_until, received_at FROM transfers WHERE id = "
            f"'{tid}'").one()) for tid in (fast, slow)}
        later = conn.execute(select(T.c.id).where(T.c.received_at < WHEN + timedelta(
            microseconds=1), T.c.state == State.RECEIVED)).scalars().all()
    assert raw[fast] == raw[slow]
    assert sorted(later) == sorted([fast, slow])


def test_many_rows_and_python_defaults(ctx: Context) -> None:
    """Several rows go in one call; a statement whose columns have Python-side defaults
    (Tenant.id, created_at…) is left to SQLAlchemy, which fills them in."""
    with ctx.unit() as w:
        conn = w.conn
        FastWrite(insert(Tenant.__table__))(conn, {"slug": "a", "name": "A"},
                                            {"slug": "b", "name": "B"})
    with ctx.reading() as w:
        tenants = w.session.scalars(select(Tenant).order_by(Tenant.slug)).all()
    assert [(t.slug, len(t.id)) for t in tenants] == [("a", 32), ("b", 32)]
    assert all(t.created_at is not None for t in tenants)


def test_fast_read_gives_what_sqlalchemy_reads(ctx: Context) -> None:
    """FastRead's rows hold the values `Connection.execute` gives (types converted, the
    statement's own constants bound), on an engine or inside a write transaction."""
    with ctx.unit() as w:
        tenant = Tenant(slug="acme", name="Acme")
        w.session.add(tenant)
        w.session.flush()
        tenant_id = tenant.id
    ids = [new_id(), new_id()]
    with ctx.unit() as w:
        conn = w.conn
        for transfer_id in ids:
            conn.execute(insert(T), _row(tenant_id, transfer_id))
        conn.execute(update(T).where(T.c.id == ids[1]).values(
            state=State.RECEIVED, received_at=WHEN, bytes_in=4096))
    statement = (select(T.c.id, T.c.filename, T.c.bytes_in, T.c.received_at, T.c.opened_at,
                        T.c.state)
                 .where(T.c.tenant_id == bindparam("tenant"), T.c.state == State.RECEIVED)
                 .order_by(T.c.opened_at).limit(1))
    fast = FastRead(statement)
    with ctx.engine.connect() as conn:
        expected = conn.execute(statement, {"tenant": tenant_id}).one()
    row = fast.first(ctx.engine, {"tenant": tenant_id})
    assert tuple(row) == tuple(expected)
    assert (row.id, row.received_at, row.bytes_in, row.state) == (ids[1], WHEN, 4096,
                                                                  State.RECEIVED)
    assert row.received_at.tzinfo is not None  # as UTCDateTime gives it
    assert fast.first(ctx.engine, {"tenant": "nobody"}) is None
    with ctx.unit() as w:  # inside a transaction: its own writes are seen
        conn = w.conn
        conn.execute(update(T).where(T.c.id == ids[0]).values(
            state=State.RECEIVED, received_at=WHEN, bytes_in=1,
            opened_at=WHEN - timedelta(seconds=1)))
        assert fast.first(conn, {"tenant": tenant_id}).id == ids[0]
    with pytest.raises(SQLAlchemyError, match="required for bind parameter 'tenant'"):
        # a parameter left out is an error, not a NULL, as in SQLAlchemy
        fast.first(ctx.engine, {})
