"""Machine accounts of a tenant (P14): SFTP logins with their keys and password, and
personal API tokens. Signing in with them is `signin.py`'s.

An SFTP account logs in as `NAME@TENANT` (or `NAME` where unique); the user name picks
the account, the key or password only authenticates it. An API token is shown once,
stored as a hash, scoped, expiring and revocable; it acts for the tenant limited to its
scopes and to what the person who made it may still do: it can never do more than its
scopes or than its creator (a tenant admin's token may read the audit log, a member's
may not). A token whose creator is
disabled or gone stops working."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncssh
from sqlalchemy import func, or_, select, update

from doorvoer.access.policy import Action, Actor, Role, allowed_actions
from doorvoer.accounts.models import Account, AccountKey, ApiToken, User
from doorvoer.accounts.passwords import hash_password
from doorvoer.accounts.people import actor_of
from doorvoer.audit import service as audit
from doorvoer.audit.events import Event
from doorvoer.db import utcnow
from doorvoer.errors import UserError
from doorvoer.tenants.models import Tenant
from doorvoer.tenants.service import require_tenant
from doorvoer.unit import Work

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
MIN_PASSWORD = 12
TOKEN_PREFIX = "dvt_"  # noqa: S105 - a prefix that tells a token, not a secret
# What a token may be allowed, by the name shown on the page and stored in the row.
SCOPES: dict[str, Action] = {
    "upload": Action.UPLOAD,
    "transfers:read": Action.VIEW_TRANSFERS,
    "processes:read": Action.VIEW_PROCESSES,
    "audit:read": Action.VIEW_AUDIT,
    "grants:read": Action.VIEW_GRANTS,
    "grants:manage": Action.MANAGE_GRANTS,
    "export": Action.EXPORT_DATA,
}
SCOPE_LABELS: dict[str, str] = {
    "upload": "Upload files into a process's inbox",
    "transfers:read": "Read transfers (metadata only)",
    "processes:read": "Read processes (names and folders)",
    "audit:read": "Read the audit log, its checkpoints and its check (admins' tokens)",
    "grants:read": "Read support access requests and grants",
    "grants:manage": "Refuse and revoke support access; approve with a fresh code "
                     "(admins' tokens)",
    "export": "Download everything held about the tenant, as one ZIP (admins' tokens)",
}
DEFAULT_DAYS = 90
MAX_DAYS = 365
MAX_TOKEN_NAME = 100
MAX_LIVE_TOKENS = 50  # per tenant: a bound on what an admin (or a hijacked session) can mint
LAST_USED_RESOLUTION = timedelta(seconds=60)  # at most one write per token a minute
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f]")


# ---------------------------------------------------------------- SFTP accounts


def parse_public_key(text: str) -> tuple[str, str]:
    """Return (OpenSSH line, SHA256 fingerprint) or raise UserError."""
    try:
        key = asyncssh.import_public_key(text.strip())
    except (asyncssh.KeyImportError, ValueError):
        raise UserError("the SSH public key is not in a format OpenSSH understands") from None
    return key.export_public_key("openssh").decode().strip(), key.get_fingerprint("sha256")


def create_account(w: Work, tenant_slug: str, name: str, public_keys: list[str],
                   password: str | None) -> Account:
    tenant = require_tenant(w, tenant_slug)
    if not NAME.match(name):
        raise UserError(
            f"account name {name!r}: use lower-case letters, digits, '.', '_' or '-' (max 63)"
        )
    if not public_keys and password is None:
        raise UserError("give an SSH public key (--ssh-key) or a password (--password-stdin)")
    if password is not None and len(password) < MIN_PASSWORD:
        raise UserError(f"the password is too short: use at least {MIN_PASSWORD} characters")
    s = w.session
    if s.scalar(select(Account).where(Account.tenant_id == tenant.id,
                                      Account.name == name)) is not None:
        raise UserError(f"account {name!r} exists already in tenant {tenant_slug!r}")
    account = Account(tenant_id=tenant.id, name=name,
                      password_hash=hash_password(password) if password is not None else None)
    for text in public_keys:
        line, fingerprint = parse_public_key(text)
        account.keys.append(AccountKey(public_key=line, fingerprint=fingerprint))
    s.add(account)
    s.flush()
    audit.record(w, tenant.id, Event.ACCOUNT_CREATED,
                 f"{name}@{tenant.slug} ({len(public_keys)} key(s), "
                 f"{'a' if password is not None else 'no'} password)")
    return account


def find_login(w: Work, username: str) -> tuple[Account, Tenant] | None:
    """`NAME@TENANT`, or `NAME` where only one tenant has an account of that name."""
    name, _, slug = username.partition("@")
    query = select(Account, Tenant).join(Tenant, Account.tenant_id == Tenant.id)
    query = query.where(Account.name == name, Account.disabled.is_(False))
    if slug:
        query = query.where(Tenant.slug == slug)
    rows = w.session.execute(query.limit(2)).all()
    if len(rows) != 1:
        return None
    account, tenant = rows[0]
    return account, tenant


def list_accounts(w: Work, tenant: Tenant) -> list[Account]:
    return list(w.session.scalars(select(Account).where(Account.tenant_id == tenant.id)))


# ---------------------------------------------------------------- API tokens


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


def create_token(w: Work, tenant_id: str, created_by: str | None, name: str,
                 scopes: Iterable[str], days: int = DEFAULT_DAYS) -> NewToken:
    name = name.strip()
    if not name:
        raise UserError("give the token a name, so you know later what uses it")
    if len(name) > MAX_TOKEN_NAME or _BAD_NAME.search(name):
        raise UserError(f"the name must be at most {MAX_TOKEN_NAME} characters, without "
                        "control characters")
    wanted = set(scopes)
    unknown = wanted - set(SCOPES)
    if unknown:
        raise UserError(f"unknown scope {sorted(unknown)[0]!r}: use {', '.join(SCOPES)}")
    if not wanted:
        raise UserError("pick at least one scope: what the token may do")
    if not 1 <= days <= MAX_DAYS:
        raise UserError(f"the token must expire in 1 to {MAX_DAYS} days")
    now = utcnow()
    s = w.session
    live = s.scalar(select(func.count()).select_from(ApiToken).where(
        ApiToken.tenant_id == tenant_id, ApiToken.revoked_at.is_(None),
        ApiToken.expires_at > now)) or 0
    if live >= MAX_LIVE_TOKENS:
        raise UserError(f"this tenant has {live} active tokens already (at most "
                        f"{MAX_LIVE_TOKENS}): revoke the ones no longer used")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(tenant_id=tenant_id, created_by=created_by, name=name,
                   token_hash=_digest(secret),
                   scopes=",".join(s for s in SCOPES if s in wanted),
                   created_at=now, expires_at=now + timedelta(days=days))
    s.add(row)
    s.flush()
    audit.record(w, tenant_id, Event.TOKEN_CREATED, f"{row.id} {name} ({row.scopes}, "
                                                    f"{days} days)")
    return NewToken(row, secret)


def list_tokens(w: Work, tenant_id: str) -> list[ApiToken]:
    return list(w.session.scalars(select(ApiToken).where(ApiToken.tenant_id == tenant_id)
                                  .order_by(ApiToken.created_at.desc())))


def revoke_token(w: Work, tenant_id: str, token_id: str) -> ApiToken | None:
    """Revoke at once; None when the tenant has no such token. Revoking twice is fine."""
    row = w.session.get(ApiToken, token_id)
    if row is None or row.tenant_id != tenant_id:
        return None
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(w, tenant_id, Event.TOKEN_REVOKED, f"{row.id} {row.name}")
    return row


@dataclass(frozen=True)
class TokenUse:
    actor: Actor
    token_id: str
    touch: bool  # `last_used_at` is due for an update (see `mark_used`)


def token_actor(w: Work, secret: str, now: datetime | None = None) -> TokenUse | None:
    """The actor a presented token stands for; None when it is unknown, expired, revoked,
    or its creator can no longer act for the tenant. Only reads."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    now = now or utcnow()
    s = w.session
    row = s.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(secret)))
    if row is None or status_of(row, now) != "active":
        return None
    actions = frozenset(SCOPES[name] for name in scope_names(row))
    role = Role.TENANT_MEMBER
    if row.created_by is not None:
        creator = s.get(User, row.created_by)
        if creator is None or not creator.active \
                or creator.tenant_id != row.tenant_id:
            return None
        actions &= allowed_actions(actor_of(creator, two_factor=False))
        if creator.role == Role.TENANT_ADMIN.value:  # still no more than its scopes
            role = Role.TENANT_ADMIN
    actor = Actor(user_id=None, role=role, tenant_id=row.tenant_id,
                  scopes=actions, name=row.name, ref=row.id)
    touch = row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION
    return TokenUse(actor, row.id, touch)


def mark_used(w: Work, token_id: str, now: datetime | None = None) -> None:
    """Record a use: at most one write per token a minute, whatever the request rate."""
    now = now or utcnow()
    w.execute(update(ApiToken).where(
        ApiToken.id == token_id,
        or_(ApiToken.last_used_at.is_(None),
            ApiToken.last_used_at <= now - LAST_USED_RESOLUTION)).values(last_used_at=now))
