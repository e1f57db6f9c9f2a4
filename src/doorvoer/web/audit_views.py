"""The tenant's audit log in the portal (P23), for its admins: the entries newest first,
filtered by actor kind, action and date, a page at a time; the export (JSON lines) and
the signed checkpoints as downloads; and the same check `doorvoer audit verify` makes.
docs/audit.md says how to check the downloads with a script of one's own."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from doorvoer.access.policy import Action
from doorvoer.audit import chain as chains
from doorvoer.audit import service as audit
from doorvoer.audit.events import Event
from doorvoer.audit.verify import verify
from doorvoer.reports.format import register
from doorvoer.web.deps import (
    CtxDep,
    ViewerDep,
    render,
    templates,
    tenant_for,
    unit,
    whole_number,
)

router = APIRouter(include_in_schema=False)
register(templates.env)

PER_PAGE = 50
ACTION_FILTER = re.compile(r"^[a-z0-9_:]{0,64}$")


def _day(text: str | None, what: str, errors: list[str]) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors.append(f"{what}: use a date like 2026-12-01")
        return None


@router.get("/t/{slug}/audit")
def audit_log(
    request: Request, slug: str, ctx: CtxDep, viewer: ViewerDep,
    kind: str | None = None, action: str | None = None,
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    page: str | None = None, check: str | None = None,
) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.VIEW_AUDIT)
    errors: list[str] = []
    if kind and kind not in chains.ACTOR_KINDS:
        errors.append(f"actor: pick one of {', '.join(chains.ACTOR_KINDS)}")
        kind = None
    if action and not ACTION_FILTER.fullmatch(action):
        errors.append("action: letters, digits, _ and : only, like sftp:login or "
                      "grant:request:approved")
        action = None
    first, last = _day(start, "from", errors), _day(end, "to", errors)
    number = whole_number(page, 1) or 1
    with unit(ctx, request, viewer, write=False) as w:
        found = audit.search(
            w, tenant.id, kind=kind or None, action=action or None,
            since=datetime.combine(first, time(), UTC) if first else None,
            until=datetime.combine(last + timedelta(days=1), time(), UTC) if last else None,
            offset=(number - 1) * PER_PAGE, limit=PER_PAGE)
        head = audit.head_of(w, tenant.id)
        notes = audit.checkpoints(w, tenant.id)
        outcome = verify(w, tenant.id) if check else None
    query = {k: v for k, v in {"kind": kind, "action": action, "from": start,
                               "to": end}.items() if v}
    pages = max(1, -(-found.total // PER_PAGE))

    def page_url(n: int) -> str:
        return f"/t/{tenant.slug}/audit?" + urlencode({**query, "page": n})

    return render(request, "tenant/audit.html", viewer=viewer, tenant=tenant, nav="audit",
                  rows=found.rows, total=found.total, page=number, pages=pages,
                  page_url=page_url, kinds=chains.ACTOR_KINDS, errors=errors,
                  filters={"kind": kind or "", "action": action or "", "from": start or "",
                           "to": end or ""},
                  head=head, latest=notes[-1] if notes else None, outcome=outcome,
                  verifier=ctx.signer.verifier)


@router.get("/t/{slug}/audit/export.jsonl")
def audit_export(request: Request, slug: str, ctx: CtxDep, viewer: ViewerDep) -> Response:
    """The whole chain as `doorvoer audit export` writes it, streamed."""
    tenant = tenant_for(ctx, request, viewer, slug, Action.VIEW_AUDIT)
    with unit(ctx, request, viewer) as w:
        audit.record(w, tenant.id, Event.AUDIT_EXPORTED, "portal")

    def lines() -> Iterator[bytes]:
        with ctx.reading() as w:
            for entry in audit.entries(w, tenant.id):
                yield (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")

    return StreamingResponse(lines(), media_type="application/jsonl", headers={
        "Content-Disposition": f'attachment; filename="audit-{tenant.slug}.jsonl"'})


@router.get("/t/{slug}/audit/checkpoints.txt")
def audit_checkpoints(request: Request, slug: str, ctx: CtxDep, viewer: ViewerDep
                      ) -> Response:
    """Every checkpoint signed of the chain, oldest first: signed notes, one after the
    other (each ends with its signature line)."""
    tenant = tenant_for(ctx, request, viewer, slug, Action.VIEW_AUDIT)
    with ctx.reading() as w:
        text = "".join(c.note for c in audit.checkpoints(w, tenant.id))
    return PlainTextResponse(text, headers={
        "Content-Disposition": f'attachment; filename="checkpoints-{tenant.slug}.txt"'})
