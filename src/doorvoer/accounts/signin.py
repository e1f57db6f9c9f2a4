"""Signing in (P14): one service for the portal, the API and SFTP.

Every check runs the same sequence: the throttle (in the database, shared by every
door and node), the secret (password, key, token, TOTP code or recovery code), a
recorded failure when it is wrong, and on success the session row (portal) or the
login (SFTP, API). A sign-in answers the same way, in about the same time, whether the
name exists or not. The doors only translate the outcome (a page, an SFTP refusal, a
401); `Throttled` says that even a right secret is refused for now."""

from __future__ import annotations

from dataclasses import dataclass

import asyncssh
from sqlalchemy import select

from doorvoer.access.policy import Actor, Role
from doorvoer.accounts import notices, totp
from doorvoer.accounts.errors import Throttled, WrongPassword
from doorvoer.accounts.machines import TokenUse, find_login, mark_used, token_actor
from doorvoer.accounts.models import User, WebSession
from doorvoer.accounts.passwords import hash_password, needs_rehash, verify_password
from doorvoer.accounts.people import accept_invitation as accept
from doorvoer.accounts.people import actor_of, normalise_email, set_password
from doorvoer.accounts.sessions import (
    SessionInfo,
    end_session,
    end_session_row,
    end_sessions_of,
    get_session,
    start_session,
)
from doorvoer.accounts.throttle import record_failure, throttled
from doorvoer.audit import service as audit
from doorvoer.audit.events import Event
from doorvoer.db import utcnow
from doorvoer.errors import UserError
from doorvoer.unit import Work

PERSON, ACCOUNT = "person", "account"  # the throttle's two kinds of name


def _guard(w: Work, kind: str, name: str, address: str) -> None:
    if throttled(w, kind, name, address):
        raise Throttled


def _person(user: User) -> audit.Who:
    return audit.who(actor_of(user, two_factor=False))


def _failed(w: Work, email: str, address: str, step: str) -> None:
    """A failed sign-in: counted by the throttle, and in the audit log of the person's
    tenant (the operator's own log for staff and for names that match nobody)."""
    record_failure(w, PERSON, email, address)
    try:
        known = w.session.scalar(select(User).where(User.email == normalise_email(email)))
    except UserError:
        known = None
    audit.record(w, known.tenant_id if known else None, Event.PORTAL_LOGIN_FAILED,
                 f"{email.strip().lower()[:320]}: {step}",
                 actor=_person(known) if known else audit.Who("person", None, None, None))


# ---------------------------------------------------------------- people (portal)


def authenticate(w: Work, email: str, password: str) -> User | None:
    """The user whose password this is, or None. Always verifies one hash, so the time
    taken does not tell whether the account exists."""
    try:
        email = normalise_email(email)
    except UserError:
        email = ""
    user = w.session.scalar(select(User).where(User.email == email)) if email else None
    usable = user is not None and user.active and user.password_hash is not None
    ok = verify_password(user.password_hash if usable and user else None, password)
    if not (ok and usable and user):
        return None
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


@dataclass(frozen=True)
class SignedIn:
    user: User
    session: SessionInfo

    @property
    def pending_2fa(self) -> bool:
        return self.session.row.pending_2fa


def sign_in(w: Work, email: str, password: str, address: str) -> SignedIn | None:
    """The password step: a new session, still waiting for the code when the user has
    two-factor. None (the failure recorded) when the e-mail and password do not match."""
    _guard(w, PERSON, email, address)
    user = authenticate(w, email, password)
    if user is None:
        _failed(w, email, address, "password")
        return None
    has_2fa = user.totp_secret is not None
    if not has_2fa:
        audit.record(w, user.tenant_id, Event.PORTAL_LOGIN_SUCCEEDED, "password",
                     actor=_person(user))
    return SignedIn(user, start_session(w, user, two_factor=False, pending_2fa=has_2fa))


def _owner(w: Work, session_id: str) -> tuple[WebSession, User]:
    row = get_session(w, session_id)
    user = w.session.get(User, row.user_id) if row is not None else None
    if row is None or user is None:
        raise UserError("the session has ended: sign in again")
    return row, user


def sign_out(w: Work, token: str | None, user: User) -> None:
    end_session(w, token)
    audit.record(w, user.tenant_id, Event.PORTAL_LOGOUT, user.email, actor=_person(user))


def accept_invitation(w: Work, token: str, name: str, password: str,
                      old_token: str | None) -> SignedIn:
    """Accepting an invitation signs the new person in: whoever was signed in in this
    browser is not any more."""
    user = accept(w, token, name, password)
    end_session(w, old_token)
    return SignedIn(user, start_session(w, user, two_factor=False, pending_2fa=False))


def second_factor(w: Work, session_id: str, code: str, address: str) -> SessionInfo | None:
    """The code step of a session whose password passed: a TOTP code, or a recovery
    code (used up, and the user told). On success the session is replaced by one that
    has passed both factors; None (the failure recorded) when the code is wrong."""
    row, user = _owner(w, session_id)
    _guard(w, PERSON, user.email, address)
    used_recovery = False
    ok = totp.verify_totp(w, user, code)
    if not ok and "-" in code:
        ok = used_recovery = totp.use_recovery_code(w, user, code)
    if not ok:
        _failed(w, user.email, address, "second factor")
        return None
    end_session_row(w, row.id)
    info = start_session(w, user, two_factor=True, pending_2fa=False)
    audit.record(w, user.tenant_id, Event.PORTAL_LOGIN_SUCCEEDED,
                 "password and recovery code" if used_recovery else "password and code",
                 actor=_person(user))
    if used_recovery:
        audit.record(w, user.tenant_id, Event.RECOVERY_CODE_USED, user.email,
                     actor=_person(user))
        w.notify(notices.recovery_code_used(w.settings, user,
                                            totp.remaining_recovery_codes(w, user)))
    return info


