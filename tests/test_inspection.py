"""Inspection windows (P6), on a real node with real SFTP uploads, SQLite and
PostgreSQL: without a window a failed transfer keeps nothing; while one is open a failed
transfer of its process keeps its files (and only that process's, only failed ones),
the support user who opened it sees the first rows, every view is in the audit log;
closing (by the tenant, by time, by the grant's end) erases what was kept."""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from conftest import Login, NodeThread, sftp_batch, transfers_of, wait_for
from doorvoer.access.policy import Actor, Role
from doorvoer.accounts.models import User
from doorvoer.accounts.people import actor_of, create_user
from doorvoer.audit import service as audit
from doorvoer.audit.verify import verify
from doorvoer.context import Context
from doorvoer.db import utcnow
from doorvoer.processes.models import Process
from doorvoer.support import inspection
from doorvoer.support import service as support
from doorvoer.support.errors import InspectionRefused, NoSuchWindow
from doorvoer.support.models import InspectionWindow
from doorvoer.tenants.models import Tenant
from doorvoer.tenants.service import require_tenant
from doorvoer.transfers import lifecycle
from doorvoer.transfers.models import State, Transfer
from doorvoer.vault.models import BlobKey

BAD_AMOUNT = b"id;name;amount\r\n1;jan;12,50\r\n2;piet;twelve\r\n"  # fails in the SQL
RAGGED = b"id;name;amount\r\n1;jan;12,50\r\n2;piet\r\n"  # fails in the reader
GOOD = b"id;name;amount\r\n1;jan;12,50\r\n"


def _people(ctx: Context) -> tuple[User, User]:
    with ctx.unit() as w:
        tenant = require_tenant(w, "acme")
        admin = create_user(w, "admin@acme.example", "Admin", Role.TENANT_ADMIN, tenant.id,
                            secrets.token_urlsafe(16))
        admin.totp_secret = b"sealed"  # approving needs 2FA on (the door checks the code)
        staff = create_user(w, "helper@doorvoer.example", "Helper", Role.SUPPORT, None,
                            secrets.token_urlsafe(16))
    return admin, staff


def _grant(ctx: Context, admin: User, staff: User, scopes: list[str]) -> str:
    with ctx.unit(actor=actor_of(staff, True)) as w:
        tenant = require_tenant(w, "acme")
        grant = support.request_grant(w, staff, tenant, "failed imports", "SUP-9", scopes)
    with ctx.unit(actor=actor_of(admin, True)) as w:
        support.approve(w, admin, require_tenant(w, "acme"), grant.id, scopes, 24)
    return grant.id


def _staff(ctx: Context, staff: User) -> Actor:
    with ctx.reading() as w:
        return replace(actor_of(staff, True), grants=support.active_grants(w, staff.id))


def _tenant(ctx: Context) -> Tenant:
    with ctx.reading() as w:
        return require_tenant(w, "acme")


def _upload(node: NodeThread, login: Login, tmp_path: Path, name: str, data: bytes,
            ctx: Context) -> Transfer:
    src = tmp_path / name
    src.write_bytes(data)
    sftp_batch(node.port, login, f"put {src} /inbox/orders/{name}\n")
    return wait_for(lambda: next((t for t in transfers_of(ctx) if t.filename == name
                                  and t.state in (State.FAILED, State.READY)), None),
                    what=f"{name} processed")


def _blobs(ctx: Context, transfer_id: str) -> list[str]:
    with ctx.reading() as w:
        return list(w.session.scalars(select(BlobKey.role).where(
            BlobKey.owner_id == transfer_id).order_by(BlobKey.role)))


def _actions(ctx: Context, tenant_id: str) -> list[str]:
    with ctx.reading() as w:
        return [str(e["action"]) for e in audit.entries(w, tenant_id)]


