"""Contact data for its purposes only (P9): every reader of a tenant's contact fields
goes through `tenants.contacts.address_for(tenant, purpose)` (checked in the source:
no other code reads the columns), and each notice, page and export uses the address of
its purpose: breach notices the breach-notice address, everything else the contact."""

from __future__ import annotations

import ast
import asyncio
import re
from collections.abc import Callable
from pathlib import Path

from doorvoer import mail
from doorvoer.access.policy import Role
from doorvoer.accounts.people import create_user
from doorvoer.privacy import erasure, incidents
from doorvoer.privacy.kinds import KINDS
from doorvoer.support import service as support
from doorvoer.tenants.contacts import address_for, purposes_of
from doorvoer.tenants.models import Tenant
from doorvoer.tenants.service import change_contacts, create_tenant, require_tenant
from doorvoer.unit import Work

from .conftest import AccountPortal

SRC = Path(__file__).resolve().parents[2] / "src" / "doorvoer"
COLUMNS = {"contact_email", "invoice_email", "breach_email", "breach_webhook"}
# The one module that reads the columns, and the ones that write them.
READERS = {SRC / "tenants" / "contacts.py", SRC / "tenants" / "service.py",
           SRC / "tenants" / "models.py"}


def test_only_the_contacts_module_reads_a_contact_field() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        if path in READERS or "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in COLUMNS:
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno} .{node.attr}")
    for path in (SRC / "web" / "templates").rglob("*.html"):
        for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for m in re.finditer(r"(\w+)\.(" + "|".join(COLUMNS) + r")\b", line):
                if m.group(1) != "form":  # a form's own field, not the tenant's
                    offenders.append(f"{path.relative_to(SRC)}:{no} {m.group(0)}")
    assert offenders == []


def test_each_notice_goes_to_the_address_of_its_purpose(account_portal: AccountPortal) -> None:
    p, ctx = account_portal, account_portal.ctx
    with ctx.unit() as w:
        t = create_tenant(w, "acme", "Acme", "hello@acme.example")
        change_contacts(w, t, invoicing="invoices@acme.example",
                        breach_notice="security@acme.example")
        staff = create_user(w, "help@doorvoer.example", "Help", Role.SUPPORT, None,
                            "a long password here")
    with ctx.reading() as w:
        t = require_tenant(w, "acme")
        assert purposes_of(t) == {"contact_email": ["contact"],
                                  "invoice_email": ["invoicing"],
                                  "breach_email": ["breach-notice"]}
        assert address_for(t, "breach-notice") == "security@acme.example"
        contacts = list(next(k for k in KINDS if k.name == "contacts").rows(w, t))
    assert {c["purpose"]: c["email"] for c in contacts} == {
        "contact": "hello@acme.example", "invoicing": "invoices@acme.example",
        "breach-notice": "security@acme.example"}

    def in_unit(fn: Callable[[Work, Tenant], object]) -> None:
        """As a door runs it: the unit, then the mail it queued."""
        with ctx.unit() as w:
            fn(w, require_tenant(w, "acme"))
        for msg in w.outgoing:
            asyncio.run(mail.send(ctx.settings, msg))

    in_unit(lambda w, t: support.request_grant(w, w.session.merge(staff), t, "a failed file",
                                               "SUP-1", ["reports"]))
    in_unit(lambda w, t: erasure.request(w, t, "acme", None))
    with ctx.unit() as w:
        incidents.record(w, incidents.parse(
            "became_known_at: 2026-12-01T10:00:00Z\nsummary: s\ntenants: [acme]\n"
            "data_categories: [names]\napproximate_subjects: 1\nlikely_consequences: c\n"
            "measures_taken: t\nmeasures_proposed: p\ncontact: dpo@processor.example\n",
            "incident.yaml"), "ops")
    asyncio.run(incidents.send_pending(ctx))
    p.mails.wait_for("security@acme.example", "Personal data incident")
    p.mails.wait_for("hello@acme.example", "Support asks for access")
    p.mails.wait_for("hello@acme.example", "will be erased")
    by_address = {m["To"]: [x["Subject"] for x in p.mails.to(m["To"])] for m in p.mails.messages}
    assert all("incident" in s.lower() for s in by_address["security@acme.example"])
    assert not any("incident" in s.lower() for s in by_address["hello@acme.example"])
    assert "invoices@acme.example" not in by_address  # nothing of this sends invoices


def test_a_tenant_admin_sets_its_own_contact_data_on_the_settings_page(
        account_portal: AccountPortal) -> None:
    p, ctx = account_portal, account_portal.ctx
    with ctx.unit() as w:
        create_tenant(w, "acme", "Acme", "hello@acme.example")
    email, password, clock = p.person_with_2fa(Role.TENANT_ADMIN, "acme")
    c = p.login(email, password, clock)
    r = p.post(c, "/t/acme/settings/contacts", {
        "contact": "hello@acme.example", "invoicing": "", "breach_notice": "sec@acme.example",
        "webhook": "http://plain.example/hook"}, page="/t/acme/settings")
    assert r.status_code == 303
    assert "must be an https:// URL" in c.get(r.headers["location"]).text
    r = p.post(c, "/t/acme/settings/contacts", {
        "contact": "hello@acme.example", "invoicing": "", "breach_notice": "sec@acme.example",
        "webhook": "https://hooks.acme.example/breach"}, page="/t/acme/settings")
    page = c.get(r.headers["location"]).text
    assert "Contact data saved." in page and 'value="sec@acme.example"' in page
    with ctx.reading() as w:
        t = require_tenant(w, "acme")
        assert address_for(t, "breach-notice") == "sec@acme.example"
        assert address_for(t, "invoicing") == "hello@acme.example"  # none of its own
        from doorvoer.audit import service as audit

        entries = [e for e in audit.entries(w, t.id) if e["action"] == "tenant:contacts:changed"]
    assert entries[-1]["object"] == "breach-notice, webhook"
