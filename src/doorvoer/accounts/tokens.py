"""Personal API tokens of a tenant (P14): shown once, stored as a hash, scoped, expiring,
revocable.

A token acts as a tenant member limited to its scopes, and to what the person who made
it may still do: it can never do more than its scopes, than a tenant member, or than
its creator. A token whose creator is disabled or gone stops working."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from doorvoer.access.policy import Action, Actor, Role, allowed_actions
from doorvoer.accounts.models import ApiToken, User
from doorvoer.accounts.people import actor_of
from doorvoer.db import utcnow
from doorvoer.errors import UserError

PREFIX = "dvt_"
# What a token may be allowed, by the name shown on the page and stored in the row.
SCOPES: dict[str, Action] = {
    "upload": Action.UPLOAD,
    "transfers:read": Action.VIEW_TRANSFERS,
    "processes:read": Action.VIEW_PROCESSES,
}
SCOPE_LABELS: dict[str, str] = {
    "upload": "Upload files into a process's inbox",
    "transfers:read": "Read transfers (metadata only)",
    "processes:read": "Read processes (names and folders)",
}
DEFAULT_DAYS = 90
MAX_DAYS = 365
MAX_NAME = 100
MAX_LIVE_TOKENS = 50  # per tenant: a bound on what an admin (or a hijacked session) can mint
LAST_USED_RESOLUTION = timedelta(seconds=60)  # at most one write per token a minute
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f]")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def scope_names(token: ApiToken) -> list[str]:
    return [s for s in token.scopes.split(",") if s in SCOPES]


def status_of(token: ApiToken, now: datetime | None = None) -> str:
    now = now or utcnow()
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at <= now:
        return "expired"
    return "active"


@dataclass(frozen=True)
class NewToken:
    row: ApiToken
    secret: str  # shown once; only its hash is stored


def create_token(session: Session, tenant_id: str, created_by: str | None, name: str,
                 scopes: Iterable[str], days: int = DEFAULT_DAYS) -> NewToken:
    name = name.strip()
    if not name:
        raise UserError("give the token a name, so you know later what uses it")
    if len(name) > MAX_NAME or _BAD_NAME.search(name):
        raise UserError(f"the name must be at most {MAX_NAME} characters, without control "
                        "characters")
    wanted = set(scopes)
    unknown = wanted - set(SCOPES)
    if unknown:
        raise UserError(f"unknown scope {sorted(unknown)[0]!r}: use "
                        f"{', '.join(SCOPES)}")
    if not wanted:
        raise UserError("pick at least one scope: what the token may do")
    if not 1 <= days <= MAX_DAYS:
        raise UserError(f"the token must expire in 1 to {MAX_DAYS} days")
    now = utcnow()
    live = session.scalar(select(func.count()).select_from(ApiToken).where(
        ApiToken.tenant_id == tenant_id, ApiToken.revoked_at.is_(None),
        ApiToken.expires_at > now)) or 0
    if live >= MAX_LIVE_TOKENS:
        raise UserError(f"this tenant has {live} active tokens already (at most "
                        f"{MAX_LIVE_TOKENS}): revoke the ones no longer used")
    secret = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(tenant_id=tenant_id, created_by=created_by, name=name,
                   token_hash=_digest(secret),
                   scopes=",".join(s for s in SCOPES if s in wanted),
                   created_at=now, expires_at=now + timedelta(days=days))
    session.add(row)
    session.flush()
    return NewToken(row, secret)


def list_tokens(session: Session, tenant_id: str) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).where(ApiToken.tenant_id == tenant_id)
                                .order_by(ApiToken.created_at.desc())))


def revoke_token(session: Session, tenant_id: str, token_id: str) -> ApiToken | None:
    """Revoke at once; None when the tenant has no such token. Revoking twice is fine."""
    row = session.get(ApiToken, token_id)
    if row is None or row.tenant_id != tenant_id:
        return None
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row


@dataclass(frozen=True)
class TokenUse:
    actor: Actor
    token_id: str
    touch: bool  # `last_used_at` is due for an update (see `mark_used`)


def token_actor(session: Session, secret: str, now: datetime | None = None) -> TokenUse | None:
    """The actor a presented token stands for; None when it is unknown, expired, revoked,
    or its creator can no longer act for the tenant. Only reads (a read transaction)."""
    if not secret.startswith(PREFIX) or len(secret) > 200:
        return None
    now = now or utcnow()
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(secret)))
    if row is None or status_of(row, now) != "active":
        return None
    actions = frozenset(SCOPES[s] for s in scope_names(row))
    if row.created_by is not None:
        creator = session.get(User, row.created_by)
        if creator is None or creator.disabled_at is not None \
                or creator.tenant_id != row.tenant_id:
            return None
        actions &= allowed_actions(actor_of(creator, two_factor=False))
    actor = Actor(user_id=None, role=Role.TENANT_MEMBER, tenant_id=row.tenant_id,
                  scopes=actions)
    touch = row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION
    return TokenUse(actor, row.id, touch)


def mark_used(session: Session, token_id: str, now: datetime | None = None) -> None:
    """Record a use: at most one write per token a minute, whatever the request rate."""
    now = now or utcnow()
    session.execute(update(ApiToken).where(
        ApiToken.id == token_id,
        or_(ApiToken.last_used_at.is_(None),
            ApiToken.last_used_at <= now - LAST_USED_RESOLUTION)).values(last_used_at=now))
