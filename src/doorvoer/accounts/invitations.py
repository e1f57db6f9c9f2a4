"""Links sent by e-mail (P14, P16): invitations to a tenant and password resets.

A link holds a random token; only its sha256 is stored. A link works once (redeeming it
is a conditional update, so two browsers racing on it cannot both win) and expires:
invitations after 7 days, password resets after an hour. Removing a person of a tenant
ends their sessions at once."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from doorvoer.access.policy import EXTERNAL_PERMISSIONS, Role
from doorvoer.accounts.models import ApiToken, EmailToken, RecoveryCode, User, WebSession
from doorvoer.accounts.people import (
    check_password_policy,
    clear_login_failures,
    create_user,
    normalise_email,
    set_password,
)
from doorvoer.db import utcnow
from doorvoer.errors import UserError
from doorvoer.tenants.models import Tenant

INVITE = "invite"
RESET = "reset"
INVITE_TTL = timedelta(days=7)
RESET_TTL = timedelta(hours=1)
INVITABLE_ROLES = (Role.TENANT_ADMIN, Role.TENANT_MEMBER, Role.EXTERNAL)


class LinkGone(UserError):
    """The link was used already, revoked, replaced, or it expired."""


@dataclass(frozen=True)
class Link:
    token: str  # goes in the e-mail only
    row: EmailToken


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _issue(session: Session, purpose: str, email: str, ttl: timedelta,
           **fields: str | None) -> Link:
    token = secrets.token_urlsafe(32)
    row = EmailToken(purpose=purpose, token_hash=_digest(token), email=email,
                     expires_at=utcnow() + ttl, **fields)
    session.add(row)
    session.flush()
    return Link(token, row)


def _find(session: Session, purpose: str, token: str,
          now: datetime | None = None) -> EmailToken | None:
    """The live link of a token: of this purpose, unused and not expired."""
    if not token or len(token) > 200:
        return None
    now = now or utcnow()
    return session.scalar(select(EmailToken).where(
        EmailToken.token_hash == _digest(token), EmailToken.purpose == purpose,
        EmailToken.used_at.is_(None), EmailToken.expires_at > now))


def _redeem(session: Session, row: EmailToken) -> None:
    """Mark the link used; exactly one caller can succeed."""
    result = session.execute(
        update(EmailToken).where(EmailToken.id == row.id, EmailToken.used_at.is_(None))
        .values(used_at=utcnow()).execution_options(synchronize_session=False))
    if getattr(result, "rowcount", 0) != 1:
        raise LinkGone("this link was used already")


# ---------------------------------------------------------------- invitations


def _parse_permissions(role: Role, permissions: frozenset[str]) -> frozenset[str]:
    if role != Role.EXTERNAL:
        return frozenset()
    unknown = permissions - set(EXTERNAL_PERMISSIONS)
    if unknown:
        raise UserError(f"unknown permission {sorted(unknown)[0]!r}")
    if not permissions:
        raise UserError("an external user needs at least one permission: pick what they "
                        "may see")
    return permissions


def invite(session: Session, tenant_id: str, email: str, role: Role,
           permissions: frozenset[str], invited_by: User) -> Link:
    """A new invitation to the tenant. A new one for the same address replaces an open
    one. A person removed from this tenant may be invited again."""
    email = normalise_email(email)
    if role not in INVITABLE_ROLES:
        raise UserError("invite as tenant admin, tenant member or external user")
    permissions = _parse_permissions(role, permissions)
    existing = session.scalar(select(User).where(User.email == email))
    if existing is not None and not (existing.tenant_id == tenant_id
                                     and existing.disabled_at is not None):
        raise UserError(f"{email} has a Doorvoer account already")
    session.execute(delete(EmailToken).where(
        EmailToken.purpose == INVITE, EmailToken.tenant_id == tenant_id,
        EmailToken.email == email, EmailToken.used_at.is_(None)))
    return _issue(session, INVITE, email, INVITE_TTL, tenant_id=tenant_id, role=role.value,
                  permissions=",".join(sorted(permissions)), created_by=invited_by.id)


def open_invitations(session: Session, tenant_id: str) -> list[EmailToken]:
    return list(session.scalars(select(EmailToken).where(
        EmailToken.purpose == INVITE, EmailToken.tenant_id == tenant_id,
        EmailToken.used_at.is_(None), EmailToken.expires_at > utcnow())
        .order_by(EmailToken.created_at)))


def revoke_invitation(session: Session, tenant_id: str, invitation_id: str) -> bool:
    """The link stops working at once. False when there was no such open invitation."""
    result = session.execute(delete(EmailToken).where(
        EmailToken.id == invitation_id, EmailToken.purpose == INVITE,
        EmailToken.tenant_id == tenant_id, EmailToken.used_at.is_(None)))
    return bool(getattr(result, "rowcount", 0))


def find_invitation(session: Session, token: str) -> EmailToken | None:
    return _find(session, INVITE, token)


def accept_invitation(session: Session, token: str, name: str, password: str) -> User:
    """Create the invited person (or bring back one removed from the tenant) with the
    invited role, and use up the link."""
    row = find_invitation(session, token)
    if row is None or row.tenant_id is None or row.role is None:
        raise LinkGone("this invitation is not valid any more")
    tenant = session.get(Tenant, row.tenant_id)
    if tenant is None or tenant.contract != "active":
        raise LinkGone("this invitation is not valid any more: the tenant's contract has ended")
    name = name.strip()
    if not name:
        raise UserError("enter your name")
    if len(name) > 200:
        raise UserError("the name is too long: at most 200 characters")
    check_password_policy(password, row.email)
    role = Role(row.role)
    permissions = frozenset(p for p in row.permissions.split(",") if p)
    _redeem(session, row)  # first: a racing second accept waits here, then finds it used
    user = session.scalar(select(User).where(User.email == row.email))
    if user is None:
        user = create_user(session, row.email, name, role, row.tenant_id, password,
                           permissions)
    elif user.tenant_id == row.tenant_id and user.disabled_at is not None:
        user.name, user.role = name, role.value
        user.permissions = ",".join(sorted(permissions))
        user.disabled_at = None
        # A fresh start: the old second factor belongs to the old membership.
        user.totp_secret = user.totp_pending = None
        user.totp_last_step = None
        user.totp_enabled_at = None
        session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
        set_password(session, user, password)
    else:
        raise UserError(f"{row.email} has a Doorvoer account already: log in with it")
    return user


# ---------------------------------------------------------------- removing people


def remove_user(session: Session, tenant_id: str, user_id: str) -> User:
    """Disable a person of the tenant: their sessions and API tokens end at once. The
    last tenant admin cannot be removed (the tenant would have nobody to manage it)."""
    user = session.get(User, user_id)
    if user is None or user.tenant_id != tenant_id:
        raise UserError("there is no such user in this tenant")
    if user.disabled_at is not None:
        return user
    if user.role == Role.TENANT_ADMIN.value:
        admins = session.scalars(select(User.id).where(
            User.tenant_id == tenant_id, User.role == Role.TENANT_ADMIN.value,
            User.disabled_at.is_(None))).all()
        if len(admins) <= 1:
            raise UserError("this is the tenant's last admin: invite another admin first")
    now = utcnow()
    user.disabled_at = now
    session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    session.execute(update(ApiToken).where(
        ApiToken.created_by == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now).execution_options(synchronize_session=False))
    return user


# ---------------------------------------------------------------- password resets


def reset_throttle_keys(email: str, address: str) -> tuple[str, str]:
    return f"reset-name:{email.strip().lower()}", f"reset-addr:{address}"


def request_reset(session: Session, email: str) -> tuple[User, Link] | None:
    """A reset link for an active user with this address; None when there is none (the
    caller answers the same either way). Only the newest link works."""
    try:
        email = normalise_email(email)
    except UserError:
        return None
    user = session.scalar(select(User).where(User.email == email))
    if user is None or user.disabled_at is not None:
        return None
    session.execute(delete(EmailToken).where(
        EmailToken.purpose == RESET, EmailToken.user_id == user.id))
    return user, _issue(session, RESET, email, RESET_TTL, user_id=user.id)


def find_reset(session: Session, token: str) -> tuple[EmailToken, User] | None:
    row = _find(session, RESET, token)
    if row is None or row.user_id is None:
        return None
    user = session.get(User, row.user_id)
    if user is None or user.disabled_at is not None or user.email != row.email:
        return None
    return row, user


def reset_password(session: Session, token: str, password: str) -> User:
    """Set a new password through a reset link: every session of the user ends."""
    found = find_reset(session, token)
    if found is None:
        raise LinkGone("this reset link is not valid any more")
    row, user = found
    check_password_policy(password, user.email)
    _redeem(session, row)
    set_password(session, user, password)
    clear_login_failures(session, user.email)
    return user
