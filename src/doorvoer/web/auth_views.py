"""Logging in and out: password, then the second factor when the user has one."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from doorvoer.access.policy import must_set_up_2fa
from doorvoer.accounts import signin
from doorvoer.accounts.errors import Throttled
from doorvoer.accounts.models import User
from doorvoer.db import utcnow
from doorvoer.web.cookies import SESSION, clear_cookie, set_cookie
from doorvoer.web.deps import (
    CtxDep,
    OptionalViewerDep,
    PendingViewerDep,
    check_csrf,
    client_address,
    in_unit,
    render,
    unit,
)

router = APIRouter(include_in_schema=False)

GENERIC = "That e-mail address and password do not match an account."
THROTTLED = ("Too many failed attempts for this account or from your address. "
             "Wait 15 minutes and try again, or reset your password.")


def home_for(user: User) -> str:
    if must_set_up_2fa(user.role, user.totp_secret is not None):
        return "/account/2fa"  # nothing else works before it
    return "/operator/tenants" if user.tenant_id is None else "/t/home"


def _safe_next(target: str | None) -> str | None:
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return None


@router.get("/")
def root(viewer: OptionalViewerDep) -> Response:
    if viewer is None:
        return RedirectResponse("/login", 303)
    if viewer.row.pending_2fa:
        return RedirectResponse("/login/2fa", 303)
    return RedirectResponse(home_for(viewer.user), 303)


@router.get("/login")
def login_form(request: Request, viewer: OptionalViewerDep, next: str | None = None) -> Response:
    if viewer is not None and not viewer.row.pending_2fa:
        return RedirectResponse(home_for(viewer.user), 303)
    return render(request, "auth/login.html", next=_safe_next(next))


@router.post("/login")
def login(request: Request, ctx: CtxDep, email: Annotated[str, Form()] = "",
          password: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "") -> Response:
    try:
        with unit(ctx, request) as w:
            signed = signin.sign_in(w, email, password, client_address(request))
    except Throttled:
        # Same answer whether the account exists: the throttle is keyed on the name.
        return render(request, "auth/login.html", error=THROTTLED, email=email,
                      status_code=429)
    if signed is None:
        return render(request, "auth/login.html", error=GENERIC, email=email, status_code=401)
    pending = signed.pending_2fa
    target = "/login/2fa" if pending else (_safe_next(next) or home_for(signed.user))
    if pending and _safe_next(next):
        target += "?next=" + quote(next)
    response = RedirectResponse(target, 303)
    set_cookie(response, SESSION, signed.session.token)
    return response


@router.get("/login/2fa")
def second_factor_form(request: Request, viewer: PendingViewerDep,
                       next: str | None = None) -> Response:
    if not viewer.row.pending_2fa:
        return RedirectResponse(home_for(viewer.user), 303)
    return render(request, "auth/second_factor.html", viewer=viewer, next=_safe_next(next))


@router.post("/login/2fa")
async def second_factor(request: Request, ctx: CtxDep, viewer: PendingViewerDep) -> Response:
    form = await check_csrf(request, viewer)
    code = str(form.get("code", ""))
    target = _safe_next(str(form.get("next", ""))) or home_for(viewer.user)
    try:
        info, _ = await in_unit(ctx, request, viewer, signin.second_factor, viewer.row.id,
                                code, client_address(request))
    except Throttled:
        info, error = None, THROTTLED
    else:
        error = "That code is not valid (or was used already). Try the next one."
    if info is None:
        return render(request, "auth/second_factor.html", viewer=viewer, error=error,
                      next=target, status_code=401)
    response = RedirectResponse(target, 303)
    set_cookie(response, SESSION, info.token)
    return response


@router.post("/logout")
async def logout(request: Request, ctx: CtxDep, viewer: PendingViewerDep) -> Response:
    await check_csrf(request, viewer)
    with unit(ctx, request, viewer) as w:
        signin.sign_out(w, request.cookies.get(SESSION.name), viewer.user)
    response = RedirectResponse("/login", 303)
    clear_cookie(response, SESSION)
    return response


@router.get("/cookies")
def cookie_notice(request: Request, viewer: OptionalViewerDep) -> Response:
    return render(request, "cookies.html", viewer=viewer)


@router.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok", "time": utcnow().isoformat()}
