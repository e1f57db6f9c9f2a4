"""The tenant's "Your data" page (P20): which kinds of data are held, why, for how long
and in which formats, said before any download; and the download itself, one ZIP, for
tenant admins after a fresh second factor. Over the API with an admin's `export` token.
On the same page the tenant's admins ask for its erasure (P19: a fresh second factor,
the tenant's name typed) and cancel it during the cooling-off period."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.responses import FileResponse, RedirectResponse, Response

from doorvoer.access.policy import Action
from doorvoer.errors import UserError
from doorvoer.privacy import erasure
from doorvoer.privacy.export import export_file
from doorvoer.privacy.kinds import KINDS
from doorvoer.tenants.models import Tenant
from doorvoer.unit import Work
from doorvoer.web.api import ActorDep, _allow
from doorvoer.web.deps import (
    CtxDep,
    Viewer,
    ViewerDep,
    check_csrf,
    client_address,
    in_unit,
    needs_fresh_2fa,
    render,
    require_fresh_2fa,
    tenant_for,
)

router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api/v1")


def _send(path: Path, slug: str) -> FileResponse:
    return FileResponse(path, media_type="application/zip",
                        filename=f"doorvoer-export-{slug}.zip",
                        background=BackgroundTask(path.unlink, missing_ok=True))


def _page(request: Request, ctx: CtxDep, viewer: Viewer, tenant: Tenant,
          status_code: int = 200, **extra: Any) -> Response:
    with ctx.reading() as r:
        pending = erasure.pending(r, tenant)
    return render(request, "tenant/data.html", status_code=status_code, viewer=viewer,
                  tenant=tenant, nav="data", kinds=KINDS, pending=pending,
                  fresh=not needs_fresh_2fa(ctx, viewer),
                  cooling_off=ctx.settings.erasure_cooling_off_days,
                  done=request.query_params.get("done"), **extra)


@router.get("/t/{slug}/data")
def your_data(request: Request, slug: str, ctx: CtxDep, viewer: ViewerDep) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.EXPORT_DATA)
    return _page(request, ctx, viewer, tenant)


@router.post("/t/{slug}/data/erase")
async def your_data_erase(request: Request, slug: str, ctx: CtxDep,
                          viewer: ViewerDep) -> Response:
    """Ask for the tenant's erasure: it runs after the cooling-off period."""
    tenant = tenant_for(ctx, request, viewer, slug, Action.ERASE_DATA)
    require_fresh_2fa(ctx, viewer, f"/t/{tenant.slug}/data#erase")
    form = await check_csrf(request, viewer)
    typed = str(form.get("confirm", ""))

    def ask(w: Work) -> None:
        erasure.request(w, w.session.get_one(Tenant, tenant.id), typed, viewer.user.id)

    try:
        await in_unit(ctx, request, viewer, ask)
    except UserError as exc:
        return _page(request, ctx, viewer, tenant, status_code=400, error=str(exc))
    return RedirectResponse(f"/t/{tenant.slug}/data?done=scheduled#erase", 303)


@router.post("/t/{slug}/data/erase/cancel")
async def your_data_erase_cancel(request: Request, slug: str, ctx: CtxDep,
                                 viewer: ViewerDep) -> Response:
    """Take the request back while the cooling-off period runs."""
    tenant = tenant_for(ctx, request, viewer, slug, Action.ERASE_DATA)
    await check_csrf(request, viewer)

    def cancel(w: Work) -> None:
        erasure.cancel(w, w.session.get_one(Tenant, tenant.id))

    try:
        await in_unit(ctx, request, viewer, cancel)
    except UserError as exc:
        return _page(request, ctx, viewer, tenant, status_code=400, error=str(exc))
    return RedirectResponse(f"/t/{tenant.slug}/data?done=cancelled#erase", 303)


@router.post("/t/{slug}/data/export")
async def your_data_export(request: Request, slug: str, ctx: CtxDep,
                           viewer: ViewerDep) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.EXPORT_DATA)
    require_fresh_2fa(ctx, viewer, f"/t/{tenant.slug}/data")
    await check_csrf(request, viewer)
    path = await asyncio.to_thread(export_file, ctx, tenant.id, viewer.actor,
                                   client_address(request), "portal")
    return _send(path, tenant.slug)


@api_router.get("/export", tags=["privacy"], operation_id="exportTenant",
                summary="Everything held about the tenant, as one ZIP",
                responses={200: {"description": "The ZIP (README.txt says what is in it)",
                                 "content": {"application/zip": {"schema": {
                                     "type": "string", "format": "binary"}}}}})
async def api_export(request: Request, ctx: CtxDep, actor: ActorDep) -> Any:
    """The same ZIP as the portal's: data/<kind>.json and .csv with their JSON Schemas,
    the audit chain and its checkpoints; never a secret."""
    tenant_id = _allow(actor, Action.EXPORT_DATA)
    path = await asyncio.to_thread(export_file, ctx, tenant_id, actor,
                                   client_address(request), "api")
    with ctx.reading() as w:
        slug = w.session.get_one(Tenant, tenant_id).slug
    return _send(path, slug)
