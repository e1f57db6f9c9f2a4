"""What routes depend on: the context, the viewer (who is logged in), the access check,
CSRF. Routes stay one line of signature: `viewer: ViewerDep`."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse

from doorvoer.access.policy import Action, Actor, Resource, allowed_actions, authorize
from doorvoer.accounts.models import User, WebSession
from doorvoer.accounts.people import actor_of, fresh_2fa, load_session
from doorvoer.context import Context
from doorvoer.db import transaction
from doorvoer.errors import Denied
from doorvoer.tenants.models import Tenant
from doorvoer.tenants.service import get_tenant
from doorvoer.web.cookies import COOKIES, SESSION

templates = Jinja2Templates(directory=Path(__file__).with_name("templates"))


class LoginRequired(Exception):
    """No live session: pages redirect to the login, the API answers 401."""


class SecondFactorRequired(Exception):
    """Password accepted, the code is still due."""


class CsrfFailed(Exception):
    pass


class TwoFactorSetupRequired(Exception):
    """A staff user without two-factor: nothing works until it is set up (/account/2fa)."""


class ReauthRequired(Exception):
    """A sensitive action needs a fresh second-factor check (/account/reauth)."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def get_ctx(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


CtxDep = Annotated[Context, Depends(get_ctx)]


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


def optional_viewer(request: Request, ctx: CtxDep) -> Viewer | None:
    token = request.cookies.get(SESSION.name)
    if not token:
        return None
    with transaction(ctx.sessions) as s:
        found = load_session(s, ctx.settings, token)
        if found is None:
            return None
        row, user = found
        return Viewer(user=user, row=row, actor=actor_of(user, row.two_factor))


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
    if viewer.actor.role.is_staff and viewer.user.totp_secret is None:
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


def tenant_for(ctx: Context, viewer: Viewer, slug: str, action: Action) -> Tenant:
    """The tenant a /t/{slug}/… route is about, after the access check. An unknown
    tenant and a forbidden one look the same: 403."""
    with ctx.sessions() as s:
        tenant = get_tenant(s, slug)
    authorize(viewer.actor, action, Resource(tenant.id if tenant else "\0unknown"))
    assert tenant is not None
    return tenant


async def check_csrf(request: Request, viewer: Viewer) -> dict[str, Any]:
    """Read a posted form and check its CSRF token against the session's."""
    form = dict(await request.form())
    sent = str(form.get("csrf", ""))
    if not hmac.compare_digest(sent.encode(), viewer.csrf.encode()):
        raise CsrfFailed
    return form


def render(request: Request, template: str, viewer: Viewer | None = None,
           status_code: int = 200, **context: Any) -> HTMLResponse:
    actions = allowed_actions(viewer.actor) if viewer else frozenset()
    return templates.TemplateResponse(
        request, template,
        {"viewer": viewer, "actions": {a.name for a in actions}, "cookies": COOKIES,
         **context},
        status_code=status_code,
    )