def test_a_window_keeps_failed_files_shows_them_and_erases_them_when_closed(
        ctx: Context, node: NodeThread, login: Login, tmp_path: Path) -> None:
    admin, staff = _people(ctx)
    tenant = _tenant(ctx)

    # Without a window a failed transfer keeps nothing.
    before = _upload(node, login, tmp_path, "before.csv", BAD_AMOUNT, ctx)
    assert before.state == State.FAILED and before.kept_for is None
    assert _blobs(ctx, before.id) == []

    # A grant without the inspect scope opens no window.
    _grant(ctx, admin, staff, ["reports"])
    with pytest.raises(InspectionRefused, match="inspect scope"), \
            ctx.unit(actor=_staff(ctx, staff)) as w:
        inspection.open_window(w, tenant, "orders", 4)
    grant_id = _grant(ctx, admin, staff, ["inspect"])
    actor = _staff(ctx, staff)
    for name, hours, why in (("nope", 4, "no process named"), ("orders", 25, "1 to 24"),
                             ("orders", 0, "1 to 24")):
        with pytest.raises(InspectionRefused, match=why), ctx.unit(actor=actor) as w:
            inspection.open_window(w, tenant, name, hours)
    with ctx.unit(actor=actor) as w:
        window = inspection.open_window(w, tenant, "orders", 4)
    with pytest.raises(InspectionRefused, match="open already"), ctx.unit(actor=actor) as w:
        inspection.open_window(w, tenant, "orders", 2)
    assert window.until <= utcnow() + timedelta(hours=4)

    # While it is open: a failed transfer keeps its input (its unfinished output is
    # erased); a good one is erased as always.
    kept = _upload(node, login, tmp_path, "bad.csv", BAD_AMOUNT, ctx)
    assert kept.state == State.FAILED and kept.kept_for == window.id and kept.erased_at is None
    assert _blobs(ctx, kept.id) == ["input"]
    ragged = _upload(node, login, tmp_path, "ragged.csv", RAGGED, ctx)
    assert ragged.kept_for == window.id
    good = _upload(node, login, tmp_path, "good.csv", GOOD, ctx)
    assert good.kept_for is None and _blobs(ctx, good.id) == ["output"]  # waits for pickup
    # A restart's residue sweep spares what the window keeps.
    ctx.run(lifecycle.residue_sweep)
    assert _blobs(ctx, kept.id) == ["input"]

    # The support user who opened it sees the first rows, read as the process reads
    # them; a file the reader refuses is shown as lines, with the reason.
    with ctx.unit(actor=actor) as w:
        viewing = inspection.begin_view(w, tenant, window.id, kept.id, "input")
    shown = inspection.preview(ctx.vault, ctx.engine, viewing, 64, 10.0)
    assert shown.columns == ["id", "name", "amount"] and not shown.more
    assert shown.rows == [["1", "jan", "12,50"], ["2", "piet", "twelve"]]
    with ctx.unit(actor=actor) as w:
        viewing = inspection.begin_view(w, tenant, window.id, ragged.id, "input")
    shown = inspection.preview(ctx.vault, ctx.engine, viewing, 64, 10.0)
    assert shown.rows == [] and shown.lines == ["id;name;amount", "1;jan;12,50", "2;piet"]
    assert shown.note is not None and "line 3" in shown.note
    with ctx.unit(actor=actor) as w:
        viewing = inspection.begin_view(w, tenant, window.id, kept.id, "output")
    assert inspection.preview(ctx.vault, ctx.engine, viewing, 64, 10.0).note is not None
    # Nobody else: not a transfer the window does not keep, not another support user.
    with pytest.raises(NoSuchWindow), ctx.unit(actor=actor) as w:
        inspection.begin_view(w, tenant, window.id, good.id, "input")
    with ctx.unit() as w:
        other = create_user(w, "other@doorvoer.example", "Other", Role.SUPPORT, None,
                            secrets.token_urlsafe(16))
    with pytest.raises(NoSuchWindow), ctx.unit(actor=actor_of(other, True)) as w:
        inspection.begin_view(w, tenant, window.id, kept.id, "input")
    with ctx.reading() as w:
        entries = [e for e in audit.entries(w, tenant.id)
                   if e["action"] == "inspection:file:viewed"]
    assert len(entries) == 3 and entries[0]["actor"]["grant"] == grant_id  # type: ignore[index]
    assert "bad.csv" in str(entries[0]["object"]) and "twelve" not in str(entries)

    # The tenant closes it: what it kept is erased, and nothing can be viewed.
    with ctx.unit(actor=actor_of(admin, True)) as w:
        closed = inspection.close_window(w, tenant, window.id, "closed by admin@acme.example")
    assert closed.kept == 2 and closed.closed_at is not None
    assert _blobs(ctx, kept.id) == [] and _blobs(ctx, ragged.id) == []
    with ctx.reading() as w:
        row = w.session.get_one(Transfer, kept.id)
        assert row.kept_for is None and row.erased_at is not None
        assert row.input_erased_at is not None
    with pytest.raises(InspectionRefused, match="closed"), ctx.unit(actor=actor) as w:
        inspection.begin_view(w, tenant, window.id, kept.id, "input")
    after = _upload(node, login, tmp_path, "after.csv", BAD_AMOUNT, ctx)
    assert after.kept_for is None and _blobs(ctx, after.id) == []

    actions = _actions(ctx, tenant.id)
    for action in ("inspection:window:opened", "inspection:file:kept",
                   "inspection:file:viewed", "inspection:window:closed"):
        assert action in actions
    assert actions.count("inspection:file:kept") == 2
    with ctx.reading() as w:
        assert verify(w, tenant.id).ok


