"""Fixtures shared by the portal tests. Each group is named after what it gives; add
yours beside them, leave the others as they are."""

from __future__ import annotations

import importlib.util
import re
import secrets
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pyotp
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from doorvoer.access.policy import Role
from doorvoer.accounts.models import User, WebSession
from doorvoer.accounts.people import create_user
from doorvoer.accounts.sessions import start_session
from doorvoer.context import Context
from doorvoer.db import utcnow
from doorvoer.tenants.service import create_tenant, require_tenant
from doorvoer.web.cookies import SESSION

_ROOT_CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"


def _root_conftest() -> ModuleType:
    """tests/conftest.py as a module, whether tests/web is a package or not (without an
    __init__.py, `conftest` here would be this very file)."""
    mod = sys.modules.get("conftest")
    if mod is not None and Path(getattr(mod, "__file__", "")).resolve() == _ROOT_CONFTEST:
        return mod
    name = "_doorvoer_tests_root_conftest"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _ROOT_CONFTEST)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# ---------------------------------------------------------------- mail: a real SMTP server


class MailCatcher:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(msg, EmailMessage)
        with self._lock:
            self.messages.append(msg)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self.messages if m["To"] == address]

    def wait_for(self, address: str, subject: str, count: int = 1,
                 timeout: float = 10.0) -> EmailMessage:
        """The `count`-th message to `address` whose subject contains `subject`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for m in self.to(address) if subject.lower() in m["Subject"].lower()]
            if len(found) >= count:
                return found[count - 1]
            time.sleep(0.05)
        raise AssertionError(f"no mail {subject!r} to {address}; got "
                             f"{[m['Subject'] for m in self.to(address)]}")

    @staticmethod
    def body(msg: EmailMessage) -> str:
        part = msg.get_body(("plain",))
        assert part is not None
        return str(part.get_content())

    def link_token(self, msg: EmailMessage, path: str) -> str:
        """The token of the link `…{path}/{token}` in the message."""
        m = re.search(re.escape(path) + r"/([A-Za-z0-9_-]+)", self.body(msg))
        assert m, f"no {path} link in the mail"
        return m.group(1)


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mail_server() -> Iterator[tuple[MailCatcher, int]]:
    """A real SMTP server on 127.0.0.1: (the catcher of its messages, its port)."""
    catcher = MailCatcher()
    controller = Controller(catcher, hostname="127.0.0.1", port=free_tcp_port())
    controller.start()
    try:
        yield catcher, controller.port
    finally:
        controller.stop()


# ---------------------------------------------------------------- people's portal


CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_in(page: str) -> str:
    m = CSRF_FIELD.search(page)
    assert m, "no CSRF token on the page"
    return m.group(1)


class TotpClock:
    """Codes of a TOTP secret, each of a later step than the last one used (the server
    accepts a step once, and only the current one or one either side)."""

    def __init__(self, secret: str) -> None:
        self.totp = pyotp.TOTP(secret.replace(" ", ""))
        self.last: int | None = None

    def next_code(self) -> str:
        while True:
            current = int(time.time() // 30)
            # Never the previous step: it could fall out of the window on the way.
            step = current if self.last is None else max(self.last + 1, current)
            if step <= current + 1:
                self.last = step
                return self.totp.at(step * 30)
            time.sleep((current + 1) * 30 - time.time() + 0.05)

    def replayed(self) -> str:
        assert self.last is not None
        return self.totp.at(self.last * 30)


@dataclass
class AccountPortal:
    """A real HTTPS node with a real SMTP server behind it, and helpers to act in it."""

    ctx: Context
    node: Any  # conftest.NodeThread
    mails: MailCatcher
    smtp_port: int
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self) -> httpx.Client:
        c = _root_conftest().portal_client(self.ctx, self.node.base_url, timeout=30)
        self.clients.append(c)
        return c

    def tenant(self, slug: str) -> str:
        with self.ctx.unit() as w:
            return create_tenant(w, slug, slug.title(), None).id

    def tenant_id(self, slug: str) -> str:
        with self.ctx.reading() as w:
            return require_tenant(w, slug).id

    def person(self, role: Role, slug: str | None = None, email: str | None = None,
               permissions: frozenset[str] = frozenset()) -> tuple[str, str]:
        """(e-mail, password) of a new person."""
        email = email or f"{role.value.replace('_', '-')}-{secrets.token_hex(3)}@example.org"
        password = secrets.token_urlsafe(16)
        with self.ctx.unit() as w:
            tenant_id = require_tenant(w, slug).id if slug else None
            create_user(w, email, "Test Person", role, tenant_id, password, permissions)
        return email, password

    def person_with_2fa(self, role: Role, slug: str | None = None
                        ) -> tuple[str, str, TotpClock]:
        """(e-mail, password, a clock of codes) of a new person with 2FA on."""
        from doorvoer.accounts import totp

        email, password = self.person(role, slug)
        secret = totp.new_secret()
        with self.ctx.unit() as w:
            user = w.session.scalars(select(User).where(User.email == email)).one()
            user.totp_secret = totp.seal_secret(self.ctx.sealer, user, secret)
            user.totp_enabled_at = utcnow()
        return email, password, self.totp_clock(secret)

    def login(self, email: str, password: str, totp: TotpClock | None = None,
              code: str | None = None) -> httpx.Client:
        """A client logged in (with the second factor when `totp` or `code` is given)."""
        c = self.client()
        r = c.post("/login", data={"email": email, "password": password})
        assert r.status_code == 303, r.text
        if totp is not None or code is not None:
            assert r.headers["location"].startswith("/login/2fa")
            r = self.post(c, "/login/2fa", {"code": code or totp.next_code()},  # type: ignore[union-attr]
                          page="/login/2fa")
            assert r.status_code == 303, r.text
        return c

    def post(self, c: httpx.Client, path: str, data: dict[str, Any],
             page: str = "/account") -> httpx.Response:
        """Post a form the way a browser does: with the CSRF token of `page`."""
        r = c.get(page)
        assert r.status_code == 200, (page, r.status_code, r.text[:500])
        return c.post(path, data={"csrf": csrf_in(r.text), **data})

    def set_smtp_port(self, port: int) -> None:
        self.ctx.settings.smtp_port = port

    @staticmethod
    def free_port() -> int:
        """A port where no SMTP server listens."""
        return free_tcp_port()

    def session_client(self, email: str, two_factor: bool = False) -> httpx.Client:
        """A client with a session started on the server side, as another browser's."""
        with self.ctx.unit() as w:
            user = w.session.scalars(select(User).where(User.email == email)).one()
            token = start_session(w, user, two_factor=two_factor, pending_2fa=False).token
        c = self.client()
        c.cookies.set(SESSION.name, token, domain="127.0.0.1")
        return c

    def stale_reauth(self, email: str) -> None:
        """Make the sessions' last second-factor check an hour old."""
        with self.ctx.unit() as w:
            user_id = w.session.scalars(select(User.id).where(User.email == email)).one()
            w.session.execute(update(WebSession).where(WebSession.user_id == user_id)
                      .values(reauth_at=utcnow() - timedelta(hours=1)))

    @staticmethod
    def totp_clock(secret: str) -> TotpClock:
        return TotpClock(secret)

    @staticmethod
    def csrf_in(page: str) -> str:
        return csrf_in(page)


