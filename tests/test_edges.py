"""The hard edges real clients bring: temporary names, renames, drops, pipelining,
poking at just-written files, reading ahead and fetching twice."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import asyncssh
import pytest

from conftest import Login, NodeThread, OwnNode, asftp, transfers_of, wait_for
from doorvoer.context import Context
from doorvoer.transfers import inbox, outbox, work
from doorvoer.transfers.errors import NoSuchFile
from doorvoer.transfers.inbox import UploadSession
from doorvoer.transfers.models import State
from doorvoer.transfers.service import list_transfers
from doorvoer.workers import process_batch

CSV = b"id;name;amount\n1;Jansen;7,00\n2;De Vries;3,50\n"


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def final(ctx: Context, filename: str) -> object:
    return wait_for(lambda: [t for t in transfers_of(ctx)
                             if t.filename == filename and t.state.final],
                    what=f"{filename} to finish")[0]


@pytest.mark.parametrize("temp", ["w.csv.filepart", "w.csv.part", "w.csv.partial",
                                  "w.csv.tmp", "w.csv~", ".w.csv"])
def test_temporary_name_then_rename_is_one_transfer(
    ctx: Context, node: NodeThread, login: Login, temp: str
) -> None:
    async def go() -> None:
        conn, sftp = await asftp(node.port, login)
        async with conn:
            async with sftp.open(f"/inbox/orders/{temp}", "wb") as f:
                await f.write(CSV)
            await asyncio.sleep(0.3)
            assert [t.state for t in transfers_of(ctx)] == [State.HELD]
            await sftp.rename(f"/inbox/orders/{temp}", "/inbox/orders/w.csv")

    run(go())
    t = wait_for(lambda: [t for t in transfers_of(ctx) if t.state == State.READY],
                 what="the output")[0]
    assert t.filename == "w.csv"
    assert len(transfers_of(ctx)) == 1


def test_posix_rename_works_too(ctx: Context, node: NodeThread, login: Login) -> None:
    async def go() -> None:
        conn, sftp = await asftp(node.port, login)
        async with conn:
            async with sftp.open("/inbox/orders/p.csv.part", "wb") as f:
                await f.write(CSV)
            await sftp.posix_rename("/inbox/orders/p.csv.part", "/inbox/orders/p.csv")

    run(go())
    wait_for(lambda: [t for t in transfers_of(ctx) if t.state == State.READY])
    assert [t.filename for t in transfers_of(ctx)] == ["p.csv"]


def test_unmatched_name_waits_then_is_discarded(own_node: OwnNode, database_url: str) -> None:
    ctx, node, login = own_node(database_url, rename_wait_s=2.0)

    async def go() -> None:
        conn, sftp = await asftp(node.port, login)
        async with conn:
            async with sftp.open("/inbox/orders/readme.txt", "wb") as f:
                await f.write(CSV)
            assert "readme.txt" in await sftp.listdir("/inbox/orders")  # waiting

    run(go())
    t = final(ctx, "readme.txt")
    assert t.state == State.DISCARDED  # type: ignore[attr-defined]
    assert "no process matches" in t.error  # type: ignore[attr-defined]
    assert list(ctx.vault.store.ids()) == []


def test_dropped_connection_is_an_interrupted_upload(ctx: Context, node: NodeThread,
                                                     login: Login) -> None:
    async def go() -> None:
        conn, sftp = await asftp(node.port, login)
        f = await sftp.open("/inbox/orders/cut.csv", "wb")
        await f.write(CSV[:10])
        conn.abort()  # no CLOSE: the connection just goes away
        await asyncio.sleep(0.2)

    run(go())
    t = final(ctx, "cut.csv")
    assert t.state == State.INTERRUPTED  # type: ignore[attr-defined]
    assert "before the client closed" in t.error  # type: ignore[attr-defined]
    assert t.rows_in is None  # type: ignore[attr-defined]
    assert list(ctx.vault.store.ids()) == []


def test_gap_in_the_upload_is_refused(ctx: Context, node: NodeThread, login: Login) -> None:
    async def go() -> None:
        conn, sftp = await asftp(node.port, login)
        async with conn:
            f = await sftp.open("/inbox/orders/gap.csv", "wb")
            await f.write(CSV[:5], 0)
            await f.write(CSV[10:], 10)  # bytes 5..10 never come
            with pytest.raises(asyncssh.SFTPFailure, match="gaps"):
                await f.close()

    run(go())
    assert final(ctx, "gap.csv").state == State.INTERRUPTED  # type: ignore[attr-defined]


def test_out_of_order_writes_give_the_exact_bytes(ctx: Context, node: NodeThread,
                                                  login: Login) -> None:
    rows = "".join(f"{i};name{i};{i},00\n" for i in range(3000)).encode()
    data = b"id;name;amount\n" + rows
    chunks = [(o, data[o:o + 1000]) for o in range(0, len(data), 1000)]
    random.Random(7).shuffle(chunks)

    async def go() -> None:
        conn, sftp = await asftp(node.port, login)
        async with conn:
            async with sftp.open("/inbox/orders/shuffled.csv", "wb") as f:
                await asyncio.gather(*(f.write(c, o) for o, c in chunks))
            await asyncio.sleep(0)
            for _ in range(300):
                if "shuffled.json" in await sftp.listdir("/outbox/orders"):
                    break
                await asyncio.sleep(0.1)
            async with sftp.open("/outbox/orders/shuffled.json", "rb") as f:
                out = json.loads(await f.read())
            assert len(out) == 3000
            assert out[1234] == {"id": "1234", "name": "NAME1234", "amount": 1234.0}

    run(go())
    t = next(t for t in transfers_of(ctx) if t.filename == "shuffled.csv")
    assert t.bytes_in == len(data)


def test_stat_and_setstat_right_after_close(ctx: Context, node: NodeThread,
                                            login: Login) -> None:
    async def go() -> None:
        conn, sftp = await asftp(node.port, login)
        async with conn:
            async with sftp.open("/inbox/orders/r.csv", "wb") as f:
                await f.write(CSV)
            # rclone: setstat (mtime) then stat; it uploads again if either fails.
            await sftp.utime("/inbox/orders/r.csv", (1_700_000_000, 1_700_000_000))
            assert (await sftp.stat("/inbox/orders/r.csv")).size == len(CSV)

    run(go())
    wait_for(lambda: any(t.state == State.READY for t in transfers_of(ctx)))
    assert len(transfers_of(ctx)) == 1


def test_outbox_reads_backwards_past_end_and_again(ctx: Context, node: NodeThread,
                                                   login: Login) -> None:
    async def go() -> None:
        conn, sftp = await asftp(node.port, login)
        async with conn:
            async with sftp.open("/inbox/orders/b.csv", "wb") as f:
                await f.write(CSV)
            for _ in range(300):
                if "b.json" in await sftp.listdir("/outbox/orders"):
                    break
                await asyncio.sleep(0.1)
            size = (await sftp.stat("/outbox/orders/b.json")).size
            async with sftp.open("/outbox/orders/b.json", "rb") as f:
                tail = await f.read(10, size - 10)
                beyond = await f.read(100, size + 50)  # psftp reads ahead past the end
                whole = await f.read(size + 100, 0)  # and back to the start
            assert beyond == b"" and whole.endswith(tail) and len(whole) == size
            # lftp may fetch again after a local failure: allowed within the grace.
            async with sftp.open("/outbox/orders/b.json", "rb") as f:
                assert await f.read() == whole
            await asyncio.sleep(ctx.settings.fetch_grace_s + 1.5)
            assert "b.json" not in await sftp.listdir("/outbox/orders")

    run(go())
    assert final(ctx, "b.csv").state == State.ERASED  # type: ignore[attr-defined]


def test_partial_download_does_not_count_as_pickup(ctx: Context, node: NodeThread,
                                                   login: Login) -> None:
    async def go() -> None:
        conn, sftp = await asftp(node.port, login)
        async with conn:
            async with sftp.open("/inbox/orders/h.csv", "wb") as f:
                await f.write(CSV)
            for _ in range(300):
                if "h.json" in await sftp.listdir("/outbox/orders"):
                    break
                await asyncio.sleep(0.1)
            async with sftp.open("/outbox/orders/h.json", "rb") as f:
                await f.read(5, 0)
            await asyncio.sleep(ctx.settings.fetch_grace_s + 1.5)
            assert "h.json" in await sftp.listdir("/outbox/orders")
            await sftp.remove("/outbox/orders/h.json")  # the tenant may delete it
            assert "h.json" not in await sftp.listdir("/outbox/orders")

    run(go())
    t = final(ctx, "h.csv")
    assert t.state == State.ERASED  # type: ignore[attr-defined]


def test_outputs_never_overwrite_each_other(ctx: Context, node: NodeThread,
                                            login: Login) -> None:
    async def go() -> list[str]:
        conn, sftp = await asftp(node.port, login)
        async with conn:
            for _ in range(3):
                async with sftp.open("/inbox/orders/same.csv", "wb") as f:
                    await f.write(CSV)
                await asyncio.sleep(0.5)
            for _ in range(300):
                names = sorted(n for n in await sftp.listdir("/outbox/orders")
                               if not n.startswith("."))
                if len(names) == 3:
                    return names
                await asyncio.sleep(0.1)
            return names

    assert run(go()) == ["same-2.json", "same-3.json", "same.json"]


def test_file_size_limit(own_node: OwnNode, sqlite_url: str) -> None:
    c, n, login = own_node(sqlite_url, max_file_bytes=1000)

    async def go() -> None:
        conn, sftp = await asftp(n.port, login)
        async with conn:
            f = await sftp.open("/inbox/orders/huge.csv", "wb")
            with pytest.raises(asyncssh.SFTPFailure, match="limit"):
                await f.write(b"x" * 2000)
            with pytest.raises(asyncssh.SFTPFailure):
                await f.close()

    run(go())
    assert final(c, "huge.csv").state == State.INTERRUPTED  # type: ignore[attr-defined]


def _received(ctx: Context, tenant_id: str, name: str, data: bytes) -> str:
    upload = ctx.run(UploadSession.begin, tenant_id, None, "orders", name)
    upload.append(data)
    assert ctx.run(upload.complete) == State.RECEIVED
    return upload.transfer_id


def _claim(ctx: Context, limit: int = work.BATCH_FILES) -> list[work.Claim]:
    return ctx.run(work.claim, limit)


def test_a_batch_of_small_files_is_claimed_and_recorded_together(
    ctx: Context, login: Login
) -> None:
    """Files with the same name in one batch still get names of their own, and a large
    input is claimed alone."""
    from doorvoer.tenants.models import Tenant
    from doorvoer.transfers.models import Delivery

    with ctx.reading() as w:
        tenant_id = w.session.query(Tenant.id).filter_by(slug=login.tenant).scalar()
    small = [_received(ctx, tenant_id, "same.csv", CSV) for _ in range(3)]
    big = _received(ctx, tenant_id, "big.csv", CSV + b"".join(
        b"%d;x;1,00\n" % i for i in range(work.BATCH_BYTES // 8)))
    after = _received(ctx, tenant_id, "after.csv", CSV)

    claims = _claim(ctx)
    assert [c.transfer_id for c in claims] == small  # the big one ends the batch
    states = process_batch(ctx, claims)
    assert set(states.values()) == {State.READY}
    with ctx.reading() as w:
        names = sorted(d.outbox_name for d in w.session.query(Delivery))
    assert names == ["same-2.json", "same-3.json", "same.json"]

    assert [c.transfer_id for c in _claim(ctx)] == [big]
    assert [c.transfer_id for c in _claim(ctx)] == [after]
    assert _claim(ctx) == []


def test_output_names_are_looked_up_literally_and_kept_apart_within_a_batch(
    ctx: Context, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the waiting names an output could collide with are read, by exact name (`%`
    and `_` are no wildcards, case counts), a few at a time; a name given out in a batch
    is taken for every other name of the batch too."""
    from doorvoer.tenants.models import Tenant
    from doorvoer.transfers.models import Delivery

    with ctx.reading() as w:
        tenant_id = w.session.query(Tenant.id).filter_by(slug=login.tenant).scalar()

    def batch(*names: str) -> list[str]:
        ids = [_received(ctx, tenant_id, name, CSV) for name in names]
        claims = _claim(ctx)
        assert [c.transfer_id for c in claims] == ids
        assert set(process_batch(ctx, claims).values()) == {State.READY}
        with ctx.reading() as w:
            rows = {d.transfer_id: d.outbox_name for d in w.session.query(Delivery)}
        return [rows[i] for i in ids]

    assert batch("50%_off.csv", "50%_off.csv", "5x%yoff.csv") == [
        "50%_off.json", "50%_off-2.json", "5x%yoff.json"]
    # waiting: 50%_off, 50%_off-2, 5x%yoff (which an unescaped pattern would match too)
    assert batch("50%_off.csv", "SAME.csv", "same.csv") == [
        "50%_off-3.json", "SAME.json", "same.json"]
    # "a-2" is given to the second "a" before the file named "a-2" comes: it moves on
    assert batch("a.csv", "a.csv", "a-2.csv") == ["a.json", "a-2.json", "a-2-2.json"]
    # taken names beyond one lookup's candidates: a-2 and a-3 waiting, 2 per lookup
    monkeypatch.setattr(outbox.OutboxNames, "NAMES_AT_ONCE", 2)
    monkeypatch.setattr(outbox.OutboxNames, "EXPECTED_AT_ONCE", 1)
    assert batch("a.csv", "a.csv") == ["a-3.json", "a-4.json"]


