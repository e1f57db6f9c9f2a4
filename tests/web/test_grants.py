"""Support access a tenant opens and closes itself (P12), through the real portal and
API, on SQLite and PostgreSQL, with the mail it sends caught by a real SMTP server:
support asks, a tenant admin approves with a fresh second factor, support sees the
tenant's reports, the tenant revokes and support's next request is denied; every step
and every staff request is in the tenant's audit chain, which still verifies."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from doorvoer import jobs
from doorvoer.access.policy import Role
from doorvoer.accounts.machines import create_token
from doorvoer.accounts.models import User
from doorvoer.audit import service as audit
from doorvoer.audit.verify import verify
from doorvoer.db import utcnow
from doorvoer.support import service as support
from doorvoer.support.errors import GrantRefused
from doorvoer.support.models import Grant, GrantState
from doorvoer.tenants.models import Tenant

from .conftest import AccountPortal


def _entries(p: AccountPortal, slug: str) -> list[dict[str, object]]:
    with p.ctx.reading() as w:
        return list(audit.entries(w, p.tenant_id(slug)))


def _actions(p: AccountPortal, slug: str) -> list[str]:
    return [str(e["action"]) for e in _entries(p, slug)]


def _shift(p: AccountPortal, grant_id: str, hours: int) -> None:
    """Move a grant's end by `hours`, as if that much time had passed."""
    with p.ctx.unit() as w:
        grant = w.session.get_one(Grant, grant_id)
        grant.expires_at = grant.expires_at + timedelta(hours=hours)


def _set_contact(p: AccountPortal, slug: str, email: str) -> None:
    with p.ctx.unit() as w:
        w.session.execute(update(Tenant).where(Tenant.slug == slug)
                          .values(contact_email=email))