def test_a_window_closes_when_its_time_is_up_or_the_grant_ends(
        ctx: Context, node: NodeThread, login: Login, tmp_path: Path) -> None:
    admin, staff = _people(ctx)
    tenant = _tenant(ctx)
    grant_id = _grant(ctx, admin, staff, ["inspect"])
    actor = _staff(ctx, staff)

    # Time: past `until` nothing more is kept even before the job ran; the job erases.
    with ctx.unit(actor=actor) as w:
        window = inspection.open_window(w, tenant, "orders", 1)
    big = b"id;name;amount\r\n" + b"".join(b"%d;p%d;%d,00\r\n" % (i, i, i)
                                            for i in range(1500)) + b"x;y;z\r\n"
    kept = _upload(node, login, tmp_path, "one.csv", big, ctx)
    assert kept.kept_for == window.id
    with ctx.unit(actor=actor) as w:  # the first 1,000 rows, and that there are more
        viewing = inspection.begin_view(w, tenant, window.id, kept.id, "input")
    shown = inspection.preview(ctx.vault, ctx.engine, viewing, 64, 10.0)
    assert len(shown.rows) == 1000 and shown.more and shown.rows[999] == ["999", "p999", "999,00"]
    with ctx.unit() as w:
        past = utcnow() - timedelta(seconds=1)
        w.session.execute(update(InspectionWindow).values(until=past))
        w.session.execute(update(Process).values(inspect_until=past))
    late = _upload(node, login, tmp_path, "late.csv", BAD_AMOUNT, ctx)
    assert late.kept_for is None and _blobs(ctx, late.id) == []
    assert ctx.run(support.expire_due) == 1
    assert _blobs(ctx, kept.id) == []
    with ctx.reading() as w:
        assert w.session.get_one(InspectionWindow, window.id).closed_by == "its time was up"

    # The grant's end: a revocation closes the window in the same transaction.
    with ctx.unit(actor=actor) as w:
        window = inspection.open_window(w, tenant, "orders", 24)
    kept = _upload(node, login, tmp_path, "two.csv", BAD_AMOUNT, ctx)
    assert kept.kept_for == window.id
    with ctx.unit(actor=actor_of(admin, True)) as w:
        support.revoke(w, admin, require_tenant(w, "acme"), grant_id)
    assert _blobs(ctx, kept.id) == []
    with ctx.reading() as w:
        closed = w.session.get_one(InspectionWindow, window.id)
        assert closed.closed_by == "the grant ended" and closed.kept == 1
        assert w.session.scalar(select(Process.inspect_window)) is None
        assert verify(w, tenant.id).ok
