"""A tenant's erasure (P19), the accounts area's part: its people with their sessions,
recovery codes and e-mail links, its SFTP accounts and keys, its API tokens, and the
failed sign-ins recorded under any of their names. Called by `privacy.erasure` only,
in the unit that erases the rest."""

from __future__ import annotations

from sqlalchemy import delete, or_, select

from doorvoer.accounts.models import (
    Account,
    AccountKey,
    ApiToken,
    EmailToken,
    LoginFailure,
    RecoveryCode,
    User,
    WebSession,
)
from doorvoer.tenants.models import Tenant
from doorvoer.unit import Work


def erase_tenant(w: Work, tenant: Tenant) -> dict[str, int]:
    """Delete every row of the tenant's people and machines; returns the rows per kind."""
    people = select(User.id).where(User.tenant_id == tenant.id)
    emails = list(w.session.scalars(select(User.email).where(User.tenant_id == tenant.id)))
    invited = list(w.session.scalars(select(EmailToken.email).where(
        EmailToken.tenant_id == tenant.id)))
    names = {*emails, *invited}
    accounts = select(Account.id).where(Account.tenant_id == tenant.id)
    # A failed sign-in is keyed on the name typed: a person's e-mail, or NAME@TENANT.
    typed = [LoginFailure.key.endswith(f"@{tenant.slug}", autoescape=True),
             *(LoginFailure.key.endswith(f":{name}", autoescape=True) for name in names)]
    done: dict[str, int] = {
        "sessions": w.changed(delete(WebSession).where(WebSession.user_id.in_(people))),
        "recovery_codes": w.changed(delete(RecoveryCode).where(
            RecoveryCode.user_id.in_(people))),
        "email_links": w.changed(delete(EmailToken).where(or_(
            EmailToken.tenant_id == tenant.id, EmailToken.user_id.in_(people),
            EmailToken.email.in_(names)))),
        "failed_sign_ins": w.changed(delete(LoginFailure).where(or_(*typed))),
        "tokens": w.changed(delete(ApiToken).where(ApiToken.tenant_id == tenant.id)),
        "account_keys": w.changed(delete(AccountKey).where(AccountKey.account_id.in_(accounts))),
        "accounts": w.changed(delete(Account).where(Account.tenant_id == tenant.id)),
        "users": w.changed(delete(User).where(User.tenant_id == tenant.id)),
    }
    return done
