"""The sub-processor register (P17): an addition or change is announced to every tenant
(a real SMTP server receives each mail) before it takes effect; a tenant objects in the
portal (recorded, audited, the operator admins alerted); one outside the EEA needs a
safeguard, and is used for a tenant only with that tenant's recorded consent."""

from __future__ import annotations

from typing import Any

from typer.testing import CliRunner

from doorvoer.access.policy import Role
from doorvoer.audit import service as audit
from doorvoer.cli import app
from doorvoer.privacy import subprocessors
from doorvoer.privacy.kinds import KINDS
from doorvoer.tenants.service import create_tenant, require_tenant

from .conftest import AccountPortal


def _cli(p: AccountPortal, *args: str) -> Any:
    return CliRunner().invoke(app, [*args, "--data-dir", str(p.ctx.settings.data_dir)], env={
        "DOORVOER_DATABASE_URL": p.ctx.settings.resolved_database_url,
        "DOORVOER_SMTP_HOST": "127.0.0.1", "DOORVOER_SMTP_PORT": str(p.smtp_port)})


def _exported(p: AccountPortal, slug: str) -> list[dict[str, Any]]:
    kind = next(k for k in KINDS if k.name == "subprocessors")
    with p.ctx.reading() as w:
        return list(kind.rows(w, require_tenant(w, slug)))


def test_an_addition_is_announced_and_a_tenant_objects_before_it_takes_effect(
        account_portal: AccountPortal) -> None:
    p, ctx = account_portal, account_portal.ctx
    with ctx.unit() as w:
        create_tenant(w, "acme", "Acme", "hello@acme.example")
        create_tenant(w, "globex", "Globex", "info@globex.example")
    admin, password, clock = p.person_with_2fa(Role.TENANT_ADMIN, "acme")
    boss, _ = p.person(Role.OPERATOR_ADMIN)
    r = _cli(p, "subprocessor", "add", "hetzner", "--name", "Hetzner Online GmbH",
             "--purpose", "Hosting of the servers and the encrypted vault", "--country", "de",
             "--category", "everything in transit (encrypted)", "--category", "metadata")
    assert r.exit_code == 0, r.output
    assert "hetzner v1: in effect from" in r.output
    for to in ("hello@acme.example", "info@globex.example", admin):
        body = p.mails.body(p.mails.wait_for(to, "Sub-processor Hetzner Online GmbH added"))
        assert "Country: DE (inside the EEA)" in body and "You may object" in body

    c = p.login(admin, password, clock)
    page = c.get("/t/acme/subprocessors").text
    assert "Hetzner Online GmbH" in page and "Announced:" in page
    r = p.post(c, "/t/acme/subprocessors/hetzner/object", {"reason": ""},
               page="/t/acme/subprocessors")
    assert r.status_code == 400 and "say why you object" in r.text
    r = p.post(c, "/t/acme/subprocessors/hetzner/object",
               {"reason": "Our contract requires Dutch hosting"}, page="/t/acme/subprocessors")
    assert r.status_code == 303
    alert = p.mails.wait_for(boss, "Acme objects to sub-processor Hetzner")
    assert "Our contract requires Dutch hosting" in p.mails.body(alert)
    assert "You objected." in c.get("/t/acme/subprocessors").text
    [row] = _exported(p, "acme")
    assert row["status"] == "announced" and row["objection"] == \
        "Our contract requires Dutch hosting"
    with ctx.reading() as w:
        acme = require_tenant(w, "acme")
        actions = [e["action"] for e in audit.entries(w, acme.id)]
        assert subprocessors.used_for(w, acme) == []  # not in effect for 30 days
    assert "privacy:subprocessor:announced" in actions
    assert "privacy:subprocessor:objected" in actions

    # Staff see the register and the objection; a second version is announced too.
    staff, staff_pw, staff_clock = p.person_with_2fa(Role.OPERATOR_ADMIN)
    s = p.login(staff, staff_pw, staff_clock)
    assert "Our contract requires Dutch hosting" in s.get("/operator/subprocessors").text
    r = _cli(p, "subprocessor", "change", "hetzner", "--purpose", "Hosting and backups")
    assert r.exit_code == 0 and "hetzner v2" in r.output
    r = _cli(p, "subprocessor", "change", "hetzner", "--purpose", "Hosting and backups")
    assert r.exit_code == 1 and "nothing changes" in r.output


