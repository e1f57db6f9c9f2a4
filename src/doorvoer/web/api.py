"""The JSON API under /api/v1, for a tenant's systems (P1, P14).

A personal API token authenticates (`Authorization: Bearer dvt_…`, checked by the
sign-in service); the one policy decides what it may do. An upload's body streams chunk
by chunk into the vault through the same `UploadSession` as an SFTP upload: no
temporary file, no form parsing, no body held whole in memory."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, BeforeValidator
from starlette.requests import ClientDisconnect

from doorvoer.access.policy import Action, Actor, Resource, authorize
from doorvoer.accounts.signin import sign_in_token, token_session
from doorvoer.processes.schemas import ProcessOut
from doorvoer.processes.service import list_processes, process_named, spec_of
from doorvoer.processes.spec import FOLDER
from doorvoer.tenants.models import Tenant
from doorvoer.transfers import inbox
from doorvoer.transfers import service as transfers
from doorvoer.transfers.errors import NameRefused, NoSuchProcess
from doorvoer.transfers.inbox import UploadSession
from doorvoer.transfers.models import State
from doorvoer.transfers.schemas import TransferOut
from doorvoer.unit import Work
from doorvoer.vault.errors import DiskFull
from doorvoer.web.deps import CtxDep, client_address
from doorvoer.web.errors import LoginRequired

log = logging.getLogger("doorvoer.web.api")
T = TypeVar("T")

FLUSH_BYTES = 1024 * 1024  # hand plaintext to the vault in pieces of about this size
DRAIN_BYTES = 8 * 1024 * 1024  # after a refusal, read this much more so the client sees it
IDLE_S = 120.0  # a body that stalls this long is an interrupted upload
MAX_NAME = inbox.MAX_NAME_BYTES  # bytes; in characters no more either

# The rules below, written as patterns in the OpenAPI document, so that it says exactly
# which values can succeed. The code checks them itself to answer with a clear message.
ID_PATTERN = "^[0-9a-f]{32}$"
NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"  # processes.spec.FOLDER
_TEMP_ENDINGS = "|".join(  # transfers.TEMP_SUFFIXES, in any case
    "".join(f"[{c.upper()}{c}]" if c.isalpha() else "\\." if c == "." else c
            for c in suffix)
    for suffix in inbox.TEMP_SUFFIXES)
_NAME_CHAR = r"/\\\x00-\x1f\x7f\ufffd"  # as regex escapes, for the document
FILENAME_PATTERN = f"^(?!.*(?:{_TEMP_ENDINGS})$)[^.{_NAME_CHAR}][^{_NAME_CHAR}]*$"
_TRANSFER_ID = re.compile(ID_PATTERN)
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})")


def parse_since(value: Any) -> datetime:
    """An RFC 3339 time with an offset, in UTC. Times beyond what Python can hold in UTC
    (year 1 or 9999 with an offset) are clamped: they match all or nothing anyway."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("use an RFC 3339 time with an offset, like 2025-01-31T08:00:00Z")
    text = value.upper()
    if text[17:19] == "60":  # a leap second: the second before it will do
        text = text[:17] + "59" + text[19:]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("that is not a valid time") from None
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        offset = parsed.utcoffset() or timedelta(0)
        return datetime.max.replace(tzinfo=UTC) if offset < timedelta(0) \
            else datetime.min.replace(tzinfo=UTC)


class Problem(BaseModel):
    """What went wrong, in one sentence that says what to do."""

    detail: str


def _problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description}


AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _problem("No token, or one that is unknown, expired or revoked"),
    403: _problem("The token's scopes do not allow this"),
}

bearer = HTTPBearer(
    auto_error=False, scheme_name="ApiToken", bearerFormat="dvt_…",
    description="A personal API token, made by a tenant admin on the portal's API tokens "
                "page: `Authorization: Bearer dvt_…`. Its scopes limit what it may do.",
)

router = APIRouter(prefix="/api/v1", responses=AUTH_ERRORS)


