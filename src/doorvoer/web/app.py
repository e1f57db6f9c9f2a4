"""The portal and JSON API (FastAPI), served over HTTPS by the node."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import RedirectResponse, Response

from doorvoer import __version__
from doorvoer.access.errors import Denied
from doorvoer.context import Context
from doorvoer.errors import NotFound, UserError
from doorvoer.web import (
    account_views,
    api,
    api_gdpr,
    audit_views,
    auth_views,
    data_views,
    gdpr_views,
    incident_views,
    inspect_views,
    operator_views,
    people_views,
    record_views,
    subprocessor_views,
    support_views,
    tenant_views,
    thread_views,
    token_views,
)
from doorvoer.web.deps import render
from doorvoer.web.errors import (
    CsrfFailed,
    LoginRequired,
    ReauthRequired,
    SecondFactorRequired,
    TwoFactorSetupRequired,
)
from doorvoer.web.security import SecurityHeaders

API_PREFIX = "/api/"


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith(API_PREFIX)


def create_app(ctx: Context) -> FastAPI:
    app = FastAPI(
        title="Doorvoer API", version=__version__,
        description="Zero-retention file transfer: upload files into a process's inbox, "
                    "follow their transfers. Authenticate with a personal API token: "
                    "`Authorization: Bearer <token>`.",
        openapi_url="/api/v1/openapi.json", docs_url=None, redoc_url=None,
    )
    app.state.ctx = ctx
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=Path(__file__).with_name("static")),
              name="static")
    for module in (auth_views, account_views, people_views, tenant_views, gdpr_views,
                   audit_views, thread_views, data_views, operator_views, support_views,
                   inspect_views, incident_views, subprocessor_views, record_views,
                   token_views, api, api_gdpr):
        app.include_router(module.router)
    app.include_router(data_views.api_router, responses=api.AUTH_ERRORS)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": "authentication required"}, 401,
                                headers={"WWW-Authenticate": "Bearer"})
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", 303)

    @app.exception_handler(SecondFactorRequired)
    async def _second(request: Request, exc: SecondFactorRequired) -> Response:
        return RedirectResponse("/login/2fa", 303)

    @app.exception_handler(TwoFactorSetupRequired)
    async def _setup_2fa(request: Request, exc: TwoFactorSetupRequired) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": "two-factor authentication required"}, 403)
        return RedirectResponse("/account/2fa", 303)

    @app.exception_handler(ReauthRequired)
    async def _reauth(request: Request, exc: ReauthRequired) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": "a fresh two-factor check is required"}, 403)
        return RedirectResponse(f"/account/reauth?next={quote(exc.next_url)}", 303)

    @app.exception_handler(Denied)
    async def _denied(request: Request, exc: Denied) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": "not allowed"}, 403)
        return render(request, "error.html", title="Not allowed", status_code=403,
                      message=exc.why or "You do not have access to this page.",
                      support_link=exc.why is not None)

    @app.exception_handler(CsrfFailed)
    async def _csrf(request: Request, exc: CsrfFailed) -> Response:
        return render(request, "error.html", title="Form expired", status_code=403,
                      message="This form has expired. Go back, reload the page and try again.")

    @app.exception_handler(UserError)
    async def _user_error(request: Request, exc: UserError) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": str(exc)}, 400)
        if isinstance(exc, NotFound):
            return render(request, "error.html", title="Not found", status_code=404,
                          message=str(exc))
        return render(request, "error.html", title="That did not work", status_code=400,
                      message=str(exc))

    return app
