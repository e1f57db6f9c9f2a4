"""Connections to targets: set once, used by deliveries, never shown again (P7)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime

import asyncssh
from sqlalchemy import delete, select

from doorvoer.audit import service as audit
from doorvoer.audit.events import Event
from doorvoer.db import utcnow
from doorvoer.secrets.errors import ConnectionRefused
from doorvoer.secrets.models import Connection
from doorvoer.secrets.sealing import Sealer
from doorvoer.tenants.models import Tenant
from doorvoer.unit import Work

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


@dataclass(frozen=True)
class SftpConnection:
    host: str
    port: int
    username: str
    host_key: str  # the target's public host key, pinned
    password: str | None = None
    private_key: str | None = None  # OpenSSH private key text


def _context(tenant_id: str, name: str) -> str:
    return f"connection:{tenant_id}:{name}"


def set_connection(w: Work, tenant: Tenant, name: str,
                   conn: SftpConnection) -> Connection:
    if not NAME.match(name):
        raise ConnectionRefused(
            f"connection name {name!r}: use lower-case letters, digits, '.', '_', '-'")
    if not conn.password and not conn.private_key:
        raise ConnectionRefused("give the target's password or private key on standard input")
    try:
        asyncssh.import_public_key(conn.host_key)
    except (asyncssh.KeyImportError, ValueError):
        raise ConnectionRefused(
            "--host-key: not an SSH public key (as in known_hosts or .pub)") from None
    if conn.private_key:
        try:
            asyncssh.import_private_key(conn.private_key)
        except (asyncssh.KeyImportError, ValueError):
            raise ConnectionRefused("the private key on standard input is not one asyncssh reads "
                            "(an unencrypted OpenSSH or PEM key)") from None
    sealed = w.ctx.sealer.seal(json.dumps(asdict(conn)).encode(), _context(tenant.id, name))
    row = get_connection(w, tenant, name)
    if row is None:
        row = Connection(tenant_id=tenant.id, name=name, sealed=sealed)
        w.session.add(row)
    else:
        row.sealed = sealed
        row.updated_at = utcnow()
    w.session.flush()
    audit.record(w, tenant.id, Event.CONNECTION_SET, f"{name} ({conn.host})")
    return row


def get_connection(w: Work, tenant: Tenant, name: str) -> Connection | None:
    return w.session.scalar(
        select(Connection).where(Connection.tenant_id == tenant.id, Connection.name == name)
    )


def open_connection(sealer: Sealer, row: Connection) -> SftpConnection:
    data = json.loads(sealer.unseal(row.sealed, _context(row.tenant_id, row.name)))
    return SftpConnection(**data)


def connection_for_delivery(w: Work, tenant_id: str, name: str) -> SftpConnection | None:
    """The connection with its secret, for the delivery code only (P7); None when the
    tenant has no connection of that name."""
    row = w.session.scalar(select(Connection).where(Connection.tenant_id == tenant_id,
                                                    Connection.name == name))
    return open_connection(w.ctx.sealer, row) if row is not None else None


def list_connections(w: Work, tenant: Tenant) -> list[Connection]:
    return list(w.session.scalars(select(Connection).where(Connection.tenant_id == tenant.id)))


@dataclass(frozen=True)
class ConnectionView:
    """What anyone may see of a connection: where it goes, and whether its secret is
    set; never the secret itself (P7)."""

    name: str
    kind: str
    host: str
    port: int
    username: str
    secret: str  # "password set", "private key set" or "not set"
    updated_at: datetime


def connection_views(w: Work, tenant: Tenant) -> list[ConnectionView]:
    views = []
    for row in sorted(list_connections(w, tenant), key=lambda r: r.name):
        conn = open_connection(w.ctx.sealer, row)
        secret = ("private key set" if conn.private_key else
                  "password set" if conn.password else "not set")
        views.append(ConnectionView(row.name, row.kind, conn.host, conn.port, conn.username,
                                    secret, row.updated_at))
    return views


def erase_tenant(w: Work, tenant: Tenant) -> dict[str, int]:
    """A tenant's erasure (P19), this area's part: its connections, sealed secrets and
    all."""
    gone = w.changed(delete(Connection).where(Connection.tenant_id == tenant.id))
    return {"connections": gone}
