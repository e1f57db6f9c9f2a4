"""The record of processing activities (Art. 30(2)) and "Where your data goes" (P8) in
the portal: a tenant's admins see the record for their tenant and download it as JSON
or PDF; everyone who sees the processes sees what each shares with whom; operator
admins see and download the installation's record."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from starlette.responses import Response

from doorvoer.access.policy import OPERATOR, Action, authorize
from doorvoer.privacy import usage
from doorvoer.privacy.manifest import manifest
from doorvoer.privacy.record import as_pdf, record
from doorvoer.tenants.models import Tenant
from doorvoer.web.deps import CtxDep, ViewerDep, render, tenant_for, unit

router = APIRouter(include_in_schema=False)


def _download(doc: dict[str, object], name: str, fmt: str) -> Response:
    if fmt == "pdf":
        return Response(as_pdf(doc), media_type="application/pdf", headers={
            "Content-Disposition": f'attachment; filename="{name}.pdf"'})
    return Response(json.dumps(doc, indent=2, ensure_ascii=False),
                    media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{name}.json"'})


@router.get("/t/{slug}/sharing")
def tenant_sharing(request: Request, slug: str, ctx: CtxDep, viewer: ViewerDep) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.VIEW_PROCESSES)
    with ctx.reading() as r:
        rows = manifest(r, r.session.get_one(Tenant, tenant.id))
    return render(request, "tenant/sharing.html", viewer=viewer, tenant=tenant,
                  nav="sharing", rows=rows)


@router.get("/t/{slug}/record")
def tenant_record(request: Request, slug: str, ctx: CtxDep, viewer: ViewerDep) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.EXPORT_DATA)
    with ctx.reading() as r:
        doc = record(r, r.session.get_one(Tenant, tenant.id))
    return render(request, "record.html", viewer=viewer, tenant=tenant, nav="record",
                  doc=doc, base=f"/t/{tenant.slug}/record")


@router.get("/t/{slug}/record.{fmt}")
def tenant_record_file(request: Request, slug: str, fmt: str, ctx: CtxDep,
                       viewer: ViewerDep) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.EXPORT_DATA)
    if fmt not in ("json", "pdf"):
        return Response("json or pdf", status_code=404)
    with ctx.reading() as r:
        doc = record(r, r.session.get_one(Tenant, tenant.id))
    return _download(doc, f"record-of-processing-{tenant.slug}", fmt)


@router.get("/operator/record")
def operator_record(request: Request, ctx: CtxDep, viewer: ViewerDep) -> Response:
    authorize(viewer.actor, Action.MANAGE_TENANTS, OPERATOR)
    with unit(ctx, request, viewer, write=False) as w:
        doc = record(w)
    return render(request, "record.html", viewer=viewer, doc=doc, base="/operator/record")


@router.get("/operator/record.{fmt}")
def operator_record_file(request: Request, fmt: str, ctx: CtxDep,
                         viewer: ViewerDep) -> Response:
    authorize(viewer.actor, Action.MANAGE_TENANTS, OPERATOR)
    if fmt not in ("json", "pdf"):
        return Response("json or pdf", status_code=404)
    with unit(ctx, request, viewer, write=False) as w:
        doc = record(w)
    return _download(doc, "record-of-processing", fmt)


@router.get("/operator/usage")
def operator_usage(request: Request, ctx: CtxDep, viewer: ViewerDep) -> Response:
    """The released usage statistics (P21) as a chart: noisy counts only."""
    authorize(viewer.actor, Action.MANAGE_TENANTS, OPERATOR)
    with unit(ctx, request, viewer, write=False) as w:
        figures = usage.figures(w)
    return render(request, "operator/usage.html", viewer=viewer, f=figures)
