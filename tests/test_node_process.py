"""`doorvoer serve` as a real process: SIGKILL and restart, plaintext never on disk,
no content in logs or reports."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import FAST, Login, add_tenant, asftp, make_ctx, wait_for
from doorvoer.context import Context
from doorvoer.transfers.models import Delivery, State, Transfer
from doorvoer.transfers.service import list_transfers
from doorvoer.vault.models import BlobKey

# New in every run, so that neither this file nor the output of an earlier run (a log
# in /tmp, say) can contain it.
MARKER = f"ZQXJ-{secrets.token_hex(8)}".encode()

SLOW_SPEC = """\
name: slow
match: "slow/*.csv"
read: {format: csv}
transform:
  sql: |
    SELECT i.* FROM input i,
      (SELECT count(*) AS c FROM range(CAST(2.5e9 AS BIGINT))) r
write: {format: csv}
deliver:
  - pickup: slow/
"""

PLAIN_SPEC = """\
name: plain
match: "plain/*.csv"
read: {format: csv}
transform:
  sql: SELECT * FROM input
write: {format: jsonl}
deliver:
  - pickup: plain/
"""


class Server:
    def __init__(self, data_dir: Path, log_path: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> None:
        from doorvoer.app import free_ports

        self.port, http_port = free_ports("127.0.0.1", 0, 0)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "doorvoer.cli", "serve", "--data-dir", str(self.data_dir),
             "--sftp-port", str(self.port), "--sftp-host", "127.0.0.1",
             "--http-port", str(http_port), "--http-host", "127.0.0.1"],
            stdout=log, stderr=log, env=self.env,
        )
        wait_for(self._listening, timeout=30, what="doorvoer serve to listen")

    def _listening(self) -> bool:
        import socket

        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"serve exited: {self.log_path.read_text()[-2000:]}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _all(ctx: Context) -> list[Transfer]:
    return ctx.run(list_transfers, write=False)


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[tuple[Context, Server, Login]]:
    ctx = make_ctx(tmp_path, database_url)
    login = add_tenant(ctx, tmp_path, "acme", SLOW_SPEC)
    from doorvoer.processes.service import apply_process
    from doorvoer.tenants.service import require_tenant

    with ctx.unit() as w:
        apply_process(w, require_tenant(w, "acme"), PLAIN_SPEC, "plain")
    env = {**os.environ, "DOORVOER_DATABASE_URL": database_url, "DOORVOER_LOG_LEVEL": "debug"}
    env.update({f"DOORVOER_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v)
                for k, v in FAST.items()})
    # Scanning /tmp for plaintext takes a while: the held file must wait for its rename.
    env["DOORVOER_RENAME_WAIT_S"] = "120"
    env["DOORVOER_WORKER_PROCESSES"] = "1"  # as in production: transforms in a process
    server = Server(tmp_path / "data", tmp_path / "serve.log", env)
    server.start()
    yield ctx, server, login
    server.stop()
    ctx.close()


async def _upload(port: int, login: Login, path: str, data: bytes, close: bool = True) -> None:
    conn, sftp = await asftp(port, login)
    f = await sftp.open(path, "wb")
    await f.write(data)
    if close:
        await f.close()
        conn.close()
        await conn.wait_closed()


def test_sigkill_mid_processing_then_restart_finishes_once(
    served: tuple[Context, Server, Login],
) -> None:
    ctx, server, login = served
    assert server.proc is not None
    workers = wait_for(lambda: _worker_pids(server.proc.pid), what="the worker process")
    asyncio.run(_upload(server.port, login, "/inbox/slow/k.csv", b"a,b\n1,2\n3,4\n"))
    wait_for(lambda: [t for t in _all(ctx) if t.state == State.PROCESSING],
             what="processing to start")
    server.kill()
    # The worker process goes with the node (end of file on its socket), in the middle
    # of the transform: no orphan finishes it behind the restarted node's back.
    wait_for(lambda: not any(_alive(pid) for pid in workers), timeout=5,
             what="the killed node's worker process to exit")
    t = _all(ctx)[0]
    assert t.state == State.PROCESSING and t.output_blob_id is None

    server.start()
    t = wait_for(lambda: [t for t in _all(ctx) if t.state == State.READY],
                 timeout=90, what="the restarted node to finish the transfer")[0]
    assert t.attempts == 2
    assert t.rows_out == 2
    with ctx.reading() as w:
        deliveries = w.session.query(Delivery).filter_by(transfer_id=t.id).all()
        keys = w.session.query(BlobKey).all()
    assert len(deliveries) == 1
    # Only the output blob remains: the input and the killed attempt's output are gone.
    assert [k.role for k in keys] == ["output"]
    assert list(ctx.vault.store.ids()) == [keys[0].blob_id]


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie, exited but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _worker_pids(parent: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(parent), "-f", "doorvoer.worker_main"],
                         capture_output=True, text=True, check=False).stdout
    return [int(p) for p in out.split()]


def test_a_killed_worker_process_is_replaced_and_its_transfer_finishes_once(
    served: tuple[Context, Server, Login],
) -> None:
    ctx, server, login = served
    assert server.proc is not None
    [worker] = wait_for(lambda: _worker_pids(server.proc.pid), what="the worker process")
    asyncio.run(_upload(server.port, login, "/inbox/slow/w.csv", b"a,b\n1,2\n3,4\n"))
    wait_for(lambda: [t for t in _all(ctx) if t.state == State.PROCESSING],
             what="processing to start")
    os.kill(worker, signal.SIGKILL)  # a transform that crashed its process, say

    # The doors stay up while the node starts a new worker process.
    asyncio.run(_upload(server.port, login, "/inbox/plain/p.csv", b"a,b\n5,6\n"))
    [new_worker] = wait_for(lambda: [p for p in _worker_pids(server.proc.pid) if p != worker],
                            what="a new worker process")
    assert new_worker != worker
    done = wait_for(lambda: [t for t in _all(ctx) if t.state == State.READY]
                    if len([t for t in _all(ctx) if t.state == State.READY]) == 2
                    else [], timeout=90, what="both transfers to finish")
    slow = next(t for t in done if t.process_name == "slow")
    assert slow.attempts == 2 and slow.rows_out == 2
    with ctx.reading() as w:
        assert w.session.query(Delivery).filter_by(transfer_id=slow.id).count() == 1
        roles = sorted(k.role for k in w.session.query(BlobKey).all())
    assert roles == ["output", "output"]  # no input left, no output of the cut attempt
    assert "worker process died" in server.log_path.read_text()


def test_sigkill_mid_upload_leaves_an_interrupted_transfer_and_no_residue(
    served: tuple[Context, Server, Login],
) -> None:
    ctx, server, login = served

    async def half() -> None:
        conn, sftp = await asftp(server.port, login)
        f = await sftp.open("/inbox/plain/half.csv", "wb")
        await f.write(b"a,b\n1,2\n")
        server.kill()
        conn.abort()

    asyncio.run(half())
    server.start()
    t = wait_for(lambda: [t for t in _all(ctx) if t.state.final], timeout=30,
                 what="the cut upload to be reported")[0]
    assert t.state == State.INTERRUPTED
    wait_for(lambda: not list(ctx.vault.store.ids()), what="the residue to be erased")
    with ctx.reading() as w:
        assert w.session.query(BlobKey).count() == 0


def _files_containing(roots: list[Path], needle: bytes) -> list[Path]:
    hits = []
    for root in roots:
        for dirpath, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d not in (".venv", ".git", "node_modules")]
            for name in files:
                p = Path(dirpath) / name
                try:
                    if p.is_file() and p.stat().st_size < 50_000_000 and needle in p.read_bytes():
                        hits.append(p)
                except OSError:
                    continue
    return hits


def test_plaintext_never_on_disk_and_never_in_logs(
    served: tuple[Context, Server, Login], tmp_path: Path
) -> None:
    ctx, server, login = served
    good = b"a,b\n" + b"".join(b"%d,%s\n" % (i, MARKER) for i in range(2000))
    ragged = b"a,b\n1," + MARKER + b"\n2,x,y," + MARKER + b"\n"
    roots = [tmp_path, Path(tempfile.gettempdir()), Path.cwd()]

    async def go() -> None:
        conn, sftp = await asftp(server.port, login)
        async with conn:
            # Held under a temporary name: the bytes sit in the vault, encrypted.
            async with sftp.open("/inbox/plain/g.csv.part", "wb") as f:
                await f.write(good)
            assert _files_containing(roots, MARKER) == []
            await sftp.rename("/inbox/plain/g.csv.part", "/inbox/plain/g.csv")
            async with sftp.open("/inbox/plain/bad.csv", "wb") as f:
                await f.write(ragged)

    asyncio.run(go())
    wait_for(lambda: any(t.state == State.READY for t in _all(ctx)),
             what="the good file's output")
    assert _files_containing(roots, MARKER) == []
    bad = wait_for(lambda: [t for t in _all(ctx)
                            if t.filename == "bad.csv" and t.state.final])[0]
    assert bad.state == State.FAILED
    assert "line 3" in bad.error and MARKER.decode() not in bad.error
    time.sleep(0.5)
    log = server.log_path.read_bytes()
    assert b"bad.csv" in log or b"processed" in log  # the log does say things
    assert MARKER not in log
    listed = subprocess.run(
        [sys.executable, "-m", "doorvoer.cli", "transfers", "list", "--json", "--data-dir",
         str(server.data_dir)], capture_output=True, env=server.env, check=True)
    assert MARKER not in listed.stdout
    assert {r["filename"] for r in json.loads(listed.stdout)} == {"plain/g.csv",
                                                                    "plain/bad.csv"}
