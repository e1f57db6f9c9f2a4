"""Inspection windows through the real portal, a real SFTP upload and real mail, on
SQLite and PostgreSQL: support asks for `inspect`, the tenant approves, support opens
a window on a process, a file of it fails and is kept, support views its first rows
(never cached, in the audit log), the tenant sees the window on its GDPR tab and
closes it, and what it kept is erased."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from doorvoer.access.policy import Role
from doorvoer.audit import service as audit
from doorvoer.support.models import Grant
from doorvoer.transfers.models import State, Transfer
from doorvoer.vault.models import BlobKey

from .conftest import AccountPortal, _root_conftest

root = _root_conftest()
BAD = b"id;name;amount\r\n1;jan;12,50\r\n2;piet;twelve\r\n"


def test_support_inspects_a_failed_file_and_the_tenant_closes_the_window(
        account_portal: AccountPortal, tmp_path: Path) -> None:
    p = account_portal
    login = root.add_tenant(p.ctx, tmp_path, "acme")
    admin, admin_pw, admin_clock = p.person_with_2fa(Role.TENANT_ADMIN, "acme")
    staff, staff_pw, staff_clock = p.person_with_2fa(Role.SUPPORT)
    sc = p.login(staff, staff_pw, totp=staff_clock)
    ac = p.login(admin, admin_pw, totp=admin_clock)

    # No grant, no window: the page is closed to support, and never open to people.
    assert sc.get("/t/acme/inspect").status_code == 403
    assert ac.get("/t/acme/inspect").status_code == 403
    r = p.post(sc, "/support/requests", {"tenant": "acme", "ticket": "SUP-7",
                                         "reason": "orders fail", "scope": ["inspect"]},
               page="/support")
    assert r.status_code == 303
    with p.ctx.reading() as w:
        grant_id = w.session.scalars(select(Grant.id)).one()
    r = p.post(ac, f"/t/acme/gdpr/grants/{grant_id}/approve",
               {"scope": ["inspect"], "hours": "24"}, page="/t/acme/gdpr")
    assert r.status_code == 303, r.text

    page = sc.get("/t/acme/inspect")
    assert page.status_code == 200 and "Open a window" in page.text
    assert 'href="/t/acme/inspect"' in page.text  # the tab is in support's navigation
    r = p.post(sc, "/t/acme/inspect", {"process": "orders", "hours": "48"},
               page="/t/acme/inspect")
    assert r.status_code == 400 and "1 to 24 hours" in r.text
    r = p.post(sc, "/t/acme/inspect", {"process": "orders", "hours": "4"},
               page="/t/acme/inspect")
    assert r.status_code == 303, r.text
    body = p.mails.body(p.mails.wait_for(admin, "Support opened an inspection window on Acme"))
    assert "orders" in body and "/t/acme/gdpr" in body

    # A file of that process fails, and is kept for the window.
    src = tmp_path / "bad.csv"
    src.write_bytes(BAD)
    root.sftp_batch(p.node.port, login, f"put {src} /inbox/orders/bad.csv\n")
    kept = root.wait_for(lambda: next((t for t in root.transfers_of(p.ctx)
                                       if t.state == State.FAILED), None), what="failure")
    assert kept.kept_for is not None
    page = sc.get("/t/acme/inspect").text
    link = f"/t/acme/inspect/{kept.kept_for}/{kept.id}/input"
    assert "orders/bad.csv" in page and link in page

    view = sc.get(link)
    assert view.status_code == 200 and view.headers["cache-control"] == "no-store"
    assert "<td>twelve</td>" in view.text and "<th>amount</th>" in view.text
    assert sc.get(f"/t/acme/inspect/{kept.kept_for}/{kept.id}/secrets").status_code == 404

    # The tenant sees the window and closes it; what it kept is gone, views end.
    gdpr = ac.get("/t/acme/gdpr").text
    assert staff in gdpr and "open</span> until" in gdpr
    r = p.post(ac, f"/t/acme/gdpr/windows/{kept.kept_for}/close", {}, page="/t/acme/gdpr")
    assert r.status_code == 303 and r.headers["location"].endswith("done=closed#windows")
    with p.ctx.reading() as w:
        assert w.session.scalars(select(BlobKey).where(BlobKey.owner_id == kept.id)).all() == []
        assert w.session.get_one(Transfer, kept.id).erased_at is not None
    r = sc.get(link)
    assert r.status_code == 400 and "closed" in r.text
    assert "closed by " + admin in ac.get("/t/acme/gdpr").text

    # All of it is in the tenant's audit log, and never a value of the file.
    with p.ctx.reading() as w:
        entries = list(audit.entries(w, p.tenant_id("acme")))
    actions = [e["action"] for e in entries]
    for action in ("inspection:window:opened", "inspection:file:kept",
                   "inspection:file:viewed", "inspection:window:closed",
                   "transfer:input:erased"):
        assert action in actions, action
    assert "twelve" not in str(entries) and "piet" not in str(entries)
    assert "inspection:file:viewed" in ac.get("/t/acme/audit").text