def test_support_asks_the_admin_approves_support_sees_the_tenant_revokes(
        account_portal: AccountPortal) -> None:
    p = account_portal
    p.tenant("acme")
    _set_contact(p, "acme", "dpo@acme.example")
    admin, admin_pw, admin_clock = p.person_with_2fa(Role.TENANT_ADMIN, "acme")
    staff, staff_pw, staff_clock = p.person_with_2fa(Role.SUPPORT)
    sc = p.login(staff, staff_pw, totp=staff_clock)

    # Without a grant, the tenant's pages are closed, the page says why, and it is logged.
    r = sc.get("/t/acme/transfers")
    assert r.status_code == 403 and "no active grant" in r.text and "/support" in r.text
    assert _actions(p, "acme")[-1] == "staff:access:denied"

    # Asking: a reason, a ticket and scopes; the admins and the contact hear of it.
    r = p.post(sc, "/support/requests", {"tenant": "acme", "ticket": "SUP-42",
                                         "reason": "Failed imports since Monday",
                                         "scope": ["reports"]}, page="/support")
    assert r.status_code == 303, r.text
    for to in (admin, "dpo@acme.example"):
        body = p.mails.body(p.mails.wait_for(to, "Support asks for access to Acme"))
        assert "SUP-42" in body and "reports" in body
    assert "pending" in sc.get("/support").text
    assert sc.get("/t/acme/transfers").status_code == 403  # asking opens nothing
    r = p.post(sc, "/support/requests", {"tenant": "acme", "ticket": "SUP-43",
                                         "reason": "again", "scope": ["reports"]},
               page="/support")
    assert r.status_code == 400 and "waiting" in r.text

    # Answering needs a fresh second factor.
    ac = p.login(admin, admin_pw, totp=admin_clock)
    p.stale_reauth(admin)
    page = ac.get("/t/acme/gdpr").text
    assert staff in page and "Confirm with a code to answer" in page
    with p.ctx.reading() as w:
        grant_id = w.session.scalars(select(Grant.id)).one()
    r = p.post(ac, f"/t/acme/gdpr/grants/{grant_id}/approve",
               {"scope": ["reports"], "hours": "24"}, page="/t/acme/gdpr")
    assert r.status_code == 303 and r.headers["location"].startswith("/account/reauth")
    r = p.post(ac, "/account/reauth", {"code": admin_clock.next_code(),
                                       "next": "/t/acme/gdpr"}, page="/account/reauth")
    assert r.status_code == 303
    # Only scopes that were asked for, and at most 7 days.
    r = p.post(ac, f"/t/acme/gdpr/grants/{grant_id}/approve",
               {"scope": ["reports", "config"], "hours": "24"}, page="/t/acme/gdpr")
    assert r.status_code == 400 and "did not ask for" in r.text
    r = p.post(ac, f"/t/acme/gdpr/grants/{grant_id}/approve",
               {"scope": ["reports"], "hours": "169"}, page="/t/acme/gdpr")
    assert r.status_code == 400 and "7 days" in r.text
    r = p.post(ac, f"/t/acme/gdpr/grants/{grant_id}/approve",
               {"scope": ["reports"], "hours": "24"}, page="/t/acme/gdpr")
    assert r.status_code == 303 and r.headers["location"] == "/t/acme/gdpr?done=approved"
    p.mails.wait_for(staff, "Support access to Acme approved")

    # Support sees the reports (its scope), and nothing beyond it.
    r = sc.get("/t/acme/transfers")
    assert r.status_code == 200 and "Transfers" in r.text
    body = p.mails.body(p.mails.wait_for(admin, "Support is using its access to Acme"))
    assert staff in body
    assert sc.get("/t/acme/processes").status_code == 403  # config was not granted
    assert sc.get("/t/acme/settings").status_code == 403
    assert sc.get("/t/acme/audit").status_code == 403

    # The tenant revokes; support's next click is denied.
    r = p.post(ac, f"/t/acme/gdpr/grants/{grant_id}/revoke", {}, page="/t/acme/gdpr")
    assert r.status_code == 303
    r = sc.get("/t/acme/transfers")
    assert r.status_code == 403 and "no active grant" in r.text
    p.mails.wait_for(staff, "Support access to Acme was revoked")

    # All of it is in the tenant's chain, staff entries naming the grant; it verifies.
    entries = _entries(p, "acme")
    acts = [e["action"] for e in entries]
    for action in ("grant:request:created", "grant:request:approved",
                   "grant:access:first_used", "grant:access:revoked",
                   "staff:access:allowed", "staff:access:denied"):
        assert action in acts, action
    allowed = [e for e in entries if e["action"] == "staff:access:allowed"]
    assert allowed and all(e["actor"]["grant"] == grant_id for e in allowed)  # type: ignore[index]
    assert all(e["actor"]["kind"] == "staff" and e["actor"]["name"] == staff  # type: ignore[index]
               for e in allowed)
    denied = [e for e in entries if e["action"] == "staff:access:denied"]
    assert all(e["actor"]["grant"] is None for e in denied)  # type: ignore[index]
    approved = next(e for e in entries if e["action"] == "grant:request:approved")
    assert approved["actor"]["name"] == admin  # type: ignore[index]
    with p.ctx.reading() as w:
        outcome = verify(w, p.tenant_id("acme"))
        signed = audit.checkpoints(w, p.tenant_id("acme"))
    assert outcome.ok, str(outcome)
    # Every grant event is signed at once.
    revoked_seq = next(e["seq"] for e in entries if e["action"] == "grant:access:revoked")
    assert revoked_seq in {c.seq for c in signed}

    # The admin's audit page shows it; the operator admin sees the grant, not the data.
    page = ac.get("/t/acme/audit?action=grant:").text
    # A page number that is no number the database can take shows the first page.
    for odd in ("\u00b2", "9" * 30, "-3"):
        assert ac.get(f"/t/acme/audit?page={odd}").status_code == 200
        assert ac.get(f"/t/acme/transfers?page={odd}").status_code == 200
    assert "grant:access:revoked" in page and "upload:file" not in page
    op, op_pw, op_clock = p.person_with_2fa(Role.OPERATOR_ADMIN)
    oc = p.login(op, op_pw, totp=op_clock)
    page = oc.get("/operator/grants").text
    assert "SUP-42" in page and "revoked" in page
    assert oc.get("/t/acme/transfers").status_code == 403