def test_failures_in_a_batch_are_recorded_together_and_erased(
    ctx: Context, login: Login
) -> None:
    """Failed transforms end in one write transaction (a batch of bad files must not
    take the writer lock once per file), each with its own reason and nothing left in
    the vault; a transfer erased while its batch ran does not stop the others."""
    from sqlalchemy import event

    from doorvoer.tenants.models import Tenant
    from doorvoer.transfers.models import Transfer
    from doorvoer.vault.models import BlobKey

    with ctx.reading() as w:
        tenant_id = w.session.query(Tenant.id).filter_by(slug=login.tenant).scalar()
    ragged = b"id;name;amount\n1;Jansen\n"
    ids = [_received(ctx, tenant_id, f"f{i}.csv", ragged if i % 2 else CSV) for i in range(6)]
    claims = _claim(ctx)
    assert [c.transfer_id for c in claims] == ids
    with ctx.unit() as w:  # the tenant's erasure takes one while it waits
        gone = w.session.get_one(Transfer, ids[3])
        ctx.vault.erase_owned(w, gone.id)
        w.session.delete(gone)

    commits: list[int] = []

    def count(_conn: object) -> None:
        commits.append(1)

    event.listen(ctx.engine, "commit", count)
    try:
        states = process_batch(ctx, claims)
    finally:
        event.remove(ctx.engine, "commit", count)
    assert states == {ids[0]: State.READY, ids[1]: State.FAILED, ids[2]: State.READY,
                      ids[3]: State.DISCARDED, ids[4]: State.READY, ids[5]: State.FAILED}
    assert len(commits) == 1  # the whole batch: failures and successes together
    with ctx.reading() as w:
        for tid in (ids[1], ids[5]):
            t = w.session.get_one(Transfer, tid)
            assert t.error is not None and "line 2" in t.error, t.error
            assert "Jansen" not in t.error
            assert t.erased_at is not None
            assert w.session.query(BlobKey).filter_by(owner_id=tid).count() == 0
        keys = {k.blob_id for k in w.session.query(BlobKey)}
        outputs = {w.session.get_one(Transfer, tid).output_blob_id
                   for tid in (ids[0], ids[2], ids[4])}
    assert keys == outputs  # the three outputs wait for pickup; nothing else is kept
    assert set(ctx.vault.store.ids()) == keys


