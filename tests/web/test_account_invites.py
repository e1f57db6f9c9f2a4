"""Invitations (P16): a tenant admin invites by e-mail, the link works once and expires,
an external user sees only what the admin picked; removing a person ends their sessions."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from doorvoer.access.policy import Role
from doorvoer.accounts.models import EmailToken, User
from doorvoer.db import utcnow
from doorvoer.tenants.service import require_tenant, set_contract

if TYPE_CHECKING:
    from web.conftest import AccountPortal

PASSWORD = "a calm river in Utrecht"


def invite(p: AccountPortal, admin: object, email: str, role: str,
           permissions: list[str] | None = None, nth: int = 1) -> str:
    """Invite through the page; the token of the link in the `nth` mail to `email`."""
    r = p.post(admin, "/t/acme/invitations",  # type: ignore[arg-type]
               {"email": email, "role": role, "permissions": permissions or []},
               page="/t/acme/users")
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/t/acme/users?done=invited"
    msg = p.mails.wait_for(email.lower(), "invited", count=nth)
    return p.mails.link_token(msg, "/invite")


def test_external_user_invited_with_reports_only(account_portal: AccountPortal) -> None:
    p = account_portal
    p.tenant("acme")
    admin = p.login(*p.person(Role.TENANT_ADMIN, "acme"))
    token = invite(p, admin, "Accountant@Example.org", "external", ["reports"])
    msg = p.mails.wait_for("accountant@example.org", "invited")
    body = p.mails.body(msg)
    assert f"{p.ctx.settings.base_url}/invite/{token}" in body
    assert "Acme" in msg["Subject"] and "external user" in body

    page = admin.get("/t/acme/users?done=invited").text
    assert "The invitation was sent." in page
    assert "accountant@example.org" in page and "reports" in page
    with p.ctx.reading() as w:
        row = w.session.scalars(select(EmailToken).where(EmailToken.purpose == "invite")).one()
        assert token not in {row.token_hash, row.id}  # only a hash is kept
        assert timedelta(days=6, hours=23) < row.expires_at - utcnow() <= timedelta(days=7)

    guest = p.client()
    r = guest.get(f"/invite/{token}")
    assert r.status_code == 200
    assert "accountant@example.org" in r.text and "external user" in r.text
    r = guest.post(f"/invite/{token}", data={"name": "Anna", "password": "short",
                                             "confirm": "short"})
    assert r.status_code == 400 and "too short" in r.text
    r = guest.post(f"/invite/{token}", data={"name": "Anna", "password": "Q1w2e3r4t5y6",
                                             "confirm": "Q1w2e3r4t5y6"})
    assert r.status_code == 400 and "commonly used" in r.text
    r = guest.post(f"/invite/{token}", data={"name": "Anna de Boer", "password": PASSWORD,
                                             "confirm": PASSWORD})
    assert r.status_code == 303, r.text  # logged in
    assert guest.get("/account").status_code == 200
    with p.ctx.reading() as w:
        user = w.session.scalars(select(User).where(User.email == "accountant@example.org")).one()
        assert (user.role, user.permissions, user.name) == ("external", "reports",
                                                            "Anna de Boer")
        assert user.tenant_id == p.tenant_id("acme")
        assert PASSWORD not in (user.password_hash or "")

    # The link works once.
    again = p.client()
    assert again.get(f"/invite/{token}").status_code == 410
    r = again.post(f"/invite/{token}", data={"name": "Eve", "password": PASSWORD + "!",
                                             "confirm": PASSWORD + "!"})
    assert r.status_code == 410 and "not valid" in r.text

    # Logging in afresh: the account page yes, what reports do not cover no.
    c = p.login("accountant@example.org", PASSWORD)
    page = c.get("/account")
    assert page.status_code == 200
    assert "accountant@example.org" in page.text and "external user" in page.text
    assert "reports" in page.text
    assert c.get("/t/acme/users").status_code == 403
    r = p.post(c, "/t/acme/invitations", {"email": "x@example.org", "role": "tenant_admin"})
    assert r.status_code == 403
    # The invitation is no longer open.
    assert "accountant@example.org" not in admin.get("/t/acme/users").text.split(
        "Open invitations")[1].split("Invite someone")[0]


def test_invitation_links_expire_and_can_be_revoked(account_portal: AccountPortal) -> None:
    p = account_portal
    p.tenant("acme")
    admin = p.login(*p.person(Role.TENANT_ADMIN, "acme"))

    expired = invite(p, admin, "late@example.org", "tenant_member")
    with p.ctx.unit() as w:
        w.session.execute(update(EmailToken).where(EmailToken.email == "late@example.org")
                  .values(expires_at=utcnow() - timedelta(seconds=1)))
    guest = p.client()
    r = guest.get(f"/invite/{expired}")
    assert r.status_code == 410 and "expired" in r.text
    r = guest.post(f"/invite/{expired}", data={"name": "Late", "password": PASSWORD,
                                               "confirm": PASSWORD})
    assert r.status_code == 410
    assert "late@example.org" not in admin.get("/t/acme/users").text

    revoked = invite(p, admin, "maybe@example.org", "tenant_member")
    with p.ctx.reading() as w:
        invitation_id = w.session.scalars(select(EmailToken.id).where(
            EmailToken.email == "maybe@example.org")).one()
    r = p.post(admin, f"/t/acme/invitations/{invitation_id}/revoke", {}, page="/t/acme/users")
    assert r.status_code == 303
    assert "The invitation was revoked" in admin.get("/t/acme/users?done=revoked").text
    assert guest.get(f"/invite/{revoked}").status_code == 410

    # A newer invitation to the same address replaces the older one.
    first = invite(p, admin, "twice@example.org", "tenant_member")
    second = invite(p, admin, "twice@example.org", "tenant_admin", nth=2)
    assert guest.get(f"/invite/{first}").status_code == 410
    assert "tenant admin" in guest.get(f"/invite/{second}").text

    # When the tenant's contract has ended, an open invitation no longer works.
    ended = invite(p, admin, "after@example.org", "tenant_member", nth=1)
    with p.ctx.unit() as w:
        set_contract(w, require_tenant(w, "acme"), "ended")
    r = guest.post(f"/invite/{ended}", data={"name": "After", "password": PASSWORD,
                                             "confirm": PASSWORD})
    assert r.status_code == 410
    with p.ctx.reading() as w:
        assert w.session.scalar(select(User).where(User.email == "after@example.org")) is None
    with p.ctx.unit() as w:
        set_contract(w, require_tenant(w, "acme"), "active")

    # What cannot be invited says why, and keeps what was typed.
    r = p.post(admin, "/t/acme/invitations", {"email": "ext@example.org", "role": "external"},
               page="/t/acme/users")
    assert r.status_code == 400 and "at least one permission" in r.text
    assert 'value="ext@example.org"' in r.text
    r = p.post(admin, "/t/acme/invitations", {"email": "x@example.org", "role": "support"},
               page="/t/acme/users")
    assert r.status_code == 400
    staff_email, _ = p.person(Role.SUPPORT)
    r = p.post(admin, "/t/acme/invitations", {"email": staff_email, "role": "tenant_member"},
               page="/t/acme/users")
    assert r.status_code == 400 and "has a Doorvoer account already" in r.text

    # A mail server that is down does not break the page: the page says so.
    p.set_smtp_port(p.free_port())
    r = p.post(admin, "/t/acme/invitations", {"email": "nomail@example.org",
                                              "role": "tenant_member"}, page="/t/acme/users")
    assert r.status_code == 200
    assert "could not be sent" in r.text and "nomail@example.org" in r.text


def test_removing_people(account_portal: AccountPortal) -> None:
    p = account_portal
    p.tenant("acme")
    p.tenant("other")
    admin_email, admin_password = p.person(Role.TENANT_ADMIN, "acme")
    admin = p.login(admin_email, admin_password)
    member_email, member_password = p.person(Role.TENANT_MEMBER, "acme")
    member = p.login(member_email, member_password)

    # A member sees the people, but cannot invite or remove.
    page = member.get("/t/acme/users")
    assert page.status_code == 200 and admin_email in page.text
    assert "Invite someone" not in page.text and "/remove" not in page.text
    with p.ctx.reading() as w:
        ids = {email: uid for email, uid in w.session.execute(select(User.email, User.id))}
    r = p.post(member, f"/t/acme/users/{ids[admin_email]}/remove", {}, page="/t/acme/users")
    assert r.status_code == 403
    # Another tenant's admin sees nothing of this one.
    outsider = p.login(*p.person(Role.TENANT_ADMIN, "other"))
    assert outsider.get("/t/acme/users").status_code == 403
    r = p.post(outsider, f"/t/acme/users/{ids[member_email]}/remove", {},
               page="/account")
    assert r.status_code == 403

    # The last admin cannot remove themselves.
    r = p.post(admin, f"/t/acme/users/{ids[admin_email]}/remove", {}, page="/t/acme/users")
    assert r.status_code == 400 and "last admin" in r.text

    # Removing a member ends their session at once; they cannot log in again.
    r = p.post(admin, f"/t/acme/users/{ids[member_email]}/remove", {}, page="/t/acme/users")
    assert r.status_code == 303
    r = member.get("/account")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    r = p.client().post("/login", data={"email": member_email, "password": member_password})
    assert r.status_code == 401
    assert "removed" in admin.get("/t/acme/users").text

    # Invited again, they come back with the new role.
    token = invite(p, admin, member_email, "tenant_admin")
    back = p.client()
    r = back.post(f"/invite/{token}", data={"name": "Back", "password": PASSWORD,
                                            "confirm": PASSWORD})
    assert r.status_code == 303, r.text
    assert "tenant admin" in back.get("/account").text
    # With two admins, an admin may leave; their session ends.
    r = p.post(admin, f"/t/acme/users/{ids[admin_email]}/remove", {}, page="/t/acme/users")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert admin.get("/account").status_code == 303


def test_suspending_and_resuming_people(account_portal: AccountPortal) -> None:
    """A tenant admin suspends an external user (and an admin's API tokens stop with
    them), resumes them, and the audit log says who did which; nobody else can."""
    from doorvoer.accounts.machines import create_token
    from doorvoer.audit import service as audit

    p = account_portal
    tenant_id = p.tenant("acme")
    p.tenant("other")
    admin_email, admin_password = p.person(Role.TENANT_ADMIN, "acme")
    admin = p.login(admin_email, admin_password)
    second_email, _ = p.person(Role.TENANT_ADMIN, "acme")
    token = invite(p, admin, "accountant@example.org", "external", ["reports"])
    external = p.client()
    r = external.post(f"/invite/{token}", data={"name": "Acc", "password": PASSWORD,
                                                "confirm": PASSWORD})
    assert r.status_code == 303, r.text
    assert external.get("/t/acme/dashboard").status_code == 200
    with p.ctx.unit() as w:
        ids = {email: uid for email, uid in w.session.execute(select(User.email, User.id))}
        api_token = create_token(w, tenant_id, ids[second_email], "nightly", ["audit:read"],
                                 days=1).secret
    api = p.client()
    api.headers["Authorization"] = f"Bearer {api_token}"
    assert api.get("/api/v1/audit/verify").status_code == 200

    # Others cannot: another tenant's admin, and the suspended person themselves.
    outsider = p.login(*p.person(Role.TENANT_ADMIN, "other"))
    r = p.post(outsider, f"/t/acme/users/{ids['accountant@example.org']}/suspend", {},
               page="/account")
    assert r.status_code == 403
    r = p.post(admin, f"/t/acme/users/{ids[admin_email]}/suspend", {}, page="/t/acme/users")
    assert r.status_code == 400 and "cannot suspend yourself" in r.text

    # Suspended: the session ends at once, sign-in is refused, the page says so.
    r = p.post(admin, f"/t/acme/users/{ids['accountant@example.org']}/suspend", {},
               page="/t/acme/users")
    assert r.status_code == 303 and r.headers["location"] == "/t/acme/users?done=suspended"
    r = external.get("/t/acme/dashboard")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    r = p.client().post("/login", data={"email": "accountant@example.org",
                                        "password": PASSWORD})
    assert r.status_code == 401
    assert "suspended" in admin.get("/t/acme/users").text
    # An admin's tokens stop with them, and start again when they are resumed; with
    # the second admin suspended, the first is the last one and stays.
    r = p.post(admin, f"/t/acme/users/{ids[second_email]}/suspend", {}, page="/t/acme/users")
    assert r.status_code == 303
    assert api.get("/api/v1/audit/verify").status_code == 401
    r = p.post(admin, f"/t/acme/users/{ids[second_email]}/resume", {}, page="/t/acme/users")
    assert r.status_code == 303
    assert api.get("/api/v1/audit/verify").status_code == 200

    # Resumed: the same password works again.
    r = p.post(admin, f"/t/acme/users/{ids['accountant@example.org']}/resume", {},
               page="/t/acme/users")
    assert r.status_code == 303 and r.headers["location"] == "/t/acme/users?done=resumed"
    again = p.client()
    r = again.post("/login", data={"email": "accountant@example.org", "password": PASSWORD})
    assert r.status_code == 303
    assert again.get("/t/acme/dashboard").status_code == 200
    with p.ctx.reading() as w:
        done = [(e["action"], e["object"], e["actor"]["name"])  # type: ignore[index]
                for e in audit.entries(w, tenant_id)
                if str(e["action"]).startswith(("user:person:suspended",
                                                "user:person:resumed"))]
    assert done == [("user:person:suspended", "accountant@example.org", admin_email),
                    ("user:person:suspended", second_email, admin_email),
                    ("user:person:resumed", second_email, admin_email),
                    ("user:person:resumed", "accountant@example.org", admin_email)]