def test_requests_lapse_grants_expire_and_answers_race(account_portal: AccountPortal) -> None:
    p = account_portal
    tenant_id = p.tenant("acme")
    admin, _, _ = p.person_with_2fa(Role.TENANT_ADMIN, "acme")
    staff, _, _ = p.person_with_2fa(Role.SUPPORT)
    member, _ = p.person(Role.TENANT_MEMBER, "acme")
    with p.ctx.unit() as w:
        tenant = w.session.get_one(Tenant, tenant_id)
        staff_user = w.session.scalars(select(User).where(User.email == staff)).one()
        admin_user = w.session.scalars(select(User).where(User.email == admin)).one()
        member_user = w.session.scalars(select(User).where(User.email == member)).one()
        first = support.request_grant(w, staff_user, tenant, "why", "T-1",
                                      ["reports", "config"]).id
        with pytest.raises(GrantRefused, match="unknown scope"):
            support.request_grant(w, staff_user, tenant, "why", "T-2", ["everything"])
        with pytest.raises(GrantRefused, match="ticket"):
            support.request_grant(w, staff_user, tenant, "why", " ", ["reports"])
        with pytest.raises(GrantRefused, match="only support staff"):
            support.request_grant(w, admin_user, tenant, "why", "T-3", ["reports"])
        with pytest.raises(GrantRefused, match="two-factor"):
            support.approve(w, member_user, tenant, first, ["reports"], 1)
    # 48 hours unanswered: the request lapses (the node's job), and cannot be approved.
    with p.ctx.unit() as w:
        assert support.expire_due(w) == 0
        requested = w.session.get_one(Grant, first).requested_at
        assert w.session.get_one(Grant, first).expires_at - requested == support.REQUEST_TTL
    _shift(p, first, hours=-49)
    assert asyncio.run(jobs.grant_expiry(p.ctx)) == 1
    with p.ctx.unit() as w, pytest.raises(GrantRefused, match="not waiting"):
        support.approve(w, admin_user, w.session.get_one(Tenant, tenant_id), first,
                        ["reports"], 1)
    p.mails.wait_for(admin, "lapsed unanswered")

    with p.ctx.unit() as w:
        tenant = w.session.get_one(Tenant, tenant_id)
        second = support.request_grant(w, staff_user, tenant, "why", "T-4", ["reports"]).id
        support.approve(w, admin_user, tenant, second, ["reports"], 2)
    with p.ctx.reading() as w:
        assert [g.id for g in support.active_grants(w, staff_user.id)] == [second]
        # Past its time the grant opens nothing, before the job has written it down.
        assert support.active_grants(w, staff_user.id, utcnow() + timedelta(hours=3)) == ()
    with p.ctx.unit() as w, pytest.raises(GrantRefused, match="not waiting"):
        support.refuse(w, admin_user, w.session.get_one(Tenant, tenant_id), second)
    _shift(p, second, hours=-3)
    assert asyncio.run(jobs.grant_expiry(p.ctx)) == 1
    with p.ctx.reading() as w:
        assert w.session.get_one(Grant, second).state == GrantState.EXPIRED.value
    p.mails.wait_for(admin, "Support access to Acme expired")
    acts = _actions(p, "acme")
    assert acts.count("grant:request:expired") == 1 and acts.count("grant:access:expired") == 1


