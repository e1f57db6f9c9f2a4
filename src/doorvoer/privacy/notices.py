"""E-mails about a tenant's erasure (P19): its admins and contact hear when it is
scheduled and cancelled, and receive the certificate when it ran."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

from doorvoer.config import Settings
from doorvoer.mail import message
from doorvoer.privacy.models import Erasure, Incident, IncidentUpdate, Subprocessor
from doorvoer.tenants.models import Tenant


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


def time_left(due: datetime, now: datetime | None = None) -> str:
    """What is left of a deadline, as a person reads it: '41 h 12 min left'."""
    seconds = int((due - (now or datetime.now(UTC))).total_seconds())
    if seconds <= 0:
        return "passed"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min left"


def incident(settings: Settings, to: str, tenant: Tenant, row: Incident,
             update: IncidentUpdate | None, due: datetime) -> EmailMessage:
    """A breach notice (Art. 33(2)) with every Art. 33(3) field, or a later phase."""
    what = f"Update {update.phase} on incident" if update else "Personal data incident"
    new = f"What is new (phase {update.phase}):\n{update.text}\n\n" if update else ""
    return message(
        settings, to, f"{what} {row.id[:8]} affecting {tenant.name}",
        f"Doorvoer, your processor, reports an incident that affects personal data of "
        f"{tenant.name}.\n\n{new}"
        f"Became known: {_when(row.became_known_at)}\n"
        f"Your notice to the supervisory authority (Art. 33(1), 72 hours): due "
        f"{_when(due)} ({time_left(due)}).\n\n"
        f"What happened:\n{row.summary}\n\n"
        f"Categories of personal data:\n{row.data_categories}\n\n"
        f"Approximate number of data subjects: {row.approximate_subjects}\n\n"
        f"Likely consequences:\n{row.likely_consequences}\n\n"
        f"Measures taken:\n{row.measures_taken}\n\n"
        f"Measures proposed:\n{row.measures_proposed}\n\n"
        f"Contact for more information: {row.contact}\n\n"
        f"Acknowledge it at {settings.base_url}/t/{tenant.slug}/incidents")


def incident_overdue(settings: Settings, to: str, row: Incident,
                     reasons: list[str]) -> EmailMessage:
    return message(
        settings, to, f"Breach notices of incident {row.id[:8]} are not all out",
        f"Notices of incident {row.id} (recorded {_when(row.recorded_at)}) have not all "
        f"gone out after 15 minutes. Why: {'; '.join(reasons)}.\n\n"
        f"See {settings.base_url}/operator/incidents")


def subprocessor(settings: Settings, to: str, tenant: Tenant, row: Subprocessor,
                 what: str) -> EmailMessage:
    where = "inside the EEA" if row.in_eea else \
        f"outside the EEA, under: {row.safeguard}; it is used for {tenant.name} only " \
        "with your consent"
    return message(
        settings, to, f"Sub-processor {row.name} {what.split(':')[0]}, from "
        f"{row.effective_at.strftime('%Y-%m-%d')}",
        f"Doorvoer will use a sub-processor for {tenant.name}'s data from "
        f"{_when(row.effective_at)} ({what}):\n\n"
        f"Name: {row.name}\nPurpose: {row.purpose}\n"
        f"Categories of personal data: {', '.join(row.data_categories.splitlines())}\n"
        f"Country: {row.country} ({where})\n\n"
        f"You may object until then at {settings.base_url}/t/{tenant.slug}/subprocessors")


def objection(settings: Settings, to: str, tenant: Tenant, row: Subprocessor,
              reason: str) -> EmailMessage:
    return message(
        settings, to, f"{tenant.name} objects to sub-processor {row.name}",
        f"{tenant.name} ({tenant.slug}) objects to {row.name} (version {row.version}, in "
        f"effect from {_when(row.effective_at)}).\n\nReason: {reason}")
