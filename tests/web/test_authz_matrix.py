"""The authorization matrix: every route × every role, checked against a table.

A route the table does not list fails the test, so a new route cannot ship without
someone deciding who may use it."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute

from doorvoer.access.policy import Role
from doorvoer.accounts.machines import SCOPES, create_token
from doorvoer.accounts.models import User
from doorvoer.accounts.people import create_user
from doorvoer.accounts.sessions import start_session
from doorvoer.context import Context
from doorvoer.support import service as support
from doorvoer.tenants.service import require_tenant
from doorvoer.web.app import create_app
from doorvoer.web.cookies import SESSION

from .conftest import _root_conftest

root = _root_conftest()

ANON = "anonymous"
ADMIN, MEMBER, EXTERNAL = "tenant_admin", "tenant_member", "external(reports)"
OTHER = "other_tenant_admin"
OPADMIN, SUPPORT, SYSADMIN = "operator_admin", "support", "sysadmin"
TOKEN, OTHER_TOKEN = "api_token", "other_tenant_api_token"
PEOPLE = [ANON, ADMIN, MEMBER, EXTERNAL, OTHER, OPADMIN, SUPPORT, SYSADMIN]
ALL = frozenset(PEOPLE)
LOGGED_IN = ALL - {ANON}
TENANT = frozenset({ADMIN, MEMBER, EXTERNAL})
TENANT_FULL = frozenset({ADMIN, MEMBER})
STAFF = frozenset({OPADMIN, SUPPORT, SYSADMIN})

# (method, path) -> who is allowed. Tenant routes are requested for tenant "acme"
# (ADMIN, MEMBER and EXTERNAL belong to it; OTHER is the admin of "globex").
EXPECTED: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/"): ALL,
    ("GET", "/login"): ALL,
    ("POST", "/login"): ALL,
    ("GET", "/login/2fa"): LOGGED_IN,
    ("POST", "/login/2fa"): LOGGED_IN,
    ("POST", "/logout"): LOGGED_IN,
    ("GET", "/cookies"): ALL,
    ("GET", "/health"): ALL,
    ("GET", "/password/forgot"): ALL,
    ("POST", "/password/forgot"): ALL,
    ("GET", "/password/reset/{token}"): ALL,
    ("POST", "/password/reset/{token}"): ALL,
    ("GET", "/invite/{token}"): ALL,
    ("POST", "/invite/{token}"): ALL,
    ("GET", "/account"): LOGGED_IN,
    ("POST", "/account/password"): LOGGED_IN,
    ("GET", "/account/reauth"): LOGGED_IN,
    ("POST", "/account/reauth"): LOGGED_IN,
    ("GET", "/account/2fa"): LOGGED_IN,
    ("POST", "/account/2fa/restart"): LOGGED_IN,
    ("POST", "/account/2fa/confirm"): LOGGED_IN,
    ("POST", "/account/2fa/disable"): LOGGED_IN - STAFF,  # staff cannot work without 2FA
    ("POST", "/account/2fa/recovery-codes"): LOGGED_IN,
    ("GET", "/t/home"): LOGGED_IN,  # sends everyone to their own start page
    ("GET", "/t/{slug}"): TENANT,
    ("GET", "/t/{slug}/dashboard"): TENANT,
    ("GET", "/t/{slug}/processes"): TENANT_FULL,
    ("GET", "/t/{slug}/transfers"): TENANT,
    ("GET", "/t/{slug}/settings"): frozenset({ADMIN}),
    ("POST", "/t/{slug}/settings/reporting"): frozenset({ADMIN}),
    ("GET", "/t/{slug}/users"): TENANT_FULL,
    ("POST", "/t/{slug}/invitations"): frozenset({ADMIN}),
    ("POST", "/t/{slug}/invitations/{invitation_id}/revoke"): frozenset({ADMIN}),
    ("POST", "/t/{slug}/users/{user_id}/remove"): frozenset({ADMIN}),
    ("POST", "/t/{slug}/users/{user_id}/suspend"): frozenset({ADMIN}),
    ("POST", "/t/{slug}/users/{user_id}/resume"): frozenset({ADMIN}),
    ("GET", "/t/{slug}/tokens"): frozenset({ADMIN}),
    ("POST", "/t/{slug}/tokens"): frozenset({ADMIN}),
    ("POST", "/t/{slug}/tokens/{token_id}/revoke"): frozenset({ADMIN}),
    ("GET", "/t/{slug}/gdpr"): TENANT_FULL,
    ("POST", "/t/{slug}/gdpr/instructions"): TENANT_FULL,
    # The support thread: the tenant's people and support (no grant needed; logged).
    ("GET", "/t/{slug}/thread"): TENANT_FULL | {SUPPORT},
    ("POST", "/t/{slug}/thread"): TENANT_FULL | {SUPPORT},
    ("POST", "/t/{slug}/gdpr/grants/{grant_id}/approve"): frozenset({ADMIN}),
    ("POST", "/t/{slug}/gdpr/grants/{grant_id}/refuse"): frozenset({ADMIN}),
    ("POST", "/t/{slug}/gdpr/grants/{grant_id}/revoke"): frozenset({ADMIN}),
    ("POST", "/t/{slug}/gdpr/windows/{window_id}/close"): frozenset({ADMIN}),
    # Inspection windows: support with an active inspect grant only (below), never people.
    ("GET", "/t/{slug}/inspect"): frozenset(),
    ("POST", "/t/{slug}/inspect"): frozenset(),
    ("POST", "/t/{slug}/inspect/{window_id}/close"): frozenset(),
    ("GET", "/t/{slug}/inspect/{window_id}/{transfer_id}/{part}"): frozenset(),
    ("GET", "/t/{slug}/audit"): frozenset({ADMIN}),
    ("GET", "/t/{slug}/data"): frozenset({ADMIN}),
    ("POST", "/t/{slug}/data/export"): frozenset({ADMIN}),
    ("POST", "/t/{slug}/data/erase"): frozenset({ADMIN}),
    ("POST", "/t/{slug}/data/erase/cancel"): frozenset({ADMIN}),
    ("GET", "/t/{slug}/incidents"): TENANT_FULL,
    ("GET", "/t/{slug}/subprocessors"): TENANT_FULL,
    ("POST", "/t/{slug}/subprocessors/{key}/object"): frozenset({ADMIN}),
    ("POST", "/t/{slug}/subprocessors/{key}/consent"): frozenset({ADMIN}),
    ("GET", "/operator/subprocessors"): STAFF,
    ("GET", "/t/{slug}/sharing"): TENANT_FULL,
    ("GET", "/t/{slug}/record"): frozenset({ADMIN}),
    ("GET", "/t/{slug}/record.{fmt}"): frozenset({ADMIN}),
    ("GET", "/operator/record"): frozenset({OPADMIN}),
    ("GET", "/operator/record.{fmt}"): frozenset({OPADMIN}),
    ("GET", "/operator/usage"): frozenset({OPADMIN}),
    ("POST", "/t/{slug}/settings/usage"): frozenset({ADMIN}),
    ("POST", "/t/{slug}/settings/contacts"): frozenset({ADMIN}),
    ("POST", "/t/{slug}/incidents/{incident_id}/acknowledge"): frozenset({ADMIN}),
    ("GET", "/t/{slug}/audit/export.jsonl"): frozenset({ADMIN}),
    ("GET", "/t/{slug}/audit/checkpoints.txt"): frozenset({ADMIN}),
    ("GET", "/support"): frozenset({SUPPORT}),
    ("POST", "/support/requests"): frozenset({SUPPORT}),
    ("GET", "/operator/grants"): frozenset({OPADMIN}),
    ("GET", "/operator"): STAFF,
    ("GET", "/operator/tenants"): STAFF,
    ("POST", "/operator/tenants"): frozenset({OPADMIN}),
    ("POST", "/operator/tenants/{slug}/contract"): frozenset({OPADMIN}),
    ("GET", "/operator/incidents"): frozenset({OPADMIN, SYSADMIN}),
    ("GET", "/operator/incidents.json"): frozenset({OPADMIN, SYSADMIN}),
    ("POST", "/operator/incidents"): frozenset({OPADMIN, SYSADMIN}),
    ("POST", "/operator/incidents/{incident_id}/update"): frozenset({OPADMIN, SYSADMIN}),
    ("GET", "/operator/staff"): frozenset({OPADMIN}),
    ("POST", "/operator/staff"): frozenset({OPADMIN}),
    # The API authenticates with tokens only: a portal session is not enough.
    ("GET", "/api/v1/transfers"): frozenset({TOKEN, OTHER_TOKEN}),
    ("GET", "/api/v1/transfers/{transfer_id}"): frozenset({TOKEN}),
    ("GET", "/api/v1/processes"): frozenset({TOKEN, OTHER_TOKEN}),
    ("PUT", "/api/v1/processes/{name}/files/{filename}"): frozenset({TOKEN}),
    # Tokens made by each tenant's admin: the audit log and grants of their own tenant.
    ("GET", "/api/v1/audit/entries"): frozenset({TOKEN, OTHER_TOKEN}),
    ("GET", "/api/v1/audit/checkpoints"): frozenset({TOKEN, OTHER_TOKEN}),
    ("GET", "/api/v1/audit/verify"): frozenset({TOKEN, OTHER_TOKEN}),
    ("GET", "/api/v1/grants"): frozenset({TOKEN, OTHER_TOKEN}),
    ("GET", "/api/v1/export"): frozenset({TOKEN, OTHER_TOKEN}),
    # {grant_id} is a request of acme: another tenant's token finds nothing (404).
    # Nobody approves here, since no test code is a valid one (test_grants.py approves).
    ("POST", "/api/v1/grants/{grant_id}/approve"): frozenset(),
    ("POST", "/api/v1/grants/{grant_id}/refuse"): frozenset({TOKEN}),
    ("POST", "/api/v1/grants/{grant_id}/revoke"): frozenset({TOKEN}),
}

# How the portal turns a person away: 403, or a redirect to log in (with `next`) or to
# pass the second factor. The API answers 401 or 403, and 404 for another tenant's
# objects (so that it does not tell they exist).
DENIED_REDIRECTS = re.compile(r"^/login(\?next=|/2fa)")


@dataclass
class World:
    ctx: Context
    node: root.NodeThread  # type: ignore[name-defined]
    clients: dict[str, httpx.Client]
    csrf: dict[str, str]
    transfer_id: str
    grant_id: str
    users: dict[str, str]  # role key -> user id


def _session_client(ctx: Context, base_url: str, email: str | None) -> tuple[httpx.Client, str]:
    client = root.portal_client(ctx, base_url, follow_redirects=False, timeout=30)
    if email is None:
        return client, ""
    from sqlalchemy import select

    with ctx.unit() as w:
        user = w.session.scalars(select(User).where(User.email == email)).one()
        info = start_session(w, user, two_factor=True, pending_2fa=False)
        csrf = info.row.csrf_token
    client.cookies.set(SESSION.name, info.token, domain="127.0.0.1")
    return client, csrf


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    ctx = root.make_ctx(tmp_path, database_url)
    root.add_tenant(ctx, tmp_path, "acme")
    root.add_tenant(ctx, tmp_path, "globex", spec=root.CSV_SPEC.replace("orders", "invoices"))
    password = "matrix-" + secrets.token_urlsafe(12)
    people = {
        ADMIN: (Role.TENANT_ADMIN, "acme", frozenset()),
        MEMBER: (Role.TENANT_MEMBER, "acme", frozenset()),
        EXTERNAL: (Role.EXTERNAL, "acme", frozenset({"reports"})),
        OTHER: (Role.TENANT_ADMIN, "globex", frozenset()),
        OPADMIN: (Role.OPERATOR_ADMIN, None, frozenset()),
        SUPPORT: (Role.SUPPORT, None, frozenset()),
        SYSADMIN: (Role.SYSADMIN, None, frozenset()),
    }
    emails = {}
    tokens = {}
    users = {}
    with ctx.unit() as w:
        for key, (role, slug, perms) in people.items():
            tenant_id = require_tenant(w, slug).id if slug else None
            email = f"{role.value}.{slug or 'op'}.{len(emails)}@example.org"
            user = create_user(w, email, key, role, tenant_id, password, perms)
            if role.is_staff:
                from doorvoer.accounts import totp

                user.totp_secret = totp.seal_secret(ctx.sealer, user, totp.new_secret())
            emails[key] = email
            w.session.flush()
            users[key] = user.id
        for key, slug, maker in ((TOKEN, "acme", ADMIN), (OTHER_TOKEN, "globex", OTHER)):
            tokens[key] = create_token(w, require_tenant(w, slug).id, users[maker],
                                       f"matrix {key}", SCOPES, days=1).secret
        staff = w.session.get_one(User, users[SUPPORT])
        grant_id = support.request_grant(w, staff, require_tenant(w, "acme"), "matrix",
                                         "M-1", ["reports"]).id
    node = root.NodeThread(ctx, web=True).start()
    clients, csrf = {}, {}
    for key in PEOPLE:
        clients[key], csrf[key] = _session_client(ctx, node.base_url, emails.get(key))
    for key, token in tokens.items():
        clients[key], _ = _session_client(ctx, node.base_url, None)
        clients[key].headers["Authorization"] = f"Bearer {token}"
    # One transfer of acme, so /transfers/{id} has something to find.
    async def upload() -> None:
        import asyncssh

        login = root.Login("robot@acme", "", tmp_path / "id_acme", "acme")
        conn, sftp = await root.asftp(node.port, login)
        async with conn, sftp.open("/inbox/orders/m.csv", "wb") as f:
            await f.write(b"id;name;amount\n1;a;1,00\n")
        del asyncssh

    import asyncio

    asyncio.run(upload())
    transfer_id = root.wait_for(lambda: root.transfers_of(ctx))[0].id
    yield World(ctx, node, clients, csrf, transfer_id, grant_id, users)
    for c in clients.values():
        c.close()
    node.stop()
    ctx.close()


def _flatten(routes: list[object], prefix: str = "") -> list[tuple[str, str]]:
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found += [(m, prefix + route.path) for m in sorted(route.methods) if m != "HEAD"]
        elif hasattr(route, "original_router"):  # FastAPI's included router
            sub = route.include_context.prefix  # type: ignore[attr-defined]
            found += _flatten(route.original_router.routes, prefix + sub)  # type: ignore[attr-defined]
    return found


def _routes(world: World) -> list[tuple[str, str]]:
    return _flatten(create_app(world.ctx).routes)


def _concrete(world: World, path: str) -> str:
    return (path.replace("{slug}", "acme").replace("{transfer_id}", world.transfer_id)
            .replace("{name}", "orders").replace("{filename}", "matrix.csv")
            .replace("{token}", "not-a-real-token").replace("{invitation_id}", "0" * 32)
            .replace("{user_id}", "0" * 32).replace("{token_id}", "0" * 32)
            .replace("{grant_id}", world.grant_id).replace("{window_id}", "0" * 32)
            .replace("{incident_id}", "0" * 32).replace("{key}", "no-such-entry")
            .replace("{fmt}", "json")
            .replace("{part}", "input"))


def _allowed(response: httpx.Response, api: bool) -> bool:
    if response.status_code == 403 or (api and response.status_code in (401, 404)):
        return False
    if response.is_redirect:
        location = response.headers.get("location", "")
        return not DENIED_REDIRECTS.match(location)
    return True


def test_every_route_is_in_the_table(world: World) -> None:
    missing = [r for r in _routes(world) if r not in EXPECTED]
    stale = [r for r in EXPECTED if r not in _routes(world)]
    assert missing == [], f"routes without an entry in EXPECTED: {missing}"
    assert stale == [], f"entries for routes that no longer exist: {stale}"


def test_every_role_gets_what_the_table_says(world: World) -> None:
    wrong = []
    routes = [r for r in _routes(world) if r != ("POST", "/logout")] + [("POST", "/logout")]
    for method, path in routes:
        expected = EXPECTED.get((method, path), frozenset())
        url = _concrete(world, path)
        roles = [TOKEN, OTHER_TOKEN, *PEOPLE] if path.startswith("/api/") else PEOPLE
        for role in roles:
            client = world.clients[role]
            if method == "GET":
                r = client.get(url)
            elif method == "PUT":
                r = client.put(url, content=b"id;name;amount\n1;a;1,00\n")
            elif path.startswith("/api/"):  # a body that passes validation
                r = client.request(method, url, json={"scopes": ["reports"], "hours": 1,
                                                      "code": "000000"})
            else:
                r = client.request(method, url, data={"csrf": world.csrf.get(role, "")})
            if _allowed(r, path.startswith("/api/")) != (role in expected):
                wrong.append(f"{method} {path} as {role}: {r.status_code} "
                             f"{r.headers.get('location', '')}")
    assert not wrong, "\n".join(wrong)


# ---------------------------------------------------------------- staff × scope × grant state

# What an active grant's scope opens to the support user holding it, on its tenant:
# stated here as a table of routes, independently of the policy's table of actions.
SCOPE_ROUTES: dict[str, frozenset[tuple[str, str]]] = {
    "reports": frozenset({("GET", "/t/{slug}"), ("GET", "/t/{slug}/dashboard"),
                          ("GET", "/t/{slug}/transfers")}),
    "config": frozenset({("GET", "/t/{slug}"), ("GET", "/t/{slug}/dashboard"),
                         ("GET", "/t/{slug}/processes"), ("GET", "/t/{slug}/sharing")}),
    "inspect": frozenset({("GET", "/t/{slug}"), ("GET", "/t/{slug}/dashboard"),
                          ("GET", "/t/{slug}/inspect"), ("POST", "/t/{slug}/inspect"),
                          ("POST", "/t/{slug}/inspect/{window_id}/close"),
                          ("GET", "/t/{slug}/inspect/{window_id}/{transfer_id}/{part}")}),
}
GRANT_STATES = ("none", "pending", "active", "refused", "expired", "revoked")
# What support reaches with or without a grant: the tenant's support thread.
SUPPORT_ALWAYS = frozenset({("GET", "/t/{slug}/thread"), ("POST", "/t/{slug}/thread")})


def _set_grant(world: World, staff: str, scope: str, state: str) -> None:
    """The staff member holds exactly one grant of acme, in `state` ("expired": active
    in the table but past its time, before any job wrote it down)."""
    from datetime import timedelta

    from sqlalchemy import delete

    from doorvoer.db import utcnow
    from doorvoer.support.models import Grant, GrantState

    now = utcnow()
    with world.ctx.unit() as w:
        w.session.execute(delete(Grant))
        if state == "none":
            return
        stored = GrantState.ACTIVE if state == "expired" else GrantState(state)
        w.session.add(Grant(
            tenant_id=require_tenant(w, "acme").id, staff_id=world.users[staff],
            staff_email=f"{staff}@example.org", reason="matrix", ticket="M",
            requested_scopes=scope, scopes=scope if state != "pending" else "",
            state=stored.value, requested_at=now - timedelta(hours=2),
            expires_at=now - timedelta(minutes=1) if state == "expired"
            else now + timedelta(hours=1)))


def test_staff_reach_a_tenant_only_through_an_active_grant_within_its_scope(
        world: World) -> None:
    from doorvoer.audit import service as audit

    routes = [r for r in _routes(world) if r[1].startswith("/t/{slug}")]
    assert routes and all(r in EXPECTED for r in routes)
    wrong, asked = [], 0
    for staff in sorted(STAFF):
        for scope in SCOPE_ROUTES:
            for state in GRANT_STATES:
                _set_grant(world, staff, scope, state)
                client = world.clients[staff]
                for method, path in routes:
                    url = _concrete(world, path)
                    r = client.get(url) if method == "GET" else client.request(
                        method, url, data={"csrf": world.csrf[staff]})
                    asked += 1
                    expected = staff == SUPPORT and (
                        (method, path) in SUPPORT_ALWAYS
                        or (state == "active" and (method, path) in SCOPE_ROUTES[scope]))
                    if _allowed(r, False) != expected:
                        wrong.append(f"{staff} {scope} {state}: {method} {path} -> "
                                     f"{r.status_code} {r.headers.get('location', '')}")
    assert not wrong, "\n".join(wrong)
    # Every one of those requests is in acme's audit chain, allowed or denied.
    with world.ctx.reading() as w:
        logged = [e for e in audit.entries(w, require_tenant(w, "acme").id)
                  if str(e["action"]).startswith("staff:access:")]
    assert len(logged) == asked
    allowed = [e for e in logged if e["action"] == "staff:access:allowed"]
    always = len(SUPPORT_ALWAYS) * len(SCOPE_ROUTES) * len(GRANT_STATES)
    assert len(allowed) == sum(len(r) for r in SCOPE_ROUTES.values()) + always
    assert all(e["actor"]["grant"] for e in allowed  # type: ignore[index]
               if "/thread" not in str(e["object"]))
