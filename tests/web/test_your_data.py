"""The "Your data" page says what is held before any download; the download (tenant
admins, fresh second factor) and the API's are the export ZIP, and no copy of it stays
on the server once sent."""

from __future__ import annotations

import io
import json
import zipfile

from sqlalchemy import select

from doorvoer.access.policy import Role
from doorvoer.accounts.machines import create_token
from doorvoer.accounts.models import User

from .conftest import AccountPortal, _root_conftest


def test_your_data_says_what_is_held_and_downloads_it_after_a_fresh_check(
        account_portal: AccountPortal) -> None:
    p = account_portal
    tenant_id = p.tenant("acme")
    admin, password, clock = p.person_with_2fa(Role.TENANT_ADMIN, "acme")
    c = p.login(admin, password, totp=clock)
    page = c.get("/t/acme/data").text
    for kind in ("users", "transfers", "grants", "support_messages", "audit/audit.jsonl"):
        assert kind in page
    assert "JSON Schema" in page and "CSV" in page
    p.stale_reauth(admin)
    r = p.post(c, "/t/acme/data/export", {}, page="/t/acme/data")
    assert r.status_code == 303 and r.headers["location"].startswith("/account/reauth")
    p.post(c, "/account/reauth", {"code": clock.next_code(), "next": "/t/acme/data"},
           page="/account/reauth")
    r = p.post(c, "/t/acme/data/export", {}, page="/t/acme/data")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    assert "doorvoer-export-acme.zip" in r.headers["content-disposition"]
    z = zipfile.ZipFile(io.BytesIO(r.content))
    assert json.loads(z.read("data/users.json"))[0]["email"] == admin
    # The temporary file goes once the answer is sent.
    _root_conftest().wait_for(
        lambda: not list((p.ctx.settings.data_dir / "tmp").glob("export-*.zip")),
        what="the sent export deleted")

    member, member_pw = p.person(Role.TENANT_MEMBER, "acme")
    assert p.login(member, member_pw).get("/t/acme/data").status_code == 403

    with p.ctx.unit() as w:
        admin_id = w.session.scalars(select(User.id).where(User.email == admin)).one()
        token = create_token(w, tenant_id, admin_id, "dpo", ["export"], days=1).secret
    api = p.client()
    api.headers["Authorization"] = f"Bearer {token}"
    r = api.get("/api/v1/export")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert "README.txt" in names and "audit/checkpoints.txt" in names
    with p.ctx.reading() as w:
        from doorvoer.audit import service as audit

        acts = [e["action"] for e in audit.entries(w, tenant_id)]
    assert acts.count("privacy:export:created") == 2
