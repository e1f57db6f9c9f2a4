"""Incidents in the portal (P18). Operator staff record one (the Art. 33(3) fields, the
affected tenants) and its updates on /operator/incidents, and download the register;
each affected tenant sees a banner on every page until an admin acknowledges, and the
incidents page with every field and the clock of its own 72 hours."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from doorvoer.access.policy import OPERATOR, Action, authorize
from doorvoer.background import spawn
from doorvoer.errors import UserError
from doorvoer.privacy import incidents
from doorvoer.privacy.notices import time_left
from doorvoer.tenants.service import list_tenants
from doorvoer.unit import Work
from doorvoer.web.deps import (
    CtxDep,
    Viewer,
    ViewerDep,
    check_csrf,
    in_unit,
    render,
    tenant_for,
    unit,
)

router = APIRouter(include_in_schema=False)
FIELDS = ("became_known_at", "summary", "data_categories", "approximate_subjects",
          "likely_consequences", "measures_taken", "measures_proposed", "contact")


def _send_now(ctx: CtxDep) -> None:
    """Tell the tenants at once, without holding up the answer."""
    async def go() -> None:
        await incidents.send_pending(ctx)

    spawn(go(), "incident notices")


# ---------------------------------------------------------------- the tenant's side


@router.get("/t/{slug}/incidents")
def tenant_incidents(request: Request, slug: str, ctx: CtxDep, viewer: ViewerDep) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.VIEW_INCIDENTS)
    with ctx.reading() as r:
        told = incidents.of_tenant(r, tenant.id)
    return render(request, "tenant/incidents.html", viewer=viewer, tenant=tenant,
                  nav="incidents", told=told, time_left=time_left,
                  done=request.query_params.get("done"))


@router.post("/t/{slug}/incidents/{incident_id}/acknowledge")
async def tenant_acknowledge(request: Request, slug: str, incident_id: str, ctx: CtxDep,
                             viewer: ViewerDep) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.ACK_INCIDENTS)
    await check_csrf(request, viewer)

    def ack(w: Work) -> None:
        incidents.acknowledge(w, tenant, incident_id, viewer.user.email)

    await in_unit(ctx, request, viewer, ack)
    return RedirectResponse(f"/t/{tenant.slug}/incidents?done=acknowledged", 303)


# ---------------------------------------------------------------- the operator's side


def _page(request: Request, ctx: CtxDep, viewer: Viewer, status_code: int = 200,
          **extra: Any) -> Response:
    with unit(ctx, request, viewer, write=False) as w:
        rows = incidents.register(w)
        tenants = [(t.slug, t.name) for t in list_tenants(w)]
    return render(request, "operator/incidents.html", viewer=viewer, rows=rows,
                  tenants=tenants, status_code=status_code, form=extra.pop("form", {}),
                  **extra)


@router.get("/operator/incidents")
def operator_incidents(request: Request, ctx: CtxDep, viewer: ViewerDep) -> Response:
    authorize(viewer.actor, Action.MANAGE_INCIDENTS, OPERATOR)
    done = request.query_params.get("done")
    return _page(request, ctx, viewer, notice={"recorded": "Incident recorded; the "
                 "affected tenants are being told now.", "updated": "Update recorded and "
                 "sent."}.get(done or ""))


@router.get("/operator/incidents.json")
def operator_register(request: Request, ctx: CtxDep, viewer: ViewerDep) -> Response:
    """The register, for export."""
    authorize(viewer.actor, Action.MANAGE_INCIDENTS, OPERATOR)
    with unit(ctx, request, viewer, write=False) as w:
        rows = incidents.register(w)
    return Response(json.dumps(rows, indent=2, ensure_ascii=False), media_type=
                    "application/json", headers={"Content-Disposition":
                                                 'attachment; filename="incidents.json"'})


@router.post("/operator/incidents")
async def operator_record(request: Request, ctx: CtxDep, viewer: ViewerDep) -> Response:
    authorize(viewer.actor, Action.MANAGE_INCIDENTS, OPERATOR)
    form = await check_csrf(request, viewer)
    raw = {k: str(form.get(k, "")) for k in FIELDS}
    picked = [str(v) for v in form.getlist("tenants")]
    data: dict[str, Any] = {
        **raw, "tenants": "all" if "all" in picked else picked,
        "data_categories": [c.strip() for c in raw["data_categories"].splitlines()
                            if c.strip()],
        "approximate_subjects": raw["approximate_subjects"].strip() or "0"}

    def record(w: Work) -> None:
        try:
            spec = incidents.IncidentSpec.model_validate(data)
        except ValidationError as exc:  # name the first field that is not right
            first = exc.errors()[0]
            raise UserError(f"{first['loc'][0]}: "
                            f"{str(first['msg']).removeprefix('Value error, ')}") from None
        incidents.record(w, spec, viewer.user.email)

    try:
        await in_unit(ctx, request, viewer, record)
    except UserError as exc:
        return _page(request, ctx, viewer, status_code=400, error=str(exc),
                     form={**raw, "tenants": picked})
    _send_now(ctx)
    return RedirectResponse("/operator/incidents?done=recorded", 303)


@router.post("/operator/incidents/{incident_id}/update")
async def operator_update(request: Request, incident_id: str, ctx: CtxDep,
                          viewer: ViewerDep) -> Response:
    authorize(viewer.actor, Action.MANAGE_INCIDENTS, OPERATOR)
    form = await check_csrf(request, viewer)
    text = str(form.get("text", ""))

    def add(w: Work) -> None:
        incidents.add_update(w, incident_id, text, viewer.user.email)

    try:
        await in_unit(ctx, request, viewer, add)
    except UserError as exc:
        return _page(request, ctx, viewer, status_code=400, error=str(exc))
    _send_now(ctx)
    return RedirectResponse("/operator/incidents?done=updated", 303)
