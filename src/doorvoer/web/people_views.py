"""A tenant's people (P16): users and invitations, accepting an invitation, and resetting
a forgotten password.

Every decision about access is the policy's (`tenant_for`, `Viewer.can`); argon2
hashing runs off the event loop; a mail that cannot be sent never breaks a page, the
page says so instead."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.responses import RedirectResponse, Response

from doorvoer import mail
from doorvoer.access.policy import EXTERNAL_PERMISSIONS, Action, Role
from doorvoer.accounts import notices, people, signin
from doorvoer.accounts.errors import LinkGone
from doorvoer.accounts.models import EmailToken, User
from doorvoer.accounts.throttle import attempts_exceeded, record_attempt
from doorvoer.context import Context
from doorvoer.errors import UserError
from doorvoer.tenants.models import Tenant
from doorvoer.unit import Work
from doorvoer.web.account_views import MAIL_FAILED, MailStatus, done, notice, role_text
from doorvoer.web.auth_views import home_for
from doorvoer.web.cookies import SESSION, clear_cookie, set_cookie
from doorvoer.web.deps import (
    CtxDep,
    OptionalViewerDep,
    Viewer,
    ViewerDep,
    check_csrf,
    client_address,
    in_unit,
    needs_fresh_2fa,
    render,
    require_fresh_2fa,
    tenant_for,
    unit,
)

router = APIRouter(include_in_schema=False)

RESET_LIMITS = (3, 10)  # reset mails per address and per client address, per window
RESET_THROTTLED = ("Too many reset requests for this address or from your network. "
                   "Wait 15 minutes and try again.")
RESET_SENT = ("If an account exists for that address, we have sent it a link to choose a "
              "new password. The link works once, within an hour.")


# ---------------------------------------------------------------- a tenant's users


def _users_page(request: Request, ctx: Context, viewer: Viewer, tenant: Tenant,
                status_code: int = 200, **extra: Any) -> Response:
    with unit(ctx, request, viewer, write=False) as w:
        users = people.users_of_tenant(w, tenant.id)
        invites = people.open_invitations(w, tenant.id)
        inviters = people.emails_of(w, {i.created_by for i in invites if i.created_by})
    form = {"email": "", "role": Role.TENANT_MEMBER.value, "permissions": [],
            **extra.pop("form", {})}
    return render(
        request, "invite/users.html", viewer=viewer, tenant=tenant, nav="users",
        users=[_user_row(u) for u in users],
        invitations=[_invite_row(i, inviters) for i in invites],
        can_invite=viewer.can(Action.INVITE_USERS, tenant.id),
        can_manage=viewer.can(Action.MANAGE_USERS, tenant.id),
        fresh=not needs_fresh_2fa(ctx, viewer), form=form,
        roles=[(r.value, role_text(r.value)) for r in people.INVITABLE_ROLES],
        permission_choices=[(k, ", ".join(sorted(a.name.lower().replace("_", " ")
                                                 for a in v)))
                            for k, v in sorted(EXTERNAL_PERMISSIONS.items())],
        status_code=status_code, **extra)


def _user_row(u: User) -> dict[str, Any]:
    return {"id": u.id, "email": u.email, "name": u.name, "role": role_text(u.role),
            "permissions": [p for p in u.permissions.split(",") if p],
            "two_factor": u.totp_secret is not None, "removed": u.disabled_at is not None,
            "suspended": u.disabled_at is None and u.suspended_at is not None,
            "created_at": u.created_at}


def _invite_row(i: EmailToken, inviters: dict[str, str]) -> dict[str, Any]:
    return {"id": i.id, "email": i.email, "role": role_text(i.role),
            "permissions": [p for p in i.permissions.split(",") if p],
            "invited_by": inviters.get(i.created_by or "", ""), "created_at": i.created_at,
            "expires_at": i.expires_at}


@router.get("/t/{slug}/users")
def tenant_users(request: Request, ctx: CtxDep, viewer: ViewerDep, slug: str,
                 done: str | None = None, mail_status: MailStatus = None) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.VIEW_USERS)
    return _users_page(request, ctx, viewer, tenant, **notice(done, mail_status))


def _invite(w: Work, tenant: Tenant, inviter_id: str, email: str, role_value: str,
            permissions: frozenset[str]) -> None:
    try:
        role = Role(role_value)
    except ValueError:
        raise UserError("pick a role") from None
    inviter = w.session.get_one(User, inviter_id)
    link = people.invite(w, tenant.id, email, role, permissions, inviter)
    w.notify(notices.invitation(
        w.settings, link.row.email, tenant.name, f"{inviter.name} ({inviter.email})",
        role_text(role.value, link.row.permissions),
        f"{w.settings.base_url}/invite/{link.token}", link.row.expires_at))


@router.post("/t/{slug}/invitations")
async def tenant_invite(request: Request, ctx: CtxDep, viewer: ViewerDep,
                        slug: str) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.INVITE_USERS)
    form = await check_csrf(request, viewer)
    require_fresh_2fa(ctx, viewer, f"/t/{slug}/users")
    email = str(form.get("email", "")).strip()
    role_value = str(form.get("role", ""))
    permissions = frozenset(str(p) for p in form.getlist("permissions"))
    kept = {"email": email, "role": role_value, "permissions": sorted(permissions)}
    try:
        _, sent = await in_unit(ctx, request, viewer, _invite, tenant, viewer.user.id, email,
                                role_value, permissions)
    except UserError as exc:
        return _users_page(request, ctx, viewer, tenant, status_code=400,
                           error=f"The invitation was not sent: {exc}.", form=kept)
    if not sent:
        return _users_page(request, ctx, viewer, tenant,
                           error="The invitation is saved, but the e-mail with its link "
                                 "could not be sent. Revoke it and invite again later, or "
                                 "ask your operator to check the mail settings.")
    return done(f"/t/{slug}/users", "invited")


@router.post("/t/{slug}/invitations/{invitation_id}/revoke")
async def tenant_invite_revoke(request: Request, ctx: CtxDep, viewer: ViewerDep, slug: str,
                               invitation_id: str) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.INVITE_USERS)
    await check_csrf(request, viewer)
    with unit(ctx, request, viewer) as w:
        people.revoke_invitation(w, tenant.id, invitation_id)
    return done(f"/t/{slug}/users", "revoked")


# What a tenant admin does to a person: the service's step, and the word for it done.
_CHANGES: dict[str, tuple[Callable[[Work, str, str, User], object], str]] = {
    "remove": (lambda w, t, uid, by: people.remove_user(w, t, uid), "removed"),
    "suspend": (people.suspend_user, "suspended"),
    "resume": (lambda w, t, uid, by: people.resume_user(w, t, uid), "resumed")}


@router.post("/t/{slug}/users/{user_id}/remove")
async def tenant_user_remove(request: Request, ctx: CtxDep, viewer: ViewerDep, slug: str,
                             user_id: str) -> Response:
    """Remove a person for good: their sessions and API tokens end at once."""
    return await _change_person(request, ctx, viewer, slug, user_id, "remove")


@router.post("/t/{slug}/users/{user_id}/suspend")
async def tenant_user_suspend(request: Request, ctx: CtxDep, viewer: ViewerDep, slug: str,
                              user_id: str) -> Response:
    """Suspend a person: sign-in, sessions and tokens stop until resumed."""
    return await _change_person(request, ctx, viewer, slug, user_id, "suspend")


@router.post("/t/{slug}/users/{user_id}/resume")
async def tenant_user_resume(request: Request, ctx: CtxDep, viewer: ViewerDep, slug: str,
                             user_id: str) -> Response:
    return await _change_person(request, ctx, viewer, slug, user_id, "resume")


async def _change_person(request: Request, ctx: CtxDep, viewer: ViewerDep, slug: str,
                         user_id: str, verb: str) -> Response:
    tenant = tenant_for(ctx, request, viewer, slug, Action.MANAGE_USERS)
    await check_csrf(request, viewer)
    require_fresh_2fa(ctx, viewer, f"/t/{slug}/users")
    change, past = _CHANGES[verb]
    try:
        with unit(ctx, request, viewer) as w:
            change(w, tenant.id, user_id, viewer.user)
    except UserError as exc:
        return _users_page(request, ctx, viewer, tenant, status_code=400,
                           error=f"The user was not {past}: {exc}.")
    if user_id == viewer.user.id:  # removed oneself: the session is gone
        response = RedirectResponse("/login", 303)
        clear_cookie(response, SESSION)
        return response
    return done(f"/t/{slug}/users", past)


# ---------------------------------------------------------------- accepting an invitation


def _invitation_view(ctx: Context, token: str) -> dict[str, Any] | None:
    with ctx.reading() as w:
        row = people.find_invitation(w, token)
        if row is None or row.tenant_id is None:
            return None
        tenant = w.session.get(Tenant, row.tenant_id)
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
    try:
        signed, _ = await in_unit(ctx, request, None, signin.accept_invitation, token, name,
                                  password, request.cookies.get(SESSION.name))
    except LinkGone:
        return _link_gone(request, "invitation")
    except UserError as exc:
        return render(request, "invite/accept.html", invite=invite, token=token, name=name,
                      error=f"{str(exc)[:1].upper()}{str(exc)[1:]}.", status_code=400)
    response = RedirectResponse(home_for(signed.user), 303)
    set_cookie(response, SESSION, signed.session.token)
    return response


# ---------------------------------------------------------------- password reset


@router.get("/password/forgot")
def forgot_form(request: Request, viewer: OptionalViewerDep) -> Response:
    return render(request, "password/forgot.html", viewer=viewer)


def _request_link(w: Work, email: str, address: str) -> bool:
    """Queue a reset link for the address (when it has an account); False when the
    requests are throttled."""
    keys = people.reset_throttle_keys(email, address)
    if attempts_exceeded(w, dict(zip(keys, RESET_LIMITS, strict=True))):
        return False
    record_attempt(w, *keys)
    found = people.request_reset(w, email)
    if found is not None:
        user, link = found
        w.notify(notices.password_reset(
            w.settings, user, f"{w.settings.base_url}/password/reset/{link.token}",
            link.row.expires_at))
    return True


@router.post("/password/forgot")
async def forgot(request: Request, ctx: CtxDep, viewer: OptionalViewerDep) -> Response:
    form = await request.form()
    email = str(form.get("email", ""))[:320]

    def run() -> tuple[bool, list[Any]]:
        with unit(ctx, request) as w:
            allowed = _request_link(w, email, client_address(request))
        return allowed, w.outgoing

    allowed, outgoing = await asyncio.to_thread(run)
    if not allowed:
        return render(request, "password/forgot.html", viewer=viewer, error=RESET_THROTTLED,
                      email=email, status_code=429)
    # The same page, sent as fast, whether the address exists: the mail goes out after
    # the response (a failure is logged, never shown: that would tell).
    response = render(request, "password/forgot.html", viewer=viewer, sent=RESET_SENT)
    for msg in outgoing:
        response.background = BackgroundTask(mail.send, ctx.settings, msg)
    return response


@router.get("/password/reset/{token}")
def reset_form(request: Request, ctx: CtxDep, token: str) -> Response:
    with ctx.reading() as w:
        found = people.find_reset(w, token)
    if found is None:
        return _link_gone(request, "reset")
    return render(request, "password/reset.html", email=found[1].email, token=token)


def _reset(w: Work, token: str, password: str) -> None:
    user = people.reset_password(w, token, password)
    w.notify(notices.password_changed(w.settings, user))


@router.post("/password/reset/{token}")
async def reset(request: Request, ctx: CtxDep, token: str) -> Response:
    # The unguessable link is the proof (there is no session to carry a CSRF token).
    form = await request.form()
    password = str(form.get("password", ""))
    with ctx.reading() as w:
        found = people.find_reset(w, token)
    if found is None:
        return _link_gone(request, "reset")
    email = found[1].email
    if password != str(form.get("confirm", "")):
        return render(request, "password/reset.html", email=email, token=token,
                      error="The password and its repetition differ.", status_code=400)
    try:
        _, sent = await in_unit(ctx, request, None, _reset, token, password)
    except LinkGone:
        return _link_gone(request, "reset")
    except UserError as exc:
        return render(request, "password/reset.html", email=email, token=token,
                      error=f"That password cannot be used: {exc}.", status_code=400)
    return render(request, "password/done.html", mail_error=None if sent else MAIL_FAILED)
