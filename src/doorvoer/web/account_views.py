"""A person's own pages (P14): the account page (password, two-factor, recovery codes)
and the fresh second-factor check.

Every decision about access is the policy's (`authorize`); every check of a secret is
the sign-in service's; the views only choose the page. A mail that cannot be sent never
breaks a page: the page says so instead."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response

from doorvoer.access.policy import Action, Role, authorize, may_turn_off_2fa
from doorvoer.accounts import signin, totp
from doorvoer.accounts.errors import Throttled, WrongPassword
from doorvoer.accounts.models import User
from doorvoer.context import Context
from doorvoer.errors import UserError
from doorvoer.tenants.models import Tenant
from doorvoer.unit import Work
from doorvoer.web.auth_views import THROTTLED, home_for
from doorvoer.web.cookies import SESSION, set_cookie
from doorvoer.web.deps import (
    AccountViewerDep,
    CtxDep,
    Viewer,
    check_csrf,
    client_address,
    in_unit,
    needs_fresh_2fa,
    render,
    require_fresh_2fa,
    unit,
)

router = APIRouter(include_in_schema=False)

MAIL_FAILED = ("We could not send the e-mail about this: the mail server did not accept it. "
               "The change itself is saved.")
DONE = {
    "password": "Your password was changed. Every other session has ended.",
    "2fa-off": "Two-factor authentication is off.",
    "invited": "The invitation was sent.",
    "revoked": "The invitation was revoked: its link no longer works.",
    "removed": "The user was removed: their sessions and API tokens have ended.",
    "suspended": "The user is suspended: they cannot sign in, their sessions have ended "
                 "and their API tokens stop working until you resume them.",
    "resumed": "The user is resumed: they can sign in again.",
}
BAD_CODE = "That code is not valid (or was used already). Try the next one."
MailStatus = Annotated[str | None, Query(alias="mail")]


def role_text(role: str | None, permissions: str = "") -> str:
    """How a role reads to people: "external user (reports)"."""
    try:
        label = "external user" if role == Role.EXTERNAL.value else Role(role or "").label
    except ValueError:
        label = "unknown role"
    perms = ", ".join(p for p in permissions.split(",") if p)
    return f"{label} ({perms})" if perms else label


def safe_next(target: str | None, default: str = "/account") -> str:
    if target and target.startswith("/") and not target.startswith("//") \
            and "\\" not in target:
        return target
    return default


def done(path: str, what: str, sent: bool = True) -> RedirectResponse:
    return RedirectResponse(f"{path}?done={what}" + ("" if sent else "&mail=failed"), 303)


def notice(what: str | None, mail_status: str | None) -> dict[str, Any]:
    return {"notice": DONE.get(what or ""),
            "mail_error": MAIL_FAILED if mail_status == "failed" else None}


# ---------------------------------------------------------------- the account page


def _account_page(request: Request, ctx: Context, viewer: Viewer, status_code: int = 200,
                  **extra: Any) -> Response:
    authorize(viewer.actor, Action.MANAGE_OWN_ACCOUNT)
    with unit(ctx, request, viewer, write=False) as w:
        user = w.session.get_one(User, viewer.user.id)
        remaining = totp.remaining_recovery_codes(w, user)
        tenant = w.session.get(Tenant, user.tenant_id) if user.tenant_id else None
    permissions = [p for p in user.permissions.split(",") if p]
    return render(request, "account/index.html", viewer=viewer, user=user, tenant=tenant,
                  role=role_text(user.role), permissions=permissions, remaining=remaining,
                  has_2fa=user.totp_secret is not None, fresh=not needs_fresh_2fa(ctx, viewer),
                  status_code=status_code, **extra)


@router.get("/account")
def account(request: Request, ctx: CtxDep, viewer: AccountViewerDep,
            done: str | None = None, mail_status: MailStatus = None) -> Response:
    return _account_page(request, ctx, viewer, **notice(done, mail_status))


@router.post("/account/password")
async def change_own_password(request: Request, ctx: CtxDep,
                              viewer: AccountViewerDep) -> Response:
    form = await check_csrf(request, viewer)
    authorize(viewer.actor, Action.MANAGE_OWN_ACCOUNT)
    require_fresh_2fa(ctx, viewer, "/account")
    current, new = str(form.get("current", "")), str(form.get("password", ""))
    if new != str(form.get("confirm", "")):
        return _account_page(request, ctx, viewer, status_code=400,
                             error="The new password and its repetition differ.")
    try:
        info, sent = await in_unit(ctx, request, viewer, signin.change_password,
                                   viewer.row.id, current, new, client_address(request))
    except Throttled:
        return _account_page(request, ctx, viewer, status_code=400, error=THROTTLED)
    except WrongPassword:
        return _account_page(request, ctx, viewer, status_code=400,
                             error="The current password is not right.")
    except UserError as exc:
        return _account_page(request, ctx, viewer, status_code=400,
                             error=f"The new password cannot be used: {exc}.")
    response = done("/account", "password", sent)
    set_cookie(response, SESSION, info.token)
    return response


# ---------------------------------------------------------------- fresh 2FA check


@router.get("/account/reauth")
def reauth_form(request: Request, ctx: CtxDep, viewer: AccountViewerDep,
                next: str | None = None) -> Response:
    authorize(viewer.actor, Action.MANAGE_OWN_ACCOUNT)
    target = safe_next(next)
    if viewer.user.totp_secret is None:
        return RedirectResponse(target, 303)  # nothing to check
    return render(request, "account/reauth.html", viewer=viewer, next=target)


@router.post("/account/reauth")
async def reauth(request: Request, ctx: CtxDep, viewer: AccountViewerDep) -> Response:
    form = await check_csrf(request, viewer)
    authorize(viewer.actor, Action.MANAGE_OWN_ACCOUNT)
    target = safe_next(str(form.get("next", "")))
    try:
        ok, _ = await in_unit(ctx, request, viewer, signin.reauthenticate, viewer.row.id,
                              str(form.get("code", "")), client_address(request))
        error = None if ok else BAD_CODE
    except Throttled:
        error = THROTTLED
    if error is not None:
        return render(request, "account/reauth.html", viewer=viewer, next=target, error=error,
                      status_code=401)
    return RedirectResponse(target, 303)


# ---------------------------------------------------------------- two-factor


def _setup(w: Work, user_id: str) -> tuple[User, str | None, int, Tenant | None]:
    user = w.session.get_one(User, user_id)
    enabled = user.totp_secret is not None
    secret = None if enabled else totp.pending_secret(w, user)
    remaining = totp.remaining_recovery_codes(w, user) if enabled else 0
    tenant = w.session.get(Tenant, user.tenant_id) if user.tenant_id else None
    return user, secret, remaining, tenant


def _two_factor_page(request: Request, ctx: Context, viewer: Viewer, status_code: int = 200,
                     **extra: Any) -> Response:
    authorize(viewer.actor, Action.MANAGE_OWN_ACCOUNT)
    with unit(ctx, request, viewer) as w:  # the pending secret is kept, sealed
        user, secret, remaining, tenant = _setup(w, viewer.user.id)
    setup: dict[str, str] = {}
    if secret is not None:
        setup = {"secret": totp.group(secret),
                 "qr": totp.qr_svg(totp.provisioning_uri(user, secret))}
    enabled = user.totp_secret is not None
    staff = not may_turn_off_2fa(user.role)
    return render(request, "account/two_factor.html", viewer=viewer, tenant=tenant,
                  enabled=enabled,
                  enabled_at=user.totp_enabled_at, remaining=remaining, staff=staff,
                  staff_must=staff and not enabled, fresh=not needs_fresh_2fa(ctx, viewer),
                  status_code=status_code, **setup, **extra)


@router.get("/account/2fa")
def two_factor(request: Request, ctx: CtxDep, viewer: AccountViewerDep,
               done: str | None = None, mail_status: MailStatus = None) -> Response:
    return _two_factor_page(request, ctx, viewer, **notice(done, mail_status))


@router.post("/account/2fa/restart")
async def two_factor_restart(request: Request, ctx: CtxDep,
                             viewer: AccountViewerDep) -> Response:
    """A new secret for the setup (e.g. the old QR code was scanned by the wrong phone)."""
    await check_csrf(request, viewer)
    authorize(viewer.actor, Action.MANAGE_OWN_ACCOUNT)
    await in_unit(ctx, request, viewer, lambda w: totp.restart_setup(
        w, w.session.get_one(User, viewer.user.id)))
    return RedirectResponse("/account/2fa", 303)


@router.post("/account/2fa/confirm")
async def two_factor_confirm(request: Request, ctx: CtxDep,
                             viewer: AccountViewerDep) -> Response:
    form = await check_csrf(request, viewer)
    authorize(viewer.actor, Action.MANAGE_OWN_ACCOUNT)
    result, sent = await in_unit(ctx, request, viewer, signin.confirm_2fa, viewer.row.id,
                                 str(form.get("code", "")))
    if result is None:
        return _two_factor_page(request, ctx, viewer, status_code=400,
                                error="That code does not match. Check that the time on "
                                      "your phone is right and enter the current code.")
    info, codes, user = result
    # The old session (and its CSRF token) is gone: this page shows no forms of it.
    response = render(request, "account/recovery_codes.html", viewer=None, codes=codes,
                      first=True, next=home_for(user),
                      mail_error=None if sent else MAIL_FAILED)
    set_cookie(response, SESSION, info.token)
    return response


@router.post("/account/2fa/disable")
async def two_factor_disable(request: Request, ctx: CtxDep,
                             viewer: AccountViewerDep) -> Response:
    await check_csrf(request, viewer)
    authorize(viewer.actor, Action.MANAGE_OWN_ACCOUNT)
    if may_turn_off_2fa(viewer.user.role):  # staff are refused below, without a code first
        require_fresh_2fa(ctx, viewer, "/account/2fa")
    try:
        _, sent = await in_unit(ctx, request, viewer, signin.disable_2fa, viewer.row.id)
    except UserError as exc:
        return _two_factor_page(request, ctx, viewer, status_code=403,
                                error=f"{str(exc)[:1].upper()}{str(exc)[1:]}.")
    return done("/account/2fa", "2fa-off", sent)


@router.post("/account/2fa/recovery-codes")
async def recovery_codes_renew(request: Request, ctx: CtxDep,
                               viewer: AccountViewerDep) -> Response:
    await check_csrf(request, viewer)
    authorize(viewer.actor, Action.MANAGE_OWN_ACCOUNT)
    require_fresh_2fa(ctx, viewer, "/account/2fa")
    codes, sent = await in_unit(ctx, request, viewer, totp.renew_recovery_codes,
                                viewer.user.id)
    if codes is None:
        return RedirectResponse("/account/2fa", 303)
    return render(request, "account/recovery_codes.html", viewer=viewer, codes=codes,
                  first=False, next="/account/2fa",
                  mail_error=None if sent else MAIL_FAILED)