def reauthenticate(w: Work, session_id: str, code: str, address: str) -> bool:
    """A fresh second-factor check for a sensitive action; False (recorded) when the
    code is wrong."""
    row, user = _owner(w, session_id)
    _guard(w, PERSON, user.email, address)
    if not totp.verify_totp(w, user, code):
        _failed(w, user.email, address, "fresh second-factor check")
        return False
    row.reauth_at = utcnow()
    row.two_factor = True
    return True


def change_password(w: Work, session_id: str, current: str, new: str,
                    address: str) -> SessionInfo:
    """Change one's own password: the current one must be right (WrongPassword, the
    failure recorded). Every session of the user ends; the browser that asked gets a new
    one, as strong as the one it replaces. The user is told by mail."""
    row, user = _owner(w, session_id)
    _guard(w, PERSON, user.email, address)
    if not verify_password(user.password_hash, current):
        _failed(w, user.email, address, "current password")
        raise WrongPassword("the current password is not right")
    two_factor, reauth_at = row.two_factor, row.reauth_at
    set_password(w, user, new)  # ends every session of the user
    audit.record(w, user.tenant_id, Event.PASSWORD_CHANGED, user.email)
    w.notify(notices.password_changed(w.settings, user))
    return start_session(w, user, two_factor=two_factor, pending_2fa=False,
                         reauth_at=reauth_at)


def confirm_2fa(w: Work, session_id: str, code: str
                ) -> tuple[SessionInfo, list[str], User] | None:
    """Turn two-factor on with the first code of the pending secret. Sessions without
    the second factor end; this browser gets a new one with it, and ten recovery codes
    (shown once). None when the code does not match."""
    _, user = _owner(w, session_id)
    if not totp.confirm_setup(w, user, code):
        return None
    codes = totp.new_recovery_codes(w, user)
    audit.record(w, user.tenant_id, Event.TWO_FACTOR_ENABLED, user.email)
    end_sessions_of(w, user.id)
    w.notify(notices.two_factor_enabled(w.settings, user))
    return start_session(w, user, two_factor=True, pending_2fa=False), codes, user


def disable_2fa(w: Work, session_id: str) -> bool:
    """Turn two-factor off (UserError for staff). False when it was off already."""
    row, user = _owner(w, session_id)
    if user.totp_secret is None:
        return False
    totp.disable(w, user)
    audit.record(w, user.tenant_id, Event.TWO_FACTOR_DISABLED, user.email)
    row.two_factor = False
    w.notify(notices.two_factor_disabled(w.settings, user))
    return True


# ---------------------------------------------------------------- machine accounts


@dataclass(frozen=True)
class Login:
    """Who is logged in on an SFTP connection."""

    account_id: str
    account_name: str
    tenant_id: str
    tenant_slug: str

    @property
    def actor(self) -> Actor:
        """The account as the policy and the audit log see it."""
        return Actor(user_id=None, role=Role.ACCOUNT, tenant_id=self.tenant_id,
                     name=f"{self.account_name}@{self.tenant_slug}", ref=self.account_id)


def sign_in_account(w: Work, username: str, address: str, *, password: str | None = None,
                    key: asyncssh.SSHKey | None = None) -> Login | None:
    """An SFTP login by password or public key. A wrong password is a recorded failure;
    a key that is not the account's is not (clients offer several keys in turn, so a
    miss is not a guess at a secret)."""
    _guard(w, ACCOUNT, username, address)
    found = find_login(w, username)
    account = found[0] if found else None
    ok = False
    if password is not None:
        ok = verify_password(account.password_hash if account else None, password)
        if ok and account is not None and account.password_hash \
                and needs_rehash(account.password_hash):
            account.password_hash = hash_password(password)
        if not ok:
            record_failure(w, ACCOUNT, username, address)
            audit.record(w, found[1].id if found else None, Event.SFTP_LOGIN_FAILED,
                         f"{username[:200]}: password")
    elif key is not None and account is not None:
        offered = key.export_public_key("openssh").split()[:2]
        ok = any(k.public_key.encode().split()[:2] == offered for k in account.keys)
    if not ok or found is None:
        return None
    account, tenant = found
    return Login(account.id, account.name, tenant.id, tenant.slug)


def signed_in_account(w: Work, login: Login, method: str) -> None:
    """Record an SFTP login once it is complete (asyncssh checks a key twice)."""
    audit.record(w, login.tenant_id, Event.SFTP_LOGIN_SUCCEEDED, method,
                 actor=audit.who(login.actor))


def sftp_session_started(w: Work, login: Login) -> None:
    audit.record(w, login.tenant_id, Event.SFTP_SESSION_STARTED, None,
                 actor=audit.who(login.actor))


def sign_in_token(w: Work, secret: str) -> TokenUse | None:
    """An API request's bearer token: the actor it stands for, or None."""
    return token_actor(w, secret)


def token_session(w: Work, use: TokenUse) -> None:
    """A token used again after a pause (at most once a minute): its last use, and an
    API session start in the tenant's audit log."""
    mark_used(w, use.token_id)
    audit.record(w, use.actor.tenant_id, Event.API_SESSION_STARTED, None,
                 actor=audit.who(use.actor))