@pytest.fixture
def account_portal(tmp_path: Path, database_url: str,
                   mail_server: tuple[MailCatcher, int]) -> Iterator[AccountPortal]:
    """A node with the portal on SQLite or PostgreSQL, sending mail to `mail_server`."""
    root = _root_conftest()
    catcher, port = mail_server
    ctx = root.make_ctx(tmp_path, database_url, smtp_host="127.0.0.1", smtp_port=port)
    node = root.NodeThread(ctx, web=True).start()
    portal = AccountPortal(ctx, node, catcher, port)
    try:
        yield portal
    finally:
        for c in portal.clients:
            c.close()
        node.stop()
        ctx.close()


# ---------------------------------------------------------------- reports: tenant, operator pages
# (test_tenant_pages.py, test_operator_pages.py)


@dataclass
class ReportPortal:
    """A real HTTPS node (SQLite or PostgreSQL) with helpers for the report pages:
    people of every role, logged in, and transfers with known metadata."""

    ctx: Context
    node: Any  # conftest.NodeThread
    tmp_path: Path
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self) -> httpx.Client:
        c = _root_conftest().portal_client(self.ctx, self.node.base_url, timeout=30)
        self.clients.append(c)
        return c

    def tenant(self, slug: str, spec: str | None = None) -> Any:
        """A tenant with an SFTP account and one process (conftest.add_tenant)."""
        root = _root_conftest()
        return root.add_tenant(self.ctx, self.tmp_path, slug, spec or root.CSV_SPEC)

    def process(self, slug: str, spec: str) -> None:
        from doorvoer.processes.service import apply_process

        with self.ctx.unit() as w:
            apply_process(w, require_tenant(w, slug), spec, "spec")

    def person(self, role: Role, slug: str | None = None,
               permissions: frozenset[str] = frozenset()) -> httpx.Client:
        """A new person of that role, logged in (staff with their second factor)."""
        from doorvoer.accounts import totp

        email = f"{role.value.replace('_', '-')}-{secrets.token_hex(4)}@example.org"
        password = secrets.token_urlsafe(16)
        secret = totp.new_secret() if role.is_staff else None
        with self.ctx.unit() as w:
            tenant_id = require_tenant(w, slug).id if slug else None
            user = create_user(w, email, f"Test {role.label}", role, tenant_id, password,
                               permissions)
            if secret is not None:
                user.totp_secret = totp.seal_secret(self.ctx.sealer, user, secret)
        c = self.client()
        r = c.post("/login", data={"email": email, "password": password})
        assert r.status_code == 303, r.text
        if secret is not None:
            page = c.get("/login/2fa")
            r = c.post("/login/2fa", data={"csrf": csrf_in(page.text),
                                           "code": TotpClock(secret).next_code()})
            assert r.status_code == 303, r.text
        return c

    def transfer(self, slug: str, when: datetime, *, state: Any = None,
                 process: str | None = "orders", filename: str = "file.csv",
                 bytes_in: int | None = 1000, bytes_out: int | None = 800,
                 residence: float | None = 2.0, error: str | None = None) -> str:
        """A transfer row with known metadata (state ERASED unless told), as the state
        machine leaves it; returns its id. (In-flight rows have no blobs: use RECEIVING,
        HELD or READY, which no worker picks up.)"""
        from sqlalchemy import select

        from doorvoer.processes.models import Process
        from doorvoer.transfers.models import State, Transfer

        state = state or State.ERASED
        with self.ctx.unit() as w:
            tenant = require_tenant(w, slug)
            p = w.session.scalar(select(Process).where(Process.tenant_id == tenant.id,
                                               Process.name == process)) if process else None
            t = Transfer(tenant_id=tenant.id, process_id=p.id if p else None,
                         process_name=process, folder=p.folder if p else "orders",
                         filename=filename, state=state, opened_at=when, received_at=when,
                         bytes_in=bytes_in, bytes_out=bytes_out, error=error)
            if state.final and residence is not None:
                t.input_erased_at = t.erased_at = when + timedelta(seconds=residence)
            w.session.add(t)
            w.session.flush()
            return t.id

    def transfer_count(self, slug: str | None = None) -> int:
        from sqlalchemy import func, select

        from doorvoer.transfers.models import Transfer

        with self.ctx.reading() as w:
            q = select(func.count()).select_from(Transfer)
            if slug:
                q = q.where(Transfer.tenant_id == require_tenant(w, slug).id)
            return w.session.scalar(q) or 0

    @staticmethod
    def post_form(c: httpx.Client, page: str, action: str,
                  data: dict[str, Any]) -> httpx.Response:
        """Post a form the way a browser does: with the CSRF token shown on `page`."""
        r = c.get(page)
        assert r.status_code == 200, (page, r.status_code)
        return c.post(action, data={"csrf": csrf_in(r.text), **data})


@pytest.fixture
def report_portal(tmp_path: Path, database_url: str) -> Iterator[ReportPortal]:
    root = _root_conftest()
    ctx = root.make_ctx(tmp_path, database_url)
    node = root.NodeThread(ctx, web=True).start()
    portal = ReportPortal(ctx, node, tmp_path)
    try:
        yield portal
    finally:
        for c in portal.clients:
            c.close()
        node.stop()
        ctx.close()
