"""Helpers for the API and token tests: a node with the portal, people, tokens."""

from __future__ import annotations

import hashlib
import re
import secrets
import ssl
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from conftest import Login, NodeThread, add_tenant, make_ctx
from doorvoer.access.policy import Role
from doorvoer.accounts.machines import create_token, revoke_token
from doorvoer.accounts.models import ApiToken
from doorvoer.accounts.people import create_user
from doorvoer.context import Context
from doorvoer.db import utcnow
from doorvoer.tenants.service import require_tenant
from doorvoer.unit import Work

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
TOKEN = re.compile(r"dvt_[A-Za-z0-9_-]{43}")
# Two rows in cp1252 that the CSV_SPEC process of conftest turns into JSON.
ORDERS = "id;name;amount\r\n1;Bakker €;12,50\r\n2;\"De; Vries\";7,00\r\n".encode("cp1252")


@dataclass
class Web:
    ctx: Context
    node: NodeThread
    tmp_path: Path
    logins: dict[str, Login]  # the SFTP login of each tenant

    @property
    def cert(self) -> str:
        return str(self.ctx.settings.tls_paths[0])

    @property
    def tls(self) -> ssl.SSLContext:
        """Trusts the node's own (self-signed) certificate, and nothing else."""
        return ssl.create_default_context(cafile=self.cert)

    def client(self, token: str | None = None, headers: dict[str, str] | None = None,
               **kwargs: Any) -> httpx.Client:
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.node.base_url, verify=self.tls, headers=headers,
                            timeout=30, **kwargs)

    def tenant_id(self, slug: str) -> str:
        with self.ctx.reading() as w:
            return require_tenant(w, slug).id

    def token(self, slug: str, scopes: Iterable[str], created_by: str | None = None,
              days: int = 90) -> str:
        with self.ctx.unit() as w:
            return create_token(w, require_tenant(w, slug).id, created_by, "test",
                                scopes, days).secret

    def token_row(self, w: Work, secret: str) -> ApiToken:
        digest = hashlib.sha256(secret.encode()).hexdigest()
        return w.session.scalars(select(ApiToken).where(ApiToken.token_hash == digest)).one()

    def expire(self, secret: str) -> None:
        with self.ctx.unit() as w:
            self.token_row(w, secret).expires_at = utcnow() - timedelta(seconds=1)

    def revoke(self, secret: str) -> None:
        with self.ctx.unit() as w:
            row = self.token_row(w, secret)
            assert revoke_token(w, row.tenant_id, row.id) is row

    def person(self, slug: str, role: Role = Role.TENANT_ADMIN,
               permissions: frozenset[str] = frozenset()) -> tuple[str, str, str]:
        """(user id, e-mail, password) of a new person of the tenant."""
        email = f"{role.value.replace('_', '-')}-{secrets.token_hex(3)}@{slug}.example"
        password = secrets.token_urlsafe(16)
        with self.ctx.unit() as w:
            user = create_user(w, email, "Test Person", role, require_tenant(w, slug).id,
                               password, permissions)
            return user.id, email, password

    @contextmanager
    def logged_in(self, email: str, password: str) -> Iterator[httpx.Client]:
        """A client with a portal session (the person has no second factor)."""
        with self.client() as c:
            r = c.post("/login", data={"email": email, "password": password})
            assert r.status_code == 303, r.text
            yield c


def csrf_of(page: str) -> str:
    m = CSRF.search(page)
    assert m, "no CSRF token on the page"
    return m.group(1)


def start_web(tmp_path: Path, database_url: str, *slugs: str, **overrides: Any) -> Web:
    ctx = make_ctx(tmp_path, database_url, **overrides)
    logins = {slug: add_tenant(ctx, tmp_path, slug) for slug in slugs or ("acme",)}
    node = NodeThread(ctx, web=True).start()
    return Web(ctx, node, tmp_path, logins)


def stop_web(web: Web) -> None:
    web.node.stop()
    web.ctx.close()
