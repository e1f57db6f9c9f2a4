"""Transport and browser-side rules: HTTPS only, strict headers, the one cookie and
its notice, session timeouts, no third-party anything."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from doorvoer.access.policy import Role
from doorvoer.accounts.models import User
from doorvoer.accounts.people import create_user
from doorvoer.accounts.sessions import load_session, start_session
from doorvoer.context import Context
from doorvoer.db import utcnow
from doorvoer.tenants.service import create_tenant
from doorvoer.web.cookies import COOKIES, SESSION

from .conftest import _root_conftest

root = _root_conftest()
PASSWORD = "seven lanterns over the canal"


@pytest.fixture
def site(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[Context, str, httpx.Client]]:
    ctx = root.make_ctx(tmp_path, sqlite_url)
    with ctx.unit() as w:
        tenant = create_tenant(w, "acme", "Acme", None)
        create_user(w, "ada@acme.example", "Ada", Role.TENANT_ADMIN, tenant.id, PASSWORD)
    node = root.NodeThread(ctx, web=True).start()
    client = root.portal_client(ctx, node.base_url, follow_redirects=False)
    yield ctx, node.base_url, client
    client.close()
    node.stop()
    ctx.close()


def test_the_certificate_verifies_and_plain_http_is_refused(site) -> None:  # type: ignore[no-untyped-def]
    _, base, client = site
    assert client.get("/login").status_code == 200  # verified against our own cert
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n")
        raw.settimeout(5)
        try:
            answer = raw.recv(100)
        except (ConnectionResetError, TimeoutError):
            answer = b""
    assert not answer.startswith(b"HTTP/")


def test_security_headers_on_every_page(site) -> None:  # type: ignore[no-untyped-def]
    _, _, client = site
    for path in ("/login", "/cookies", "/password/forgot", "/static/app.css"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.headers["strict-transport-security"].startswith("max-age=31536000")
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
    assert client.get("/login").headers["cache-control"] == "no-store"


def test_pages_load_nothing_from_elsewhere_and_have_no_inline_script(site) -> None:  # type: ignore[no-untyped-def]
    _, _, client = site
    for path in ("/login", "/cookies", "/password/forgot"):
        html = client.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=\"/static/)", html), path
        assert not re.search(r"\b(src|href)=\"(https?:)?//", html), path
        assert " style=" not in html, path


def test_session_cookie_flags_rotation_and_logout(site) -> None:  # type: ignore[no-untyped-def]
    _, _, client = site
    r = client.post("/login", data={"email": "ada@acme.example", "password": PASSWORD})
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION.name}=")
    for flag in ("Secure", "HttpOnly", "SameSite=lax", "Path=/"):
        assert flag.lower() in cookie.lower()
    first = r.cookies[SESSION.name]
    # A second login gets a new token: sessions rotate at login.
    r2 = client.post("/login", data={"email": "ada@acme.example", "password": PASSWORD})
    assert r2.cookies[SESSION.name] != first
    account = client.get("/account")
    assert account.status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', account.text).group(1)  # type: ignore[union-attr]
    assert client.post("/logout", data={"csrf": "wrong"}).status_code == 403  # CSRF
    assert client.post("/logout", data={"csrf": csrf}).status_code == 303
    assert client.get("/account").headers["location"].startswith("/login?next=")


def test_idle_and_absolute_timeouts(site) -> None:  # type: ignore[no-untyped-def]
    ctx, _, _ = site
    with ctx.unit() as w:
        user = w.session.query(User).one()
        info = start_session(w, user, two_factor=False, pending_2fa=False)
    now = utcnow()
    with ctx.unit() as w:  # active every 20 minutes: still alive after 11 h
        for minutes in range(20, 11 * 60, 20):
            assert load_session(w, info.token, now + timedelta(minutes=minutes))
    with ctx.unit() as w:  # but not past the absolute limit
        assert load_session(w, info.token, now + timedelta(hours=12, minutes=1)) \
            is None
    with ctx.unit() as w:
        user = w.session.query(User).one()
        idle = start_session(w, user, two_factor=False, pending_2fa=False)
    with ctx.unit() as w:
        assert load_session(w, idle.token, now + timedelta(minutes=31)) is None


def test_cookie_notice_lists_exactly_the_cookies_the_code_sets(site) -> None:  # type: ignore[no-untyped-def]
    _, _, client = site
    html = client.get("/cookies").text
    listed = set(re.findall(r"<code>([a-z_]+)</code>", html))
    assert listed == {c.name for c in COOKIES}
    r = client.post("/login", data={"email": "ada@acme.example", "password": PASSWORD})
    set_names = {c.split("=", 1)[0] for c in r.headers.get_list("set-cookie")}
    assert set_names <= listed
