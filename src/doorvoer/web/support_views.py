"""Support access, the staff side: a support user asks a tenant for access and follows
its answers (/support); operator admins see which grants exist, never the data
(/operator/grants). The tenant's side is `gdpr_views.py`."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from doorvoer.access.policy import OPERATOR, Action, authorize
from doorvoer.errors import UserError
from doorvoer.reports.format import register
from doorvoer.support import service as support
from doorvoer.tenants.service import get_tenant, list_tenants
from doorvoer.unit import Work
from doorvoer.web.deps import CtxDep, Viewer, ViewerDep, check_csrf, in_unit, render, templates

router = APIRouter(include_in_schema=False)
register(templates.env)


def _page(request: Request, ctx: CtxDep, viewer: Viewer, status_code: int = 200,
          **extra: Any) -> Response:
    with ctx.reading(actor=viewer.actor) as w:
        mine = support.grants_of_staff(w, viewer.user.id)
        tenants = list_tenants(w)
    return render(request, "support/index.html", viewer=viewer, grants=mine,
                  tenants=tenants, scopes=support.SCOPE_LABELS, state=support.current_state,
                  status_code=status_code, **extra)


@router.get("/support")
def support_home(request: Request, ctx: CtxDep, viewer: ViewerDep,
                 asked: str | None = None) -> Response:
    authorize(viewer.actor, Action.REQUEST_GRANTS, OPERATOR)
    notice = (f"Your request went to the admins of {asked}. Nothing is open until one of "
              "them approves.") if asked else None
    return _page(request, ctx, viewer, notice=notice, form={"scopes": ["reports"]})


@router.post("/support/requests")
async def support_ask(request: Request, ctx: CtxDep, viewer: ViewerDep) -> Response:
    authorize(viewer.actor, Action.REQUEST_GRANTS, OPERATOR)
    form = await check_csrf(request, viewer)
    slug = str(form.get("tenant", ""))
    scopes = [str(s) for s in form.getlist("scope")]
    reason, ticket = str(form.get("reason", "")), str(form.get("ticket", ""))

    def ask(w: Work) -> str:
        tenant = get_tenant(w, slug)
        if tenant is None:
            raise UserError("pick the tenant you need access to")
        support.request_grant(w, viewer.user, tenant, reason, ticket, scopes)
        return tenant.name

    try:
        name, _ = await in_unit(ctx, request, viewer, ask)
    except UserError as exc:
        return _page(request, ctx, viewer, status_code=400, error=str(exc),
                     form={"tenant": slug, "reason": reason, "ticket": ticket,
                           "scopes": scopes})
    return RedirectResponse(f"/support?asked={quote(name)}", 303)


@router.get("/operator/grants")
def operator_grants(request: Request, ctx: CtxDep, viewer: ViewerDep) -> Response:
    """Every grant there is, with its state: who, which tenant, which scopes, until
    when. Never the data it opened."""
    authorize(viewer.actor, Action.VIEW_ALL_GRANTS, OPERATOR)
    with ctx.reading(actor=viewer.actor) as w:
        rows = support.all_grants(w)
    return render(request, "operator/grants.html", viewer=viewer, rows=rows,
                  state=support.current_state)
