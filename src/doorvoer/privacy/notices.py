"""E-mails about a tenant's erasure (P19): its admins and contact hear when it is
scheduled and cancelled, and receive the certificate when it ran."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

from doorvoer.config import Settings
from doorvoer.mail import message
from doorvoer.privacy.models import Erasure
from doorvoer.support.notices import tenant_recipients
from doorvoer.tenants.models import Tenant
from doorvoer.unit import Work


def recipients(w: Work, tenant: Tenant) -> list[str]:
    """The tenant's admins and its contact (for contact: P9)."""
    return tenant_recipients(w, tenant)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def scheduled(settings: Settings, to: str, tenant: Tenant, row: Erasure) -> EmailMessage:
    why = ("an admin of yours asked for it" if row.reason == "request"
           else "your contract with the processor has ended")
    stop = (f"Until then an admin can cancel it at {settings.base_url}/t/{tenant.slug}/data."
            if row.reason == "request" else
            "Until then the operator can stop it by setting the contract active again.")
    return message(
        settings, to, f"All data of {tenant.name} will be erased on {_when(row.due_at)}",
        f"Every record Doorvoer holds about {tenant.name} will be erased on "
        f"{_when(row.due_at)}, because {why}: people, SFTP accounts, processes, "
        "connections, transfer records, the audit log. Export what you want to keep "
        f"first, at {settings.base_url}/t/{tenant.slug}/data.\n\n{stop}\n\n"
        "When it has run you receive a signed erasure certificate.")


def cancelled(settings: Settings, to: str, tenant: Tenant) -> EmailMessage:
    return message(settings, to, f"The erasure of {tenant.name} is cancelled",
                   f"The scheduled erasure of {tenant.name}'s data was cancelled; "
                   "nothing was erased.")


def certificate(settings: Settings, to: str, note: str) -> EmailMessage:
    """The certificate, by internal id only: by the time it arrives no name is left."""
    msg = message(
        settings, to, "Erasure certificate",
        "Every record Doorvoer held about your organisation has been erased. The signed "
        "certificate is below and attached; check it with `doorvoer certificate verify "
        "FILE --key KEY`, where KEY is the processor's verifier key (`doorvoer audit "
        "key`), or with any C2SP signed-note verifier.\n\n" + note)
    msg.add_attachment(note, filename="erasure-certificate.txt")
    return msg
