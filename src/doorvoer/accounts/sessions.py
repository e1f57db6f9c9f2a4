"""Portal sessions (P14): the only code that creates and ends their rows.

A session lives in the database (any node can serve any request); the cookie holds a
random token, the row its sha256. Sessions rotate at sign-in, end at sign-out and on a
password change, and time out when idle and absolutely."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete

from doorvoer.accounts.models import User, WebSession
from doorvoer.config import Settings
from doorvoer.db import utcnow
from doorvoer.unit import Work


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SessionInfo:
    token: str  # goes in the cookie; only its hash is stored
    row: WebSession


def start_session(w: Work, user: User, two_factor: bool, pending_2fa: bool,
                  reauth_at: datetime | None = None) -> SessionInfo:
    """A new session (a new token: sessions rotate at sign-in)."""
    token = secrets.token_urlsafe(32)
    row = WebSession(id=_digest(token), user_id=user.id, csrf_token=secrets.token_urlsafe(24),
                     two_factor=two_factor, pending_2fa=pending_2fa,
                     reauth_at=reauth_at or (utcnow() if two_factor else None))
    w.session.add(row)
    w.session.flush()
    return SessionInfo(token, row)


def load_session(w: Work, token: str | None, now: datetime | None = None
                 ) -> tuple[WebSession, User] | None:
    """The live session of a cookie token, touched; None when absent or timed out (a
    timed-out session ends here)."""
    if not token:
        return None
    now = now or utcnow()
    s = w.session
    row = s.get(WebSession, _digest(token))
    if row is None:
        return None
    settings = w.settings
    idle = now - row.last_seen_at > timedelta(seconds=settings.session_idle_s)
    old = now - row.created_at > timedelta(seconds=settings.session_absolute_s)
    user = s.get(User, row.user_id)
    if idle or old or user is None or not user.active:
        s.delete(row)
        return None
    row.last_seen_at = now
    return row, user


def get_session(w: Work, session_id: str) -> WebSession | None:
    return w.session.get(WebSession, session_id)


def end_session(w: Work, token: str | None) -> None:
    if token:
        end_session_row(w, _digest(token))


def end_session_row(w: Work, session_id: str) -> None:
    w.session.execute(delete(WebSession).where(WebSession.id == session_id))


def end_sessions_of(w: Work, user_id: str) -> None:
    """Every session of the user ends (a new password, 2FA turned on, removal)."""
    w.session.execute(delete(WebSession).where(WebSession.user_id == user_id))


def fresh_2fa(settings: Settings, row: WebSession, now: datetime | None = None) -> bool:
    """Whether the session passed a second-factor check recently (re-authentication)."""
    now = now or utcnow()
    return row.reauth_at is not None and now - row.reauth_at <= timedelta(
        seconds=settings.reauth_s)
