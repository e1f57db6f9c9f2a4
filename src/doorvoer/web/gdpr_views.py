"""The tenant's GDPR tab (P12): support access requests, answered only by the tenant's
admins (approving needs a fresh second factor), the grants open now and their history.
Every answer goes through `support.service` in the request's unit of work, with its
audit entry."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from doorvoer.access.policy import Action
from doorvoer.audit import service as audit
from doorvoer.errors import UserError
from doorvoer.reports.format import register
from doorvoer.support import inspection
from doorvoer.support import service as support
from doorvoer.support.instructions import file_instruction, instructions_of
from doorvoer.support.models import GrantState
from doorvoer.tenants.models import Tenant
from doorvoer.unit import Work
from doorvoer.web.deps import (
    CtxDep,
    Viewer,
    ViewerDep,
    check_csrf,
    in_unit,
    needs_fresh_2fa,
    render,
    require_fresh_2fa,
    templates,
    tenant_for,
    whole_number,
)
from doorvoer.web.inspect_views import close_window

router = APIRouter(include_in_schema=False)
register(templates.env)

HOURS = [(1, "1 hour"), (4, "4 hours"), (8, "8 hours"), (24, "1 day"), (72, "3 days"),
         (168, "7 days")]
DONE = {"approved": "Access approved. You can revoke it here at any moment.",
        "filed": "Instruction filed: support names it when they act on it.",
        "closed": "Inspection window closed: what it kept has been erased.",
        "refused": "Request refused. Support was told.",
        "revoked": "Access revoked: support's next request is denied."}


def _page(request: Request, ctx: CtxDep, viewer: Viewer, tenant: Tenant,
          status_code: int = 200, **extra: Any) -> Response:
    with ctx.reading(actor=viewer.actor) as w:
        grants = support.grants_of_tenant(w, tenant.id)
        filed = instructions_of(w, tenant.id)
        done_under = audit.under_instructions(w, tenant.id)
        windows = inspection.windows_of(w, tenant.id)
    states = {g.id: support.current_state(g) for g in grants}
    return render(
        request, "tenant/gdpr.html", viewer=viewer, tenant=tenant, nav="gdpr",
        pending=[g for g in grants if states[g.id] == GrantState.PENDING],
        active=[g for g in grants if states[g.id] == GrantState.ACTIVE],
        past=[g for g in grants if states[g.id] not in (GrantState.PENDING,
                                                         GrantState.ACTIVE)],
        states=states, scopes=support.SCOPE_LABELS, hours=HOURS, instructions=filed,
        done_under=done_under, windows=windows,
        can_file=viewer.can(Action.FILE_INSTRUCTIONS, tenant.id),
        can_manage=viewer.can(Action.MANAGE_GRANTS, tenant.id),
        fresh=not needs_fresh_2fa(ctx, viewer), has_2fa=viewer.user.totp_secret is not None,
        status_code=status_code, **extra)


@router.get("/t/{slug}/gdpr")
def gdpr_tab(request: Request, slug: str, ctx: CtxDep, viewer: ViewerDep,
             done: str | None = None) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.VIEW_GRANTS)
    return _page(request, ctx, viewer, tenant, notice=DONE.get(done or ""))


async def _answer(request: Request, ctx: CtxDep, viewer: Viewer, slug: str, grant_id: str,
                  verb: str) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.MANAGE_GRANTS)
    back = f"/t/{tenant.slug}/gdpr"
    if verb == "approve":
        require_fresh_2fa(ctx, viewer, back)
    form = await check_csrf(request, viewer)

    def act(w: Work) -> None:
        if verb == "approve":
            support.approve(w, viewer.user, tenant, grant_id,
                            [str(s) for s in form.getlist("scope")],
                            whole_number(form.get("hours"), 0))
        elif verb == "refuse":
            support.refuse(w, viewer.user, tenant, grant_id)
        else:
            support.revoke(w, viewer.user, tenant, grant_id)

    try:
        await in_unit(ctx, request, viewer, act)
    except UserError as exc:
        return _page(request, ctx, viewer, tenant, status_code=400, error=str(exc))
    return RedirectResponse(f"{back}?done={verb}d", 303)


@router.post("/t/{slug}/gdpr/instructions")
async def gdpr_file_instruction(request: Request, slug: str, ctx: CtxDep,
                                viewer: ViewerDep) -> Response:
    """The tenant asks for something to be done, in writing (P10)."""
    tenant = tenant_for(ctx, request, viewer, slug, Action.FILE_INSTRUCTIONS)
    form = await check_csrf(request, viewer)

    def file(w: Work) -> None:
        file_instruction(w, tenant, viewer.user.email, "portal",
                         str(form.get("reference", "")) or "portal",
                         str(form.get("text", "")))

    try:
        await in_unit(ctx, request, viewer, file)
    except UserError as exc:
        return _page(request, ctx, viewer, tenant, status_code=400, error=str(exc))
    return RedirectResponse(f"/t/{tenant.slug}/gdpr?done=filed#instructions", 303)


@router.post("/t/{slug}/gdpr/grants/{grant_id}/approve")
async def gdpr_approve(request: Request, slug: str, grant_id: str, ctx: CtxDep,
                       viewer: ViewerDep) -> Response:
    return await _answer(request, ctx, viewer, slug, grant_id, "approve")


@router.post("/t/{slug}/gdpr/grants/{grant_id}/refuse")
async def gdpr_refuse(request: Request, slug: str, grant_id: str, ctx: CtxDep,
                      viewer: ViewerDep) -> Response:
    return await _answer(request, ctx, viewer, slug, grant_id, "refuse")


@router.post("/t/{slug}/gdpr/grants/{grant_id}/revoke")
async def gdpr_revoke(request: Request, slug: str, grant_id: str, ctx: CtxDep,
                      viewer: ViewerDep) -> Response:
    return await _answer(request, ctx, viewer, slug, grant_id, "revoke")


@router.post("/t/{slug}/gdpr/windows/{window_id}/close")
async def gdpr_close_window(request: Request, slug: str, window_id: str, ctx: CtxDep,
                            viewer: ViewerDep) -> Response:
    """The tenant closes support's inspection window: what it kept is erased now."""
    tenant = tenant_for(ctx, request, viewer, slug, Action.MANAGE_GRANTS)
    if (why := await close_window(request, ctx, viewer, tenant, window_id)) is not None:
        return _page(request, ctx, viewer, tenant, status_code=400, error=why)
    return RedirectResponse(f"/t/{tenant.slug}/gdpr?done=closed#windows", 303)
