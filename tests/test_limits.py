"""Limits: sessions, open handles, a full disk, outputs nobody fetches, pushes that
must not repeat."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import BinaryIO

import asyncssh
import pytest

from conftest import (
    CSV_SPEC,
    NodeThread,
    OwnNode,
    add_tenant,
    asftp,
    make_ctx,
    transfers_of,
    wait_for,
)
from doorvoer.transfers.models import Delivery, DState, State, Transfer
from doorvoer.vault.store import LocalStore


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_sessions_per_account_are_limited(own_node: OwnNode, sqlite_url: str) -> None:
    _, node, login = own_node(sqlite_url, max_sessions_per_account=2)

    async def go() -> None:
        first, _ = await asftp(node.port, login)
        second, _ = await asftp(node.port, login)
        with pytest.raises(asyncssh.PermissionDenied):
            await asftp(node.port, login)
        first.close()
        await first.wait_closed()
        for _ in range(50):  # a slot is free again once the server saw the close
            try:
                third, _ = await asftp(node.port, login)
                break
            except asyncssh.PermissionDenied:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("the closed session's slot was never freed")
        third.close()
        second.close()

    run(go())


def test_open_handles_per_session_are_limited(own_node: OwnNode, sqlite_url: str) -> None:
    _, node, login = own_node(sqlite_url, max_open_handles=3)

    async def go() -> None:
        conn, sftp = await asftp(node.port, login)
        async with conn:
            files = [await sftp.open(f"/inbox/orders/f{i}.csv.part", "wb") for i in range(3)]
            with pytest.raises(asyncssh.SFTPFailure, match="too many open files"):
                await sftp.open("/inbox/orders/f4.csv.part", "wb")
            await files[0].close()
            await (await sftp.open("/inbox/orders/f5.csv.part", "wb")).close()

    run(go())


class FullDisk(LocalStore):
    """A store whose disk is full: writes go to /dev/full, which answers ENOSPC."""

    def create(self, blob_id: str) -> BinaryIO:
        self.path(blob_id).parent.mkdir(exist_ok=True)
        self.path(blob_id).touch()
        return open("/dev/full", "wb", buffering=0)


def test_full_disk_is_a_clear_sftp_error(own_node: OwnNode, sqlite_url: str) -> None:
    ctx, node, login = own_node(sqlite_url)
    ctx.vault.store = FullDisk(ctx.vault.store.root)

    async def go() -> None:
        conn, sftp = await asftp(node.port, login)
        async with conn:
            f = await sftp.open("/inbox/orders/x.csv", "wb")
            with pytest.raises(asyncssh.SFTPError, match="disk is full"):
                await f.write(b"id;name;amount\n" * 200_000)  # past the first segment
            with pytest.raises(asyncssh.SFTPFailure):
                await f.close()

    run(go())
    t = wait_for(lambda: [t for t in transfers_of(ctx) if t.state.final])[0]
    assert t.state == State.INTERRUPTED
    assert "disk is full" in t.error


def test_output_not_fetched_in_time_is_erased_and_reported(own_node: OwnNode,
                                                           database_url: str) -> None:
    ctx, node, login = own_node(database_url, spec=CSV_SPEC + "retention:\n  pickup_within: 2s\n")

    async def go() -> None:
        conn, sftp = await asftp(node.port, login)
        async with conn, sftp.open("/inbox/orders/late.csv", "wb") as f:
            await f.write(b"id;name;amount\n1;a;1\n")

    run(go())
    t = wait_for(lambda: [t for t in transfers_of(ctx) if t.state.final], timeout=20,
                 what="expiry")[0]
    assert t.state == State.FAILED
    assert t.error == "target 1 (pickup): not fetched within pickup_within"
    assert list(ctx.vault.store.ids()) == []


def test_a_push_that_already_landed_is_not_sent_again(tmp_path: Path, sqlite_url: str) -> None:
    """A node died between the rename on the target and the commit: the retry finds the
    final name and records the delivery instead of uploading twice."""
    from doorvoer.delivery.service import Job, claim
    from doorvoer.jobs import push_one
    from doorvoer.processes.service import apply_process
    from doorvoer.tenants.service import require_tenant
    from test_delivery import PUSH_SPEC, Target, _connect

    ctx = make_ctx(tmp_path, sqlite_url)
    target = Target(tmp_path / "partner")
    target.start()
    try:
        login = add_tenant(ctx, tmp_path, spec=CSV_SPEC)
        _connect(ctx, target)
        with ctx.unit() as w:
            apply_process(w, require_tenant(w, "acme"), PUSH_SPEC.replace(
                "  - pickup: out/\n", ""), "push")
        node = NodeThread(ctx).start()
        try:
            async def go() -> None:
                conn, sftp = await asftp(node.port, login)
                async with conn, sftp.open("/inbox/out/twice.csv", "wb") as f:
                    await f.write(b"id\n1\n")

            run(go())
            landed = target.root / "incoming" / "twice.json"
            wait_for(landed.exists, what="the first push")
            wait_for(lambda: [t for t in transfers_of(ctx) if t.state == State.ERASED])
        finally:
            node.stop()
        # Replay the crash window: the output is back, the delivery says SENDING.
        mtime = landed.stat().st_mtime_ns
        with ctx.unit() as u:
            d = u.session.query(Delivery).one()
            t = d.transfer_id
            d.state = DState.SENDING
            d.done_at = None
            tr = u.session.get_one(Transfer, t)
            w = ctx.vault.create(u, tr.id, "output")
            tr.output_blob_id = w.blob_id
            tr.state = State.DELIVERING
            tr.erased_at = None
        w.write(b"[]")
        w.close()
        job = ctx.run(claim)
        assert isinstance(job, Job)
        run(push_one(ctx, job))
        with ctx.reading() as w:
            assert w.session.query(Delivery).one().state == DState.DELIVERED
        assert landed.stat().st_mtime_ns == mtime
        assert sorted(p.name for p in landed.parent.iterdir()) == ["twice.json"]
    finally:
        target.close()
        ctx.close()
