"""The SFTP tree: what an account sees, what it may do, and every way out refused."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import asyncssh
import pytest

from conftest import (
    CSV_SPEC,
    Login,
    NodeThread,
    OwnNode,
    add_tenant,
    asftp,
    sftp_batch,
    ssh_opts,
)
from doorvoer.context import Context
from doorvoer.transfers.models import State
from doorvoer.transfers.service import list_transfers

ESCAPES = [
    "/inbox/orders/../../../etc/passwd",
    "../../etc/passwd",
    "/etc/passwd",
    "/inbox/../../tmp/x.csv",
]


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_session_starts_at_root_and_sees_only_its_tree(node: NodeThread, login: Login) -> None:
    async def go() -> None:
        conn, sftp = await asftp(node.port, login)
        async with conn:
            assert await sftp.realpath(".") == "/"
            assert await sftp.realpath("../../..") == "/"
            assert sorted(await sftp.listdir("/")) == [".", "..", "inbox", "outbox"]
            assert "orders" in await sftp.listdir("/inbox")
            assert "orders" in await sftp.listdir("/outbox")
            assert await sftp.isdir("/inbox/orders")
            assert not await sftp.exists("/inbox/nope")
            assert not await sftp.exists("/etc")

    run(go())


def test_a_long_listing_names_the_tenant_as_owner(
    node: NodeThread, login: Login, tmp_path: Path
) -> None:
    local = tmp_path / "wait.csv"
    local.write_bytes(b"id;name;amount\n")
    sftp_batch(node.port, login, f"put {local} /inbox/orders/wait.csv.part\n")
    listing = sftp_batch(node.port, login, "ls -l /inbox/orders\nls -l /\n").stdout
    lines = [line.split() for line in listing.splitlines() if not line.startswith("sftp>")]
    file_line = next(line for line in lines if line[-1].endswith("wait.csv.part"))
    assert file_line[0] == "--w-------"  # a write-only drop box
    assert file_line[1:3] == ["acme", "acme"]
    assert {(line[1], line[2]) for line in lines} == {("acme", "acme")}
    assert "root" not in listing


@pytest.mark.parametrize("path", ESCAPES)
def test_paths_outside_the_tree_do_not_exist(node: NodeThread, login: Login, path: str) -> None:
    async def go() -> None:
        conn, sftp = await asftp(node.port, login)
        async with conn:
            with pytest.raises((asyncssh.SFTPNoSuchFile, asyncssh.SFTPPermissionDenied)):
                async with sftp.open(path, "rb") as f:
                    await f.read()
            with pytest.raises((asyncssh.SFTPNoSuchFile, asyncssh.SFTPPermissionDenied)):
                async with sftp.open(path, "wb") as f:
                    await f.write(b"x")

    run(go())


def test_links_renames_out_and_folder_changes_are_refused(
    node: NodeThread, login: Login
) -> None:
    async def go() -> None:
        conn, sftp = await asftp(node.port, login)
        async with conn:
            async with sftp.open("/inbox/orders/a.csv.part", "wb") as f:
                await f.write(b"id;name;amount\n")
            denied = (asyncssh.SFTPPermissionDenied, asyncssh.SFTPFailure,
                      asyncssh.SFTPOpUnsupported)
            with pytest.raises(denied):
                await sftp.symlink("/etc/passwd", "/inbox/orders/link.csv")
            with pytest.raises(denied):
                await sftp.link("/inbox/orders/a.csv.part", "/inbox/orders/b.csv")
            with pytest.raises(denied):
                await sftp.readlink("/inbox/orders/a.csv.part")
            with pytest.raises(denied):
                await sftp.rename("/inbox/orders/a.csv.part", "/outbox/orders/a.csv")
            with pytest.raises((*denied, asyncssh.SFTPNoSuchFile)):
                await sftp.rename("/inbox/orders/a.csv.part", "/inbox/../../tmp/a.csv")
            for op in (sftp.mkdir("/inbox/new"), sftp.rmdir("/inbox/orders"),
                       sftp.rmdir("/inbox"), sftp.rename("/inbox/orders", "/inbox/x"),
                       sftp.mkdir("/x")):
                with pytest.raises(denied):
                    await op
            with pytest.raises(denied):
                async with sftp.open("/inbox/loose.csv", "wb") as f:
                    await f.write(b"x")
            with pytest.raises(denied):
                async with sftp.open("/top.csv", "wb") as f:
                    await f.write(b"x")

    run(go())


def test_inbox_is_a_drop_box(node: NodeThread, login: Login) -> None:
    async def go() -> None:
        conn, sftp = await asftp(node.port, login)
        async with conn:
            async with sftp.open("/inbox/orders/held.csv.filepart", "wb") as f:
                await f.write(b"id;name;amount\n1;a;1\n")
            # Listing and stat are allowed, reading back is not.
            assert "held.csv.filepart" in await sftp.listdir("/inbox/orders")
            assert (await sftp.stat("/inbox/orders/held.csv.filepart")).size == 21
            with pytest.raises(asyncssh.SFTPPermissionDenied):
                async with sftp.open("/inbox/orders/held.csv.filepart", "rb") as f:
                    await f.read()
            with pytest.raises(asyncssh.SFTPPermissionDenied):
                async with sftp.open("/inbox/orders/held.csv.filepart", "r+b") as f:
                    await f.read()

    run(go())


def test_port_forwarding_is_refused(node: NodeThread, login: Login) -> None:
    async def go() -> None:
        conn, _ = await asftp(node.port, login)
        async with conn:
            with pytest.raises(asyncssh.ChannelOpenError):
                await conn.create_connection(asyncssh.SSHTCPSession, "127.0.0.1", node.port)

    run(go())


@pytest.mark.parametrize("command", [[], ["id"]])
def test_shell_and_exec_are_refused(node: NodeThread, login: Login, command: list[str]) -> None:
    r = subprocess.run(
        ["ssh", "-T", "-p", str(node.port), *ssh_opts(node.port)[2:], "-i",
         str(login.key_path), "-l", login.user, "127.0.0.1", *command],
        capture_output=True, text=True, timeout=30, check=False, stdin=subprocess.DEVNULL,
    )
    assert r.returncode != 0
    assert "uid=" not in r.stdout


def test_wrong_password_and_unknown_user_are_refused(node: NodeThread, login: Login) -> None:
    async def attempt(user: str, password: str) -> None:
        async with asyncssh.connect("127.0.0.1", node.port, username=user, password=password,
                                    known_hosts=None, client_keys=[], agent_path=None,
                                    config=[]):
            pass

    with pytest.raises(asyncssh.PermissionDenied):
        run(attempt(login.user, "not-the-password"))
    with pytest.raises(asyncssh.PermissionDenied):
        run(attempt("nobody@acme", login.password))
    run(attempt(login.user, login.password))  # the right password works


def test_failed_logins_are_throttled(own_node: OwnNode, sqlite_url: str) -> None:
    _, n, login = own_node(sqlite_url, slug="throttled", max_failed_logins=3)

    async def attempt(password: str) -> None:
        async with asyncssh.connect("127.0.0.1", n.port, username=login.user,
                                    password=password, known_hosts=None, client_keys=[],
                                    agent_path=None, config=[]):
            pass

    for _ in range(3):
        with pytest.raises(asyncssh.PermissionDenied):
            run(attempt("wrong-password"))
    # Now even the right password is refused for a while.
    with pytest.raises(asyncssh.PermissionDenied):
        run(attempt(login.password))


def test_second_tenant_sees_nothing_of_the_first(
    ctx: Context, node: NodeThread, login: Login, tmp_path: Path
) -> None:
    other = add_tenant(ctx, tmp_path, "globex", spec=CSV_SPEC.replace("orders", "invoices"))
    src = tmp_path / "secret.csv.part"
    src.write_bytes(b"id;name;amount\n1;x;1\n")
    sftp_batch(node.port, login, f"put {src} /inbox/orders/secret.csv.part\n")

    async def go() -> None:
        conn, sftp = await asftp(node.port, other)
        async with conn:
            assert await sftp.listdir("/inbox") == [".", "..", "invoices"]
            assert not await sftp.exists("/inbox/orders/secret.csv.part")
            with pytest.raises(asyncssh.SFTPNoSuchFile):
                await sftp.listdir("/inbox/orders")
            with pytest.raises((asyncssh.SFTPNoSuchFile, asyncssh.SFTPPermissionDenied)):
                await sftp.remove("/inbox/orders/secret.csv.part")
            with pytest.raises((asyncssh.SFTPNoSuchFile, asyncssh.SFTPPermissionDenied)):
                await sftp.rename("/inbox/orders/secret.csv.part", "/inbox/invoices/x.csv")

    run(go())
    # The first tenant's file is still there, untouched.
    assert "secret.csv.part" in sftp_batch(node.port, login, "ls /inbox/orders\n").stdout
    states = {t.filename: t.state for t in ctx.run(list_transfers, write=False)}
    assert states["secret.csv.part"] == State.HELD


def test_user_name_picks_the_account(ctx: Context, node: NodeThread, login: Login,
                                     tmp_path: Path) -> None:
    other = add_tenant(ctx, tmp_path, "initech")
    # The other tenant's key does not open this tenant's account.
    wrong = Login(login.user, login.password, other.key_path, login.tenant)
    r = sftp_batch(node.port, wrong, "ls /\n", check=False)
    assert r.returncode != 0
    # Each key opens its own account: the other tenant sees its own tree.
    assert "orders" in sftp_batch(node.port, other, "ls /inbox\n").stdout
