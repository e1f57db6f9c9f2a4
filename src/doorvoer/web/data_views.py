"""The tenant's "Your data" page (P20): which kinds of data are held, why, for how long
and in which formats, said before any download; and the download itself, one ZIP, for
tenant admins after a fresh second factor. Over the API with an admin's `export` token."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.responses import FileResponse, Response

from doorvoer.access.policy import Action
from doorvoer.privacy.export import export_file
from doorvoer.privacy.kinds import KINDS
from doorvoer.tenants.models import Tenant
from doorvoer.web.api import ActorDep, _allow
from doorvoer.web.deps import (
    CtxDep,
    ViewerDep,
    check_csrf,
    client_address,
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


@router.get("/t/{slug}/data")
def your_data(request: Request, slug: str, ctx: CtxDep, viewer: ViewerDep) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.EXPORT_DATA)
    return render(request, "tenant/data.html", viewer=viewer, tenant=tenant, nav="data",
                  kinds=KINDS, fresh=not needs_fresh_2fa(ctx, viewer))


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