def test_the_api_lists_refuses_revokes_and_approves_with_a_code(
        account_portal: AccountPortal) -> None:
    p = account_portal
    tenant_id = p.tenant("acme")
    p.tenant("globex")
    admin, _, admin_clock = p.person_with_2fa(Role.TENANT_ADMIN, "acme")
    staff, _, _ = p.person_with_2fa(Role.SUPPORT)
    with p.ctx.unit() as w:
        tenant = w.session.get_one(Tenant, tenant_id)
        staff_user = w.session.scalars(select(User).where(User.email == staff)).one()
        admin_id = w.session.scalars(select(User.id).where(User.email == admin)).one()
        ids = [support.request_grant(w, staff_user, tenant, "why", f"T-{i}", ["reports"]).id
               for i in range(1)]
        token = create_token(w, tenant_id, admin_id, "dpo tool",
                             ["grants:read", "grants:manage", "audit:read"], days=1).secret
        member_token = create_token(w, tenant_id, None, "member", ["grants:read"],
                                    days=1).secret
    api = p.client()
    api.headers["Authorization"] = f"Bearer {token}"
    listed = api.get("/api/v1/grants").json()
    assert [g["id"] for g in listed] == ids and listed[0]["state"] == "pending"
    r = api.post(f"/api/v1/grants/{ids[0]}/approve",
                 json={"scopes": ["reports"], "hours": 2, "code": "000000"})
    assert r.status_code == 403 and "two-factor code" in r.json()["detail"]
    r = api.post(f"/api/v1/grants/{ids[0]}/approve",
                 json={"scopes": ["reports"], "hours": 2, "code": admin_clock.next_code()})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "active" and r.json()["answered_by"] == admin
    r = api.post(f"/api/v1/grants/{ids[0]}/refuse")
    assert r.status_code == 409
    r = api.post(f"/api/v1/grants/{ids[0]}/revoke")
    assert r.status_code == 200 and r.json()["state"] == "revoked"
    assert api.post(f"/api/v1/grants/{'0' * 32}/revoke").status_code == 404
    # The audit log over the API: entries as exported, its checkpoints, its check.
    entries = api.get("/api/v1/audit/entries?action=grant:").json()
    assert [e["action"] for e in entries] == ["grant:request:created",
                                               "grant:request:approved",
                                               "grant:access:revoked"]
    assert set(entries[0]) == {"seq", "time", "actor", "action", "object", "source",
                               "prev", "hash"}
    after = api.get(f"/api/v1/audit/entries?after={entries[0]['seq']}&limit=1").json()
    assert after[0]["seq"] == entries[0]["seq"] + 1
    # A seq past the database's integers is the caller's mistake, named, not a 500.
    r = api.get(f"/api/v1/audit/entries?after={2**63}")
    assert r.status_code == 422 and "after" in r.text
    assert api.get("/api/v1/audit/checkpoints").json()[-1]["note"].startswith("doorvoer/")
    check = api.get("/api/v1/audit/verify").json()
    assert check["ok"] is True and check["first_bad_seq"] is None
    # A member's token never reads the audit log nor answers, whatever its scopes say.
    other = p.client()
    other.headers["Authorization"] = f"Bearer {member_token}"
    assert other.get("/api/v1/grants").status_code == 200
    assert other.get("/api/v1/audit/entries").status_code == 403
    with pytest.raises(httpx.HTTPStatusError):
        other.post(f"/api/v1/grants/{ids[0]}/revoke").raise_for_status()


def test_the_tenant_files_an_instruction_and_sees_what_was_done_under_it(
        account_portal: AccountPortal) -> None:
    from conftest import CSV_SPEC
    from doorvoer.cli.common import cli_actor
    from doorvoer.processes.service import apply_process
    from doorvoer.support.errors import InstructionRefused
    from doorvoer.support.instructions import instruction_for, instructions_of

    p = account_portal
    tenant_id = p.tenant("acme")
    p.tenant("globex")
    member, password = p.person(Role.TENANT_MEMBER, "acme")
    c = p.login(member, password)
    r = p.post(c, "/t/acme/gdpr/instructions", {"text": "", "reference": "CR-17"},
               page="/t/acme/gdpr")
    assert r.status_code == 400 and "what is to be done" in r.text
    r = p.post(c, "/t/acme/gdpr/instructions", {"text": "Add the invoices feed",
                                                "reference": "CR-17"}, page="/t/acme/gdpr")
    assert r.status_code == 303
    with p.ctx.reading() as w:
        (filed,) = instructions_of(w, tenant_id)
    assert (filed.asked_by, filed.channel, filed.reference) == (member, "portal", "CR-17")
    # Another tenant's instruction does not cover a change here.
    with p.ctx.unit() as w, pytest.raises(InstructionRefused, match="no instruction"):
        instruction_for(w, w.session.get_one(Tenant, p.tenant_id("globex")), filed.id)
    with p.ctx.unit(actor=cli_actor(filed.id)) as w:
        tenant = w.session.get_one(Tenant, tenant_id)
        instruction_for(w, tenant, filed.id)
        apply_process(w, tenant, CSV_SPEC, "orders.yaml")
    page = c.get("/t/acme/gdpr").text
    assert "Add the invoices feed" in page and "process:spec:applied" in page
    assert page.count('id="instructions"') == 1
    assert "<title>GDPR · Acme · Doorvoer</title>" in page
    entries = _entries(p, "acme")
    applied = next(e for e in entries if e["action"] == "process:spec:applied")
    assert applied["actor"]["instruction"] == filed.id  # type: ignore[index]
    assert entries[[e["action"] for e in entries].index("instruction:record:filed")][
        "actor"]["name"] == member  # type: ignore[index]