def test_outside_the_eea_it_needs_a_safeguard_and_each_tenant_s_consent(
        account_portal: AccountPortal) -> None:
    p, ctx = account_portal, account_portal.ctx
    with ctx.unit() as w:
        create_tenant(w, "acme", "Acme", "hello@acme.example")
        create_tenant(w, "globex", "Globex", "info@globex.example")
    admin, password, clock = p.person_with_2fa(Role.TENANT_ADMIN, "acme")
    args = ["subprocessor", "add", "helpdesk", "--name", "Helpdesk Inc.", "--purpose",
            "Support tickets", "--country", "US", "--category", "names of contact persons",
            "--notice-days", "0"]
    r = _cli(p, *args)
    assert r.exit_code == 1 and "outside the EEA: name the safeguard" in r.output
    r = _cli(p, *args, "--safeguard", "EU-US Data Privacy Framework; SCCs (2021/914)")
    assert r.exit_code == 0, r.output
    r = _cli(p, "subprocessor", "add", "x", "--name", "X", "--purpose", "p", "--country",
             "Holland", "--category", "c")
    assert r.exit_code == 1 and "country: " in r.output and "alpha-2" in r.output

    with ctx.reading() as w:  # in force, but not for anyone: nobody consented
        assert subprocessors.used_for(w, require_tenant(w, "acme")) == []
        assert subprocessors.not_for(w, subprocessors.latest(w, "helpdesk")) == 2
    c = p.login(admin, password, clock)
    assert "not used for your data" in c.get("/t/acme/subprocessors").text
    assert _exported(p, "acme")[0]["status"] == "not used for you (no consent)"
    r = p.post(c, "/t/acme/subprocessors/helpdesk/consent", {"given": "yes"},
               page="/t/acme/subprocessors")
    assert r.status_code == 303
    with ctx.reading() as w:
        assert [s.key for s in subprocessors.used_for(w, require_tenant(w, "acme"))] == \
            ["helpdesk"]
        assert subprocessors.used_for(w, require_tenant(w, "globex")) == []
        assert subprocessors.not_for(w, subprocessors.latest(w, "helpdesk")) == 1
    assert _exported(p, "acme")[0]["status"] == "used for you"
    assert _exported(p, "acme")[0]["consent_given_at"]

    # Moving it to another country needs the consent again.
    r = _cli(p, "subprocessor", "change", "helpdesk", "--country", "IN", "--safeguard",
             "SCCs (2021/914)", "--notice-days", "0")
    assert r.exit_code == 0, r.output
    with ctx.reading() as w:
        assert subprocessors.used_for(w, require_tenant(w, "acme")) == []
    r = p.post(c, "/t/acme/subprocessors/helpdesk/consent", {"given": "yes"},
               page="/t/acme/subprocessors")
    r = p.post(c, "/t/acme/subprocessors/helpdesk/consent", {"given": "no"},
               page="/t/acme/subprocessors")
    assert r.status_code == 303
    with ctx.reading() as w:
        assert subprocessors.used_for(w, require_tenant(w, "acme")) == []
        actions = [e["action"] for e in audit.entries(w, require_tenant(w, "acme").id)]
    assert actions.count("privacy:subprocessor:consented") == 2
    assert "privacy:subprocessor:consent_withdrawn" in actions
    listed = _cli(p, "subprocessor", "list", "--json")
    assert '"not_for_tenants": 2' in listed.stdout
