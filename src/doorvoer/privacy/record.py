"""The record of processing activities a processor keeps (GDPR Art. 30(2)), generated
from the configuration in force, never typed by hand: (a) the processor and each
controller (tenant) with its contact, (b) the categories of processing carried out for
each (from its processes and their targets), (c) transfers to third countries (from the
sub-processors used for it), (d) the security measures (from the settings in force).

`record(w, tenant)` is one controller's record; `record(w)` the installation's, with
every tenant. As a dict (JSON), as a PDF (`as_pdf`), and as the portal's page."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from doorvoer.audit.chain import rfc3339
from doorvoer.db import utcnow
from doorvoer.privacy import subprocessors
from doorvoer.privacy.manifest import manifest_of
from doorvoer.processes.service import list_processes, spec_of
from doorvoer.tenants.contacts import address_for
from doorvoer.tenants.models import Tenant
from doorvoer.tenants.service import list_tenants
from doorvoer.unit import Work


def _processing(w: Work, tenant: Tenant) -> list[dict[str, Any]]:
    out = []
    for p in list_processes(w, tenant):
        spec = spec_of(p)
        out.append({
            "process": p.name, "version": p.version,
            "what": f"files dropped in {spec.match} are read as {spec.read.format}, "
                    f"transformed by SQL and written as {spec.write.format}",
            "recipients": [party["party"] for party in manifest_of(w, tenant, p)],
            "reports": "per-transfer metadata kept" if spec.report and tenant.report
                       else "no per-transfer records kept",
            "pickup_within": str(spec.retention.pickup_within)})
    return out


def _controller(w: Work, tenant: Tenant) -> dict[str, Any]:
    used = subprocessors.used_for(w, tenant)
    return {"name": tenant.name, "id": tenant.id, "contact": address_for(tenant, "contact"),
            "processing": _processing(w, tenant),
            "sub_processors": [{"name": s.name, "purpose": s.purpose, "country": s.country}
                               for s in used],
            "third_country_transfers": [
                {"sub_processor": s.name, "country": s.country, "safeguard": s.safeguard,
                 "purpose": s.purpose} for s in used if not s.in_eea]}


def _security(w: Work) -> list[str]:
    s = w.settings
    db = "PostgreSQL" if s.resolved_database_url.startswith("postgresql") else "SQLite"
    return [
        "Transport: SFTP over SSH and HTTPS (TLS) only; no plain FTP or HTTP.",
        "Files at rest: each file encrypted with its own random key (AES-256-GCM, "
        "streaming, 64 KiB segments); file keys wrapped with a master key; erasing a "
        "key makes every copy unreadable. Plaintext never touches the disk.",
        "Erasure: an input as soon as it is processed; an output as soon as it is "
        f"delivered or fetched (a fetched output stays {s.fetch_grace_s:g} s for the "
        "client to finish); an output not fetched within its process's pickup time.",
        "No file content in the database, the logs or the reports; reports keep only "
        "metadata, and a controller can switch them off.",
        f"Metadata in {db}; deleted rows are scrubbed from the database's files.",
        "Passwords as argon2id hashes; two-factor (TOTP) for every person, required for "
        "all operator staff; sensitive actions need a fresh second factor within "
        f"{s.reauth_s / 60:g} minutes.",
        f"Sign-in throttling: {s.max_failed_logins} failed sign-ins per name and "
        f"{s.max_failed_logins_per_address} per address within "
        f"{s.failed_login_window_s / 60:g} minutes; portal sessions end after "
        f"{s.session_idle_s / 60:g} minutes idle and {s.session_absolute_s / 3600:g} "
        "hours in all.",
        "Support staff reach a controller's data only with a grant that controller "
        "gives, for a limited time, revocable; every access is audited.",
        "A tamper-evident audit log per controller (a hash chain, checkpoints signed "
        "with Ed25519) that the controller reads, exports and verifies.",
        "Durability: " + ("every upload is synced to disk before it is acknowledged."
                          if s.fsync else "an acknowledged upload survives a crash of "
                          "the process."),
    ]


def record(w: Work, tenant: Tenant | None = None,
           now: datetime | None = None) -> dict[str, Any]:
    """The record: one controller's, or (tenant None) the installation's."""
    s = w.settings
    tenants = [tenant] if tenant is not None else list_tenants(w)
    return {
        "title": "Record of processing activities (GDPR Art. 30(2))",
        "generated_at": rfc3339(now or utcnow()),
        "processor": {"name": s.processor_name, "contact": s.processor_contact or s.mail_from,
                      "data_protection_officer": s.processor_dpo or None,
                      "installation": s.resolved_node_name},
        "controllers": [_controller(w, t) for t in tenants],
        "security_measures": _security(w),
    }


def as_pdf(doc: dict[str, Any]) -> bytes:
    """The record as a PDF (A4, the core Helvetica font: Latin-1 text)."""
    from fpdf import FPDF

    def text(value: Any) -> str:
        return str(value).encode("latin-1", "replace").decode("latin-1")

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(True, margin=15)
    pdf.set_title(doc["title"])
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    def head(line: str, size: int = 13) -> None:
        pdf.set_font("Helvetica", "B", size)
        pdf.multi_cell(width, 7, text(line), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 10)

    def para(line: str) -> None:
        pdf.multi_cell(width, 5, text(line), new_x="LMARGIN", new_y="NEXT")

    head(doc["title"], 15)
    para(f"Generated {doc['generated_at']} from the configuration in force.")
    p = doc["processor"]
    head("Processor")
    para(f"{p['name']} - contact: {p['contact']}"
         + (f" - data protection officer: {p['data_protection_officer']}"
            if p["data_protection_officer"] else "") + f" - installation {p['installation']}")
    for c in doc["controllers"]:
        head(f"Controller: {c['name']}")
        para(f"Contact: {c['contact'] or 'none given'} (internal id {c['id']})")
        for item in c["processing"] or [{"process": "none", "what": "no processes yet",
                                         "recipients": [], "reports": "",
                                         "pickup_within": ""}]:
            para(f"- {item['process']}: {item['what']}; to: "
                 f"{', '.join(item['recipients']) or '-'}; {item['reports']}")
        para("Sub-processors: " + (", ".join(f"{s['name']} ({s['country']})"
                                              for s in c["sub_processors"]) or "none"))
        para("Transfers to third countries: " + ("; ".join(
            f"{t['sub_processor']} in {t['country']} under {t['safeguard']}"
            for t in c["third_country_transfers"]) or "none"))
    head("Security measures (Art. 32)")
    for line in doc["security_measures"]:
        para(f"- {line}")
    return bytes(pdf.output())
