"""The API tokens page: a tenant admin makes a token (shown once), lists and revokes
tokens; nobody else can. On SQLite and PostgreSQL, over a real HTTPS node."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import select, update

from conftest import add_tenant
from doorvoer.access.policy import Action, Resource, Role, allowed_actions, is_allowed
from doorvoer.accounts import totp
from doorvoer.accounts.machines import create_token, mark_used, token_actor
from doorvoer.accounts.models import ApiToken, User, WebSession
from doorvoer.accounts.people import create_user
from doorvoer.context import Context
from doorvoer.db import utcnow
from doorvoer.tenants.service import require_tenant
from web.api_support import TOKEN, Web, csrf_of, start_web, stop_web

PAGE = "/t/acme/tokens"
NEVER_USED = '<span class="muted">never</span>'


@pytest.fixture
def web(tmp_path: Path, database_url: str) -> Iterator[Web]:
    w = start_web(tmp_path, database_url, "acme", "other")
    yield w
    stop_web(w)


def tokens_of(web: Web, slug: str) -> list[ApiToken]:
    with web.ctx.reading() as w:
        return list(w.session.scalars(select(ApiToken).where(
            ApiToken.tenant_id == web.tenant_id(slug))))


def test_an_admin_makes_a_token_sees_it_once_uses_and_revokes_it(web: Web) -> None:
    _, email, password = web.person("acme")
    with web.logged_in(email, password) as admin:
        page = admin.get(PAGE)
        assert page.status_code == 200
        assert "Make a token" in page.text and "No tokens yet." in page.text
        assert 'value="90"' in page.text  # the default expiry

        made = admin.post(PAGE, data={"csrf": csrf_of(page.text), "name": "ERP export",
                                      "scope": ["transfers:read", "processes:read"],
                                      "days": "30"})
        assert made.status_code == 200
        assert made.headers["cache-control"] == "no-store"
        secrets_shown = set(TOKEN.findall(made.text))
        assert len(secrets_shown) == 1
        secret = secrets_shown.pop()
        assert "shown this once" in made.text

        [row] = tokens_of(web, "acme")
        assert row.name == "ERP export"
        assert row.scopes == "transfers:read,processes:read"
        assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
        assert secret not in " ".join(str(v) for v in vars(row).values())  # only the hash
        assert timedelta(days=29, hours=23) < row.expires_at - utcnow() <= timedelta(days=30)

        again = admin.get(PAGE)
        assert secret not in again.text  # shown once
        assert "ERP export" in again.text and NEVER_USED in again.text
        assert "transfers:read" in again.text and "active" in again.text

        with web.client(secret) as api:
            assert api.get("/api/v1/processes").status_code == 200
            assert api.put("/api/v1/processes/orders/files/a.csv", content=b"x") \
                .status_code == 403  # not in its scopes
        used = admin.get(PAGE)
        assert NEVER_USED not in used.text  # last used is shown
        assert tokens_of(web, "acme")[0].last_used_at is not None

        revoked = admin.post(f"{PAGE}/{row.id}/revoke", data={"csrf": csrf_of(used.text)})
        assert revoked.status_code == 303
        assert revoked.headers["location"] == f"{PAGE}?revoked=1"
        after = admin.get(revoked.headers["location"])
        assert "revoked" in after.text
        assert f"{PAGE}/{row.id}/revoke" not in after.text
        with web.client(secret) as api:
            assert api.get("/api/v1/processes").status_code == 401  # at once
        assert tokens_of(web, "acme")[0].revoked_at is not None


def test_the_page_is_for_admins_of_that_tenant_only(web: Web) -> None:
    with web.client() as anonymous:
        r = anonymous.get(PAGE)
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        assert anonymous.post(PAGE, data={"name": "x", "scope": "upload", "days": "9"}) \
            .status_code == 303
    _, member_email, member_pw = web.person("acme", Role.TENANT_MEMBER)
    with web.logged_in(member_email, member_pw) as member:
        assert member.get(PAGE).status_code == 403
    _, ext_email, ext_pw = web.person("acme", Role.EXTERNAL, frozenset({"transfers"}))
    with web.logged_in(ext_email, ext_pw) as external:
        assert external.get(PAGE).status_code == 403
    _, other_email, other_pw = web.person("other")
    with web.logged_in(other_email, other_pw) as other_admin:
        assert other_admin.get(PAGE).status_code == 403
        assert other_admin.get("/t/nosuchtenant/tokens").status_code == 403
        own = other_admin.get("/t/other/tokens")
        assert own.status_code == 200
        csrf = csrf_of(own.text)
        assert other_admin.post(PAGE, data={"csrf": csrf, "name": "sneaky",
                                            "scope": "upload", "days": "9"}).status_code == 403
        # A token of acme, revoked through other's page: no such token there.
        secret = web.token("acme", ["upload"])
        [row] = tokens_of(web, "acme")
        r = other_admin.post(f"/t/other/tokens/{row.id}/revoke", data={"csrf": csrf})
        assert r.status_code == 404
        with web.client(secret) as api:
            assert api.put("/api/v1/processes/orders/files/a.csv", content=b"id\n") \
                .status_code == 201  # still works
    assert [t.name for t in tokens_of(web, "other")] == []

    _, email, password = web.person("acme")
    with web.logged_in(email, password) as admin:
        page = admin.get(PAGE)
        assert admin.post(PAGE, data={"name": "no csrf", "scope": "upload", "days": "9"}) \
            .status_code == 403
        assert admin.post(PAGE, data={"csrf": "wrong", "name": "bad csrf", "scope": "upload",
                                      "days": "9"}).status_code == 403
        assert admin.post(f"{PAGE}/{row.id}/revoke", data={}).status_code == 403
        assert len(tokens_of(web, "acme")) == 1 and tokens_of(web, "acme")[0].revoked_at is None
        assert csrf_of(page.text)


MISTAKES = [
    ({"name": "x", "days": "90"}, "pick at least one scope"),
    ({"name": "x", "scope": "admin", "days": "90"}, "unknown scope"),
    ({"name": "  ", "scope": "upload", "days": "90"}, "give the token a name"),
    ({"name": "x", "scope": "upload", "days": "0"}, "1 to 365 days"),
    ({"name": "x", "scope": "upload", "days": "366"}, "1 to 365 days"),
    ({"name": "x", "scope": "upload", "days": "soon"}, "a number of days"),
    ({"name": "x" * 101, "scope": "upload", "days": "90"}, "at most 100 characters"),
]


def test_a_token_form_with_a_mistake_says_what_to_fix(web: Web) -> None:
    _, email, password = web.person("acme")
    with web.logged_in(email, password) as admin:
        csrf = csrf_of(admin.get(PAGE).text)
        for form, message in MISTAKES:
            r = admin.post(PAGE, data={"csrf": csrf, **form})
            assert r.status_code == 400, form
            assert message in r.text, form
            assert not TOKEN.search(r.text)
            assert 'value="' + form["name"] + '"' in r.text  # what was typed stays
    assert tokens_of(web, "acme") == []


def test_making_a_token_needs_a_fresh_second_factor_check(web: Web) -> None:
    secret = totp.new_secret()
    user_id, email, password = web.person("acme")
    with web.ctx.unit() as w:
        user = w.session.get_one(User, user_id)
        user.totp_secret = totp.seal_secret(web.ctx.sealer, user, secret)
    with web.client() as admin:
        r = admin.post("/login", data={"email": email, "password": password})
        assert r.headers["location"].startswith("/login/2fa")
        page = admin.get("/login/2fa")
        r = admin.post("/login/2fa", data={"csrf": csrf_of(page.text),
                                           "code": pyotp.TOTP(secret).now()})
        assert r.status_code == 303
        fresh = admin.get(PAGE)
        assert 'name="scope"' in fresh.text  # just checked: the form is there

        with web.ctx.unit() as w:
            w.session.execute(update(WebSession).where(WebSession.user_id == user_id)
                      .values(reauth_at=utcnow() - timedelta(hours=1)))
        stale = admin.get(PAGE)
        assert 'name="scope"' not in stale.text
        assert "/account/reauth?next=/t/acme/tokens" in stale.text
        r = admin.post(PAGE, data={"csrf": csrf_of(stale.text), "name": "late",
                                   "scope": "upload", "days": "9"})
        assert r.status_code == 303
        assert r.headers["location"] == "/account/reauth?next=/t/acme/tokens"
    assert tokens_of(web, "acme") == []


def test_a_token_acts_within_its_scopes_and_its_makers_rights(
        ctx: Context, tmp_path: Path) -> None:
    add_tenant(ctx, tmp_path, "acme")
    with ctx.unit() as w:
        tenant_id = require_tenant(w, "acme").id
        admin = create_user(w, "boss@acme.example", "Boss", Role.TENANT_ADMIN, tenant_id,
                            "correct-horse-battery-9")
        made = create_token(w, tenant_id, admin.id, "erp", ["upload", "transfers:read"])
        admin_id = admin.id
    with ctx.reading() as w:
        use = token_actor(w, made.secret)
    assert use is not None and use.touch
    actor = use.actor
    # An admin's token: the admin's role, but never beyond its scopes.
    assert (actor.user_id, actor.role, actor.tenant_id) == (None, Role.TENANT_ADMIN,
                                                            tenant_id)
    assert allowed_actions(actor) == {Action.UPLOAD, Action.VIEW_TRANSFERS}
    assert is_allowed(actor, Action.UPLOAD, Resource(tenant_id))
    assert not is_allowed(actor, Action.UPLOAD, Resource("another tenant"))
    assert not is_allowed(actor, Action.MANAGE_TOKENS, Resource(tenant_id))  # admin's, not its
    assert not is_allowed(actor, Action.VIEW_PROCESSES, Resource(tenant_id))

    with ctx.unit() as w:
        mark_used(w, use.token_id)
    with ctx.reading() as w:
        first = w.session.get_one(ApiToken, use.token_id).last_used_at
        again = token_actor(w, made.secret)
    assert first is not None and again is not None and not again.touch
    with ctx.unit() as w:
        mark_used(w, use.token_id)  # within the minute: no write
        assert w.session.get_one(ApiToken, use.token_id).last_used_at == first

    # The maker becomes an outside adviser who may see reports only: so may the token.
    with ctx.unit() as w:
        maker = w.session.get_one(User, admin_id)
        maker.role, maker.permissions = Role.EXTERNAL.value, "reports"
    with ctx.reading() as w:
        use = token_actor(w, made.secret)
    assert use is not None and allowed_actions(use.actor) == frozenset()
    with ctx.reading() as w:
        assert token_actor(w, made.secret.replace("dvt_", "dvx_")) is None
        assert token_actor(w, made.secret + "x") is None
        assert token_actor(w, made.secret, now=utcnow() + timedelta(days=91)) is None
