from __future__ import annotations

import re

import asyncssh
from sqlalchemy import select
from sqlalchemy.orm import Session

from doorvoer.accounts.models import Account, AccountKey
from doorvoer.accounts.passwords import hash_password, needs_rehash, verify_password
from doorvoer.errors import UserError
from doorvoer.tenants.models import Tenant
from doorvoer.tenants.service import require_tenant

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
MIN_PASSWORD = 12


def parse_public_key(text: str) -> tuple[str, str]:
    """Return (OpenSSH line, SHA256 fingerprint) or raise UserError."""
    try:
        key = asyncssh.import_public_key(text.strip())
    except (asyncssh.KeyImportError, ValueError):
        raise UserError("the SSH public key is not in a format OpenSSH understands") from None
    return key.export_public_key("openssh").decode().strip(), key.get_fingerprint("sha256")


def create_account(
    session: Session,
    tenant_slug: str,
    name: str,
    public_keys: list[str],
    password: str | None,
) -> Account:
    tenant = require_tenant(session, tenant_slug)
    if not NAME.match(name):
        raise UserError(
            f"account name {name!r}: use lower-case letters, digits, '.', '_' or '-' (max 63)"
        )
    if not public_keys and password is None:
        raise UserError("give an SSH public key (--ssh-key) or a password (--password-stdin)")
    if password is not None and len(password) < MIN_PASSWORD:
        raise UserError(f"the password is too short: use at least {MIN_PASSWORD} characters")
    existing = session.scalar(
        select(Account).where(Account.tenant_id == tenant.id, Account.name == name)
    )
    if existing is not None:
        raise UserError(f"account {name!r} exists already in tenant {tenant_slug!r}")
    account = Account(
        tenant_id=tenant.id,
        name=name,
        password_hash=hash_password(password) if password is not None else None,
    )
    for text in public_keys:
        line, fingerprint = parse_public_key(text)
        account.keys.append(AccountKey(public_key=line, fingerprint=fingerprint))
    session.add(account)
    session.flush()
    return account


def find_login(session: Session, username: str) -> tuple[Account, Tenant] | None:
    """`NAME@TENANT`, or `NAME` where only one tenant has an account of that name."""
    name, _, slug = username.partition("@")
    query = select(Account, Tenant).join(Tenant, Account.tenant_id == Tenant.id)
    query = query.where(Account.name == name, Account.disabled.is_(False))
    if slug:
        query = query.where(Tenant.slug == slug)
    rows = session.execute(query.limit(2)).all()
    if len(rows) != 1:
        return None
    account, tenant = rows[0]
    return account, tenant


def check_password(session: Session, account: Account | None, password: str) -> bool:
    ok = verify_password(account.password_hash if account else None, password)
    if ok and account is not None and account.password_hash and needs_rehash(account.password_hash):
        account.password_hash = hash_password(password)
    return ok


def list_accounts(session: Session, tenant: Tenant) -> list[Account]:
    return list(session.scalars(select(Account).where(Account.tenant_id == tenant.id)))
