"""TOTP two-factor (P14): set up from the page's secret, log in with it, a code works
once, recovery codes work once, notices by e-mail; staff cannot work without it; turning
it off needs a fresh check."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import httpx
from sqlalchemy import select

from doorvoer.access.policy import Role
from doorvoer.accounts.models import RecoveryCode, User
from doorvoer.web.security import CSP

if TYPE_CHECKING:
    from web.conftest import AccountPortal, TotpClock

SECRET = re.compile(r'id="totp-secret">([A-Z2-7 ]+)<')
CODES = re.compile(r"<li><code>([0-9a-f]{5}-[0-9a-f]{5})</code></li>")


def set_up_2fa(p: AccountPortal, c: httpx.Client) -> tuple[TotpClock, list[str]]:
    """Turn two-factor on through the pages: (the app's clock, the recovery codes)."""
    page = c.get("/account/2fa")
    assert page.status_code == 200
    m = SECRET.search(page.text)
    assert m, "no secret on the setup page"
    clock = p.totp_clock(m.group(1))
    r = p.post(c, "/account/2fa/confirm", {"code": clock.next_code()}, page="/account/2fa")
    assert r.status_code == 200, r.text
    codes = CODES.findall(r.text)
    assert len(codes) == 10 and len(set(codes)) == 10
    return clock, codes


def test_totp_login_replay_and_recovery_codes(account_portal: AccountPortal) -> None:
    p = account_portal
    p.tenant("acme")
    email, password = p.person(Role.TENANT_MEMBER, "acme")
    c = p.login(email, password)
    assert "Set it up" in c.get("/account").text

    page = c.get("/account/2fa")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CSP
    svg = page.text[page.text.index("<svg"):page.text.index("</svg>")]
    assert "style" not in svg and "script" not in svg and "<path" in svg
    secret = SECRET.search(page.text).group(1)  # type: ignore[union-attr]
    assert len(secret.replace(" ", "")) == 32
    # Reloading keeps the same secret (the QR code the phone scanned stays right).
    assert SECRET.search(c.get("/account/2fa").text).group(1) == secret  # type: ignore[union-attr]
    with p.ctx.reading() as w:
        user = w.session.scalars(select(User).where(User.email == email)).one()
        assert user.totp_secret is None and user.totp_pending is not None
        assert secret.replace(" ", "").encode() not in user.totp_pending  # sealed

    r = p.post(c, "/account/2fa/confirm", {"code": "123456"}, page="/account/2fa")
    assert r.status_code == 400 and "does not match" in r.text
    clock, codes = set_up_2fa(p, c)
    notice = p.mails.wait_for(email, "Two-factor authentication is on")
    assert "turned on" in p.mails.body(notice)
    account = c.get("/account").text  # the new session cookie came with the codes page
    assert 'id="account-2fa"><span class="badge ok">on' in account
    assert 'id="account-recovery">10' in account
    with p.ctx.reading() as w:
        hashes = list(w.session.scalars(select(RecoveryCode.code_hash)))
        assert len(hashes) == 10 and not set(codes) & set(hashes)

    # Log out, log in again with a code from the app.
    assert p.post(c, "/logout", {}).status_code == 303
    assert c.get("/account").status_code == 303
    pending = p.client()
    r = pending.post("/login", data={"email": email, "password": password})
    assert r.status_code == 303 and r.headers["location"] == "/login/2fa"
    r = pending.get("/account")  # the password alone is not enough
    assert r.status_code == 303 and r.headers["location"] == "/login/2fa"
    r = p.post(pending, "/login/2fa", {"code": clock.next_code()}, page="/login/2fa")
    assert r.status_code == 303
    assert pending.get("/account").status_code == 200

    # The same code again (a replay), or the one used to set it up: refused.
    replay = p.client()
    replay.post("/login", data={"email": email, "password": password})
    r = p.post(replay, "/login/2fa", {"code": clock.replayed()}, page="/login/2fa")
    assert r.status_code == 401 and "not valid" in r.text
    assert replay.get("/account").status_code == 303

    # A recovery code works once, and the user is told.
    rescued = p.login(email, password, code=codes[3])
    assert 'id="account-recovery">9' in rescued.get("/account").text
    used = p.mails.wait_for(email, "A recovery code was used")
    assert "9 unused recovery codes" in p.mails.body(used)
    again = p.client()
    again.post("/login", data={"email": email, "password": password})
    r = p.post(again, "/login/2fa", {"code": codes[3]}, page="/login/2fa")
    assert r.status_code == 401
    with p.ctx.reading() as w:
        used_rows = list(w.session.scalars(select(RecoveryCode).where(
            RecoveryCode.used_at.is_not(None))))
        assert len(used_rows) == 1


def test_turning_2fa_off_and_new_codes_need_a_fresh_check(
        account_portal: AccountPortal) -> None:
    p = account_portal
    p.tenant("acme")
    email, password = p.person(Role.TENANT_ADMIN, "acme")
    c = p.login(email, password)
    clock, codes = set_up_2fa(p, c)
    p.stale_reauth(email)

    page = c.get("/account/2fa").text
    assert "Confirm with a code" in page and "/account/2fa/disable" not in page
    r = p.post(c, "/account/2fa/disable", {}, page="/account/2fa")
    assert r.status_code == 303
    assert r.headers["location"] == "/account/reauth?next=/account/2fa"
    r = p.post(c, "/account/2fa/recovery-codes", {}, page="/account/2fa")
    assert r.headers["location"] == "/account/reauth?next=/account/2fa"

    r = p.post(c, "/account/reauth", {"code": "000000", "next": "/account/2fa"},
               page="/account/reauth")
    assert r.status_code == 401 and "not valid" in r.text
    r = p.post(c, "/account/reauth", {"code": clock.next_code(), "next": "/account/2fa"},
               page="/account/reauth")
    assert r.status_code == 303 and r.headers["location"] == "/account/2fa"
    # Only paths of this site are followed after the check.
    page = c.get("/account/reauth?next=//evil.example").text
    assert 'name="next" value="/account"' in page

    # With the mail server down the new codes still come, and the page says the mail did not.
    p.set_smtp_port(p.free_port())
    r = p.post(c, "/account/2fa/recovery-codes", {}, page="/account/2fa")
    assert r.status_code == 200
    fresh = CODES.findall(r.text)
    assert len(fresh) == 10 and not set(fresh) & set(codes)
    assert "could not send the e-mail" in r.text
    p.set_smtp_port(p.smtp_port)

    r = p.post(c, "/account/2fa/disable", {}, page="/account/2fa")
    assert r.status_code == 303 and r.headers["location"] == "/account/2fa?done=2fa-off"
    assert "Two-factor authentication is off." in c.get(r.headers["location"]).text
    notice = p.mails.wait_for(email, "Two-factor authentication is off")
    assert "turned off" in p.mails.body(notice)
    with p.ctx.reading() as w:
        user = w.session.scalars(select(User).where(User.email == email)).one()
        assert user.totp_secret is None and user.totp_enabled_at is None
        assert not list(w.session.scalars(select(RecoveryCode)))
    # Logging in needs the password only again.
    r = p.client().post("/login", data={"email": email, "password": password})
    assert r.status_code == 303 and r.headers["location"] != "/login/2fa"


def test_staff_cannot_work_without_2fa(account_portal: AccountPortal) -> None:
    p = account_portal
    p.tenant("acme")
    email, password = p.person(Role.OPERATOR_ADMIN)
    c = p.client()
    r = c.post("/login", data={"email": email, "password": password})
    assert r.status_code == 303 and r.headers["location"] == "/account/2fa"
    for path in ("/", "/operator/tenants", "/operator/staff", "/t/acme/users"):
        r = c.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/account/2fa", path
    page = c.get("/account/2fa").text
    assert "Operator staff must use two-factor authentication" in page
    assert c.get("/account").status_code == 200

    _clock, _codes = set_up_2fa(p, c)
    assert c.get("/").headers["location"] == "/operator/tenants"
    assert c.get("/operator/tenants").status_code == 200
    assert "Operator staff must" not in c.get("/account/2fa").text
    r = p.post(c, "/account/2fa/disable", {}, page="/account/2fa")
    assert r.status_code == 403 and "staff cannot work without two-factor" in r.text
    with p.ctx.reading() as w:
        assert w.session.scalars(select(User.totp_secret).where(User.email == email)).one()
