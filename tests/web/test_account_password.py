"""Passwords (P14): changing one needs the current one and a fresh 2FA check, and ends
the other sessions; a reset goes only through a single-use, expiring e-mailed link;
asking for one does not tell whether the account exists; both are throttled."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from doorvoer.access.policy import Role
from doorvoer.accounts.models import EmailToken, WebSession
from doorvoer.db import utcnow

if TYPE_CHECKING:
    from web.conftest import AccountPortal

SECRET = re.compile(r'id="totp-secret">([A-Z2-7 ]+)<')
NEW = "seven green herons at dawn"


def test_password_change_needs_the_current_one_and_a_fresh_check(
        account_portal: AccountPortal) -> None:
    p = account_portal
    p.tenant("acme")
    email, password = p.person(Role.TENANT_MEMBER, "acme")
    c = p.login(email, password)
    clock = p.totp_clock(SECRET.search(c.get("/account/2fa").text).group(1))  # type: ignore[union-attr]
    r = p.post(c, "/account/2fa/confirm", {"code": clock.next_code()}, page="/account/2fa")
    assert r.status_code == 200
    other = p.session_client(email, two_factor=True)  # another browser of the same person
    assert other.get("/account").status_code == 200

    p.stale_reauth(email)
    page = c.get("/account").text
    assert "needs a fresh two-factor check" in page and 'name="current"' not in page
    r = p.post(c, "/account/password", {"current": password, "password": NEW, "confirm": NEW})
    assert r.status_code == 303 and r.headers["location"] == "/account/reauth?next=/account"
    r = p.post(c, "/account/reauth", {"code": clock.next_code(), "next": "/account"},
               page="/account/reauth?next=/account")
    assert r.status_code == 303 and r.headers["location"] == "/account"

    r = p.post(c, "/account/password", {"current": "not it at all", "password": NEW,
                                        "confirm": NEW})
    assert r.status_code == 400 and "current password is not right" in r.text
    r = p.post(c, "/account/password", {"current": password, "password": NEW,
                                        "confirm": NEW + "?"})
    assert r.status_code == 400 and "differ" in r.text
    r = p.post(c, "/account/password", {"current": password, "password": "1qaz2wsx3edc",
                                        "confirm": "1qaz2wsx3edc"})
    assert r.status_code == 400 and "commonly used" in r.text
    r = p.post(c, "/account/password", {"current": password, "password": NEW, "confirm": NEW})
    assert r.status_code == 303 and r.headers["location"] == "/account?done=password"

    # This browser goes on with a new session; every other session has ended.
    assert "Your password was changed" in c.get(r.headers["location"]).text
    r = other.get("/account")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    with p.ctx.reading() as w:
        assert len(list(w.session.scalars(select(WebSession)))) == 1
    assert "was changed" in p.mails.body(p.mails.wait_for(email, "Your password was changed"))
    assert p.client().post("/login", data={"email": email,
                                           "password": password}).status_code == 401
    r = p.client().post("/login", data={"email": email, "password": NEW})
    assert r.status_code == 303 and r.headers["location"] == "/login/2fa"


def test_password_change_without_2fa_needs_only_the_current_password(
        account_portal: AccountPortal) -> None:
    p = account_portal
    p.tenant("acme")
    email, password = p.person(Role.EXTERNAL, "acme", permissions=frozenset({"reports"}))
    c = p.login(email, password)
    r = p.post(c, "/account/password", {"current": password, "password": NEW, "confirm": NEW})
    assert r.status_code == 303 and r.headers["location"] == "/account?done=password"
    assert c.get("/account").status_code == 200
    # Without a CSRF token, nothing changes.
    r = c.post("/account/password", data={"current": NEW, "password": NEW + "!",
                                          "confirm": NEW + "!"})
    assert r.status_code == 403
    assert p.client().post("/login", data={"email": email, "password": NEW}).status_code == 303


def test_password_reset_by_email_link(account_portal: AccountPortal) -> None:
    p = account_portal
    p.tenant("acme")
    email, password = p.person(Role.TENANT_ADMIN, "acme")
    logged_in = p.login(email, password)
    c = p.client()
    assert "Send me a link" in c.get("/password/forgot").text
    known = c.post("/password/forgot", data={"email": email.upper()})
    unknown = c.post("/password/forgot", data={"email": "nobody@example.org"})
    assert known.status_code == unknown.status_code == 200
    assert known.text == unknown.text and "If an account exists" in known.text
    msg = p.mails.wait_for(email, "Reset your Doorvoer password")
    token = p.mails.link_token(msg, "/password/reset")
    assert f"{p.ctx.settings.base_url}/password/reset/{token}" in p.mails.body(msg)
    assert not p.mails.to("nobody@example.org")
    with p.ctx.reading() as w:
        row = w.session.scalars(select(EmailToken).where(EmailToken.purpose == "reset")).one()
        assert timedelta(minutes=59) < row.expires_at - utcnow() <= timedelta(hours=1)

    r = c.get(f"/password/reset/{token}")
    assert r.status_code == 200 and email in r.text
    r = c.post(f"/password/reset/{token}", data={"password": "short", "confirm": "short"})
    assert r.status_code == 400 and "too short" in r.text
    r = c.post(f"/password/reset/{token}", data={"password": NEW, "confirm": NEW})
    assert r.status_code == 200 and "Your password was changed" in r.text
    p.mails.wait_for(email, "Your password was changed")
    r = logged_in.get("/account")  # every session of the user ended
    assert r.status_code == 303 and r.headers["location"].startswith("/login")

    # The link works once.
    r = c.post(f"/password/reset/{token}", data={"password": NEW + "!", "confirm": NEW + "!"})
    assert r.status_code == 410
    assert c.get(f"/password/reset/{token}").status_code == 410
    assert p.client().post("/login", data={"email": email,
                                           "password": password}).status_code == 401
    assert p.login(email, NEW).get("/account").status_code == 200

    # A newer link replaces an older one; a link expires.
    c.post("/password/forgot", data={"email": email})
    older = p.mails.link_token(p.mails.wait_for(email, "Reset your", count=2),
                               "/password/reset")
    c.post("/password/forgot", data={"email": email})
    newer = p.mails.link_token(p.mails.wait_for(email, "Reset your", count=3),
                               "/password/reset")
    assert c.get(f"/password/reset/{older}").status_code == 410
    assert c.get(f"/password/reset/{newer}").status_code == 200
    with p.ctx.unit() as w:
        w.session.execute(update(EmailToken).where(EmailToken.purpose == "reset")
                  .values(expires_at=utcnow() - timedelta(seconds=1)))
    r = c.post(f"/password/reset/{newer}", data={"password": NEW + "!", "confirm": NEW + "!"})
    assert r.status_code == 410 and "expired" in r.text


def test_throttling_says_so(account_portal: AccountPortal) -> None:
    p = account_portal
    p.tenant("acme")
    email, password = p.person(Role.TENANT_MEMBER, "acme")
    c = p.client()
    for _ in range(3):
        assert c.post("/password/forgot", data={"email": email}).status_code == 200
    r = c.post("/password/forgot", data={"email": email})
    assert r.status_code == 429 and "Too many reset requests" in r.text
    # Unknown addresses are throttled alike, so the answer tells nothing.
    for _ in range(3):
        c.post("/password/forgot", data={"email": "ghost@example.org"})
    r = c.post("/password/forgot", data={"email": "ghost@example.org"})
    assert r.status_code == 429 and "Too many reset requests" in r.text
    assert len(p.mails.to(email)) <= 3

    for who in (email, "ghost@example.org"):
        for _ in range(5):
            r = c.post("/login", data={"email": who, "password": "wrong password!"})
            assert r.status_code == 401
        r = c.post("/login", data={"email": who, "password": password})
        assert r.status_code == 429 and "Too many failed attempts" in r.text
