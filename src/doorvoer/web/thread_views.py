"""A tenant's support thread on the portal (P13): the tenant's people and support write
in it; support needs no grant here, and each of their visits is a staff request in the
tenant's audit log (`tenant_for`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from doorvoer.access.policy import Action
from doorvoer.errors import UserError
from doorvoer.reports.format import register
from doorvoer.support.thread import messages_of, post
from doorvoer.unit import Work
from doorvoer.web.deps import CtxDep, ViewerDep, check_csrf, in_unit, render, templates, tenant_for

router = APIRouter(include_in_schema=False)
register(templates.env)


@router.get("/t/{slug}/thread")
def thread(request: Request, slug: str, ctx: CtxDep, viewer: ViewerDep,
           error: str | None = None) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.SUPPORT_THREAD)
    with ctx.reading(actor=viewer.actor) as w:
        rows = messages_of(w, tenant.id)
    return render(request, "tenant/thread.html", viewer=viewer, tenant=tenant, nav="thread",
                  rows=rows, error=error)


@router.post("/t/{slug}/thread")
async def thread_post(request: Request, slug: str, ctx: CtxDep, viewer: ViewerDep) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.SUPPORT_THREAD)
    form = await check_csrf(request, viewer)

    def write(w: Work) -> None:
        post(w, tenant, viewer.user, str(form.get("body", "")))

    try:
        await in_unit(ctx, request, viewer, write)
    except UserError as exc:
        with ctx.reading(actor=viewer.actor) as w:
            rows = messages_of(w, tenant.id)
        return render(request, "tenant/thread.html", viewer=viewer, tenant=tenant,
                      nav="thread", rows=rows, error=str(exc), status_code=400)
    return RedirectResponse(f"/t/{tenant.slug}/thread#latest", 303)
