"""A tenant's pages: dashboard, processes, transfers report, settings (P4).

Every route asks the one policy through `tenant_for`; what a page shows beyond that
(file names, charts) follows the viewer's other allowed actions, also asked of the
policy. Times are UTC."""

from __future__ import annotations

import asyncio
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response

from doorvoer.access.errors import Denied
from doorvoer.access.policy import Action
from doorvoer.db import utcnow
from doorvoer.errors import UserError
from doorvoer.reports import charts
from doorvoer.reports.format import register
from doorvoer.reports.service import (
    GROUPS,
    Report,
    build_report,
    dashboard,
    hidden_processes,
    parse_filters,
    process_names,
    process_views,
    transfer_page,
)
from doorvoer.secrets.service import connection_views
from doorvoer.tenants.contacts import as_set, webhook_for_breach_notices
from doorvoer.tenants.models import Tenant
from doorvoer.tenants.service import change_contacts, set_usage_stats
from doorvoer.transfers.lifecycle import set_reporting
from doorvoer.transfers.models import State
from doorvoer.web.auth_views import home_for
from doorvoer.web.deps import (
    CtxDep,
    ViewerDep,
    check_csrf,
    render,
    require_fresh_2fa,
    templates,
    tenant_for,
    unit,
    whole_number,
)

router = APIRouter(include_in_schema=False)
register(templates.env)

REPORTING_OFF = "Reporting is switched off for this tenant: no per-transfer records are kept."
PER_PAGE = 50
FULL, HALF = 1020, 480  # chart widths that match the page's cards, so text is not scaled


@router.get("/t/home")
def tenant_home(ctx: CtxDep, viewer: ViewerDep) -> Response:
    """A tenant user's start page: its own tenant's dashboard."""
    if viewer.user.tenant_id is None:
        return RedirectResponse(home_for(viewer.user), 303)
    with ctx.reading() as w:
        tenant = w.session.get(Tenant, viewer.user.tenant_id)
    if tenant is None:
        raise Denied("no tenant")
    return RedirectResponse(f"/t/{tenant.slug}/dashboard", 303)


@router.get("/t/{slug}")
def tenant_root(request: Request, slug: str, ctx: CtxDep, viewer: ViewerDep) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.VIEW_DASHBOARD)
    return RedirectResponse(f"/t/{tenant.slug}/dashboard", 303)


@router.get("/t/{slug}/dashboard")
def tenant_dashboard(request: Request, slug: str, ctx: CtxDep, viewer: ViewerDep) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.VIEW_DASHBOARD)
    with unit(ctx, request, viewer, write=False) as w:
        board = dashboard(w, tenant)
        hidden = hidden_processes(w, tenant)
    can_reports = viewer.can(Action.VIEW_REPORTS, tenant.id)
    return render(
        request, "tenant/dashboard.html", viewer=viewer, tenant=tenant, nav="dashboard",
        board=board, groups=GROUPS, reporting_off=REPORTING_OFF, hidden=hidden,
        can_transfers=viewer.can(Action.VIEW_TRANSFERS, tenant.id), can_reports=can_reports,
        chart=charts.pair(charts.transfers_per_day, board.fortnight, FULL)
        if can_reports and tenant.report else None,
    )


@router.get("/t/{slug}/processes")
def tenant_processes(request: Request, slug: str, ctx: CtxDep, viewer: ViewerDep) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.VIEW_PROCESSES)
    with unit(ctx, request, viewer, write=False) as w:
        views = process_views(w, tenant)
        connections = connection_views(w, tenant)
    return render(
        request, "tenant/processes.html", viewer=viewer, tenant=tenant, nav="processes",
        views=views, reporting_off=REPORTING_OFF, connections=connections,
        can_transfers=viewer.can(Action.VIEW_TRANSFERS, tenant.id),
    )


@router.get("/t/{slug}/transfers")
def tenant_transfers(
    request: Request, slug: str, ctx: CtxDep, viewer: ViewerDep,
    state: str | None = None, process: str | None = None,
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    name: str | None = None, page: str | None = None,
) -> Response:
    """The transfers report: charts (VIEW_REPORTS) and the table of transfers with their
    file names (VIEW_TRANSFERS), under the same filters."""
    tenant = tenant_for(ctx, request, viewer, slug, Action.VIEW_TRANSFERS,
                        Action.VIEW_REPORTS)
    can_table = viewer.can(Action.VIEW_TRANSFERS, tenant.id)
    can_charts = viewer.can(Action.VIEW_REPORTS, tenant.id)
    filters, errors = parse_filters(utcnow().date(), start, end, state, process,
                                    name if can_table else None)
    number = whole_number(page, 1) or 1
    with unit(ctx, request, viewer, write=False) as w:
        report = build_report(w, tenant, filters) if can_charts and tenant.report else None
        rows = transfer_page(w, tenant, filters, number, PER_PAGE) if can_table else None
        names = process_names(w, tenant)
        hidden = hidden_processes(w, tenant)
    query = {k: v for k, v in {
        "state": filters.state.value if filters.state else None, "process": filters.process,
        "from": filters.start.isoformat(), "to": filters.end.isoformat(),
        "name": filters.filename}.items() if v}

    def page_url(n: int) -> str:
        return f"/t/{tenant.slug}/transfers?" + urlencode({**query, "page": n})

    return render(
        request, "tenant/transfers.html", viewer=viewer, tenant=tenant, nav="transfers",
        filters=filters, errors=errors, states=list(State), process_names=names,
        rows=rows, page_url=page_url, report=report, hidden=hidden,
        can_table=can_table, can_charts=can_charts, reporting_off=REPORTING_OFF,
        per_day=charts.pair(charts.transfers_per_day, report, FULL) if report else None,
        histogram=charts.pair(charts.residence_histogram, report, HALF) if report else None,
        volume=charts.pair(charts.bytes_per_day, report, HALF) if report else None,
        groups=GROUPS, bins=_bins(report) if report else [],
    )


