"""People who use the portal: users, passwords, login throttling and sessions (P14).

Nobody can read a password: only its argon2id hash is kept. A login answers the same
way, in about the same time, whether the account exists or not."""

from __future__ import annotations

import gzip
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from doorvoer.access.policy import EXTERNAL_PERMISSIONS, PEOPLE_ROLES, Actor, Role
from doorvoer.accounts.models import LoginFailure, User, WebSession
from doorvoer.accounts.passwords import hash_password, needs_rehash, verify_password
from doorvoer.config import Settings
from doorvoer.db import utcnow
from doorvoer.errors import UserError

MIN_PASSWORD = 12
MAX_PASSWORD = 1024
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
LOGIN_FAILURES_PER_NAME = 5
LOGIN_FAILURES_PER_ADDRESS = 20
LOGIN_WINDOW = timedelta(minutes=15)


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
                 permissions=perms, two_factor=two_factor)


def create_user(session: Session, email: str, name: str, role: Role, tenant_id: str | None,
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
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise UserError(f"a user with e-mail {email} exists already")
    user = User(email=email, name=name.strip() or email, role=role.value, tenant_id=tenant_id,
                permissions=",".join(sorted(permissions)))
    if password is not None:
        check_password_policy(password, email)
        user.password_hash = hash_password(password)
        user.password_changed_at = utcnow()
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, user: User, password: str) -> None:
    """Change the password and end every session of the user."""
    check_password_policy(password, user.email)
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    session.execute(delete(WebSession).where(WebSession.user_id == user.id))


# ---------------------------------------------------------------- logging in


def _failure_keys(email: str, address: str) -> tuple[str, str]:
    return f"name:{email.strip().lower()}", f"addr:{address}"


def login_throttled(session: Session, email: str, address: str) -> bool:
    """Keyed on the submitted name whether it exists or not, and on the address."""
    since = utcnow() - LOGIN_WINDOW
    by_name, by_addr = _failure_keys(email, address)

    def count(key: str) -> int:
        return session.scalar(select(func.count()).select_from(LoginFailure).where(
            LoginFailure.key == key, LoginFailure.at >= since)) or 0

    return count(by_name) >= LOGIN_FAILURES_PER_NAME or count(by_addr) >= \
        LOGIN_FAILURES_PER_ADDRESS


def record_login_failure(session: Session, email: str, address: str) -> None:
    for key in _failure_keys(email, address):
        session.add(LoginFailure(key=key))
    session.execute(delete(LoginFailure).where(LoginFailure.at < utcnow() - LOGIN_WINDOW))


class WrongPassword(UserError):
    """The current password given to confirm a change is not right."""


def attempts_exceeded(session: Session, limits: dict[str, int]) -> bool:
    """Whether any key has reached its limit of recorded attempts within the window
    (the same table as login failures, other key prefixes: e.g. password reset requests)."""
    since = utcnow() - LOGIN_WINDOW
    for key, limit in limits.items():
        count = session.scalar(select(func.count()).select_from(LoginFailure).where(
            LoginFailure.key == key, LoginFailure.at >= since)) or 0
        if count >= limit:
            return True
    return False


def record_attempt(session: Session, *keys: str) -> None:
    for key in keys:
        session.add(LoginFailure(key=key))


def clear_login_failures(session: Session, email: str) -> None:
    """After a successful password reset the owner may log in again at once."""
    by_name, _ = _failure_keys(email, "")
    session.execute(delete(LoginFailure).where(LoginFailure.key == by_name))


def change_password(session: Session, user: User, current: str, new: str) -> None:
    """Change one's own password: the current one must be right. Ends every session of
    the user (the caller starts a new one for the browser that asked)."""
    if not verify_password(user.password_hash, current):
        raise WrongPassword("the current password is not right")
    set_password(session, user, new)


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The user whose password this is, or None. Always verifies one hash, so the time
    taken does not tell whether the account exists."""
    try:
        email = normalise_email(email)
    except UserError:
        email = ""
    user = session.scalar(select(User).where(User.email == email)) if email else None
    usable = user is not None and user.disabled_at is None and user.password_hash is not None
    ok = verify_password(user.password_hash if usable and user else None, password)
    if not (ok and usable and user):
        return None
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


# ---------------------------------------------------------------- sessions


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SessionInfo:
    token: str  # goes in the cookie; only its hash is stored
    row: WebSession


def start_session(session: Session, user: User, two_factor: bool,
                  pending_2fa: bool) -> SessionInfo:
    """A new session (a new token: sessions rotate at login)."""
    token = secrets.token_urlsafe(32)
    row = WebSession(id=_digest(token), user_id=user.id, csrf_token=secrets.token_urlsafe(24),
                     two_factor=two_factor, pending_2fa=pending_2fa,
                     reauth_at=utcnow() if two_factor else None)
    session.add(row)
    session.flush()
    return SessionInfo(token, row)


def load_session(session: Session, settings: Settings, token: str | None,
                 now: datetime | None = None) -> tuple[WebSession, User] | None:
    """The live session of a cookie token, touched; None when absent or timed out."""
    if not token:
        return None
    now = now or utcnow()
    row = session.get(WebSession, _digest(token))
    if row is None:
        return None
    idle = now - row.last_seen_at > timedelta(seconds=settings.session_idle_s)
    old = now - row.created_at > timedelta(seconds=settings.session_absolute_s)
    user = session.get(User, row.user_id)
    if idle or old or user is None or user.disabled_at is not None:
        session.delete(row)
        return None
    row.last_seen_at = now
    return row, user


def end_session(session: Session, token: str | None) -> None:
    if token:
        session.execute(delete(WebSession).where(WebSession.id == _digest(token)))


def fresh_2fa(settings: Settings, row: WebSession, now: datetime | None = None) -> bool:
    """Whether the session passed a second-factor check recently (re-authentication)."""
    now = now or utcnow()
    return row.reauth_at is not None and now - row.reauth_at <= timedelta(
        seconds=settings.reauth_s)


def get_user(session: Session, user_id: str) -> User | None:
    return session.get(User, user_id)


def users_of_tenant(session: Session, tenant_id: str) -> list[User]:
    return list(session.scalars(select(User).where(User.tenant_id == tenant_id)
                                .order_by(User.email)))


def staff_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).where(User.tenant_id.is_(None))
                                .order_by(User.email)))
