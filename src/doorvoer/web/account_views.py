"""People's own pages (P14, P16): the account page (password, two-factor, recovery
codes), the fresh second-factor check, a tenant's users and invitations, accepting an
invitation, and resetting a forgotten password.

Every decision about access is the policy's (`authorize`, `tenant_for`, `Viewer.can`);
argon2 hashing runs off the event loop; a mail that cannot be sent never breaks a page,
the page says so instead."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import delete, select
from starlette.background import BackgroundTask
from starlette.responses import RedirectResponse, Response

from doorvoer import mail
from doorvoer.access.policy import EXTERNAL_PERMISSIONS, Action, Role, authorize
from doorvoer.accounts import invitations, notices, totp
from doorvoer.accounts.models import EmailToken, User, WebSession
from doorvoer.accounts.people import (
    WrongPassword,
    attempts_exceeded,
    change_password,
    end_session,
    login_throttled,
    record_attempt,
    record_login_failure,
    start_session,
    users_of_tenant,
)
from doorvoer.context import Context
from doorvoer.db import transaction, utcnow
from doorvoer.errors import UserError
from doorvoer.tenants.models import Tenant
from doorvoer.web.auth_views import THROTTLED, home_for
from doorvoer.web.cookies import SESSION, clear_cookie, set_cookie
from doorvoer.web.deps import (
    AccountViewerDep,
    CtxDep,
    OptionalViewerDep,
    Viewer,
    ViewerDep,
    check_csrf,
    needs_fresh_2fa,
    render,
    require_fresh_2fa,
    tenant_for,
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
}
RESET_LIMITS = (3, 10)  # reset mails per address and per client address, per 15 minutes
RESET_THROTTLED = ("Too many reset requests for this address or from your network. "
                   "Wait 15 minutes and try again.")
RESET_SENT = ("If an account exists for that address, we have sent it a link to choose a "
              "new password. The link works once, within an hour.")
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


def _safe_next(target: str | None, default: str = "/account") -> str:
    if target and target.startswith("/") and not target.startswith("//") \
            and "\\" not in target:
        return target
    return default


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


async def _send(ctx: Context, msg: EmailMessage | None) -> bool:
    """Send a notice; True when there was none to send."""
    return True if msg is None else await mail.send(ctx.settings, msg)


def _done(path: str, done: str, sent: bool = True) -> RedirectResponse:
    return RedirectResponse(f"{path}?done={done}" + ("" if sent else "&mail=failed"), 303)


def _notice(done: str | None, mail_status: str | None) -> dict[str, Any]:
    return {"notice": DONE.get(done or ""),
            "mail_error": MAIL_FAILED if mail_status == "failed" else None}


# ---------------------------------------------------------------- the account page


def _account_page(request: Request, ctx: Context, viewer: Viewer, status_code: int = 200,
                  **extra: Any) -> Response:
    authorize(viewer.actor, Action.MANAGE_OWN_ACCOUNT)
    with ctx.sessions() as s:
        user = s.get_one(User, viewer.user.id)
        remaining = totp.remaining_recovery_codes(s, user)
        tenant = s.get(Tenant, user.tenant_id) if user.tenant_id else None
    permissions = [p for p in user.permissions.split(",") if p]
    return render(request, "account/index.html", viewer=viewer, user=user, tenant=tenant,
                  role=role_text(user.role), permissions=permissions, remaining=remaining,
                  has_2fa=user.totp_secret is not None, fresh=not needs_fresh_2fa(ctx, viewer),
                  status_code=status_code, **extra)


@router.get("/account")
def account(request: Request, ctx: CtxDep, viewer: AccountViewerDep,
            done: str | None = None, mail_status: MailStatus = None) -> Response:
    return _account_page(request, ctx, viewer, **_notice(done, mail_status))


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
    address = _client(request)

    def work() -> tuple[str | None, str | None, EmailMessage | None]:
        """(new session token, error, notice)."""
        with transaction(ctx.sessions) as s:
            user = s.get_one(User, viewer.user.id)
            if login_throttled(s, user.email, address):
                return None, THROTTLED, None
            try:
                change_password(s, user, current, new)  # ends every session of the user
            except WrongPassword:
                record_login_failure(s, user.email, address)
                return None, "The current password is not right.", None
            except UserError as exc:
                return None, f"The new password cannot be used: {exc}.", None
            # A new session for this browser, as strong as the one it replaces.
            info = start_session(s, user, two_factor=viewer.row.two_factor, pending_2fa=False)
            if viewer.row.reauth_at is not None:
                info.row.reauth_at = viewer.row.reauth_at
            return info.token, None, notices.password_changed(ctx.settings, user)

    token, error, notice = await asyncio.to_thread(work)
    if token is None:
        return _account_page(request, ctx, viewer, status_code=400, error=error)
    response = _done("/account", "password", await _send(ctx, notice))
    set_cookie(response, SESSION, token)
    return response


# ---------------------------------------------------------------- fresh 2FA check


@router.get("/account/reauth")
def reauth_form(request: Request, ctx: CtxDep, viewer: AccountViewerDep,
                next: str | None = None) -> Response:
    authorize(viewer.actor, Action.MANAGE_OWN_ACCOUNT)
    target = _safe_next(next)
    if viewer.user.totp_secret is None:
        return RedirectResponse(target, 303)  # nothing to check
    return render(request, "account/reauth.html", viewer=viewer, next=target)


@router.post("/account/reauth")
async def reauth(request: Request, ctx: CtxDep, viewer: AccountViewerDep) -> Response:
    form = await check_csrf(request, viewer)
    authorize(viewer.actor, Action.MANAGE_OWN_ACCOUNT)
    target = _safe_next(str(form.get("next", "")))
    code = str(form.get("code", ""))
    address = _client(request)

    def verify() -> str | None:
        with transaction(ctx.sessions) as s:
            user = s.get_one(User, viewer.user.id)
            if login_throttled(s, user.email, address):
                return THROTTLED
            if not totp.verify_totp(s, ctx.sealer, user, code):
                record_login_failure(s, user.email, address)
                return BAD_CODE
            row = s.get(WebSession, viewer.row.id)
            if row is not None:
                row.reauth_at = utcnow()
                row.two_factor = True
            return None

    error = await asyncio.to_thread(verify)
    if error is not None:
        return render(request, "account/reauth.html", viewer=viewer, next=target, error=error,
                      status_code=401)
    return RedirectResponse(target, 303)


# ---------------------------------------------------------------- two-factor


def _two_factor_page(request: Request, ctx: Context, viewer: Viewer, status_code: int = 200,
                     **extra: Any) -> Response:
    authorize(viewer.actor, Action.MANAGE_OWN_ACCOUNT)
    with transaction(ctx.sessions) as s:
        user = s.get_one(User, viewer.user.id)
        enabled = user.totp_secret is not None
        secret = None if enabled else totp.pending_secret(s, ctx.sealer, user)
        remaining = totp.remaining_recovery_codes(s, user) if enabled else 0
        tenant = s.get(Tenant, user.tenant_id) if user.tenant_id else None
    setup: dict[str, str] = {}
    if secret is not None:
        setup = {"secret": totp.group(secret),
                 "qr": totp.qr_svg(totp.provisioning_uri(user, secret))}
    staff = Role(user.role).is_staff
    return render(request, "account/two_factor.html", viewer=viewer, tenant=tenant,
                  enabled=enabled,
                  enabled_at=user.totp_enabled_at, remaining=remaining, staff=staff,
                  staff_must=staff and not enabled, fresh=not needs_fresh_2fa(ctx, viewer),
                  status_code=status_code, **setup, **extra)


@router.get("/account/2fa")
def two_factor(request: Request, ctx: CtxDep, viewer: AccountViewerDep,
               done: str | None = None, mail_status: MailStatus = None) -> Response:
    return _two_factor_page(request, ctx, viewer, **_notice(done, mail_status))


@router.post("/account/2fa/restart")
async def two_factor_restart(request: Request, ctx: CtxDep,
                             viewer: AccountViewerDep) -> Response:
    """A new secret for the setup (e.g. the old QR code was scanned by the wrong phone)."""
    await check_csrf(request, viewer)
    authorize(viewer.actor, Action.MANAGE_OWN_ACCOUNT)
    with transaction(ctx.sessions) as s:
        user = s.get_one(User, viewer.user.id)
        if user.totp_secret is None:
            user.totp_pending = None
    return RedirectResponse("/account/2fa", 303)


@router.post("/account/2fa/confirm")
async def two_factor_confirm(request: Request, ctx: CtxDep,
                             viewer: AccountViewerDep) -> Response:
    form = await check_csrf(request, viewer)
    authorize(viewer.actor, Action.MANAGE_OWN_ACCOUNT)
    code = str(form.get("code", ""))

    def confirm() -> tuple[str, list[str], EmailMessage, str] | None:
        """(new session token, recovery codes, notice, where to go next), or None when
        the code is wrong."""
        with transaction(ctx.sessions) as s:
            user = s.get_one(User, viewer.user.id)
            if not totp.confirm_setup(s, ctx.sealer, user, code):
                return None
            codes = totp.new_recovery_codes(s, user)
            # Sessions without the second factor end; this browser gets a new one with it.
            s.execute(delete(WebSession).where(WebSession.user_id == user.id))
            info = start_session(s, user, two_factor=True, pending_2fa=False)
            return info.token, codes, notices.two_factor_enabled(ctx.settings, user), \
                home_for(user)

    result = await asyncio.to_thread(confirm)
    if result is None:
        return _two_factor_page(request, ctx, viewer, status_code=400,
                                error="That code does not match. Check that the time on "
                                      "your phone is right and enter the current code.")
    token, codes, notice, next_url = result
    sent = await _send(ctx, notice)
    # The old session (and its CSRF token) is gone: this page shows no forms of it.
    response = render(request, "account/recovery_codes.html", viewer=None, codes=codes,
                      first=True, next=next_url, mail_error=None if sent else MAIL_FAILED)
    set_cookie(response, SESSION, token)
    return response


@router.post("/account/2fa/disable")
async def two_factor_disable(request: Request, ctx: CtxDep,
                             viewer: AccountViewerDep) -> Response:
    await check_csrf(request, viewer)
    authorize(viewer.actor, Action.MANAGE_OWN_ACCOUNT)
    if not viewer.actor.role.is_staff:  # staff are refused below, without a code first
        require_fresh_2fa(ctx, viewer, "/account/2fa")

    def disable() -> EmailMessage | None:
        with transaction(ctx.sessions) as s:
            user = s.get_one(User, viewer.user.id)
            if user.totp_secret is None:
                return None
            totp.disable(s, user)
            row = s.get(WebSession, viewer.row.id)
            if row is not None:
                row.two_factor = False
            return notices.two_factor_disabled(ctx.settings, user)

    try:
        notice = await asyncio.to_thread(disable)
    except UserError as exc:
        return _two_factor_page(request, ctx, viewer, status_code=403,
                                error=f"{str(exc)[:1].upper()}{str(exc)[1:]}.")
    return _done("/account/2fa", "2fa-off", await _send(ctx, notice))


@router.post("/account/2fa/recovery-codes")
async def recovery_codes_renew(request: Request, ctx: CtxDep,
                               viewer: AccountViewerDep) -> Response:
    await check_csrf(request, viewer)
    authorize(viewer.actor, Action.MANAGE_OWN_ACCOUNT)
    require_fresh_2fa(ctx, viewer, "/account/2fa")

    def renew() -> tuple[list[str], EmailMessage] | None:
        with transaction(ctx.sessions) as s:
            user = s.get_one(User, viewer.user.id)
            if user.totp_secret is None:
                return None
            return totp.new_recovery_codes(s, user), \
                notices.recovery_codes_renewed(ctx.settings, user)

    result = await asyncio.to_thread(renew)
    if result is None:
        return RedirectResponse("/account/2fa", 303)
    codes, notice = result
    sent = await _send(ctx, notice)
    return render(request, "account/recovery_codes.html", viewer=viewer, codes=codes,
                  first=False, next="/account/2fa",
                  mail_error=None if sent else MAIL_FAILED)


# ---------------------------------------------------------------- a tenant's users


def _users_page(request: Request, ctx: Context, viewer: Viewer, tenant: Tenant,
                status_code: int = 200, **extra: Any) -> Response:
    with ctx.sessions() as s:
        users = users_of_tenant(s, tenant.id)
        invites = invitations.open_invitations(s, tenant.id)
        ids = {i.created_by for i in invites if i.created_by}
        inviters = {uid: mail_ for uid, mail_ in s.execute(
            select(User.id, User.email).where(User.id.in_(ids)))} if ids else {}
    form = {"email": "", "role": Role.TENANT_MEMBER.value, "permissions": [],
            **extra.pop("form", {})}
    return render(
        request, "invite/users.html", viewer=viewer, tenant=tenant, nav="users",
        users=[_user_row(u) for u in users],
        invitations=[_invite_row(i, inviters) for i in invites],
        can_invite=viewer.can(Action.INVITE_USERS, tenant.id),
        can_manage=viewer.can(Action.MANAGE_USERS, tenant.id),
        fresh=not needs_fresh_2fa(ctx, viewer), form=form,
        roles=[(r.value, role_text(r.value)) for r in invitations.INVITABLE_ROLES],
        permission_choices=[(k, ", ".join(sorted(a.name.lower().replace("_", " ")
                                                 for a in v)))
                            for k, v in sorted(EXTERNAL_PERMISSIONS.items())],
        status_code=status_code, **extra)


def _user_row(u: User) -> dict[str, Any]:
    return {"id": u.id, "email": u.email, "name": u.name, "role": role_text(u.role),
            "permissions": [p for p in u.permissions.split(",") if p],
            "two_factor": u.totp_secret is not None, "removed": u.disabled_at is not None,
            "created_at": u.created_at}


def _invite_row(i: EmailToken, inviters: dict[str, str]) -> dict[str, Any]:
    return {"id": i.id, "email": i.email, "role": role_text(i.role),
            "permissions": [p for p in i.permissions.split(",") if p],
            "invited_by": inviters.get(i.created_by or "", ""), "created_at": i.created_at,
            "expires_at": i.expires_at}


@router.get("/t/{slug}/users")
def tenant_users(request: Request, ctx: CtxDep, viewer: ViewerDep, slug: str,
                 done: str | None = None, mail_status: MailStatus = None) -> Response:
    tenant = tenant_for(ctx, viewer, slug, Action.VIEW_USERS)
    return _users_page(request, ctx, viewer, tenant, **_notice(done, mail_status))


@router.post("/t/{slug}/invitations")
async def tenant_invite(request: Request, ctx: CtxDep, viewer: ViewerDep,
                        slug: str) -> Response:
    tenant = tenant_for(ctx, viewer, slug, Action.INVITE_USERS)
    await check_csrf(request, viewer)
    require_fresh_2fa(ctx, viewer, f"/t/{slug}/users")
    form = await request.form()  # read once by check_csrf; cached
    email = str(form.get("email", "")).strip()
    role_value = str(form.get("role", ""))
    permissions = frozenset(str(p) for p in form.getlist("permissions"))
    kept = {"email": email, "role": role_value, "permissions": sorted(permissions)}

    def make() -> EmailMessage:
        with transaction(ctx.sessions) as s:
            try:
                role = Role(role_value)
            except ValueError:
                raise UserError("pick a role") from None
            inviter = s.get_one(User, viewer.user.id)
            link = invitations.invite(s, tenant.id, email, role, permissions, inviter)
            return notices.invitation(
                ctx.settings, link.row.email, tenant.name, f"{inviter.name} ({inviter.email})",
                role_text(role.value, link.row.permissions),
                f"{ctx.settings.base_url}/invite/{link.token}",
                link.row.expires_at)

    try:
        notice = await asyncio.to_thread(make)
    except UserError as exc:
        return _users_page(request, ctx, viewer, tenant, status_code=400,
                           error=f"The invitation was not sent: {exc}.", form=kept)
    sent = await _send(ctx, notice)
    if not sent:
        return _users_page(request, ctx, viewer, tenant,
                           error="The invitation is saved, but the e-mail with its link "
                                 "could not be sent. Revoke it and invite again later, or "
                                 "ask your operator to check the mail settings.")
    return _done(f"/t/{slug}/users", "invited")


@router.post("/t/{slug}/invitations/{invitation_id}/revoke")
async def tenant_invite_revoke(request: Request, ctx: CtxDep, viewer: ViewerDep, slug: str,
                               invitation_id: str) -> Response:
    tenant = tenant_for(ctx, viewer, slug, Action.INVITE_USERS)
    await check_csrf(request, viewer)
    with transaction(ctx.sessions) as s:
        invitations.revoke_invitation(s, tenant.id, invitation_id)
    return _done(f"/t/{slug}/users", "revoked")


@router.post("/t/{slug}/users/{user_id}/remove")
async def tenant_user_remove(request: Request, ctx: CtxDep, viewer: ViewerDep, slug: str,
                             user_id: str) -> Response:
    tenant = tenant_for(ctx, viewer, slug, Action.MANAGE_USERS)
    await check_csrf(request, viewer)
    require_fresh_2fa(ctx, viewer, f"/t/{slug}/users")
    try:
        with transaction(ctx.sessions) as s:
            invitations.remove_user(s, tenant.id, user_id)
    except UserError as exc:
        return _users_page(request, ctx, viewer, tenant, status_code=400,
                           error=f"The user was not removed: {exc}.")
    if user_id == viewer.user.id:  # removed oneself: the session is gone
        response = RedirectResponse("/login", 303)
        clear_cookie(response, SESSION)
        return response
    return _done(f"/t/{slug}/users", "removed")


# ---------------------------------------------------------------- accepting an invitation


def _invitation_view(ctx: Context, token: str) -> dict[str, Any] | None:
    with ctx.sessions() as s:
        row = invitations.find_invitation(s, token)
        if row is None or row.tenant_id is None:
            return None
        tenant = s.get(Tenant, row.tenant_id)
    if tenant is None:
        return None
    return {"email": row.email, "tenant": tenant.name, "role": role_text(row.role),
            "permissions": [p for p in row.permissions.split(",") if p],
            "expires_at": row.expires_at}


def _link_gone(request: Request, what: str) -> Response:
    return render(request, "invite/invalid.html", what=what, status_code=410)


@router.get("/invite/{token}")
def invitation_form(request: Request, ctx: CtxDep, token: str) -> Response:
    invite = _invitation_view(ctx, token)
    if invite is None:
        return _link_gone(request, "invitation")
    return render(request, "invite/accept.html", invite=invite, token=token, name="")


@router.post("/invite/{token}")
async def invitation_accept(request: Request, ctx: CtxDep, viewer: OptionalViewerDep,
                            token: str) -> Response:
    # No session to carry a CSRF token yet: the unguessable link itself is the proof.
    form = await request.form()
    name, password = str(form.get("name", "")), str(form.get("password", ""))
    invite = _invitation_view(ctx, token)
    if invite is None:
        return _link_gone(request, "invitation")
    if password != str(form.get("confirm", "")):
        return render(request, "invite/accept.html", invite=invite, token=token, name=name,
                      error="The password and its repetition differ.", status_code=400)
    old_cookie = request.cookies.get(SESSION.name)

    def accept() -> tuple[str, User]:
        with transaction(ctx.sessions) as s:
            user = invitations.accept_invitation(s, token, name, password)
            end_session(s, old_cookie)  # whoever was logged in here is not any more
            return start_session(s, user, two_factor=False, pending_2fa=False).token, user

    try:
        session_token, user = await asyncio.to_thread(accept)
    except invitations.LinkGone:
        return _link_gone(request, "invitation")
    except UserError as exc:
        return render(request, "invite/accept.html", invite=invite, token=token, name=name,
                      error=f"{str(exc)[:1].upper()}{str(exc)[1:]}.", status_code=400)
    response = RedirectResponse(home_for(user), 303)
    set_cookie(response, SESSION, session_token)
    return response


# ---------------------------------------------------------------- password reset


@router.get("/password/forgot")
def forgot_form(request: Request, viewer: OptionalViewerDep) -> Response:
    return render(request, "password/forgot.html", viewer=viewer)


@router.post("/password/forgot")
async def forgot(request: Request, ctx: CtxDep, viewer: OptionalViewerDep) -> Response:
    form = await request.form()
    email = str(form.get("email", ""))[:320]
    keys = invitations.reset_throttle_keys(email, _client(request))

    def request_link() -> tuple[bool, EmailMessage | None]:
        """(throttled, mail to send)."""
        with transaction(ctx.sessions) as s:
            if attempts_exceeded(s, dict(zip(keys, RESET_LIMITS, strict=True))):
                return True, None
            record_attempt(s, *keys)
            found = invitations.request_reset(s, email)
            if found is None:
                return False, None
            user, link = found
            return False, notices.password_reset(
                ctx.settings, user, f"{ctx.settings.base_url}/password/reset/{link.token}",
                link.row.expires_at)

    throttled, notice = await asyncio.to_thread(request_link)
    if throttled:
        return render(request, "password/forgot.html", viewer=viewer, error=RESET_THROTTLED,
                      email=email, status_code=429)
    # The same page, sent as fast, whether the address exists: the mail goes out after
    # the response (a failure is logged, never shown: that would tell).
    response = render(request, "password/forgot.html", viewer=viewer, sent=RESET_SENT)
    if notice is not None:
        response.background = BackgroundTask(mail.send, ctx.settings, notice)
    return response


@router.get("/password/reset/{token}")
def reset_form(request: Request, ctx: CtxDep, token: str) -> Response:
    with ctx.sessions() as s:
        found = invitations.find_reset(s, token)
    if found is None:
        return _link_gone(request, "reset")
    return render(request, "password/reset.html", email=found[1].email, token=token)


@router.post("/password/reset/{token}")
async def reset(request: Request, ctx: CtxDep, token: str) -> Response:
    # The unguessable link is the proof (there is no session to carry a CSRF token).
    form = await request.form()
    password = str(form.get("password", ""))
    with ctx.sessions() as s:
        found = invitations.find_reset(s, token)
    if found is None:
        return _link_gone(request, "reset")
    email = found[1].email
    if password != str(form.get("confirm", "")):
        return render(request, "password/reset.html", email=email, token=token,
                      error="The password and its repetition differ.", status_code=400)

    def work() -> EmailMessage:
        with transaction(ctx.sessions) as s:
            user = invitations.reset_password(s, token, password)
            return notices.password_changed(ctx.settings, user)

    try:
        notice = await asyncio.to_thread(work)
    except invitations.LinkGone:
        return _link_gone(request, "reset")
    except UserError as exc:
        return render(request, "password/reset.html", email=email, token=token,
                      error=f"That password cannot be used: {exc}.", status_code=400)
    sent = await _send(ctx, notice)
    return render(request, "password/done.html", mail_error=None if sent else MAIL_FAILED)