def test_worker_threads_that_wake_together_prepare_one_output_per_transfer(
    ctx: Context, login: Login
) -> None:
    """Both threads look at once; only one prepares (and keeps) the output blob."""
    import threading

    from doorvoer.tenants.models import Tenant

    with ctx.reading() as w:
        tenant_id = w.session.query(Tenant.id).filter_by(slug=login.tenant).scalar()
    tid = _received(ctx, tenant_id, "one.csv", CSV)
    prepared: list[str] = []
    prepare = ctx.vault.prepare

    def counting(owner_id: str, role: str):  # type: ignore[no-untyped-def]
        prepared.append(owner_id)
        return prepare(owner_id, role)

    ctx.vault.prepare = counting  # type: ignore[method-assign]
    start = threading.Barrier(2)
    claimed: list[list[str]] = []

    def worker() -> None:
        start.wait()
        claimed.append([c.transfer_id for c in _claim(ctx, 16)])

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(claimed) == [[], [tid]]
    assert prepared == [tid]


def test_the_outbox_end_of_a_transfer(ctx: Context, login: Login) -> None:
    """An output fetched whole and then deleted is picked up; one deleted unread is
    removed. Either way the transfer is erased with its output, and what the tenant
    sees of it says when it was delivered."""
    from doorvoer.tenants.models import Tenant
    from doorvoer.transfers.models import Delivery, DState, Transfer
    from doorvoer.vault.models import BlobKey

    with ctx.reading() as w:
        tenant_id = w.session.query(Tenant.id).filter_by(slug=login.tenant).scalar()
    fetched, unread = (_received(ctx, tenant_id, f"{n}.csv", CSV) for n in ("a", "b"))
    claims = _claim(ctx)
    assert process_batch(ctx, claims) == {fetched: State.READY,
                                                     unread: State.READY}
    assert [e.name for e in ctx.run(outbox.outbox_entries, tenant_id, "orders")] == [
        "a.json", "b.json"]
    pickup = ctx.run(outbox.open_pickup, tenant_id, "orders", "a.json")
    assert pickup is not None and pickup.transfer_id == fetched
    entry = ctx.run(outbox.outbox_entry, tenant_id, "orders", "a.json")
    assert entry is not None and entry.size == pickup.size > 0
    ctx.run(outbox.mark_fetched, pickup.delivery_id)
    ctx.run(outbox.mark_fetched, pickup.delivery_id)  # a second download changes nothing
    for name in ("a.json", "b.json"):
        ctx.run(outbox.remove_pickup, tenant_id, "orders", name)
    with pytest.raises(NoSuchFile):
        ctx.run(outbox.remove_pickup, tenant_id, "orders", "a.json")
    assert ctx.run(outbox.outbox_entries, tenant_id, "orders") == []
    assert ctx.run(outbox.open_pickup, tenant_id, "orders", "b.json") is None

    with ctx.reading() as w:
        states = {d.transfer_id: d.state for d in w.session.query(Delivery)}
        assert states == {fetched: DState.PICKED_UP, unread: DState.REMOVED}
        for tid in (fetched, unread):
            t = w.session.get_one(Transfer, tid)
            assert (t.state, t.error) == (State.ERASED, None)
            assert t.delivered_at is not None and t.erased_at is not None
            assert t.output_blob_id is not None
        assert w.session.query(BlobKey).count() == 0
    assert list(ctx.vault.store.ids()) == []
    if ctx.engine.dialect.name == "sqlite":
        # Every time is stored in the one format SQLite's text comparisons rely on (a
        # bare datetime bound without the column's type would be stored with "+00:00").
        import re

        with ctx.engine.connect() as conn:
            raw = [v for table, cols in (
                ("transfers", "received_at, processed_at, input_erased_at, erased_at, "
                              "delivered_at"),
                ("deliveries", "fetched_at, done_at"))
                for row in conn.exec_driver_sql(f"SELECT {cols} FROM {table}")
                for v in row if v is not None]
        assert len(raw) == 13
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", v) for v in raw), raw


