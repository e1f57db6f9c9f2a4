"""People who use the portal (P14, P16): users, their passwords, invitations to a
tenant, password resets, and removal. Signing in is `signin.py`'s.

Nobody can read a password: only its argon2id hash is kept. A link sent by e-mail holds
a random token of which only the sha256 is stored; it works once (redeeming it is a
conditional update, so two browsers racing on it cannot both win) and expires:
invitations after 7 days, password resets after an hour. Removing a person of a tenant
ends their sessions and API tokens at once."""

from __future__ import annotations

import gzip
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

from sqlalchemy import delete, select, update

from doorvoer.access.policy import EXTERNAL_PERMISSIONS, PEOPLE_ROLES, Actor, Role
from doorvoer.accounts.errors import LinkGone
from doorvoer.accounts.models import ApiToken, EmailToken, RecoveryCode, User
from doorvoer.accounts.passwords import hash_password
from doorvoer.accounts.sessions import end_sessions_of
from doorvoer.accounts.throttle import clear_failures
from doorvoer.audit import service as audit
from doorvoer.audit.events import Event
from doorvoer.db import utcnow
from doorvoer.errors import UserError
from doorvoer.tenants.models import Tenant
from doorvoer.unit import Work

MIN_PASSWORD = 12
MAX_PASSWORD = 1024
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
INVITE = "invite"
RESET = "reset"
INVITE_TTL = timedelta(days=7)
RESET_TTL = timedelta(hours=1)
INVITABLE_ROLES = (Role.TENANT_ADMIN, Role.TENANT_MEMBER, Role.EXTERNAL)


@cache
def _common_passwords() -> frozenset[str]:
    # Django's list of 20,000 common passwords (BSD licence; see the NOTICE beside it).
    path = Path(__file__).with_name("common-passwords.txt.gz")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return frozenset(line.strip() for line in f if line.strip())


def check_password_policy(password: str, email: str = "") -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password is too short: use at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"the password is too long: at most {MAX_PASSWORD} characters")
    if password.lower() in _common_passwords():
        raise UserError("that password is on a list of commonly used passwords: pick another")
    local = email.split("@")[0].lower()
    # A short e-mail name ("m@…", "jo@…") is in too many good passwords to refuse them.
    if len(local) >= 4 and local in password.lower():
        raise UserError("the password must not contain your e-mail name")


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not EMAIL.match(email):
        raise UserError(f"{email!r} is not an e-mail address")
    return email


def actor_of(user: User, two_factor: bool) -> Actor:
    perms = frozenset(p for p in user.permissions.split(",") if p)
    return Actor(user_id=user.id, role=Role(user.role), tenant_id=user.tenant_id,
                 permissions=perms, two_factor=two_factor, name=user.email, ref=user.id)


# ---------------------------------------------------------------- users


def create_user(w: Work, email: str, name: str, role: Role, tenant_id: str | None,
                password: str | None, permissions: frozenset[str] = frozenset()) -> User:
    email = normalise_email(email)
    if role not in PEOPLE_ROLES:
        raise UserError(f"role {role!r} is not a role of a person")
    if role.is_staff and tenant_id is not None:
        raise UserError("operator staff belong to no tenant")
    if not role.is_staff and tenant_id is None:
        raise UserError("a tenant user needs a tenant")
    unknown = permissions - set(EXTERNAL_PERMISSIONS)
    if unknown:
        raise UserError(f"unknown permission {sorted(unknown)[0]!r}: use "
                        f"{', '.join(sorted(EXTERNAL_PERMISSIONS))}")
    if role == Role.EXTERNAL and not permissions:
        raise UserError("an external user needs at least one permission")
    if w.session.scalar(select(User.id).where(User.email == email)) is not None:
        raise UserError(f"a user with e-mail {email} exists already")
    user = User(email=email, name=name.strip() or email, role=role.value, tenant_id=tenant_id,
                permissions=",".join(sorted(permissions)))
    if password is not None:
        check_password_policy(password, email)
        user.password_hash = hash_password(password)
        user.password_changed_at = utcnow()
    w.session.add(user)
    w.session.flush()
    audit.record(w, tenant_id, Event.USER_CREATED, f"{email} ({role.value})")
    return user


def set_password(w: Work, user: User, password: str) -> None:
    """Change the password and end every session of the user."""
    check_password_policy(password, user.email)
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    end_sessions_of(w, user.id)


def get_user(w: Work, user_id: str) -> User | None:
    return w.session.get(User, user_id)


def emails_of(w: Work, user_ids: set[str]) -> dict[str, str]:
    if not user_ids:
        return {}
    return {row.id: row.email for row in w.session.execute(
        select(User.id, User.email).where(User.id.in_(user_ids)))}


