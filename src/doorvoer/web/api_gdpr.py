"""The API's audit log and support access (P12, P23), for a tenant's own tools: the
chain's entries exactly as the export writes them, its checkpoints and its check; the
support access requests, refused, revoked or approved (with a fresh two-factor code of
the admin who made the token) like on the GDPR tab."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BeforeValidator

from doorvoer import mail
from doorvoer.access.policy import Action, Actor
from doorvoer.accounts.models import ApiToken, User
from doorvoer.audit import chain as chains
from doorvoer.audit import service as audit
from doorvoer.audit.schemas import CheckpointOut, EntryOut, VerifyOut
from doorvoer.audit.verify import verify
from doorvoer.errors import NotFound, UserError
from doorvoer.support import service as support
from doorvoer.support.schemas import ApproveIn, GrantOut
from doorvoer.tenants.models import Tenant
from doorvoer.unit import Work
from doorvoer.web.api import AUTH_ERRORS, ID_PATTERN, ActorDep, _allow, _problem, parse_since
from doorvoer.web.deps import CtxDep, client_address

router = APIRouter(prefix="/api/v1", responses=AUTH_ERRORS)
GrantId = Annotated[str, Path(json_schema_extra={"pattern": ID_PATTERN})]


@router.get("/audit/entries", response_model=list[EntryOut], tags=["audit"],
            operation_id="listAuditEntries", summary="Read the audit log")
def audit_entries(
    ctx: CtxDep, actor: ActorDep,
    after: Annotated[int, Query(ge=0, le=2**63 - 1, description=(
        "Only entries after this seq (oldest first): page with the last seq seen"))] = 0,
    kind: Annotated[str | None, Query(description="Only this actor kind",
                                      pattern="^(person|account|staff|system)$")] = None,
    action: Annotated[str | None, Query(description="Only actions that start with this",
                                        pattern="^[a-z0-9_:]{1,64}$")] = None,
    since: Annotated[datetime | None, BeforeValidator(parse_since), Query(
        description="Only entries at or after this time (RFC 3339)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many")] = 100,
) -> list[dict[str, Any]]:
    """The tenant's chain, oldest first, exactly as `doorvoer audit export` writes it:
    recompute each `hash` to check it (docs/audit.md)."""
    tenant_id = _allow(actor, Action.VIEW_AUDIT)
    with ctx.reading(actor=actor) as w:
        return audit.after(w, tenant_id, after, kind=kind, action=action, since=since,
                           limit=limit)


@router.get("/audit/checkpoints", response_model=list[CheckpointOut], tags=["audit"],
            operation_id="listAuditCheckpoints", summary="Signed checkpoints of the log")
def audit_checkpoints(ctx: CtxDep, actor: ActorDep) -> list[CheckpointOut]:
    """Every checkpoint the node signed of the tenant's chain, oldest first: C2SP signed
    notes over the head's seq and hash, with the node's key."""
    tenant_id = _allow(actor, Action.VIEW_AUDIT)
    with ctx.reading(actor=actor) as w:
        return [CheckpointOut(seq=c.seq, hash=c.hash, signed_at=chains.rfc3339(c.signed_at),
                              note=c.note) for c in audit.checkpoints(w, tenant_id)]


@router.get("/audit/verify", response_model=VerifyOut, tags=["audit"],
            operation_id="verifyAudit", summary="Check the audit log")
def audit_verify(ctx: CtxDep, actor: ActorDep) -> VerifyOut:
    """What `doorvoer audit verify` says: the chain recomputed and every checkpoint
    checked; on a problem, the first bad seq and what is wrong."""
    tenant_id = _allow(actor, Action.VIEW_AUDIT)
    with ctx.reading(actor=actor) as w:
        outcome = verify(w, tenant_id)
    return VerifyOut(ok=outcome.ok, entries=outcome.entries, head_seq=outcome.head.seq,
                     head_hash=outcome.head.hash, checked=outcome.checked,
                     first_bad_seq=outcome.problem.seq if outcome.problem else None,
                     problem=outcome.problem.reason if outcome.problem else None,
                     verifier_key=str(ctx.signer.verifier))


# ---------------------------------------------------------------- support access


_FIRST = {"grant_id": "$response.body#/0/id"}


@router.get("/grants", response_model=list[GrantOut], tags=["support access"],
            operation_id="listGrants", summary="Support access requests and grants",
            responses={200: {"description": "The requests, newest first", "links": {
                "ApproveGrant": {"operationId": "approveGrant", "parameters": _FIRST},
                "RefuseGrant": {"operationId": "refuseGrant", "parameters": _FIRST},
                "RevokeGrant": {"operationId": "revokeGrant", "parameters": _FIRST}}}})
def list_grants(ctx: CtxDep, actor: ActorDep) -> list[GrantOut]:
    """Every request support made of the tenant, newest first, with its state now."""
    tenant_id = _allow(actor, Action.VIEW_GRANTS)
    with ctx.reading(actor=actor) as w:
        return [GrantOut.of(g, support.current_state(g))
                for g in support.grants_of_tenant(w, tenant_id)]


def _maker(w: Work, actor: Actor) -> User:
    """The admin who made the token: answers are theirs."""
    token = w.session.get(ApiToken, actor.ref or "")
    user = w.session.get(User, token.created_by) if token and token.created_by else None
    if user is None:
        raise HTTPException(403, "only a token made by a tenant admin answers for the tenant")
    return user


async def _answer(ctx: Any, request: Request, actor: Actor, verb: str, grant_id: str,
                  body: ApproveIn | None = None) -> Any:
    tenant_id = _allow(actor, Action.MANAGE_GRANTS)

    def run() -> tuple[GrantOut, list[Any]]:
        with ctx.unit(actor=actor, source=client_address(request)) as w:
            admin = _maker(w, actor)
            tenant = w.session.get_one(Tenant, tenant_id)
            if verb == "approve":
                assert body is not None
                grant = support.approve_with_code(w, admin, tenant, grant_id, body.code,
                                                  body.scopes, body.hours)
            elif verb == "refuse":
                grant = support.refuse(w, admin, tenant, grant_id)
            else:
                grant = support.revoke(w, admin, tenant, grant_id)
            out = GrantOut.of(grant, support.current_state(grant))
        return out, w.outgoing

    try:
        out, outgoing = await asyncio.to_thread(run)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except support.CodeRefused as exc:
        raise HTTPException(403, str(exc)) from None
    except UserError as exc:
        raise HTTPException(409, str(exc)) from None
    for msg in outgoing:
        await mail.send(ctx.settings, msg)
    return JSONResponse(out.model_dump(mode="json"))


ANSWER_ERRORS: dict[int | str, dict[str, Any]] = {
    404: _problem("No such request of this tenant"),
    409: _problem("The request is not in a state that allows this"),
}


@router.post("/grants/{grant_id}/approve", response_model=GrantOut, tags=["support access"],
             operation_id="approveGrant", summary="Approve a support access request",
             responses={**ANSWER_ERRORS,
                        400: _problem("The body is not JSON"),
                        403: _problem("No fresh two-factor code, or not an admin's token")})
async def approve_grant(request: Request, ctx: CtxDep, actor: ActorDep, grant_id: GrantId,
                        body: ApproveIn) -> Any:
    """Open access for the scopes chosen (of those asked for), for 1 to 168 hours. Needs
    a current two-factor code of the tenant admin who made the token."""
    return await _answer(ctx, request, actor, "approve", grant_id, body)


@router.post("/grants/{grant_id}/refuse", response_model=GrantOut, tags=["support access"],
             operation_id="refuseGrant", summary="Refuse a support access request",
             responses=ANSWER_ERRORS)
async def refuse_grant(request: Request, ctx: CtxDep, actor: ActorDep,
                       grant_id: GrantId) -> Any:
    return await _answer(ctx, request, actor, "refuse", grant_id)


@router.post("/grants/{grant_id}/revoke", response_model=GrantOut, tags=["support access"],
             operation_id="revokeGrant", summary="Revoke support access",
             responses=ANSWER_ERRORS)
async def revoke_grant(request: Request, ctx: CtxDep, actor: ActorDep,
                       grant_id: GrantId) -> Any:
    """End the access now: support's next request is denied."""
    return await _answer(ctx, request, actor, "revoke", grant_id)
