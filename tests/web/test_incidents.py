"""Incidents and breach notices (P18): recorded from a YAML file or the operator's page,
every affected tenant told at once (a real SMTP server receives each mail, a real HTTPS
receiver each webhook call), with every Art. 33(3) field and the 72-hour clock; a
banner until an admin acknowledges; updates notified in phases; late notices alert
the operator admins; the register and each tenant's export hold them."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from doorvoer.access.policy import Role
from doorvoer.audit import service as audit
from doorvoer.cli import app
from doorvoer.db import utcnow
from doorvoer.privacy import incidents
from doorvoer.privacy.models import IncidentNotice
from doorvoer.tenants.service import change_contacts, create_tenant, require_tenant

from .conftest import AccountPortal

INCIDENT = """\
became_known_at: {known}
summary: A misdirected SFTP push sent one order file to the wrong partner.
tenants: [{tenants}]
data_categories: [names, delivery addresses]
approximate_subjects: 120
likely_consequences: Names and addresses seen by one business partner.
measures_taken: The partner confirmed deletion in writing.
measures_proposed: Host keys pinned per target; a second reviewer on target changes.
contact: dpo@processor.example
"""


class Receiver(BaseHTTPRequestHandler):
    calls: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.calls.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook(account_portal: AccountPortal,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTPS receiver on 127.0.0.1 (the node's own certificate, trusted)."""
    cert, key = account_portal.ctx.settings.tls_paths
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    Receiver.calls = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/hooks/breach", Receiver.calls
    server.shutdown()


def _cli(p: AccountPortal, *args: str) -> Any:
    return CliRunner().invoke(app, [*args, "--data-dir", str(p.ctx.settings.data_dir)], env={
        "DOORVOER_DATABASE_URL": p.ctx.settings.resolved_database_url,
        "DOORVOER_SMTP_HOST": "127.0.0.1", "DOORVOER_SMTP_PORT": str(p.smtp_port)})


def test_an_incident_reaches_every_affected_tenant_with_every_field_and_its_clock(
        account_portal: AccountPortal, tmp_path: Path,
        webhook: tuple[str, list[dict[str, Any]]]) -> None:
    p, ctx = account_portal, account_portal.ctx
    url, calls = webhook
    with ctx.unit() as w:
        acme = create_tenant(w, "acme", "Acme", "hello@acme.example")
        change_contacts(w, acme, breach_notice="security@acme.example", webhook=url)
        create_tenant(w, "globex", "Globex", "info@globex.example")
        create_tenant(w, "initech", "Initech", "info@initech.example")
    admin, password, clock = p.person_with_2fa(Role.TENANT_ADMIN, "acme")
    member, member_pw = p.person(Role.TENANT_MEMBER, "acme")
    known = (utcnow() - timedelta(hours=2)).isoformat()
    spec = tmp_path / "incident.yaml"
    spec.write_text(INCIDENT.format(known=known, tenants="acme, globex"))

    r = _cli(p, "incident", "create", "--from", str(spec))
    assert r.exit_code == 0, r.output
    assert "2 tenants to tell, 2 notices sent now" in r.output
    # The breach-notice address, not the general contact (P9); the admins; the other
    # tenant's contact; not the tenant it does not touch.
    msg = p.mails.wait_for("security@acme.example", "Personal data incident")
    p.mails.wait_for(admin, "Personal data incident")
    p.mails.wait_for("info@globex.example", "Personal data incident")
    assert not p.mails.to("hello@acme.example") and not p.mails.to("info@initech.example")
    body = p.mails.body(msg)
    for field in ("names", "delivery addresses", "120", "Names and addresses seen",
                  "confirmed deletion", "Host keys pinned", "dpo@processor.example",
                  "Your notice to the supervisory authority", "h ", "min left"):
        assert field in body, field
    assert calls and calls[0]["incident"] and calls[0]["tenant"] == "acme"
    assert calls[0]["authority_deadline"].startswith(
        (utcnow() + timedelta(hours=70)).strftime("%Y-%m-%dT"))

    # The banner on every page until an admin acknowledges; members see it too.
    c = p.login(admin, password, clock)
    page = c.get("/t/acme/dashboard").text
    assert 'id="incident-banner"' in page and "69 h" in page
    m = p.login(member, member_pw)
    assert 'id="incident-banner"' in m.get("/t/acme/dashboard").text
    incident_page = m.get("/t/acme/incidents").text
    assert "dpo@processor.example" in incident_page and "Acknowledge</button>" not in incident_page
    with ctx.reading() as w:
        incident_id = w.session.scalars(select(IncidentNotice.incident_id)).first()
    r = p.post(c, f"/t/acme/incidents/{incident_id}/acknowledge", {}, page="/t/acme/incidents")
    assert r.status_code == 303
    assert 'id="incident-banner"' not in c.get("/t/acme/dashboard").text
    assert "Acknowledged by" in c.get("/t/acme/incidents").text

    # An update is a new phase, notified and acknowledged like the first.
    r = _cli(p, "incident", "update", incident_id, "--text", "The partner's log shows one read.")
    assert r.exit_code == 0, r.output
    p.mails.wait_for("security@acme.example", "Update 1 on incident")
    p.mails.wait_for("info@globex.example", "Update 1 on incident")
    assert 'id="incident-banner"' in c.get("/t/acme/dashboard").text
    assert len(calls) == 2 and calls[1]["update"] == "The partner's log shows one read."

    # The register, the audit logs, the export.
    r = _cli(p, "incident", "list", "--json")
    register = json.loads(r.stdout)
    assert [n["phase"] for n in register[0]["notices"]] == [0, 0, 1, 1]
    assert all(n["sent_at"] for n in register[0]["notices"])
    assert sum(1 for n in register[0]["notices"] if n["acknowledged_at"]) == 1
    assert "acme" not in json.dumps(register)  # tenants by internal id only
    with ctx.reading() as w:
        acme_id = require_tenant(w, "acme").id
        actions = [e["action"] for e in audit.entries(w, acme_id)]
        ops = [e["action"] for e in audit.entries(w, "operator")]
        rows = list(__import__("doorvoer.privacy.kinds", fromlist=["KINDS"]).KINDS)
        kind = next(k for k in rows if k.name == "incidents")
        exported = list(kind.rows(w, require_tenant(w, "acme")))
    assert actions.count("privacy:incident:notified") == 2
    assert "privacy:incident:acknowledged" in actions
    assert ops.count("privacy:incident:recorded") == 1 and "privacy:incident:updated" in ops
    assert [e["phase"] for e in exported] == [0, 1]
    assert exported[0]["acknowledged_by"] == admin and exported[0]["approximate_subjects"] == 120