def test_the_support_thread_links_requests_and_never_logs_a_message(
        account_portal: AccountPortal) -> None:
    p = account_portal
    p.tenant("acme")
    admin, _, _ = p.person_with_2fa(Role.TENANT_ADMIN, "acme")
    member, member_pw = p.person(Role.TENANT_MEMBER, "acme")
    staff, staff_pw, staff_clock = p.person_with_2fa(Role.SUPPORT)
    mc = p.login(member, member_pw)
    r = p.post(mc, "/t/acme/thread", {"body": "   "}, page="/t/acme/thread")
    assert r.status_code == 400 and "write a message" in r.text
    r = p.post(mc, "/t/acme/thread", {"body": "Our Monday file failed: row 12 is odd"},
               page="/t/acme/thread")
    assert r.status_code == 303

    sc = p.login(staff, staff_pw, totp=staff_clock)
    page = sc.get("/t/acme/thread")  # no grant needed to talk
    assert page.status_code == 200 and "row 12 is odd" in page.text
    assert sc.get("/t/acme/transfers").status_code == 403  # but no data
    r = p.post(sc, "/t/acme/thread", {"body": "We will look; please approve access"},
               page="/t/acme/thread")
    assert r.status_code == 303
    p.mails.wait_for(admin, "A message from support for Acme")
    r = p.post(sc, "/support/requests", {"tenant": "acme", "ticket": "SUP-9",
                                         "reason": "the Monday file", "scope": ["reports"]},
               page="/support")
    assert r.status_code == 303
    page = mc.get("/t/acme/thread").text
    assert "We will look" in page and "Asking for access (reports), ticket SUP-9" in page
    assert "access request" in page

    entries = _entries(p, "acme")
    posted = [e for e in entries if e["action"] == "support:message:posted"]
    assert len(posted) == 2
    text = "\n".join(str(e) for e in entries)
    assert "row 12" not in text and "We will look" not in text  # never a message's text
    visits = [e for e in entries if e["action"] == "staff:access:allowed"]
    assert visits and all("/t/acme/thread" in str(e["object"]) for e in visits)


def test_a_config_grant_shows_processes_and_connection_hosts_never_secrets(
        account_portal: AccountPortal) -> None:
    import asyncssh

    from doorvoer.secrets.service import SftpConnection, set_connection

    p = account_portal
    tenant_id = p.tenant("acme")
    admin, _, _ = p.person_with_2fa(Role.TENANT_ADMIN, "acme")
    staff, staff_pw, staff_clock = p.person_with_2fa(Role.SUPPORT)
    host_key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    secret = "s3cret-target-password-" + "x" * 8
    with p.ctx.unit() as w:
        tenant = w.session.get_one(Tenant, tenant_id)
        set_connection(w, tenant, "webshop", SftpConnection(
            host="sftp.webshop.example", port=2022, username="doorvoer",
            host_key=host_key, password=secret, private_key=None))
        staff_user = w.session.scalars(select(User).where(User.email == staff)).one()
        admin_user = w.session.scalars(select(User).where(User.email == admin)).one()
        grant = support.request_grant(w, staff_user, tenant, "connection trouble", "T-5",
                                      ["config"])
        support.approve(w, admin_user, tenant, grant.id, ["config"], 1)
    sc = p.login(staff, staff_pw, totp=staff_clock)
    page = sc.get("/t/acme/processes")
    assert page.status_code == 200
    assert "sftp.webshop.example" in page.text and "password set" in page.text
    assert secret not in page.text and "BEGIN" not in page.text
    assert sc.get("/t/acme/transfers").status_code == 403  # reports were not granted
