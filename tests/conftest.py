"""Shared fixtures: a real node (SQLite or PostgreSQL), real keys, real clients."""

from __future__ import annotations

import asyncio
import os
import secrets
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import httpx
import psycopg
import pytest
import uvloop

from doorvoer.accounts.machines import create_account
from doorvoer.app import Node
from doorvoer.bootstrap import init_data_dir
from doorvoer.config import load_settings
from doorvoer.context import Context
from doorvoer.processes.service import apply_process
from doorvoer.tenants.service import create_tenant
from doorvoer.transfers.service import list_transfers

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
FAST = {  # short graces so tests do not wait for production timings
    "stat_grace_s": 2.0, "fetch_grace_s": 0.5, "rename_wait_s": 10.0, "lease_s": 3.0,
    "push_backoff_s": 0.2, "fsync": False,
    # Worker threads in the node process: a worker process costs a second of start-up
    # per node; the tests that run them say worker_processes=1.
    "worker_processes": 0,
}

CSV_SPEC = """\
name: orders
match: "orders/*.csv"
read: {format: csv, delimiter: ";", encoding: cp1252}
transform:
  sql: |
    SELECT id, upper(name) AS name,
           CAST(replace(amount, ',', '.') AS DECIMAL(10,2)) AS amount
    FROM input
write: {format: json, filename: "{stem}.json"}
deliver:
  - pickup: orders/
"""


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this run, dropped at the end."""
    name = f"doorvoer_test_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pg_url(database: str) -> str:
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={database}",
                         autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return (f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"
            f"?options=-csearch_path%3D{schema}")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every test that uses it runs once on SQLite and once on PostgreSQL (own schema)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'doorvoer.db'}"
    return _pg_url(request.getfixturevalue("pg_database"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'data' / 'doorvoer.db'}"


def make_ctx(tmp_path: Path, database_url: str, **overrides: Any) -> Context:
    settings = load_settings(tmp_path / "data", database_url=database_url,
                             sftp_host="127.0.0.1", sftp_port=0, **{**FAST, **overrides})
    return init_data_dir(settings)


@pytest.fixture
def ctx(tmp_path: Path, database_url: str) -> Iterator[Context]:
    c = make_ctx(tmp_path, database_url)
    yield c
    c.close()


class NodeThread:
    """A real node on its own event loop in a background thread."""

    def __init__(self, ctx: Context, web: bool = False) -> None:
        self.ctx = ctx
        self.loop = uvloop.new_event_loop()  # as `doorvoer serve` runs it
        self.node = Node(ctx, "127.0.0.1", 0, http_port_wanted=0 if web else None)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> NodeThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.node.start(), self.loop).result(30)
        return self

    @property
    def port(self) -> int:
        return self.node.sftp_port

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.node.http_port}"

    def stop(self) -> None:
        if self.loop.is_closed():  # stopped already (a test that stops it itself)
            return
        asyncio.run_coroutine_threadsafe(self.node.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@dataclass
class Login:
    user: str
    password: str
    key_path: Path
    tenant: str


def add_tenant(ctx: Context, tmp_path: Path, slug: str = "acme",
               spec: str = CSV_SPEC) -> Login:
    key = asyncssh.generate_private_key("ssh-ed25519")
    key_path = tmp_path / f"id_{slug}"
    key.write_private_key(str(key_path))
    key_path.chmod(0o600)
    password = secrets.token_urlsafe(16)
    with ctx.unit() as w:
        tenant = create_tenant(w, slug, slug.title(), None)
        create_account(w, slug, "robot", [key.export_public_key().decode()], password)
        apply_process(w, tenant, spec, "spec")
    return Login(f"robot@{slug}", password, key_path, slug)


def portal_client(ctx: Context, base_url: str, **kwargs: Any) -> httpx.Client:
    """An HTTPS client that trusts exactly the node's (self-signed) certificate."""
    tls = ssl.create_default_context(cafile=str(ctx.settings.tls_paths[0]))
    return httpx.Client(base_url=base_url, verify=tls, **kwargs)


OwnNode = Callable[..., tuple[Context, NodeThread, Login]]


@pytest.fixture
def own_node(tmp_path: Path) -> Iterator[OwnNode]:
    """For tests that need settings of their own: `own_node(url, spec=…, **settings)`
    gives a context, a running node and a tenant's login; all are stopped afterwards."""
    started: list[tuple[Context, NodeThread]] = []

    def start(database_url: str, spec: str = CSV_SPEC, slug: str = "acme",
              **overrides: Any) -> tuple[Context, NodeThread, Login]:
        c = make_ctx(tmp_path, database_url, **overrides)
        login = add_tenant(c, tmp_path, slug, spec)
        n = NodeThread(c).start()
        started.append((c, n))
        return c, n, login

    yield start
    for c, n in started:
        n.stop()
        c.close()


@pytest.fixture
def node(ctx: Context) -> Iterator[NodeThread]:
    n = NodeThread(ctx).start()
    yield n
    n.stop()


@pytest.fixture
def login(ctx: Context, tmp_path: Path) -> Login:
    return add_tenant(ctx, tmp_path)


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or predicate}")


def transfers_of(ctx: Context) -> list[Any]:
    return list(reversed(ctx.run(list_transfers, write=False)))


def ssh_opts(port: int) -> list[str]:
    return ["-P", str(port), "-o", "StrictHostKeyChecking=no", "-o",
            "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]


def sftp_batch(port: int, login: Login, commands: str,
               check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run OpenSSH's sftp with a batch of commands, logging in by key."""
    result = subprocess.run(
        ["sftp", *ssh_opts(port), "-i", str(login.key_path), "-b", "-",
         f"{login.user}@127.0.0.1"],
        input=commands, capture_output=True, text=True, timeout=60, check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"sftp failed ({result.returncode}): {result.stderr}")
    return result


async def asftp(port: int, login: Login) -> tuple[asyncssh.SSHClientConnection,
                                                   asyncssh.SFTPClient]:
    conn = await asyncssh.connect("127.0.0.1", port, username=login.user,
                                  client_keys=[str(login.key_path)], known_hosts=None,
                                  agent_path=None, config=[])
    return conn, await conn.start_sftp_client()
