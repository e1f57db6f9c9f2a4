"""What routes depend on: the context, the viewer (who is logged in), the unit of work,
the access check, CSRF. Routes stay one line of signature: `viewer: ViewerDep`."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse

from doorvoer import mail
from doorvoer.access.errors import Denied
from doorvoer.access.policy import (
    Action,
    Actor,
    Resource,
    Role,
    allowed_on,
    authorize,
    is_allowed,
    must_set_up_2fa,
)
from doorvoer.accounts.models import User, WebSession
from doorvoer.accounts.people import actor_of
from doorvoer.accounts.sessions import fresh_2fa, load_session
from doorvoer.background import spawn
from doorvoer.context import Context
from doorvoer.privacy.incidents import AUTHORITY_DEADLINE, unacknowledged
from doorvoer.privacy.notices import time_left
from doorvoer.support.service import active_grants, staff_request
from doorvoer.tenants.models import Tenant
from doorvoer.tenants.service import get_tenant
from doorvoer.unit import Work
from doorvoer.web.cookies import COOKIES, SESSION
from doorvoer.web.errors import (
    CsrfFailed,
    LoginRequired,
    ReauthRequired,
    SecondFactorRequired,
    TwoFactorSetupRequired,
)

templates = Jinja2Templates(directory=Path(__file__).with_name("templates"))
T = TypeVar("T")


def get_ctx(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


CtxDep = Annotated[Context, Depends(get_ctx)]


def whole_number(raw: object, default: int, most: int = 10**9) -> int:
    """A form or query field read as a count: ASCII digits from 0 to `most`, else the
    default (a '²' is a digit to str.isdigit but not to int; a 30-digit page overflows
    the database's integers)."""
    text = str(raw if raw is not None else "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(most)):
        return default
    value = int(text)
    return value if value <= most else default


def client_address(request: Request) -> str:
    return request.client.host if request.client else "?"


@dataclass(frozen=True)
class Viewer:
    user: User
    row: WebSession
    actor: Actor

    @property
    def csrf(self) -> str:
        return self.row.csrf_token

    def can(self, action: Action, tenant_id: str | None = None) -> bool:
        try:
            authorize(self.actor, action, Resource(tenant_id))
        except Denied:
            return False
        return True


def unit(ctx: Context, request: Request, viewer: Viewer | None = None, *,
         write: bool = True) -> Work:
    """The request's unit of work, knowing who acts and from where."""
    make = ctx.unit if write else ctx.reading
    return make(actor=viewer.actor if viewer else None, source=client_address(request))


async def in_unit(ctx: Context, request: Request, viewer: Viewer | None,
                  fn: Callable[..., T], *args: Any) -> tuple[T, bool]:
    """Run `fn(w, *args)` in the request's unit of work, off the event loop (argon2,
    the database), then send the mail it queued. Returns (its result, whether every
    mail went out): a mail that cannot be sent never undoes the change."""

    def run() -> tuple[T, list[Any]]:
        with unit(ctx, request, viewer) as w:
            result = fn(w, *args)
        return result, w.outgoing

    result, outgoing = await asyncio.to_thread(run)
    sent = True
    for msg in outgoing:
        sent = await mail.send(ctx.settings, msg) and sent
    return result, sent


def optional_viewer(request: Request, ctx: CtxDep) -> Viewer | None:
    token = request.cookies.get(SESSION.name)
    if not token:
        return None
    with unit(ctx, request) as w:
        found = load_session(w, token)
        if found is None:
            return None
        row, user = found
        actor = actor_of(user, row.two_factor)
        if actor.role == Role.SUPPORT:  # loaded with every request: revoking is at once
            actor = replace(actor, grants=active_grants(w, user.id))
        return Viewer(user=user, row=row, actor=actor)


def pending_viewer(viewer: Annotated[Viewer | None, Depends(optional_viewer)]) -> Viewer:
    """A session whose password step passed (the second factor may still be due)."""
    if viewer is None:
        raise LoginRequired
    return viewer


def require_account_viewer(viewer: Annotated[Viewer, Depends(pending_viewer)]) -> Viewer:
    """Logged in with every factor the user has (staff may still lack 2FA: the account
    pages are where they set it up)."""
    if viewer.row.pending_2fa:
        raise SecondFactorRequired
    return viewer


def require_viewer(viewer: Annotated[Viewer, Depends(require_account_viewer)]) -> Viewer:
    if must_set_up_2fa(viewer.user.role, viewer.user.totp_secret is not None):
        raise TwoFactorSetupRequired
    return viewer


OptionalViewerDep = Annotated[Viewer | None, Depends(optional_viewer)]
PendingViewerDep = Annotated[Viewer, Depends(pending_viewer)]
AccountViewerDep = Annotated[Viewer, Depends(require_account_viewer)]
ViewerDep = Annotated[Viewer, Depends(require_viewer)]


def needs_fresh_2fa(ctx: Context, viewer: Viewer) -> bool:
    """Whether a sensitive action must first ask for a code: the user has 2FA and the
    session's last check is older than `reauth_s`."""
    return viewer.user.totp_secret is not None and not fresh_2fa(ctx.settings, viewer.row)


def require_fresh_2fa(ctx: Context, viewer: Viewer, next_url: str) -> None:
    """Guard a sensitive action; `next_url` is the page to return to after the check."""
    if needs_fresh_2fa(ctx, viewer):
        raise ReauthRequired(next_url)


def tenant_for(ctx: Context, request: Request, viewer: Viewer, slug: str,
               *actions: Action) -> Tenant:
    """The tenant a /t/{slug}/… route is about, after the access check: the viewer may
    take at least one of `actions` there. An unknown tenant and a forbidden one look the
    same: 403. Every staff request is written to the tenant's audit log, allowed (with
    the grant relied on) or denied (and the page says why)."""
    with ctx.reading() as w:
        tenant = get_tenant(w, slug)
    resource = Resource(tenant.id if tenant else "\0unknown")
    action = next((a for a in actions if is_allowed(viewer.actor, a, resource)), actions[0])
    if viewer.actor.role.is_staff:
        with unit(ctx, request, viewer) as w:
            decision = staff_request(w, viewer.actor, action, tenant, request.url.path)
        send_later(ctx, w.outgoing)
        if not decision.allowed:
            raise Denied(action.value, decision.why)
    authorize(viewer.actor, action, resource)
    assert tenant is not None
    return tenant


def send_later(ctx: Context, outgoing: list[Any]) -> None:
    """Send mail a route queued, without holding up its answer."""
    if not outgoing:
        return

    async def go() -> None:
        for msg in outgoing:
            await mail.send(ctx.settings, msg)

    spawn(go(), "mail")


async def check_csrf(request: Request, viewer: Viewer) -> FormData:
    """Read a posted form and check its CSRF token against the session's; the form
    (repeated fields by `getlist`)."""
    form = await request.form()
    sent = str(form.get("csrf", ""))
    if not hmac.compare_digest(sent.encode(), viewer.csrf.encode()):
        raise CsrfFailed
    return form


def render(request: Request, template: str, viewer: Viewer | None = None,
           status_code: int = 200, **context: Any) -> HTMLResponse:
    tenant = context.get("tenant")
    actions = allowed_on(viewer.actor, getattr(tenant, "id", None)) if viewer else frozenset()
    banner: list[Any] = []
    if viewer is not None and viewer.user.tenant_id and Action.VIEW_INCIDENTS in actions:
        # Every page of a tenant's people shows its unacknowledged incidents (P18).
        with request.app.state.ctx.reading() as r:
            slug = r.session.get_one(Tenant, viewer.user.tenant_id).slug
            banner = [(i, i.became_known_at + AUTHORITY_DEADLINE, slug)
                      for i in unacknowledged(r, viewer.user.tenant_id)]
    return templates.TemplateResponse(
        request, template,
        {"viewer": viewer, "actions": {a.name for a in actions}, "cookies": COOKIES,
         "incident_banner": banner, "time_left": time_left, **context},
        status_code=status_code,
    )
