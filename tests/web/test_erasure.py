"""A tenant's erasure (P19): every row, blob and key of the tenant goes in one step,
leaving a tombstone without one of its values and a signed certificate that
`doorvoer certificate verify` checks; the certificate reaches the contact by mail.
The proof: the whole database (every table, every column), the data directory's
files byte by byte and the log are searched for the tenant's known values."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from doorvoer.access.policy import Role
from doorvoer.accounts import totp
from doorvoer.accounts.machines import create_account, create_token
from doorvoer.accounts.models import User
from doorvoer.accounts.people import create_user, invite
from doorvoer.audit import service as audit
from doorvoer.audit.verify import verify
from doorvoer.cli import app
from doorvoer.context import Context
from doorvoer.db import Base
from doorvoer.privacy import erasure
from doorvoer.privacy.certificate import parse
from doorvoer.privacy.errors import ErasureRefused
from doorvoer.privacy.models import Tombstone
from doorvoer.processes.service import apply_process
from doorvoer.secrets.service import SftpConnection, set_connection
from doorvoer.support import service as support
from doorvoer.support.instructions import file_instruction
from doorvoer.support.thread import post
from doorvoer.tenants.models import Tenant
from doorvoer.tenants.service import create_tenant, require_tenant
from doorvoer.transfers.models import State, Transfer
from doorvoer.vault.models import BlobKey

from .conftest import AccountPortal, _root_conftest

root = _root_conftest()

# Each kind the certificate counts, and the table it is erased from. A new table must
# join this map (and the erasure) or the list of tables that hold no tenant's data.
KIND_TABLE = {
    "sessions": "web_sessions", "recovery_codes": "recovery_codes",
    "email_links": "email_tokens", "failed_sign_ins": "login_failures",
    "tokens": "api_tokens", "account_keys": "account_keys", "accounts": "accounts",
    "users": "users", "blobs": "vault_keys", "deliveries": "deliveries",
    "transfers": "transfers", "processes": "processes", "connections": "connections",
    "inspection_windows": "inspection_windows", "support_messages": "support_messages",
    "instructions": "support_instructions", "grants": "support_grants",
    "erasure_requests": "erasure_requests", "incident_notices": "incident_notices",
    "subprocessor_objections": "subprocessor_objections",
    "subprocessor_consents": "subprocessor_consents",
    "audit_entries": "audit_entries",
    "audit_checkpoints": "audit_checkpoints", "tenant": "tenants"}
NO_TENANT_DATA = {"audit_heads",  # a chain's seq and hash, deleted with the chain
                  "tenant_tombstones",  # what an erasure leaves: ids, dates, counts
                  "incidents", "incident_updates",  # the operator's: whom is in notices
                  "subprocessors",  # the operator's register
                  "usage_releases"}  # noisy counts, no tenant in them (P21)


def _tenant_with_everything(ctx: Context, tmp_path: Path, tag: str) -> dict[str, Any]:
    """A tenant with a row in every table it can have one in; its known values."""
    slug = f"erz{tag}"
    v = {"slug": slug, "name": f"Erzatz {tag} Holding", "contact": f"dpo-{tag}@erz.example",
         "admin": f"ada-{tag}@erz.example", "person": f"Ada {tag}",
         "account": f"feed{tag}", "host": f"sftp.{tag}.example", "token": f"erp-{tag}",
         "reason": f"a failed file {tag}", "instruction": f"add a feed {tag}",
         "message": f"Hello support {tag}", "file": f"week-{tag}.csv",
         "invitee": f"bob-{tag}@erz.example"}
    key = asyncssh.generate_private_key("ssh-ed25519")
    key_path = tmp_path / f"id_{slug}"
    key.write_private_key(str(key_path))
    key_path.chmod(0o600)
    password = secrets.token_urlsafe(16)
    with ctx.unit() as w:
        tenant = create_tenant(w, slug, v["name"], v["contact"])
        create_account(w, slug, v["account"], [key.export_public_key().decode()], password)
        apply_process(w, tenant, root.CSV_SPEC, "spec")
        admin = create_user(w, v["admin"], v["person"], Role.TENANT_ADMIN, tenant.id,
                            password)
        w.session.flush()
        admin.totp_secret = totp.seal_secret(ctx.sealer, admin, totp.new_secret())
        staff = create_user(w, f"help-{tag}@doorvoer.example", "Help", Role.SUPPORT, None,
                            password)
        create_token(w, tenant.id, admin.id, v["token"], ["upload"], days=1)
        set_connection(w, tenant, "webshop", SftpConnection(
            host=v["host"], port=22, username="dv",
            host_key=asyncssh.generate_private_key("ssh-ed25519").export_public_key()
            .decode(), password="target-secret", private_key=None))
        support.request_grant(w, staff, tenant, v["reason"], "SUP-1", ["reports"])
        file_instruction(w, tenant, v["admin"], "portal", "CR-1", v["instruction"])
        post(w, tenant, admin, v["message"])
    v.update(login=f"{v['account']}@{slug}", password=password, key_path=key_path,
             tenant_id=tenant.id, staff=f"help-{tag}@doorvoer.example")
    return v


def _upload(port: int, v: dict[str, Any], name: str, body: bytes) -> None:
    async def go() -> None:
        async with asyncssh.connect(
                "127.0.0.1", port, username=v["login"], client_keys=[str(v["key_path"])],
                known_hosts=None) as conn, conn.start_sftp_client() as sftp, \
                sftp.open(f"/inbox/orders/{name}", "wb") as f:
            await f.write(body)

    asyncio.run(go())


def _found(ctx: Context, needles: list[str]) -> list[str]:
    """Every table.column of the database that holds one of `needles`."""
    hits = []
    with ctx.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                for col, value in row._mapping.items():
                    raw = value.decode("latin-1") if isinstance(value, bytes) else str(value)
                    hits += [f"{table.name}.{col}: {n}" for n in needles if n in raw]
    return hits


def _files_holding(folder: Path, needles: list[str]) -> list[str]:
    hits = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path.name}: {n}" for n in needles if n.encode() in data]
    return hits


def test_an_erasure_leaves_not_one_value_of_the_tenant_and_a_certificate_that_verifies(
        account_portal: AccountPortal, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    p, ctx = account_portal, account_portal.ctx
    tag = secrets.token_hex(4)
    v = _tenant_with_everything(ctx, tmp_path, tag)
    other = _tenant_with_everything(ctx, tmp_path, secrets.token_hex(4))
    # Live data of every kind: an output waiting for pickup (its blob in the vault), a
    # portal session, failed sign-ins under the tenant's names, a pending invitation.
    _upload(p.node.port, v, v["file"], b"id;name;amount\n1;Jansen;7,00\n")
    _upload(p.node.port, other, "other.csv", b"id;name;amount\n2;Smit;8,00\n")
    root.wait_for(lambda: {t.state for t in root.transfers_of(ctx)} == {State.READY},
                  what="both outputs ready for pickup")
    p.client().post("/login", data={"email": v["admin"], "password": "wrong"})
    assert p.session_client(v["admin"], two_factor=True).get(
        f"/t/{v['slug']}/data").status_code == 200

    async def wrong_password() -> None:
        with pytest.raises(asyncssh.PermissionDenied):
            await asyncssh.connect("127.0.0.1", p.node.port, username=v["login"],
                                   password="wrong", known_hosts=None, client_keys=None)

    asyncio.run(wrong_password())
    with ctx.unit() as w:
        admin = w.session.scalars(select(User).where(User.email == v["admin"])).one()
        invite(w, v["tenant_id"], v["invitee"], Role.TENANT_MEMBER, frozenset(), admin)
    with ctx.reading() as w:
        blobs = set(w.session.scalars(select(BlobKey.blob_id).join(
            Transfer, Transfer.id == BlobKey.owner_id).where(Transfer.tenant_id == v["tenant_id"])))
        receipt = audit.checkpoints(w, v["tenant_id"])[-1]
    assert blobs and all(ctx.vault.store.exists(b) for b in blobs)
    needles = [v[k] for k in ("slug", "name", "contact", "admin", "person", "account", "host",
                              "token", "reason", "instruction", "message", "file", "invitee")]
    assert len(_found(ctx, needles)) > 20  # the search finds them while they are there
    # And the ids that tie rows without a tenant column to it (keys, sessions, blobs).
    with ctx.reading() as w:
        t = Base.metadata.tables
        ids = [*blobs]
        for name in ("users", "accounts", "transfers"):
            ids += w.execute(select(t[name].c.id).where(
                t[name].c.tenant_id == v["tenant_id"])).scalars()
    assert len(ids) >= 4

    r = CliRunner().invoke(app, ["tenant", "erase", v["slug"], "--confirm", v["slug"],
                                 "--data-dir", str(ctx.settings.data_dir)],
                           env={"DOORVOER_DATABASE_URL": ctx.settings.resolved_database_url,
                                "DOORVOER_SMTP_HOST": "127.0.0.1",
                                "DOORVOER_SMTP_PORT": str(p.smtp_port)})
    assert r.exit_code == 0, r.output
    note = r.stdout
    cert = parse(note.split("\n\n")[0] + "\n")
    assert cert.tenant_id == v["tenant_id"] and cert.reason == "operator"
    assert cert.audit_origin == f"doorvoer/{ctx.settings.resolved_node_name}/{v['tenant_id']}"
    assert cert.audit_seq > receipt.seq  # the history the tenant saw, and its last entry
    for kind in ("users", "accounts", "account_keys", "tokens", "processes", "connections",
                 "transfers", "deliveries", "blobs", "grants", "instructions",
                 "support_messages", "sessions", "failed_sign_ins", "email_links",
                 "audit_entries", "audit_checkpoints", "tenant"):
        assert cert.counts[kind] >= 1, kind
    assert cert.counts["audit_entries"] == cert.audit_seq
    assert set(cert.counts) == set(KIND_TABLE)
    assert set(Base.metadata.tables) == set(KIND_TABLE.values()) | NO_TENANT_DATA

    # The certificate went to the contact (with the note attached) before it was erased.
    msg = p.mails.wait_for(v["contact"], "Erasure certificate")
    attached = [part.get_content().replace("\r\n", "\n") for part in msg.iter_attachments()]
    assert attached == [note]

    # Nothing of the tenant in any table, in any file of the data directory (the
    # database's own files included, once its log is folded in), or in the log.
    assert sorted(_found(ctx, [*needles, *ids, v["tenant_id"]])) == sorted([
        f"tenant_tombstones.{col}: {v['tenant_id']}" for col in ("tenant_id", "certificate")
    ] + [f"audit_entries.object: {v['tenant_id']}"])
    assert not any(ctx.vault.store.exists(b) for b in blobs)
    with ctx.reading() as w:
        stone = w.session.get_one(Tombstone, v["tenant_id"])
        assert json.loads(stone.counts) == cert.counts and stone.certificate == note
        # The other tenant is whole: its rows, its output, its chain.
        assert require_tenant(w, other["slug"]).contact_email == other["contact"]
        assert w.session.scalar(select(func.count()).select_from(Transfer)) == 1
        assert verify(w, other["tenant_id"], []).ok
        assert verify(w, "operator", []).ok
    # Doorvoer's own log lines, and what else a node logs (asyncssh's warnings); not
    # the test's mail server.
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records
                       if r.name.startswith("doorvoer") or (
                           r.name == "asyncssh" and r.levelno >= logging.WARNING))
    assert [n for n in needles if n in logged] == []
    p.node.stop()
    ctx.close()
    assert _files_holding(ctx.settings.data_dir, needles) == []

    # Anyone checks it with the node's verifier key; a changed byte fails it.
    cert_file = tmp_path / "certificate.txt"
    cert_file.write_text(note)
    key = CliRunner().invoke(app, ["audit", "key", "--data-dir", str(ctx.settings.data_dir)],
                             env={"DOORVOER_DATABASE_URL": ctx.settings.resolved_database_url})
    ok = CliRunner().invoke(app, ["certificate", "verify", str(cert_file), "--key",
                                  key.stdout.strip()])
    assert ok.exit_code == 0, ok.output
    assert f"tenant {v['tenant_id']} erased" in ok.output
    cert_file.write_text(note.replace("count users 1", "count users 0"))
    bad = CliRunner().invoke(app, ["certificate", "verify", str(cert_file), "--key",
                                   key.stdout.strip()])
    assert bad.exit_code == 1 and "does not verify" in bad.output


def test_a_requested_erasure_waits_for_its_cooling_off_and_can_be_cancelled(
        account_portal: AccountPortal, tmp_path: Path) -> None:
    import doorvoer.jobs as jobs

    p, ctx = account_portal, account_portal.ctx
    v = _tenant_with_everything(ctx, tmp_path, secrets.token_hex(4))
    email, password, clock = p.person_with_2fa(Role.TENANT_ADMIN, v["slug"])
    c = p.login(email, password, clock)
    page = f"/t/{v['slug']}/data"
    assert "Erase all data of" in c.get(page).text
    r = p.post(c, f"{page}/erase", {"confirm": "something else"}, page=page)
    assert r.status_code == 400, r.text[-800:]
    assert "type the tenant&#39;s name" in r.text
    r = p.post(c, f"{page}/erase", {"confirm": v["name"]}, page=page)
    assert r.status_code == 303
    shown = c.get(page).text
    assert "will be erased on" in shown and "Cancel the erasure" in shown
    body = p.mails.body(p.mails.wait_for(v["contact"], "will be erased"))
    assert f"/t/{v['slug']}/data" in body
    with ctx.reading() as w:
        row = erasure.pending(w, require_tenant(w, v["slug"]))
        assert row is not None and (row.due_at - row.requested_at).days == 7
    r = p.post(c, f"{page}/erase", {"confirm": v["slug"]}, page=page)
    assert r.status_code == 400 and "already scheduled" in r.text
    assert asyncio.run(jobs.erasures_due(ctx)) == 0  # not yet: 7 days to go
    r = p.post(c, f"{page}/erase/cancel", {}, page=page)
    assert r.status_code == 303 and "nothing was erased" in c.get(r.headers["location"]).text
    p.mails.wait_for(v["contact"], "cancelled")

    ctx.settings.erasure_cooling_off_days = 0
    assert p.post(c, f"{page}/erase", {"confirm": v["slug"]}, page=page).status_code == 303
    assert asyncio.run(jobs.erasures_due(ctx)) == 1
    note = p.mails.wait_for(v["contact"], "Erasure certificate")
    with ctx.reading() as w:
        assert w.session.scalar(select(Tenant).where(Tenant.slug == v["slug"])) is None
        stone = w.session.get_one(Tombstone, v["tenant_id"])
        assert stone.reason == "request"
        assert stone.certificate in p.mails.body(note).replace("\r\n", "\n")
        actions = [e["action"] for e in audit.entries(w, "operator")]
    assert actions[-1] == "privacy:erasure:done"
    assert c.get(page).status_code in (303, 401, 403)  # the admin is gone with the rest


def test_a_contract_end_erases_after_the_grace_period_unless_the_contract_resumes(
        account_portal: AccountPortal, tmp_path: Path) -> None:
    import doorvoer.jobs as jobs

    ctx = account_portal.ctx
    v = _tenant_with_everything(ctx, tmp_path, secrets.token_hex(4))
    with ctx.unit() as w:
        row = erasure.set_contract(w, require_tenant(w, v["slug"]), "ended")
        assert row is not None and (row.due_at - row.requested_at).days == 30
    with ctx.unit() as w, pytest.raises(ErasureRefused, match="contract's end"):
        erasure.cancel(w, require_tenant(w, v["slug"]))
    with ctx.unit() as w:
        assert erasure.set_contract(w, require_tenant(w, v["slug"]), "active") is None
    ctx.settings.contract_grace_days = 0
    with ctx.unit() as w:
        erasure.set_contract(w, require_tenant(w, v["slug"]), "ended")
    assert asyncio.run(jobs.erasures_due(ctx)) == 1
    with ctx.reading() as w:
        assert w.session.get_one(Tombstone, v["tenant_id"]).reason == "contract-end"
        assert w.execute(text("SELECT count(*) FROM erasure_requests")).scalar() == 0
