"""The operator's pages: tenants (names and counts only) and staff users.

No page here shows a tenant's data: no transfers, file names or process specs. That needs
a grant of the tenant (P12, a later issue); until then staff see who and how much, never
what (P11)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from doorvoer.access.policy import OPERATOR, Action, Role, authorize, is_allowed
from doorvoer.accounts.people import create_user, staff_users
from doorvoer.errors import UserError
from doorvoer.privacy import erasure
from doorvoer.reports.format import register
from doorvoer.reports.service import tenant_counts
from doorvoer.tenants.service import CONTRACT_STATES, create_tenant, get_tenant
from doorvoer.web.deps import (
    CtxDep,
    Viewer,
    ViewerDep,
    check_csrf,
    render,
    send_later,
    templates,
    unit,
)

router = APIRouter(include_in_schema=False)
register(templates.env)

STAFF_ROLES = [Role.SUPPORT, Role.SYSADMIN, Role.OPERATOR_ADMIN]  # least power first


def _tenants_page(request: Request, ctx: CtxDep, viewer: Viewer, status_code: int = 200,
                  **extra: Any) -> Response:
    with unit(ctx, request, viewer, write=False) as w:
        rows = tenant_counts(w)
        erasures = {e.tenant_id: e for e in erasure.scheduled(w)}
        # Only operator admins see the certificates (they hold no tenant's values).
        stones = erasure.tombstones(w) if is_allowed(viewer.actor, Action.MANAGE_TENANTS,
                                                     OPERATOR) else []
    return render(request, "operator/tenants.html", viewer=viewer, rows=rows,
                  erasures=erasures, tombstones=stones,
                  contract_states=CONTRACT_STATES, status_code=status_code, **extra)


@router.get("/operator")
def operator_home(viewer: ViewerDep) -> Response:
    authorize(viewer.actor, Action.VIEW_TENANT_LIST, OPERATOR)
    return RedirectResponse("/operator/tenants", 303)


@router.get("/operator/tenants")
def operator_tenants(request: Request, ctx: CtxDep, viewer: ViewerDep,
                     created: str | None = None, changed: str | None = None) -> Response:
    authorize(viewer.actor, Action.VIEW_TENANT_LIST, OPERATOR)
    notice = None
    if created:
        notice = f"Tenant {created} created."
    elif changed:
        notice = f"Contract status of {changed} changed."
    return _tenants_page(request, ctx, viewer, notice=notice, form={})


@router.post("/operator/tenants")
async def operator_create_tenant(request: Request, ctx: CtxDep, viewer: ViewerDep) -> Response:
    authorize(viewer.actor, Action.MANAGE_TENANTS, OPERATOR)
    form = await check_csrf(request, viewer)
    slug = str(form.get("slug", "")).strip().lower()
    name = str(form.get("name", "")).strip()
    email = str(form.get("contact_email", "")).strip() or None

    def create() -> None:
        if not name:
            raise UserError("give the tenant a name")
        with unit(ctx, request, viewer) as w:
            create_tenant(w, slug, name, email)

    try:
        await asyncio.to_thread(create)
    except UserError as exc:
        return _tenants_page(request, ctx, viewer, status_code=400, error=str(exc),
                             form={"slug": slug, "name": name, "contact_email": email or ""})
    return RedirectResponse(f"/operator/tenants?created={slug}", 303)


@router.post("/operator/tenants/{slug}/contract")
async def operator_set_contract(request: Request, slug: str, ctx: CtxDep,
                                viewer: ViewerDep) -> Response:
    authorize(viewer.actor, Action.MANAGE_TENANTS, OPERATOR)
    form = await check_csrf(request, viewer)

    def change() -> list[Any]:
        """The contract's end schedules the tenant's erasure (P19); active again stops it."""
        with unit(ctx, request, viewer) as w:
            tenant = get_tenant(w, slug)
            if tenant is None:
                raise UserError(f"no tenant {slug!r}")
            erasure.set_contract(w, tenant, str(form.get("contract", "")))
        return w.outgoing

    try:
        send_later(ctx, await asyncio.to_thread(change))
    except UserError as exc:
        return _tenants_page(request, ctx, viewer, status_code=400, error=str(exc), form={})
    return RedirectResponse(f"/operator/tenants?changed={slug}", 303)


def _staff_page(request: Request, ctx: CtxDep, viewer: Viewer, status_code: int = 200,
                **extra: Any) -> Response:
    with unit(ctx, request, viewer, write=False) as w:
        people = staff_users(w)
    return render(request, "operator/staff.html", viewer=viewer, people=people,
                  roles=STAFF_ROLES, status_code=status_code, **extra)


@router.get("/operator/staff")
def operator_staff(request: Request, ctx: CtxDep, viewer: ViewerDep,
                   created: str | None = None) -> Response:
    authorize(viewer.actor, Action.VIEW_STAFF, OPERATOR)
    notice = (f"{created} can now log in with the password you chose, and must set up "
              "two-factor authentication before anything else.") if created else None
    return _staff_page(request, ctx, viewer, notice=notice, form={})


@router.post("/operator/staff")
async def operator_create_staff(request: Request, ctx: CtxDep, viewer: ViewerDep) -> Response:
    authorize(viewer.actor, Action.MANAGE_STAFF, OPERATOR)
    form = await check_csrf(request, viewer)
    email = str(form.get("email", "")).strip()
    name = str(form.get("name", "")).strip()
    role_value = str(form.get("role", ""))
    password = str(form.get("password", ""))

    def create() -> str:
        if role_value not in {r.value for r in STAFF_ROLES}:
            raise UserError("pick a staff role: operator admin, support or sysadmin")
        with unit(ctx, request, viewer) as w:  # hashing the password takes a moment
            return create_user(w, email, name, Role(role_value), None, password).email

    try:
        address = await asyncio.to_thread(create)
    except UserError as exc:
        return _staff_page(request, ctx, viewer, status_code=400, error=str(exc),
                           form={"email": email, "name": name, "role": role_value})
    return RedirectResponse(f"/operator/staff?created={quote(address)}", 303)