def test_an_unreported_transfer_picked_up_after_the_stat_grace_leaves_no_record(
    tmp_path: Path, database_url: str
) -> None:
    """P4 on the outbox's own path: with the tenant's reports off, the delete that ends
    a transfer whose stat grace is over deletes its record in the same transaction."""
    from conftest import add_tenant, make_ctx
    from doorvoer.tenants.models import Tenant

    ctx = make_ctx(tmp_path, database_url, stat_grace_s=0.0)
    try:
        login = add_tenant(ctx, tmp_path)
        with ctx.unit() as w:
            tenant = w.session.query(Tenant).filter_by(slug=login.tenant).one()
            tenant.report = False
            tenant_id = tenant.id
        kept = _received(ctx, tenant_id, "a.csv", CSV)
        [claim] = _claim(ctx, 1)
        assert process_batch(ctx, [claim]) == {kept: State.READY}
        assert [t.id for t in ctx.run(list_transfers)] == [kept]  # in flight: kept
        ctx.run(outbox.remove_pickup, tenant_id, "orders", "a.json")
        assert ctx.run(list_transfers) == []
        with ctx.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM deliveries").scalar() == 0
            assert conn.exec_driver_sql("SELECT count(*) FROM vault_keys").scalar() == 0
    finally:
        ctx.close()


