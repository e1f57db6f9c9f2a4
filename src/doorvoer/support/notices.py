"""E-mails about support access (P12): a tenant's admins and contact hear of every
request, approval, first use and expiry; the staff member hears the answer."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

from sqlalchemy import select

from doorvoer.access.policy import Role
from doorvoer.accounts.models import User
from doorvoer.config import Settings
from doorvoer.mail import message
from doorvoer.support.models import Grant, InspectionWindow
from doorvoer.tenants.contacts import address_for
from doorvoer.tenants.models import Tenant
from doorvoer.unit import Work


def tenant_recipients(w: Work, tenant: Tenant, purpose: str = "contact") -> list[str]:
    """Who hears of support access and support's messages (and, by `purpose`, of other
    things): the tenant's admins and its address for that purpose (P9)."""
    admins = w.session.scalars(select(User.email).where(
        User.tenant_id == tenant.id, User.role == Role.TENANT_ADMIN.value,
        User.active).order_by(User.email))
    return list(dict.fromkeys([*admins, *filter(None, [address_for(tenant, purpose)])]))


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _gdpr(settings: Settings, tenant: Tenant) -> str:
    return f"{settings.base_url}/t/{tenant.slug}/gdpr"


def requested(settings: Settings, to: str, tenant: Tenant, grant: Grant) -> EmailMessage:
    return message(
        settings, to, f"Support asks for access to {tenant.name}",
        f"{grant.staff_email} (Doorvoer support) asks for access to {tenant.name}'s data.\n"
        f"Scopes: {', '.join(grant.requested_list)}\nTicket: {grant.ticket}\n"
        f"Reason: {grant.reason}\n\n"
        f"Nothing is open until an admin of {tenant.name} approves. Approve or refuse it "
        f"at {_gdpr(settings, tenant)} before {_when(grant.expires_at)}; unanswered, the "
        "request lapses then.")


def approved(settings: Settings, to: str, tenant: Tenant, grant: Grant) -> EmailMessage:
    return message(
        settings, to, f"Support access to {tenant.name} approved",
        f"{grant.answered_by} approved access to {tenant.name} for {grant.staff_email}.\n"
        f"Scopes: {', '.join(grant.scope_list)}\nUntil: {_when(grant.expires_at)}\n"
        f"Ticket: {grant.ticket}\n\nRevoke it at any moment at {_gdpr(settings, tenant)}.")


def refused(settings: Settings, tenant: Tenant, grant: Grant) -> EmailMessage:
    return message(
        settings, grant.staff_email, f"Access to {tenant.name} refused",
        f"{grant.answered_by} refused your request for access to {tenant.name} "
        f"(ticket {grant.ticket}).")


def first_used(settings: Settings, to: str, tenant: Tenant, grant: Grant) -> EmailMessage:
    return message(
        settings, to, f"Support is using its access to {tenant.name}",
        f"{grant.staff_email} has started to use the access to {tenant.name} approved by "
        f"{grant.answered_by} (ticket {grant.ticket}); it ends {_when(grant.expires_at)}.\n"
        f"Every request is in your audit log. Revoke it at {_gdpr(settings, tenant)}.")


def ended(settings: Settings, to: str, tenant: Tenant, grant: Grant,
          how: str) -> EmailMessage:
    return message(
        settings, to, f"Support access to {tenant.name} {how}",
        f"The support access of {grant.staff_email} to {tenant.name} (ticket "
        f"{grant.ticket}) {how} at {_when(grant.ended_at or grant.expires_at)}. "
        "Nothing is open to them any more.")


def window_opened(settings: Settings, to: str, tenant: Tenant,
                  window: InspectionWindow) -> EmailMessage:
    return message(
        settings, to, f"Support opened an inspection window on {tenant.name}",
        f"{window.staff_email} opened an inspection window on the process "
        f"{window.process_name} of {tenant.name}, until {_when(window.until)}.\n"
        "While it is open, files of that process that fail are kept (encrypted) and "
        "support may view their first rows; every view is in your audit log. When the "
        "window closes, what it kept is erased.\n\n"
        f"Close it at any moment at {_gdpr(settings, tenant)}.")
