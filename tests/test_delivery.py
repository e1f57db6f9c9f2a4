"""Pushing outputs to a real SFTP server (asyncssh, chrooted to a folder)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from conftest import Login, NodeThread, add_tenant, asftp, make_ctx, transfers_of, wait_for
from doorvoer.context import Context
from doorvoer.secrets.models import Connection
from doorvoer.secrets.service import SftpConnection, set_connection
from doorvoer.tenants.service import require_tenant
from doorvoer.transfers.models import Delivery, State

PUSH_SPEC = """\
name: push
match: "out/*.csv"
read: {format: csv}
transform:
  sql: SELECT * FROM input
write: {format: json, filename: "{stem}.json"}
deliver:
  - sftp: {connection: webshop, path: /incoming/}
  - pickup: out/
"""


class Target:
    """A plain SFTP server: the partner that receives pushed outputs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "incoming").mkdir(parents=True)
        self.key = asyncssh.generate_private_key("ssh-ed25519")
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def start(self, port: int = 0) -> None:
        root = str(self.root)

        class Server(asyncssh.SSHServer):
            def password_auth_supported(self) -> bool:
                return True

            def validate_password(self, username: str, password: str) -> bool:
                return username == "partner" and password == "partner-pw"

        async def go() -> asyncssh.SSHAcceptor:
            return await asyncssh.listen(
                "127.0.0.1", port, server_host_keys=[self.key], server_factory=Server,
                sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=root))

        self._acceptor = asyncio.run_coroutine_threadsafe(go(), self.loop).result(10)
        self.port = self._acceptor.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            self._acceptor = None

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Target]:
    t = Target(tmp_path / "partner")
    t.start()
    yield t
    t.close()


def _connect(ctx: Context, target: Target, host_key: str | None = None) -> None:
    with ctx.unit() as w:
        set_connection(w, require_tenant(w, "acme"), "webshop", SftpConnection(
            host="127.0.0.1", port=target.port, username="partner",
            host_key=host_key or target.key.export_public_key().decode(),
            password="partner-pw"))


def _upload(port: int, login: Login, name: str, data: bytes) -> None:
    async def go() -> None:
        conn, sftp = await asftp(port, login)
        async with conn, sftp.open(f"/inbox/out/{name}", "wb") as f:
            await f.write(data)

    asyncio.run(go())


def test_push_delivers_once_under_its_final_name(ctx: Context, tmp_path: Path,
                                                 target: Target) -> None:
    login = add_tenant(ctx, tmp_path, "acme", spec=_pickup_only())
    _connect(ctx, target)
    from doorvoer.processes.service import apply_process

    with ctx.unit() as w:
        apply_process(w, require_tenant(w, "acme"), PUSH_SPEC, "push")
    node = NodeThread(ctx).start()
    try:
        _upload(node.port, login, "o1.csv", b"id,amount\n1,2.50\n")
        wait_for(lambda: (target.root / "incoming" / "o1.json").exists(), what="the push")
        assert json.loads((target.root / "incoming" / "o1.json").read_bytes()) == [
            {"id": "1", "amount": "2.50"}]
        assert sorted(p.name for p in (target.root / "incoming").iterdir()) == ["o1.json"]
        t = next(t for t in transfers_of(ctx) if t.filename == "o1.csv")
        # The pickup target still waits: the transfer is READY, the push is done.
        assert wait_for(lambda: next(x for x in transfers_of(ctx) if x.id == t.id).state
                        == State.READY)
        with ctx.reading() as w:
            d = w.session.query(Delivery).filter_by(transfer_id=t.id, kind="sftp").one()
            assert d.state == "DELIVERED" and d.attempts == 1
            # Connection details are sealed: nothing readable in the row.
            row = w.session.query(Connection).one()
            assert b"partner-pw" not in row.sealed and b"127.0.0.1" not in row.sealed
    finally:
        node.stop()


def _pickup_only() -> str:
    return PUSH_SPEC.replace('match: "out/*.csv"', 'match: "other/*.csv"').replace(
        "name: push", "name: other").replace(
        "  - sftp: {connection: webshop, path: /incoming/}\n", "").replace(
        "pickup: out/", "pickup: other/")


def test_push_retries_until_the_target_is_back(tmp_path: Path, sqlite_url: str,
                                               target: Target) -> None:
    ctx = make_ctx(tmp_path, sqlite_url, push_attempts=10, push_backoff_s=0.2)
    login = add_tenant(ctx, tmp_path, "acme", spec=_pickup_only())
    _connect(ctx, target)
    from doorvoer.processes.service import apply_process

    with ctx.unit() as w:
        apply_process(w, require_tenant(w, "acme"), PUSH_SPEC, "push")
    port = target.port
    target.stop()
    node = NodeThread(ctx).start()
    try:
        _upload(node.port, login, "o2.csv", b"id\n1\n")
        wait_for(lambda: _push_attempts(ctx) >= 2, what="failed attempts")
        target.start(port)
        wait_for(lambda: (target.root / "incoming" / "o2.json").exists(), what="the retry")

        def delivered() -> Delivery | None:
            with ctx.reading() as w:
                d = w.session.query(Delivery).filter_by(kind="sftp").one()
                return d if d.state == "DELIVERED" else None

        d = wait_for(delivered, what="the delivery to be recorded")  # after the rename
        assert d.attempts >= 2
    finally:
        node.stop()
        ctx.close()


def _push_attempts(ctx: Context) -> int:
    with ctx.reading() as w:
        d = w.session.query(Delivery).filter_by(kind="sftp").first()
        return d.attempts if d else 0


def test_wrong_pinned_host_key_fails_with_a_clear_reason(tmp_path: Path, sqlite_url: str,
                                                         target: Target) -> None:
    ctx = make_ctx(tmp_path, sqlite_url, push_attempts=2, push_backoff_s=0.1)
    other_key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    login = add_tenant(ctx, tmp_path, "acme", spec=_pickup_only())
    _connect(ctx, target, host_key=other_key)
    from doorvoer.processes.service import apply_process

    with ctx.unit() as w:
        apply_process(w, require_tenant(w, "acme"), PUSH_SPEC, "push")
    node = NodeThread(ctx).start()
    try:
        _upload(node.port, login, "o3.csv", b"id\n1\n")
        t = wait_for(lambda: [t for t in transfers_of(ctx) if t.filename == "o3.csv"
                              and t.error], timeout=30, what="the push to fail")[0]
        assert t.error == ("target 1 (sftp): the target's host key does not match the "
                           "pinned key")
        assert t.state == State.READY  # the pickup target still waits
        assert not (target.root / "incoming" / "o3.json").exists()

        async def remove() -> None:
            conn, sftp = await asftp(node.port, login)
            async with conn:
                await sftp.remove("/outbox/out/o3.json")

        asyncio.run(remove())
        t = wait_for(lambda: [t for t in transfers_of(ctx) if t.filename == "o3.csv"
                              and t.state.final])[0]
        assert t.state == State.FAILED
        assert list(ctx.vault.store.ids()) == []
    finally:
        node.stop()
        ctx.close()