def test_an_inbox_listing_shows_what_waits_of_this_tenant_only(
    tmp_path: Path, database_url: str
) -> None:
    """Open, held and received files are listed with their sizes; a processed one is
    not (once the stat grace is over); a name uploaded again is listed once, as its
    latest upload; another tenant's files never."""
    from conftest import add_tenant, make_ctx
    from doorvoer.tenants.models import Tenant

    ctx = make_ctx(tmp_path, database_url, stat_grace_s=0.0)
    try:
        ids = {}
        for slug in ("acme", "other"):
            add_tenant(ctx, tmp_path, slug)
            with ctx.reading() as w:
                ids[slug] = w.session.query(Tenant.id).filter_by(slug=slug).scalar()
        acme = ids["acme"]
        ctx.run(UploadSession.begin, acme, None, "orders", "open.csv")  # still open
        held = ctx.run(UploadSession.begin, acme, None, "orders", "held.csv.part")
        held.append(b"12345")
        assert ctx.run(held.complete) == State.HELD
        first = _received(ctx, acme, "a.csv", CSV)
        _received(ctx, ids["other"], "theirs.csv", CSV)
        claims = _claim(ctx)
        assert {c.transfer_id for c in claims} >= {first}
        process_batch(ctx, claims)
        again = CSV + b"3;Bakker;1,00\n"
        _received(ctx, acme, "a.csv", again)
        _received(ctx, ids["other"], "theirs.csv", CSV)  # waits, in the other tenant's inbox

        listed = {e.name: e.size for e in ctx.run(inbox.inbox_entries, acme, "orders")}
        assert listed == {"open.csv": 0, "held.csv.part": 5, "a.csv": len(again)}
        entry = ctx.run(inbox.inbox_entry, acme, "orders", "a.csv")
        assert entry is not None and entry.size == len(again)
        assert ctx.run(inbox.inbox_entry, acme, "orders", "theirs.csv") is None
        assert [e.name for e in ctx.run(inbox.inbox_entries, ids["other"], "orders")] == [
            "theirs.csv"]
    finally:
        ctx.close()
