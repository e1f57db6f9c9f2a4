"""Logging in and out: password, then the second factor when the user has one."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from doorvoer import mail
from doorvoer.access.policy import Role
from doorvoer.accounts import notices, totp
from doorvoer.accounts.models import User, WebSession
from doorvoer.accounts.people import (
    authenticate,
    end_session,
    login_throttled,
    record_login_failure,
    start_session,
)
from doorvoer.db import transaction, utcnow
from doorvoer.web.cookies import SESSION, clear_cookie, set_cookie
from doorvoer.web.deps import (
    CtxDep,
    OptionalViewerDep,
    PendingViewerDep,
    check_csrf,
    render,
)

router = APIRouter(include_in_schema=False)

GENERIC = "That e-mail address and password do not match an account."
THROTTLED = ("Too many failed attempts for this account or from your address. "
             "Wait 15 minutes and try again, or reset your password.")


def home_for(user: User) -> str:
    if Role(user.role).is_staff:
        # Staff cannot work without two-factor: set it up first.
        return "/operator/tenants" if user.totp_secret is not None else "/account/2fa"
    return "/t/home"


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
    address = request.client.host if request.client else "?"
    with transaction(ctx.sessions) as s:
        if login_throttled(s, email, address):
            # Same answer whether the account exists: the throttle is keyed on the name.
            return render(request, "auth/login.html", error=THROTTLED, email=email,
                          status_code=429)
        user = authenticate(s, email, password)
        if user is None:
            record_login_failure(s, email, address)
            error = GENERIC
        else:
            has_2fa = user.totp_secret is not None
            info = start_session(s, user, two_factor=False, pending_2fa=has_2fa)
    if user is None:
        return render(request, "auth/login.html", error=error, email=email, status_code=401)
    target = "/login/2fa" if has_2fa else (_safe_next(next) or home_for(user))
    if has_2fa and _safe_next(next):
        target += "?next=" + quote(next)
    response = RedirectResponse(target, 303)
    set_cookie(response, SESSION, info.token)
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
    address = request.client.host if request.client else "?"

    def verify() -> tuple[str | None, str | None, EmailMessage | None]:
        """(new session token, error, notice to send)."""
        with transaction(ctx.sessions) as s:
            user = s.get_one(User, viewer.user.id)
            if login_throttled(s, user.email, address):
                return None, THROTTLED, None
            used_recovery = False
            ok = totp.verify_totp(s, ctx.sealer, user, code)
            if not ok and "-" in code:
                ok = used_recovery = totp.use_recovery_code(s, user, code)
            if not ok:
                record_login_failure(s, user.email, address)
                return None, "That code is not valid (or was used already). Try the next one.", \
                    None
            row = s.get(WebSession, viewer.row.id)
            if row is not None:
                s.delete(row)
            info = start_session(s, user, two_factor=True, pending_2fa=False)
            notice = notices.recovery_code_used(
                ctx.settings, user, totp.remaining_recovery_codes(s, user)) if used_recovery \
                else None
            return info.token, None, notice

    token, error, notice = await asyncio.to_thread(verify)
    if notice is not None:
        await mail.send(ctx.settings, notice)
    if token is None:
        return render(request, "auth/second_factor.html", viewer=viewer, error=error,
                      next=target, status_code=401)
    response = RedirectResponse(target, 303)
    set_cookie(response, SESSION, token)
    return response


@router.post("/logout")
async def logout(request: Request, ctx: CtxDep, viewer: PendingViewerDep) -> Response:
    await check_csrf(request, viewer)
    with transaction(ctx.sessions) as s:
        end_session(s, request.cookies.get(SESSION.name))
    response = RedirectResponse("/login", 303)
    clear_cookie(response, SESSION)
    return response


@router.get("/cookies")
def cookie_notice(request: Request, viewer: OptionalViewerDep) -> Response:
    return render(request, "cookies.html", viewer=viewer)


@router.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok", "time": utcnow().isoformat()}