def users_of_tenant(w: Work, tenant_id: str) -> list[User]:
    return list(w.session.scalars(select(User).where(User.tenant_id == tenant_id)
                                  .order_by(User.email)))


def staff_users(w: Work) -> list[User]:
    return list(w.session.scalars(select(User).where(User.tenant_id.is_(None))
                                  .order_by(User.email)))


def _member(w: Work, tenant_id: str, user_id: str) -> User:
    user = w.session.get(User, user_id)
    if user is None or user.tenant_id != tenant_id:
        raise UserError("there is no such user in this tenant")
    return user


def _person_of(w: Work, tenant_id: str, user_id: str, doing: str) -> User:
    """A person of the tenant, who may be removed or suspended: not its last active admin
    (the tenant would have nobody to manage it)."""
    user = _member(w, tenant_id, user_id)
    if user.role == Role.TENANT_ADMIN.value and user.active:
        admins = w.session.scalars(select(User.id).where(
            User.tenant_id == tenant_id, User.role == Role.TENANT_ADMIN.value,
            User.active)).all()
        if len(admins) <= 1:
            raise UserError(f"this is the tenant's last admin: invite another admin before "
                            f"you {doing} this one")
    return user


def suspend_user(w: Work, tenant_id: str, user_id: str, by: User) -> User:
    """Stop a person for now (an external accountant between engagements, say): they
    cannot sign in, their sessions end at once and their API tokens stop working,
    until a tenant admin resumes them. Nothing of theirs is deleted."""
    if user_id == by.id:
        raise UserError("you cannot suspend yourself")
    user = _person_of(w, tenant_id, user_id, "suspend")
    if user.disabled_at is not None:
        raise UserError("this user was removed: invite them again instead")
    if user.suspended_at is None:
        user.suspended_at = utcnow()
        audit.record(w, tenant_id, Event.USER_SUSPENDED, user.email)
        end_sessions_of(w, user.id)
    return user


def resume_user(w: Work, tenant_id: str, user_id: str) -> User:
    """Lift a suspension: the person signs in again as before."""
    user = _member(w, tenant_id, user_id)
    if user.disabled_at is not None:
        raise UserError("this user was removed: invite them again instead")
    if user.suspended_at is not None:
        user.suspended_at = None
        audit.record(w, tenant_id, Event.USER_RESUMED, user.email)
    return user


def remove_user(w: Work, tenant_id: str, user_id: str) -> User:
    """Disable a person of the tenant for good: their sessions and API tokens end at
    once. The last tenant admin cannot be removed."""
    user = _person_of(w, tenant_id, user_id, "remove")
    if user.disabled_at is not None:
        return user
    s = w.session
    now = utcnow()
    user.disabled_at = now
    audit.record(w, tenant_id, Event.USER_REMOVED, user.email)
    end_sessions_of(w, user.id)
    s.execute(update(ApiToken).where(
        ApiToken.created_by == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now).execution_options(synchronize_session=False))
    return user


# ---------------------------------------------------------------- links by e-mail


@dataclass(frozen=True)
class Link:
    token: str  # goes in the e-mail only
    row: EmailToken


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _issue(w: Work, purpose: str, email: str, ttl: timedelta, **fields: str | None) -> Link:
    token = secrets.token_urlsafe(32)
    row = EmailToken(purpose=purpose, token_hash=_digest(token), email=email,
                     expires_at=utcnow() + ttl, **fields)
    w.session.add(row)
    w.session.flush()
    return Link(token, row)


def _find(w: Work, purpose: str, token: str, now: datetime | None = None
          ) -> EmailToken | None:
    """The live link of a token: of this purpose, unused and not expired."""
    if not token or len(token) > 200:
        return None
    now = now or utcnow()
    return w.session.scalar(select(EmailToken).where(
        EmailToken.token_hash == _digest(token), EmailToken.purpose == purpose,
        EmailToken.used_at.is_(None), EmailToken.expires_at > now))