def api_actor(
    request: Request, ctx: CtxDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    """The token's actor; 401 (the app's LoginRequired handler) without a live token."""
    if credentials is None:
        raise LoginRequired
    with ctx.reading(source=client_address(request)) as w:
        use = sign_in_token(w, credentials.credentials)
    if use is None:
        raise LoginRequired
    if use.touch:
        with ctx.unit(actor=use.actor, source=client_address(request)) as w:
            token_session(w, use)
    return use.actor


ActorDep = Annotated[Actor, Depends(api_actor)]


def _allow(actor: Actor, action: Action) -> str:
    """Authorize against the token's own tenant; return that tenant's id."""
    authorize(actor, action, Resource(actor.tenant_id))
    assert actor.tenant_id is not None
    return actor.tenant_id


def _slug(w: Work, tenant_id: str) -> str | None:
    tenant = w.session.get(Tenant, tenant_id)
    return tenant.slug if tenant else None


def _not_found(what: str) -> HTTPException:
    return HTTPException(404, what)


# ---------------------------------------------------------------- reading


@router.get("/transfers", response_model=list[TransferOut], tags=["transfers"],
            operation_id="listTransfers", summary="List transfers")
def get_transfers(
    ctx: CtxDep, actor: ActorDep,
    state: Annotated[State | None, Query(description="Only transfers in this state")] = None,
    process: Annotated[str | None, Query(description="Only transfers of this process",
                                         pattern=NAME_PATTERN)] = None,
    since: Annotated[datetime | None, BeforeValidator(parse_since), Query(
        description="Only transfers that started at or after this time (RFC 3339)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many")] = 100,
) -> list[TransferOut]:
    """The tenant's transfers, newest first: metadata only, never file content."""
    tenant_id = _allow(actor, Action.VIEW_TRANSFERS)
    with ctx.reading(actor=actor) as w:
        slug = _slug(w, tenant_id)
        rows = transfers.list_transfers(w, tenant_id, limit, state=state, process=process,
                                        since=since)
        return [TransferOut.of(t, slug) for t in rows]


@router.get("/transfers/{transfer_id}", response_model=TransferOut, tags=["transfers"],
            operation_id="getTransfer", summary="Get one transfer",
            responses={404: _problem("No such transfer")})
def get_transfer(
    ctx: CtxDep, actor: ActorDep,
    transfer_id: Annotated[str, Path(json_schema_extra={"pattern": ID_PATTERN})],
) -> TransferOut:
    """One transfer of the tenant. Another tenant's transfer does not exist here (404)."""
    tenant_id = _allow(actor, Action.VIEW_TRANSFERS)
    with ctx.reading(actor=actor) as w:
        t = transfers.get_transfer(w, transfer_id, tenant_id) \
            if _TRANSFER_ID.fullmatch(transfer_id) else None
        if t is None:
            raise _not_found("no such transfer")
        return TransferOut.of(t, _slug(w, tenant_id))


@router.get("/processes", response_model=list[ProcessOut], tags=["processes"],
            operation_id="listProcesses", summary="List processes")
def get_processes(ctx: CtxDep, actor: ActorDep) -> list[ProcessOut]:
    """The tenant's processes and where their files go."""
    tenant_id = _allow(actor, Action.VIEW_PROCESSES)
    with ctx.reading(actor=actor) as w:
        tenant = w.session.get_one(Tenant, tenant_id)
        return [ProcessOut.of(p) for p in list_processes(w, tenant)]


# ---------------------------------------------------------------- uploading


UPLOAD_BODY = {
    "requestBody": {
        "required": False,
        "description": "The file's bytes, as they are (any Content-Type); no body is an "
                       "empty file. Chunked transfer encoding is fine; a Content-Length, "
                       "when sent, must match the bytes that follow.",
        "content": {"application/octet-stream": {"schema": {"type": "string",
                                                            "format": "binary"}}},
    },
}


@router.put(
    "/processes/{name}/files/{filename}", status_code=201, response_model=TransferOut,
    tags=["processes"], summary="Upload a file into a process's inbox",
    operation_id="uploadFile", openapi_extra=UPLOAD_BODY,
    responses={
        201: {"description": "The whole file arrived and is stored: the transfer as it is "
                             "now (RECEIVED, or already further along)",
              "headers": {"Location": {"description": "The transfer's URL",
                                       "schema": {"type": "string"}}},
              "links": {"GetTransfer": {"operationId": "getTransfer",
                                        "parameters": {"transfer_id": "$response.body#/id"}}}},
        400: _problem("The name is refused (a temporary name, a forbidden character, or "
                      "one the process does not take), or the body did not arrive whole"),
        404: _problem("No such process"),
        413: _problem("The file is larger than the server's limit"),
        503: _problem("The file could not be stored; try again"),
        507: _problem("The server's storage is full"),
    },
)
async def upload_file(
    request: Request, ctx: CtxDep, actor: ActorDep,
    name: Annotated[str, Path(description="The process's name",
                              json_schema_extra={"pattern": NAME_PATTERN})],
    filename: Annotated[str, Path(
        description="The file's name in the process's inbox folder; it must match the "
                    "process's pattern, and may not be a temporary name",
        json_schema_extra={"pattern": FILENAME_PATTERN, "maxLength": MAX_NAME})],
) -> Any:
    """Stream the request body into the process's inbox as `filename`, exactly like an
    SFTP upload to `/inbox/<folder>/<filename>`. The answer comes once the file is
    stored; an upload that does not complete is never processed."""
    tenant_id = _allow(actor, Action.UPLOAD)

    async def step(fn: Callable[..., T], *args: Any) -> T:
        def run() -> T:
            with ctx.unit(actor=actor, source=client_address(request)) as w:
                return fn(w, *args)
        return await asyncio.to_thread(run)

    try:
        folder = await step(_folder_for, tenant_id, name, filename)
    except (NoSuchProcess, NameRefused) as exc:
        await step(inbox.record_refusal, tenant_id, f"{name}/{filename}", str(exc))
        if isinstance(exc, NoSuchProcess):
            raise _not_found(str(exc)) from None
        raise HTTPException(400, str(exc)) from None
    limit = ctx.settings.max_file_bytes
    declared = _content_length(request)
    try:
        upload = await step(UploadSession.begin, tenant_id, None, folder, filename)
    except DiskFull:
        return _error(507, "the server's storage is full; try again later", close=True)
    if declared is not None and declared > limit:
        # Refuse before a byte is read: a client that sent `Expect: 100-continue` never
        # sends the body at all.
        upload.refuse(_too_large(limit))
        await step(upload.interrupt, _too_large(limit))
        return _error(413, _too_large(limit), close=True)
    settled = False
    try:
        outcome = await _receive(request, upload, limit, declared)
        if outcome is not None:
            status, reason, close = outcome
            await step(upload.interrupt, reason)
            settled = True
            return _error(status, reason, close=close)
        upload.client_closed = True  # the whole body arrived
        state = await step(upload.finish)
        settled = True
    finally:
        if not settled:  # cancelled, or a fault: never leave a half upload behind
            with ctx.unit(actor=actor) as w:
                upload.interrupt(w, "the upload was cut off by the server")
    if state == State.INTERRUPTED:
        return _error(503, "the file could not be stored; try again")
    log.info("upload closed", extra={"transfer": upload.transfer_id, "state": str(state),
                                      "door": "https"})
    body = await step(_answer, tenant_id, upload, state, name, f"{folder}/{filename}")
    return JSONResponse(body.model_dump(mode="json"), 201,
                        headers={"Location": f"/api/v1/transfers/{upload.transfer_id}"})


def _answer(w: Work, tenant_id: str, upload: UploadSession, state: State, process: str,
            path: str) -> TransferOut:
    slug = _slug(w, tenant_id)
    t = transfers.get_transfer(w, upload.transfer_id, tenant_id)
    if t is not None:
        return TransferOut.of(t, slug)
    # A tenant that keeps no reports (P4): the record may be gone already.
    return TransferOut(id=upload.transfer_id, tenant=slug, process=process, filename=path,
                       state=state, received_at=None, processed_at=None,
                       input_erased_at=None, delivered_at=None, erased_at=None,
                       residence_seconds=None, bytes_in=None, bytes_out=None, rows_in=None,
                       rows_out=None, error=None)


def _folder_for(w: Work, tenant_id: str, name: str, filename: str) -> str:
    """The inbox folder of the process named `name`, when it takes `filename` at once
    (NoSuchProcess, NameRefused: the one name rule, with no rename to follow)."""
    process = process_named(w, tenant_id, name) if FOLDER.fullmatch(name) else None
    if process is None:
        raise NoSuchProcess(f"no process named {name!r}")
    problem = inbox.refusal(spec_of(process), process.folder, filename, renamable=False)
    if problem is not None:
        raise NameRefused(problem)
    return process.folder


def _content_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None or not (raw.isascii() and raw.isdigit()):
        return None  # chunked (the HTTP server rejects a malformed length itself)
    return int(raw)


def _too_large(limit: int) -> str:
    return f"the file is larger than the limit of {limit} bytes"


def _error(status: int, detail: str, close: bool = False) -> JSONResponse:
    headers = {"Connection": "close"} if close else None
    return JSONResponse({"detail": detail}, status, headers=headers)


async def _receive(request: Request, upload: UploadSession, limit: int,
                   declared: int | None) -> tuple[int, str, bool] | None:
    """Pass the body to the upload. None when every byte arrived; otherwise (status,
    reason, close the connection)."""
    pending: list[bytes] = []
    pending_bytes = 0
    received = 0
    refused: tuple[int, str, bool] | None = None
    stream = request.stream()
    try:
        while True:
            try:
                async with asyncio.timeout(IDLE_S):
                    chunk = await anext(stream)
            except StopAsyncIteration:
                break
            received += len(chunk)
            if refused is not None:  # drain, so the client reads our answer
                if received > limit + DRAIN_BYTES:
                    return refused[0], refused[1], True
                continue
            if received > limit:
                refused = (413, str(upload.refuse(_too_large(limit))), False)
                pending.clear()
                continue
            pending.append(chunk)
            pending_bytes += len(chunk)
            if pending_bytes >= FLUSH_BYTES:
                data = b"".join(pending)
                pending.clear()
                pending_bytes = 0
                await asyncio.to_thread(upload.append, data)
        if refused is not None:
            return refused
        if pending:
            await asyncio.to_thread(upload.append, b"".join(pending))
    except ClientDisconnect:
        return 400, "the connection ended before the whole file arrived", True
    except TimeoutError:
        return 400, f"no data arrived for {IDLE_S:.0f} seconds", True
    except DiskFull:
        return 507, "the server's storage is full; try again later", True
    except OSError as exc:
        return 503, f"the file could not be stored ({exc.strerror or 'input/output error'})", \
            True
    finally:
        await stream.aclose()
    if declared is not None and received != declared:
        return 400, (f"the body has {received} bytes, but Content-Length said {declared}"), \
            False
    return None
