"""The operator's pages on a real HTTPS node (SQLite and PostgreSQL): tenants with counts
only, never a tenant's data (P11, P12); staff users; who may do what."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from doorvoer.access.policy import Role
from doorvoer.accounts.models import User
from doorvoer.db import utcnow
from doorvoer.tenants.service import require_tenant

from .conftest import ReportPortal, _root_conftest

root = _root_conftest()

SECRET_FILE = "payroll-2026-confidential.csv"


def _row(html: str, slug: str) -> str:
    """The table row of a tenant."""
    start = html.index(f"<code>{slug}</code>")
    return html[html.rindex("<tr>", 0, start):html.index("</tr>", start)]


def _cells(row: str) -> list[str]:
    return re.findall(r'<td class="num">([^<]*)</td>', row)


def test_tenant_list_shows_counts_and_no_tenant_data(report_portal: ReportPortal) -> None:
    p = report_portal
    login = p.tenant("acme")
    p.tenant("globex")
    p.person(Role.TENANT_ADMIN, "acme")
    p.person(Role.TENANT_MEMBER, "acme")
    now = utcnow()
    p.transfer("acme", now - timedelta(days=1), filename=SECRET_FILE)
    p.transfer("acme", now - timedelta(days=2), filename="second.csv",
               error="read: line 1: the header has 2 columns")
    p.transfer("acme", now - timedelta(days=40), filename="old.csv")  # outside 30 days
    # One through the real SFTP path too.
    src = p.tmp_path / "march.csv"
    src.write_bytes(b"id;name;amount\r\n1;a;1,00\r\n")
    root.sftp_batch(p.node.port, login, f"put {src} /inbox/orders/{src.name}\n")
    root.wait_for(lambda: p.transfer_count("acme") == 4, what="the upload's transfer")

    for role in (Role.OPERATOR_ADMIN, Role.SUPPORT, Role.SYSADMIN):
        staff = p.person(role)
        r = staff.get("/operator/tenants")
        assert r.status_code == 200, role
        html = r.text
        assert _cells(_row(html, "acme")) == ["2", "1", "3"], role  # users, processes, 30 d
        assert _cells(_row(html, "globex")) == ["0", "1", "0"], role
        # No tenant data: no file names, no errors, no process specs or names.
        for secret in (SECRET_FILE, "march.csv", "second.csv", "header has 2 columns",
                       "SELECT", "orders/*.csv", "/inbox/"):
            assert secret not in html, (role, secret)
        # And no way into the tenant's pages.
        for page in ("dashboard", "processes", "transfers", "settings"):
            assert staff.get(f"/t/acme/{page}").status_code == 403, (role, page)
        can_manage = role == Role.OPERATOR_ADMIN
        assert ('action="/operator/tenants"' in html) == can_manage
        assert ('action="/operator/tenants/acme/contract"' in html) == can_manage

    tenant_admin = p.person(Role.TENANT_ADMIN, "acme")
    external = p.person(Role.EXTERNAL, "acme", frozenset({"reports"}))
    for client in (tenant_admin, external):
        for path in ("/operator", "/operator/tenants", "/operator/staff"):
            assert client.get(path).status_code == 403, path
        r = client.post("/operator/tenants", data={"slug": "x", "name": "X"})
        assert r.status_code == 403
    anonymous = p.client()
    r = anonymous.get("/operator/tenants")
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login")


def test_operator_admin_creates_tenants_and_sets_the_contract(
        report_portal: ReportPortal) -> None:
    p = report_portal
    admin = p.person(Role.OPERATOR_ADMIN)
    assert admin.get("/operator").headers["location"] == "/operator/tenants"
    r = p.post_form(admin, "/operator/tenants", "/operator/tenants",
                    {"slug": "initech", "name": "Initech B.V.",
                     "contact_email": "billing@initech.example"})
    assert r.status_code == 303
    html = admin.get(r.headers["location"]).text
    assert "Tenant initech created." in html
    assert "Initech B.V." in html
    with p.ctx.reading() as w:
        t = require_tenant(w, "initech")
        assert (t.name, t.contact_email, t.contract, t.report) == (
            "Initech B.V.", "billing@initech.example", "active", True)

    # Mistakes are told on the form, which keeps what was typed.
    r = p.post_form(admin, "/operator/tenants", "/operator/tenants",
                    {"slug": "initech", "name": "Again"})
    assert r.status_code == 400
    assert "exists already" in r.text
    assert 'value="Again"' in r.text
    r = p.post_form(admin, "/operator/tenants", "/operator/tenants",
                    {"slug": "Bad Slug!", "name": "Bad"})
    assert r.status_code == 400
    assert "lower-case letters" in r.text

    r = p.post_form(admin, "/operator/tenants", "/operator/tenants/initech/contract",
                    {"contract": "ended"})
    assert r.status_code == 303
    with p.ctx.reading() as w:
        assert require_tenant(w, "initech").contract == "ended"
    row = _row(admin.get("/operator/tenants").text, "initech")
    assert '<option value="ended" selected>' in row
    r = p.post_form(admin, "/operator/tenants", "/operator/tenants/initech/contract",
                    {"contract": "paused"})
    assert r.status_code == 400

    # Support may look, not change.
    support = p.person(Role.SUPPORT)
    r = p.post_form(support, "/operator/tenants", "/operator/tenants",
                    {"slug": "sneaky", "name": "Sneaky"})
    assert r.status_code == 403
    r = p.post_form(support, "/operator/tenants", "/operator/tenants/initech/contract",
                    {"contract": "active"})
    assert r.status_code == 403
    with p.ctx.reading() as w:
        assert require_tenant(w, "initech").contract == "ended"
    # A form without its CSRF token is refused.
    r = admin.post("/operator/tenants", data={"slug": "nocsrf", "name": "No"})
    assert r.status_code == 403


def test_staff_page_lists_and_creates_staff(report_portal: ReportPortal) -> None:
    p = report_portal
    p.tenant("acme")
    p.person(Role.TENANT_ADMIN, "acme")
    admin = p.person(Role.OPERATOR_ADMIN)
    html = admin.get("/operator/staff").text
    assert "operator admin" in html
    assert "tenant-admin-" not in html  # tenant users are not staff

    r = p.post_form(admin, "/operator/staff", "/operator/staff",
                    {"name": "Sam Support", "email": "Sam@Operator.example",
                     "role": "support", "password": "a long and unusual passphrase"})
    assert r.status_code == 303
    html = admin.get(r.headers["location"]).text
    assert "sam@operator.example can now log in" in html
    row = html[html.index("Sam Support"):]
    row = row[:row.index("</tr>")]
    assert "support" in row
    assert "not set up" in row  # 2FA, until they set it up
    with p.ctx.reading() as w:
        user = w.session.scalars(select(User).where(User.email == "sam@operator.example")).one()
        assert (user.role, user.tenant_id) == ("support", None)
        assert user.password_hash is not None
        assert "passphrase" not in user.password_hash

    # The new staff user logs in and must set up 2FA before anything else.
    sam = p.client()
    r = sam.post("/login", data={"email": "sam@operator.example",
                                 "password": "a long and unusual passphrase"})
    assert r.status_code == 303
    r = sam.get("/operator/tenants")
    assert r.status_code == 303
    assert r.headers["location"] == "/account/2fa"

    for bad, message in (
        ({"role": "tenant_admin"}, "pick a staff role"),
        ({"password": "short"}, "too short"),
        ({"email": "sam@operator.example"}, "exists already"),
    ):
        form = {"name": "X", "email": "x@operator.example", "role": "sysadmin",
                "password": "another long passphrase", **bad}
        r = p.post_form(admin, "/operator/staff", "/operator/staff", form)
        assert r.status_code == 400, bad
        assert message in r.text

    support = p.person(Role.SUPPORT)
    assert support.get("/operator/staff").status_code == 403
    r = support.post("/operator/staff", data={"name": "X", "email": "y@operator.example",
                                              "role": "operator_admin", "password": "x" * 20})
    assert r.status_code == 403