def _redeem(w: Work, row: EmailToken) -> None:
    """Mark the link used; exactly one caller can succeed."""
    result = w.session.execute(
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


def invite(w: Work, tenant_id: str, email: str, role: Role, permissions: frozenset[str],
           invited_by: User) -> Link:
    """A new invitation to the tenant. A new one for the same address replaces an open
    one. A person removed from this tenant may be invited again."""
    email = normalise_email(email)
    if role not in INVITABLE_ROLES:
        raise UserError("invite as tenant admin, tenant member or external user")
    permissions = _parse_permissions(role, permissions)
    existing = w.session.scalar(select(User).where(User.email == email))
    if existing is not None and not (existing.tenant_id == tenant_id
                                     and existing.disabled_at is not None):
        raise UserError(f"{email} has a Doorvoer account already")
    w.session.execute(delete(EmailToken).where(
        EmailToken.purpose == INVITE, EmailToken.tenant_id == tenant_id,
        EmailToken.email == email, EmailToken.used_at.is_(None)))
    audit.record(w, tenant_id, Event.USER_INVITED, f"{email} ({role.value}"
                 + (f": {', '.join(sorted(permissions))})" if permissions else ")"))
    return _issue(w, INVITE, email, INVITE_TTL, tenant_id=tenant_id, role=role.value,
                  permissions=",".join(sorted(permissions)), created_by=invited_by.id)


def open_invitations(w: Work, tenant_id: str) -> list[EmailToken]:
    return list(w.session.scalars(select(EmailToken).where(
        EmailToken.purpose == INVITE, EmailToken.tenant_id == tenant_id,
        EmailToken.used_at.is_(None), EmailToken.expires_at > utcnow())
        .order_by(EmailToken.created_at)))


def revoke_invitation(w: Work, tenant_id: str, invitation_id: str) -> bool:
    """The link stops working at once. False when there was no such open invitation."""
    row = w.session.scalar(select(EmailToken).where(
        EmailToken.id == invitation_id, EmailToken.purpose == INVITE,
        EmailToken.tenant_id == tenant_id, EmailToken.used_at.is_(None)))
    if row is None:
        return False
    audit.record(w, tenant_id, Event.USER_INVITATION_REVOKED, row.email)
    w.session.delete(row)
    return True


def find_invitation(w: Work, token: str) -> EmailToken | None:
    return _find(w, INVITE, token)


def accept_invitation(w: Work, token: str, name: str, password: str) -> User:
    """Create the invited person (or bring back one removed from the tenant) with the
    invited role, and use up the link."""
    s = w.session
    row = find_invitation(w, token)
    if row is None or row.tenant_id is None or row.role is None:
        raise LinkGone("this invitation is not valid any more")
    tenant = s.get(Tenant, row.tenant_id)
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
    _redeem(w, row)  # first: a racing second accept waits here, then finds it used
    user = s.scalar(select(User).where(User.email == row.email))
    if user is None:
        user = create_user(w, row.email, name, role, row.tenant_id, password, permissions)
    elif user.tenant_id == row.tenant_id and user.disabled_at is not None:
        user.name, user.role = name, role.value
        user.permissions = ",".join(sorted(permissions))
        user.disabled_at = user.suspended_at = None
        # A fresh start: the old second factor belongs to the old membership.
        user.totp_secret = user.totp_pending = None
        user.totp_last_step = None
        user.totp_enabled_at = None
        s.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
        set_password(w, user, password)
    else:
        raise UserError(f"{row.email} has a Doorvoer account already: log in with it")
    audit.record(w, row.tenant_id, Event.USER_JOINED, f"{user.email} ({role.value})",
                 actor=audit.who(actor_of(user, two_factor=False)))
    return user


# ---------------------------------------------------------------- password resets


def reset_throttle_keys(email: str, address: str) -> tuple[str, str]:
    return f"reset-name:{email.strip().lower()}", f"reset-addr:{address}"


def request_reset(w: Work, email: str) -> tuple[User, Link] | None:
    """A reset link for an active user with this address; None when there is none (the
    caller answers the same either way). Only the newest link works."""
    try:
        email = normalise_email(email)
    except UserError:
        return None
    user = w.session.scalar(select(User).where(User.email == email))
    if user is None or not user.active:
        return None
    w.session.execute(delete(EmailToken).where(
        EmailToken.purpose == RESET, EmailToken.user_id == user.id))
    return user, _issue(w, RESET, email, RESET_TTL, user_id=user.id)


def find_reset(w: Work, token: str) -> tuple[EmailToken, User] | None:
    row = _find(w, RESET, token)
    if row is None or row.user_id is None:
        return None
    user = w.session.get(User, row.user_id)
    if user is None or not user.active or user.email != row.email:
        return None
    return row, user


def reset_password(w: Work, token: str, password: str) -> User:
    """Set a new password through a reset link: every session of the user ends, and the
    failed sign-ins counted against the name are forgotten."""
    found = find_reset(w, token)
    if found is None:
        raise LinkGone("this reset link is not valid any more")
    row, user = found
    check_password_policy(password, user.email)
    _redeem(w, row)
    set_password(w, user, password)
    clear_failures(w, "person", user.email)
    audit.record(w, user.tenant_id, Event.PASSWORD_RESET, user.email,
                 actor=audit.who(actor_of(user, two_factor=False)))
    return user
