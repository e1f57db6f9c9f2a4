"""A tenant admin's API tokens page: make a token (shown once), see them all, revoke."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from doorvoer.access.policy import Action
from doorvoer.accounts.machines import (
    DEFAULT_DAYS,
    MAX_DAYS,
    SCOPE_LABELS,
    SCOPES,
    create_token,
    list_tokens,
    revoke_token,
    scope_names,
    status_of,
)
from doorvoer.accounts.models import ApiToken
from doorvoer.accounts.people import emails_of
from doorvoer.db import utcnow
from doorvoer.errors import UserError
from doorvoer.tenants.models import Tenant
from doorvoer.web.deps import (
    CtxDep,
    Viewer,
    ViewerDep,
    check_csrf,
    needs_fresh_2fa,
    render,
    require_fresh_2fa,
    tenant_for,
    unit,
    whole_number,
)

router = APIRouter(include_in_schema=False)


def _page(request: Request, ctx: CtxDep, viewer: Viewer, tenant: Tenant,
          status_code: int = 200, **extra: Any) -> Response:
    now = utcnow()
    with unit(ctx, request, viewer, write=False) as w:
        rows = list_tokens(w, tenant.id)
        makers = emails_of(w, {r.created_by for r in rows if r.created_by})
    tokens = [_row(r, makers, now) for r in rows]
    form = {"name": "", "scopes": list(SCOPES), "days": DEFAULT_DAYS, **extra.pop("form", {})}
    return render(request, "tokens/list.html", viewer=viewer, tenant=tenant, nav="tokens",
                  tokens=tokens, scopes=SCOPE_LABELS, max_days=MAX_DAYS, form=form,
                  fresh=not needs_fresh_2fa(ctx, viewer), status_code=status_code, **extra)


def _row(r: ApiToken, makers: dict[str, str], now: datetime) -> dict[str, Any]:
    return {"id": r.id, "name": r.name, "scopes": scope_names(r), "created_at": r.created_at,
            "created_by": makers.get(r.created_by or "", ""), "expires_at": r.expires_at,
            "last_used_at": r.last_used_at, "revoked_at": r.revoked_at,
            "status": status_of(r, now)}


@router.get("/t/{slug}/tokens")
def tokens_page(request: Request, ctx: CtxDep, viewer: ViewerDep, slug: str) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.MANAGE_TOKENS)
    revoked = request.query_params.get("revoked") == "1"
    return _page(request, ctx, viewer, tenant, revoked=revoked)


@router.post("/t/{slug}/tokens")
async def create(request: Request, ctx: CtxDep, viewer: ViewerDep, slug: str) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.MANAGE_TOKENS)
    form = await check_csrf(request, viewer)
    require_fresh_2fa(ctx, viewer, f"/t/{slug}/tokens")  # a new credential: like a password
    name = str(form.get("name", ""))
    scopes = [str(v) for v in form.getlist("scope")]
    raw_days = str(form.get("days", "")).strip()
    entered = {"name": name, "scopes": scopes, "days": raw_days}
    try:
        days = whole_number(raw_days, -1, MAX_DAYS * 10)
        if days < 0:
            raise UserError(f"the expiry is a number of days, 1 to {MAX_DAYS}")
        with unit(ctx, request, viewer) as w:
            made = create_token(w, tenant.id, viewer.user.id, name, scopes, days)
            secret, made_name = made.secret, made.row.name
    except UserError as exc:
        return _page(request, ctx, viewer, tenant, status_code=400, error=str(exc),
                     form=entered)
    # The secret is in this one answer only (never in a URL, never cached: no-store).
    return _page(request, ctx, viewer, tenant, new_secret=secret, new_name=made_name)


@router.post("/t/{slug}/tokens/{token_id}/revoke")
async def revoke(request: Request, ctx: CtxDep, viewer: ViewerDep, slug: str,
                 token_id: str) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.MANAGE_TOKENS)
    await check_csrf(request, viewer)
    with unit(ctx, request, viewer) as w:
        found = revoke_token(w, tenant.id, token_id) is not None
    if not found:
        return render(request, "error.html", viewer=viewer, title="No such token",
                      status_code=404, message="That token does not exist (any more).")
    return RedirectResponse(f"/t/{slug}/tokens?revoked=1", 303)
