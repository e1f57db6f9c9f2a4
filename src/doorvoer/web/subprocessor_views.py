"""The sub-processor register in the portal (P17). A tenant sees each sub-processor in
force and announced, whether it is used for its data, objects to an announced one
(admins; the operator admins are alerted) and consents to one outside the EEA (admins,
after a fresh second factor). Staff see the register and the objections."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from doorvoer.access.policy import OPERATOR, Action, authorize, is_allowed
from doorvoer.errors import UserError
from doorvoer.privacy import subprocessors
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
    tenant_for,
    unit,
)

router = APIRouter(include_in_schema=False)


def _page(request: Request, ctx: CtxDep, viewer: Viewer, tenant: Tenant,
          status_code: int = 200, error: str | None = None) -> Response:
    with ctx.reading() as r:
        entries = subprocessors.register(r)
        consents = subprocessors.consents_of(r, tenant.id)
        objected = {o.subprocessor_id for o in subprocessors.objections(r, tenant.id)}
    rows = [(e, e.current is not None and subprocessors.may_use(e.current, consents))
            for e in entries]
    return render(request, "tenant/subprocessors.html", status_code=status_code,
                  viewer=viewer, tenant=tenant, nav="subprocessors", rows=rows,
                  consents=consents, objected=objected, error=error,
                  fresh=not needs_fresh_2fa(ctx, viewer),
                  done=request.query_params.get("done"))


@router.get("/t/{slug}/subprocessors")
def tenant_subprocessors(request: Request, slug: str, ctx: CtxDep,
                         viewer: ViewerDep) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.VIEW_SUBPROCESSORS)
    return _page(request, ctx, viewer, tenant)


async def _answer(request: Request, ctx: CtxDep, viewer: Viewer, tenant: Tenant,
                  fn: Callable[[Work], None], done: str) -> Response:
    try:
        await in_unit(ctx, request, viewer, fn)
    except UserError as exc:
        return _page(request, ctx, viewer, tenant, status_code=400, error=str(exc))
    return RedirectResponse(f"/t/{tenant.slug}/subprocessors?done={done}", 303)


@router.post("/t/{slug}/subprocessors/{key}/object")
async def tenant_object(request: Request, slug: str, key: str, ctx: CtxDep,
                        viewer: ViewerDep) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.ANSWER_SUBPROCESSORS)
    form = await check_csrf(request, viewer)

    def go(w: Work) -> None:
        subprocessors.object_to(w, w.session.get_one(Tenant, tenant.id), key,
                                str(form.get("reason", "")), viewer.user.email)

    return await _answer(request, ctx, viewer, tenant, go, "objected")


@router.post("/t/{slug}/subprocessors/{key}/consent")
async def tenant_consent(request: Request, slug: str, key: str, ctx: CtxDep,
                         viewer: ViewerDep) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.ANSWER_SUBPROCESSORS)
    require_fresh_2fa(ctx, viewer, f"/t/{tenant.slug}/subprocessors")
    form = await check_csrf(request, viewer)
    given = form.get("given", "yes") == "yes"

    def go(w: Work) -> None:
        subprocessors.consent(w, w.session.get_one(Tenant, tenant.id), key,
                              viewer.user.email, given)

    return await _answer(request, ctx, viewer, tenant, go,
                         "consented" if given else "withdrawn")


@router.get("/operator/subprocessors")
def operator_subprocessors(request: Request, ctx: CtxDep, viewer: ViewerDep) -> Response:
    authorize(viewer.actor, Action.VIEW_TENANT_LIST, OPERATOR)
    with unit(ctx, request, viewer, write=False) as w:
        entries = [(e, subprocessors.not_for(w, e.latest)) for e in subprocessors.register(w)]
        objections = []
        if is_allowed(viewer.actor, Action.MANAGE_TENANTS, OPERATOR):
            for o in subprocessors.objections(w):
                row = w.session.get_one(subprocessors.Subprocessor, o.subprocessor_id)
                objections.append((o, row, w.session.get_one(Tenant, o.tenant_id)))
    return render(request, "operator/subprocessors.html", viewer=viewer, entries=entries,
                  objections=objections)
