"""Connections to targets: set once, used by deliveries, never shown again (P7)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

import asyncssh
from sqlalchemy import select
from sqlalchemy.orm import Session

from doorvoer.db import utcnow
from doorvoer.errors import UserError
from doorvoer.secrets.models import Connection
from doorvoer.secrets.sealing import Sealer
from doorvoer.tenants.models import Tenant

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


def set_connection(session: Session, sealer: Sealer, tenant: Tenant, name: str,
                   conn: SftpConnection) -> Connection:
    if not NAME.match(name):
        raise UserError(f"connection name {name!r}: use lower-case letters, digits, '.', '_', '-'")
    if not conn.password and not conn.private_key:
        raise UserError("give the target's password or private key on standard input")
    try:
        asyncssh.import_public_key(conn.host_key)
    except (asyncssh.KeyImportError, ValueError):
        raise UserError("--host-key: not an SSH public key (as in known_hosts or .pub)") from None
    if conn.private_key:
        try:
            asyncssh.import_private_key(conn.private_key)
        except (asyncssh.KeyImportError, ValueError):
            raise UserError("the private key on standard input is not one asyncssh reads "
                            "(an unencrypted OpenSSH or PEM key)") from None
    sealed = sealer.seal(json.dumps(asdict(conn)).encode(), _context(tenant.id, name))
    row = get_connection(session, tenant, name)
    if row is None:
        row = Connection(tenant_id=tenant.id, name=name, sealed=sealed)
        session.add(row)
    else:
        row.sealed = sealed
        row.updated_at = utcnow()
    session.flush()
    return row


def get_connection(session: Session, tenant: Tenant, name: str) -> Connection | None:
    return session.scalar(
        select(Connection).where(Connection.tenant_id == tenant.id, Connection.name == name)
    )


def open_connection(sealer: Sealer, row: Connection) -> SftpConnection:
    data = json.loads(sealer.unseal(row.sealed, _context(row.tenant_id, row.name)))
    return SftpConnection(**data)


def list_connections(session: Session, tenant: Tenant) -> list[Connection]:
    return list(session.scalars(select(Connection).where(Connection.tenant_id == tenant.id)))