def _bins(report: Report) -> list[tuple[str, int]]:
    counts = charts.histogram_bins(report.residences)
    return [(charts.bin_label(i), n) for i, n in enumerate(counts)]


@router.get("/t/{slug}/settings")
def tenant_settings(request: Request, slug: str, ctx: CtxDep, viewer: ViewerDep,
                    done: str | None = None, forgot: str | None = None) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.MANAGE_SETTINGS)
    with unit(ctx, request, viewer, write=False) as w:
        hidden = hidden_processes(w, tenant)
    notice = None
    if done == "on":
        notice = "Reporting is switched on: finished transfers are kept for reports."
    elif done == "contacts":
        notice = "Contact data saved."
    elif done in ("usage-in", "usage-out"):
        notice = ("You are counted in the anonymised usage statistics again." if
                  done == "usage-in" else "You are no longer counted in the usage statistics.")
    elif done == "off":
        count = whole_number(forgot, 0)
        notice = (f"Reporting is switched off. {count} record{'s' if count != 1 else ''} of "
                  "finished transfers deleted.")
    contacts = as_set(tenant)
    return render(request, "tenant/settings.html", viewer=viewer, tenant=tenant,
                  nav="settings", hidden=hidden, notice=notice, reporting_off=REPORTING_OFF,
                  contacts=contacts, webhook=webhook_for_breach_notices(tenant) or "",
                  error=request.query_params.get("error"))


@router.post("/t/{slug}/settings/contacts")
async def tenant_set_contacts(request: Request, slug: str, ctx: CtxDep,
                              viewer: ViewerDep) -> Response:
    """The tenant's own contact data, each for its purpose (P9): contact, invoicing,
    breach notices (an address and a webhook)."""
    tenant = tenant_for(ctx, request, viewer, slug, Action.MANAGE_SETTINGS)
    form = await check_csrf(request, viewer)
    fields = {key: str(form.get(key, "")) for key in ("contact", "invoicing",
                                                       "breach_notice", "webhook")}

    def apply() -> list[str]:
        with unit(ctx, request, viewer) as w:
            return change_contacts(w, w.session.get_one(Tenant, tenant.id), **fields)

    try:
        changed = await asyncio.to_thread(apply)
    except UserError as exc:
        return RedirectResponse(f"/t/{tenant.slug}/settings?error={quote(str(exc))}#contacts",
                                303)
    return RedirectResponse(f"/t/{tenant.slug}/settings?done=contacts&n={len(changed)}"
                            "#contacts", 303)


@router.post("/t/{slug}/settings/usage")
async def tenant_set_usage(request: Request, slug: str, ctx: CtxDep,
                           viewer: ViewerDep) -> Response:
    """Opt out of (or back into) the anonymised usage statistics (P21)."""
    tenant = tenant_for(ctx, request, viewer, slug, Action.MANAGE_SETTINGS)
    form = await check_csrf(request, viewer)
    on = str(form.get("usage", "")) == "on"

    def apply() -> None:
        with unit(ctx, request, viewer) as w:
            set_usage_stats(w, w.session.get_one(Tenant, tenant.id), on)

    await asyncio.to_thread(apply)
    return RedirectResponse(f"/t/{tenant.slug}/settings?done=usage-{'in' if on else 'out'}"
                            "#usage", 303)


@router.post("/t/{slug}/settings/reporting")
async def tenant_set_reporting(request: Request, slug: str, ctx: CtxDep,
                               viewer: ViewerDep) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.MANAGE_SETTINGS)
    form = await check_csrf(request, viewer)
    on = str(form.get("report", "")) == "on"
    if not on:  # deletes records for good: a sensitive action
        require_fresh_2fa(ctx, viewer, f"/t/{tenant.slug}/settings")

    def apply() -> int:
        with unit(ctx, request, viewer) as w:
            return set_reporting(w, w.session.get_one(Tenant, tenant.id), on)

    forgot = await asyncio.to_thread(apply)
    target = f"/t/{tenant.slug}/settings?done={'on' if on else 'off'}"
    return RedirectResponse(target + ("" if on else f"&forgot={forgot}"), 303)
