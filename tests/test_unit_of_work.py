"""The unit of work (docs/architecture.md): one transaction that a door opens and every
service it calls shares; after-commit work only after a commit, undo only after a
rollback; the transaction begins when the database is first touched."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, insert, select

from doorvoer.context import Context
from doorvoer.db import is_sqlite, unless_waiting
from doorvoer.tenants.models import Tenant
from doorvoer.tenants.service import create_tenant
from doorvoer.unit import Work


def _tenants(ctx: Context) -> list[str]:
    with ctx.reading() as w:
        return list(w.execute(select(Tenant.slug).order_by(Tenant.slug)).scalars())


def test_orm_and_core_changes_commit_together(ctx: Context) -> None:
    with ctx.unit() as w:
        create_tenant(w, "orm", "Via the ORM", None)
        w.execute(insert(Tenant), {"id": "c" * 32, "slug": "core", "name": "Via Core"})
        # Core sees what the ORM did in the same unit, and the other way round.
        assert w.execute(select(func.count()).select_from(Tenant)).scalar() == 2
        assert w.session.get(Tenant, "c" * 32) is not None
    assert _tenants(ctx) == ["core", "orm"]


def test_an_error_rolls_back_every_change_and_runs_only_the_undo(ctx: Context) -> None:
    done: list[str] = []

    def failing() -> None:
        with ctx.unit() as w:
            create_tenant(w, "gone", "Never committed", None)
            w.execute(insert(Tenant), {"id": "c" * 32, "slug": "core", "name": "Core"})
            w.after_commit(lambda: done.append("after"))
            w.on_rollback(lambda: done.append("undo"))
            raise RuntimeError("the service failed half-way")

    with pytest.raises(RuntimeError):
        failing()
    assert _tenants(ctx) == []
    assert done == ["undo"]


def test_after_commit_runs_after_the_commit_and_outside_the_writer_lock(
    ctx: Context,
) -> None:
    seen: list[tuple[list[str], bool]] = []

    def job() -> None:
        with unless_waiting(ctx.engine) as free:  # nobody holds SQLite's writer lock
            seen.append((_tenants(ctx), free or not is_sqlite(ctx.engine)))

    with ctx.unit() as w:
        create_tenant(w, "acme", "Acme", None)
        w.after_commit(job)
        w.on_rollback(lambda: seen.append(([], False)))
        assert seen == []
    assert seen == [(["acme"], True)]


def test_a_failing_after_commit_job_does_not_undo_the_commit(ctx: Context) -> None:
    ran: list[int] = []

    def broken() -> None:
        raise OSError("a blob file could not be deleted")

    with ctx.unit() as w:
        create_tenant(w, "acme", "Acme", None)
        w.after_commit(broken)
        w.after_commit(lambda: ran.append(1))
    assert _tenants(ctx) == ["acme"]
    assert ran == [1]


def test_mail_is_handed_out_only_when_the_unit_commits(ctx: Context) -> None:
    from doorvoer.mail import message

    msg = message(ctx.settings, "a@example.org", "subject", "body")
    with ctx.unit() as w:
        w.notify(msg, None)
    assert w.outgoing == [msg]
    w = ctx.unit()

    def failing() -> None:
        with w:
            w.notify(msg)
            raise RuntimeError

    with pytest.raises(RuntimeError):
        failing()
    assert w.outgoing == []


def test_the_transaction_begins_only_when_the_database_is_touched(ctx: Context) -> None:
    """Slow work first (a hash, a file), then the write: a unit that has not touched the
    database holds no connection and, on SQLite, not the writer lock."""
    with ctx.unit() as w:
        assert not w.begun
        if is_sqlite(ctx.engine):
            got = threading.Event()

            def other_writer() -> None:
                with ctx.unit() as other:
                    create_tenant(other, "first", "First", None)
                got.set()

            t = threading.Thread(target=other_writer)
            t.start()
            assert got.wait(10), "another writer waited for a unit that wrote nothing"
            t.join()
        create_tenant(w, "second", "Second", None)
        assert w.begun
    assert "second" in _tenants(ctx)


def test_a_unit_is_used_once_and_only_inside_its_block(ctx: Context) -> None:
    w = ctx.unit()
    with pytest.raises(RuntimeError, match="outside its block"):
        w.execute(select(1))
    with w:
        w.execute(select(1))
    with pytest.raises(RuntimeError, match="once"), w:
        pass


def test_a_snapshot_reading_sees_one_state_while_others_write(ctx: Context) -> None:
    def count(w: Work) -> int:
        return int(w.session.scalar(select(func.count()).select_from(Tenant)) or 0)

    with ctx.unit() as w:
        create_tenant(w, "first", "First", None)
    with ctx.reading(snapshot=True) as r:
        assert count(r) == 1
        with ctx.unit() as w:  # another writer commits meanwhile
            create_tenant(w, "second", "Second", None)
        assert count(r) == 1  # the export's view does not move
    with ctx.reading() as r:
        assert count(r) == 2