def test_a_bad_incident_file_names_its_line_and_field(account_portal: AccountPortal,
                                                     tmp_path: Path) -> None:
    p = account_portal
    spec = tmp_path / "incident.yaml"
    spec.write_text(INCIDENT.format(known="2026-12-07T09:30:00", tenants="acme")
                    .replace("approximate_subjects: 120", "approximate_subjects: many"))
    r = _cli(p, "incident", "create", "--from", str(spec))
    assert r.exit_code == 1
    assert "line 1: became_known_at: give a time zone" in r.output
    assert "line 5: approximate_subjects:" in r.output
    spec.write_text(INCIDENT.format(known=utcnow().isoformat(), tenants="nobody"))
    r = _cli(p, "incident", "create", "--from", str(spec))
    assert r.exit_code == 1 and "tenants: no tenant 'nobody'" in r.output
    assert "Traceback" not in r.output


def test_notices_not_out_within_15_minutes_alert_every_operator_admin(
        account_portal: AccountPortal) -> None:
    p, ctx = account_portal, account_portal.ctx
    with ctx.unit() as w:
        create_tenant(w, "acme", "Acme", "hello@acme.example")
    boss, _ = p.person(Role.OPERATOR_ADMIN)
    sysadmin, _ = p.person(Role.SYSADMIN)
    p.set_smtp_port(p.free_port())  # the mail server is down
    with ctx.unit() as w:
        spec = incidents.parse(INCIDENT.format(known=utcnow().isoformat(), tenants="acme"),
                               "form")
        incidents.record(w, spec, "ops@processor.example")
    assert asyncio.run(incidents.send_pending(ctx)) == 0
    with ctx.unit() as w:
        assert incidents.overdue(w) == 0  # not 15 minutes yet
    with ctx.unit() as w:
        assert incidents.overdue(w, utcnow() + timedelta(minutes=16)) == 1
        alerts = list(w.outgoing)
    assert [m["To"] for m in alerts] == [boss]  # operator admins only
    assert "did not take the mail" in alerts[0].get_content()
    p.set_smtp_port(p.smtp_port)  # back up: the next round sends it
    assert asyncio.run(incidents.send_pending(ctx)) == 1
    p.mails.wait_for("hello@acme.example", "Personal data incident")
    assert sysadmin not in [m["To"] for m in p.mails.messages]


def test_staff_record_an_incident_on_the_operator_page(account_portal: AccountPortal) -> None:
    p, ctx = account_portal, account_portal.ctx
    with ctx.unit() as w:
        create_tenant(w, "acme", "Acme", "hello@acme.example")
    email, password, clock = p.person_with_2fa(Role.OPERATOR_ADMIN)
    c = p.login(email, password, clock)
    form = {"became_known_at": "", "summary": "Lost laptop", "tenants": "all",
            "data_categories": "names", "approximate_subjects": "3",
            "likely_consequences": "little", "measures_taken": "wiped remotely",
            "measures_proposed": "disk encryption audit", "contact": "dpo@processor.example"}
    r = p.post(c, "/operator/incidents", form, page="/operator/incidents")
    assert r.status_code == 400 and "became_known_at" in r.text
    form["became_known_at"] = utcnow().isoformat()
    r = p.post(c, "/operator/incidents", form, page="/operator/incidents")
    assert r.status_code == 303
    p.mails.wait_for("hello@acme.example", "Personal data incident")
    register = c.get("/operator/incidents.json").json()
    assert register[0]["all_tenants"] is True and register[0]["summary"] == "Lost laptop"
