"""The record of processing activities (Art. 30(2)) generated from the configuration, as
JSON, PDF and a page; and "Where your data goes" (P8): which output columns go to
which party, from the spec, with a spec change that alters them in the audit log."""

from __future__ import annotations

import io
import json
from typing import Any

import asyncssh
from pypdf import PdfReader
from typer.testing import CliRunner

from doorvoer.access.policy import Role
from doorvoer.audit import service as audit
from doorvoer.cli import app
from doorvoer.privacy import subprocessors
from doorvoer.processes.service import apply_process
from doorvoer.secrets.service import SftpConnection, set_connection
from doorvoer.tenants.service import create_tenant, require_tenant

from .conftest import AccountPortal, _root_conftest

root = _root_conftest()
PUSH_SPEC = """\
name: invoices
match: "invoices/*.csv"
read: {format: csv}
transform:
  sql: SELECT number, customer AS client, total FROM input
write: {format: csv, filename: "{stem}.csv"}
deliver:
  - sftp: {connection: webshop, path: /in}
"""


def _cli(p: AccountPortal, *args: str) -> Any:
    return CliRunner().invoke(app, [*args, "--data-dir", str(p.ctx.settings.data_dir)],
                              env={"DOORVOER_DATABASE_URL": p.ctx.settings.resolved_database_url,
                                   "DOORVOER_PROCESSOR_NAME": "Verwerker B.V.",
                                   "DOORVOER_PROCESSOR_DPO": "fg@verwerker.example"})


def _world(p: AccountPortal) -> None:
    with p.ctx.unit() as w:
        acme = create_tenant(w, "acme", "Acme", "hello@acme.example")
        create_tenant(w, "globex", "Globex", "info@globex.example")
        set_connection(w, acme, "webshop", SftpConnection(
            host="sftp.webshop.example", port=22, username="dv",
            host_key=asyncssh.generate_private_key("ssh-ed25519").export_public_key()
            .decode(), password="secret", private_key=None))
        apply_process(w, acme, root.CSV_SPEC, "spec")
        apply_process(w, acme, PUSH_SPEC, "spec")
        subprocessors.add(w, "hetzner", subprocessors.spec_of(
            name="Hetzner Online GmbH", purpose="hosting", country="DE",
            data_categories=["all, encrypted"]), "ops", notice_days=0)
        subprocessors.add(w, "helpdesk", subprocessors.spec_of(
            name="Helpdesk Inc.", purpose="support tickets", country="US",
            data_categories=["contact names"], safeguard="SCCs (2021/914)"), "ops",
            notice_days=0)
        subprocessors.consent(w, acme, "helpdesk", "ada@acme.example")


def test_the_record_is_generated_from_what_is_configured(account_portal: AccountPortal,
                                                         tmp_path: Any) -> None:
    p = account_portal
    _world(p)
    r = _cli(p, "record", "--format", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["processor"]["name"] == "Verwerker B.V."
    assert doc["processor"]["data_protection_officer"] == "fg@verwerker.example"
    acme, globex = sorted(doc["controllers"], key=lambda c: c["name"])
    assert acme["contact"] == "hello@acme.example"
    by_process = {x["process"]: x for x in acme["processing"]}
    assert "read as csv" in by_process["orders"]["what"]
    assert by_process["invoices"]["recipients"] == [
        "SFTP server sftp.webshop.example:22 (connection webshop)"]
    assert "own pickup" in by_process["orders"]["recipients"][0]
    # Transfers abroad: the US helpdesk for the tenant that consented, not the other.
    assert acme["third_country_transfers"] == [{
        "sub_processor": "Helpdesk Inc.", "country": "US", "safeguard": "SCCs (2021/914)",
        "purpose": "support tickets"}]
    assert globex["third_country_transfers"] == []
    assert [s["name"] for s in globex["sub_processors"]] == ["Hetzner Online GmbH"]
    measures = " ".join(doc["security_measures"])
    assert "AES-256-GCM" in measures and "5 failed sign-ins per name" in measures

    r = _cli(p, "record", "--tenant", "acme", "--format", "pdf", "--out",
             str(tmp_path / "acme.pdf"))
    assert r.exit_code == 0, r.output
    text = " ".join(page.extract_text() for page in PdfReader(tmp_path / "acme.pdf").pages)
    for said in ("Record of processing activities", "Controller: Acme",
                 "sftp.webshop.example", "Helpdesk Inc. in US under SCCs", "AES-256-GCM"):
        assert said in " ".join(text.split()), said
    assert "Globex" not in text
    r = _cli(p, "record", "--format", "xml")
    assert r.exit_code == 1 and "json or pdf" in r.output


def test_where_your_data_goes_and_the_record_in_the_portal(account_portal: AccountPortal) -> None:
    p = account_portal
    _world(p)
    email, password, clock = p.person_with_2fa(Role.TENANT_ADMIN, "acme")
    c = p.login(email, password, clock)
    page = c.get("/t/acme/sharing").text
    assert "sftp.webshop.example:22" in page
    for col in ("number", "client", "total", "id", "name", "amount"):
        assert f"<code>{col}</code>" in page, col
    record = c.get("/t/acme/record")
    assert record.status_code == 200 and "Helpdesk Inc." in record.text
    pdf = c.get("/t/acme/record.pdf")
    assert pdf.headers["content-type"] == "application/pdf"
    assert "Acme" in PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    assert c.get("/t/acme/record.json").json()["controllers"][0]["name"] == "Acme"
    assert c.get("/t/globex/record").status_code == 403

    # A spec change that changes what goes where is in the log, with the difference.
    with p.ctx.unit() as w:
        apply_process(w, require_tenant(w, "acme"), PUSH_SPEC.replace(
            "customer AS client, total", "customer AS client, iban, total")
            .replace("  - sftp: {connection: webshop, path: /in}",
                     "  - sftp: {connection: webshop, path: /in}\n  - pickup: invoices/"),
            "spec")
    with p.ctx.reading() as w:
        entries = [e for e in audit.entries(w, require_tenant(w, "acme").id)
                   if e["action"] == "process:sharing:changed"]
    assert entries[-1]["object"] == ("invoices v2: columns added: iban; "
                                     "targets added: pickup invoices")
    assert "<code>iban</code>" in c.get("/t/acme/sharing").text
