"""Inspection windows (P6), the support user's side: open a window on one process under
an `inspect` grant, see what it keeps, view a kept file's first rows, close it. The
tenant's side (its windows, Close) is on the GDPR tab (`gdpr_views.py`). Every request
here is a staff request, written to the tenant's audit log by `tenant_for`; every view
is an entry of its own (`support.inspection.begin_view`). A preview is never cached."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from doorvoer.access.policy import Action
from doorvoer.db import utcnow
from doorvoer.errors import UserError
from doorvoer.processes.service import list_processes
from doorvoer.support import inspection
from doorvoer.tenants.models import Tenant
from doorvoer.unit import Work
from doorvoer.web.deps import (
    CtxDep,
    Viewer,
    ViewerDep,
    check_csrf,
    in_unit,
    render,
    tenant_for,
    whole_number,
)

router = APIRouter(include_in_schema=False)
HOURS = [(1, "1 hour"), (4, "4 hours"), (8, "8 hours"), (24, "24 hours")]
DONE = {"opened": "Window open: failed transfers of this process are kept until it closes.",
        "closed": "Window closed: what it kept has been erased."}


def _page(request: Request, ctx: CtxDep, viewer: Viewer, tenant: Tenant,
          status_code: int = 200, **extra: Any) -> Response:
    with ctx.reading(actor=viewer.actor) as w:
        windows = inspection.windows_of(w, tenant.id, viewer.user.id)
        kept = {win.id: inspection.kept_of(w, win.id) for win in windows
                if win.closed_at is None}
        processes = [p.name for p in list_processes(w, tenant)]
    return render(request, "tenant/inspect.html", viewer=viewer, tenant=tenant,
                  nav="inspect", windows=windows, kept=kept, processes=processes,
                  hours=HOURS, now=utcnow(), status_code=status_code, **extra)


@router.get("/t/{slug}/inspect")
def inspect_home(request: Request, slug: str, ctx: CtxDep, viewer: ViewerDep,
                 done: str | None = None) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.INSPECT_FILES)
    return _page(request, ctx, viewer, tenant, notice=DONE.get(done or ""))


@router.post("/t/{slug}/inspect")
async def inspect_open(request: Request, slug: str, ctx: CtxDep, viewer: ViewerDep) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.INSPECT_FILES)
    form = await check_csrf(request, viewer)
    process, hours = str(form.get("process", "")), whole_number(form.get("hours"), 0)
    try:
        await in_unit(ctx, request, viewer, inspection.open_window, tenant, process, hours)
    except UserError as exc:
        return _page(request, ctx, viewer, tenant, status_code=400,
                     error=f"The window was not opened: {exc}.")
    return RedirectResponse(f"/t/{tenant.slug}/inspect?done=opened", 303)


async def close_window(request: Request, ctx: CtxDep, viewer: Viewer, tenant: Tenant,
                       window_id: str) -> str | None:
    """Close the window as the viewer (the tenant's admin on the GDPR tab, or support
    here): what it kept is erased now. Returns why it could not be closed, or None."""
    await check_csrf(request, viewer)

    def close(w: Work) -> None:
        inspection.close_window(w, tenant, window_id, f"closed by {viewer.user.email}")

    try:
        await in_unit(ctx, request, viewer, close)
    except UserError as exc:
        return str(exc)
    return None


@router.post("/t/{slug}/inspect/{window_id}/close")
async def inspect_close(request: Request, slug: str, window_id: str, ctx: CtxDep,
                        viewer: ViewerDep) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.INSPECT_FILES)
    if (why := await close_window(request, ctx, viewer, tenant, window_id)) is not None:
        return _page(request, ctx, viewer, tenant, status_code=400,
                     error=f"The window was not closed: {why}.")
    return RedirectResponse(f"/t/{tenant.slug}/inspect?done=closed", 303)


@router.get("/t/{slug}/inspect/{window_id}/{transfer_id}/{part}")
async def inspect_view(request: Request, slug: str, window_id: str, transfer_id: str,
                       part: str, ctx: CtxDep, viewer: ViewerDep) -> Response:
    """A kept file's first rows: written down first, then read from the vault, shown,
    and never stored (no-store)."""
    tenant = tenant_for(ctx, request, viewer, slug, Action.INSPECT_FILES)
    viewing, _ = await in_unit(ctx, request, viewer, inspection.begin_view, tenant,
                               window_id, transfer_id, part)
    shown = await asyncio.to_thread(
        inspection.preview, ctx.vault, ctx.engine, viewing,
        ctx.settings.transform_memory_mb, ctx.settings.transform_time_s)
    response = render(request, "tenant/inspect_view.html", viewer=viewer, tenant=tenant,
                      nav="inspect", viewing=viewing, shown=shown, window_id=window_id,
                      limit=inspection.PREVIEW_ROWS)
    response.headers["Cache-Control"] = "no-store"
    return response
