"""The portal in a real browser: Debian's Chromium driven by Playwright.

A tenant admin logs in, sets up TOTP from the secret on the page, logs out and in
with a code, sees a replayed code refused and a recovery code work once, invites an
external accountant who then sees only what the invitation allows, and the charts of
the transfers report render."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from doorvoer.access.policy import Role
from doorvoer.accounts.people import create_user
from doorvoer.context import Context
from doorvoer.tenants.service import require_tenant

from .conftest import MailCatcher, _root_conftest

root = _root_conftest()

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ADMIN = "ada@acme.example"
ACCOUNTANT = "boekhouder@accountants.example"
PASSWORD = "a quiet river in spring"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update",
            "--disable-sync"])
        yield b
        b.close()


@pytest.fixture
def portal(tmp_path: Path, sqlite_url: str,
           mail_server: tuple[MailCatcher, int]) -> Iterator[tuple[Context, str, MailCatcher]]:
    catcher, port = mail_server
    ctx = root.make_ctx(tmp_path, sqlite_url, smtp_host="127.0.0.1", smtp_port=port)
    login = root.add_tenant(ctx, tmp_path, "acme")
    with ctx.unit() as w:
        create_user(w, ADMIN, "Ada", Role.TENANT_ADMIN, require_tenant(w, "acme").id, PASSWORD)
    node = root.NodeThread(ctx, web=True).start()

    async def traffic() -> None:  # a few transfers, so the report has something to show
        conn, sftp = await root.asftp(node.port, login)
        async with conn:
            for i in range(6):
                async with sftp.open(f"/inbox/orders/week{i}.csv", "wb") as f:
                    await f.write(b"id;name;amount\n" + b"1;a;1,00\n" * (i + 1) * 50)
            async with sftp.open("/inbox/orders/broken.csv", "wb") as f:
                await f.write(b"id;name;amount\n1;a\n")
            for i in range(4):  # the tenant fetches some outputs: those are done
                name = f"/outbox/orders/week{i}.json"
                for _ in range(200):
                    if await sftp.exists(name):
                        break
                    await asyncio.sleep(0.05)
                async with sftp.open(name, "rb") as f:
                    await f.read()

    # Playwright's sync API runs an event loop in this thread: upload from another one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, traffic()).result(60)
    root.wait_for(lambda: len([t for t in root.transfers_of(ctx) if t.state.final]) == 5,
                  what="the fetched and the failed transfers to finish")
    yield ctx, node.base_url, catcher
    node.stop()
    ctx.close()


def _page(browser: Browser) -> Page:
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280,
                                                                      "height": 900})
    return context.new_page()


def _login(page: Page, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def _next_code(totp: pyotp.TOTP, used: set[str]) -> str:
    """A code not used before (a used one is refused): wait for the next step."""
    while True:
        code = totp.now()
        if code not in used:
            used.add(code)
            return code
        time.sleep(1)


def test_totp_setup_login_replay_and_recovery(browser: Browser, portal) -> None:  # type: ignore[no-untyped-def]
    _ctx, base, mail = portal
    page = _page(browser)
    _login(page, base, ADMIN, PASSWORD)
    expect(page).to_have_url(f"{base}/t/acme/dashboard")

    page.goto(f"{base}/account/2fa")
    expect(page.locator(".qr-box svg")).to_be_visible()
    totp = pyotp.TOTP(page.inner_text("#totp-secret").replace(" ", ""))
    used: set[str] = set()
    page.fill("input[name=code]", _next_code(totp, used))
    page.click("text=Turn two-factor on")
    codes = [c.strip() for c in page.locator("#recovery-codes code").all_inner_texts()]
    assert len(codes) == 10
    mail.wait_for(ADMIN, "two-factor")
    page.click("text=I have saved them")

    # Log out and in again: now the code is asked for.
    page.click("button:has-text('Log out')")
    _login(page, base, ADMIN, PASSWORD)
    expect(page).to_have_url(f"{base}/login/2fa")
    first = _next_code(totp, used)
    page.fill("input[name=code]", first)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base}/t/acme/dashboard")

    # The same code again, in a new login: refused.
    page.click("button:has-text('Log out')")
    _login(page, base, ADMIN, PASSWORD)
    page.fill("input[name=code]", first)
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_contain_text("not valid")
    expect(page).to_have_url(f"{base}/login/2fa")

    # A recovery code works once …
    page.fill("input[name=code]", codes[0])
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base}/t/acme/dashboard")
    mail.wait_for(ADMIN, "recovery code")
    # … and not twice.
    page.click("button:has-text('Log out')")
    _login(page, base, ADMIN, PASSWORD)
    page.fill("input[name=code]", codes[0])
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_be_visible()
    page.fill("input[name=code]", codes[1])
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base}/t/acme/dashboard")


def test_external_user_sees_only_what_the_invitation_allows(browser: Browser, portal) -> None:  # type: ignore[no-untyped-def]
    _ctx, base, mail = portal
    admin = _page(browser)
    _login(admin, base, ADMIN, PASSWORD)
    admin.goto(f"{base}/t/acme/users")
    admin.fill("input[name=email]", ACCOUNTANT)
    admin.select_option("select[name=role]", "external")
    admin.check("input[name=permissions][value=reports]")
    admin.click("text=Send invitation")
    expect(admin.locator("body")).to_contain_text(ACCOUNTANT)

    token = mail.link_token(mail.wait_for(ACCOUNTANT, "invit"), "/invite")
    guest = _page(browser)
    guest.goto(f"{base}/invite/{token}")
    guest.fill("input[name=name]", "Bea Boekhouder")
    guest.fill("input[name=password]", "ledgers and ledgers")
    guest.fill("input[name=confirm]", "ledgers and ledgers")
    guest.click("text=Accept and log in")
    expect(guest).to_have_url(f"{base}/t/acme/dashboard")
    nav = guest.locator("header nav")
    expect(nav).not_to_contain_text("Processes")
    expect(nav).not_to_contain_text("Users")
    for forbidden in ("processes", "users", "tokens", "settings"):
        response = guest.goto(f"{base}/t/acme/{forbidden}")
        assert response is not None and response.status == 403, forbidden
    assert guest.goto(f"{base}/operator/tenants").status == 403  # type: ignore[union-attr]
    # The same invitation link does not work twice.
    other = _page(browser)
    other.goto(f"{base}/invite/{token}")
    expect(other.locator("body")).not_to_contain_text("Accept and log in")


def test_transfers_report_charts_render(browser: Browser, portal, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _ctx, base, _ = portal
    page = _page(browser)
    _login(page, base, ADMIN, PASSWORD)
    page.goto(f"{base}/t/acme/transfers")
    expect(page.locator(".chart svg").first).to_be_visible()
    # Each chart comes in a wide and a narrow drawing; the stylesheet shows one.
    charts = [c for c in page.locator(".chart svg").all() if c.is_visible()]
    assert len(charts) >= 3
    for chart in charts:
        box = chart.bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 80
        assert chart.locator("rect, path, line").count() > 3
    expect(page.locator("body")).to_contain_text("week3.csv")
    broken = page.locator("tr", has_text="broken.csv")
    expect(broken).to_contain_text(re.compile("failed", re.IGNORECASE))
    expect(broken).to_contain_text("line 2")  # the reason, with its line
    shot = tmp_path / "transfers-report.png"  # docs/ has one with more data: scripts/
    page.screenshot(path=str(shot), full_page=True)  # report-screenshot makes it
    assert shot.stat().st_size > 20_000


def _with_totp(ctx: Context, email: str, role: Role, tenant: str | None) -> pyotp.TOTP:
    from doorvoer.accounts import totp as totps
    from doorvoer.db import utcnow

    secret = totps.new_secret()
    with ctx.unit() as w:
        tenant_id = require_tenant(w, tenant).id if tenant else None
        user = create_user(w, email, email.split("@")[0], role, tenant_id, PASSWORD)
        w.session.flush()
        user.totp_secret = totps.seal_secret(ctx.sealer, user, secret)
        user.totp_enabled_at = utcnow()
    return pyotp.TOTP(secret)


def test_support_asks_the_admin_approves_then_revokes_and_the_audit_log_shows_it(
        browser: Browser, portal) -> None:  # type: ignore[no-untyped-def]
    ctx, base, mail = portal
    used: set[str] = set()
    boss = _with_totp(ctx, "boss@acme.example", Role.TENANT_ADMIN, "acme")
    helper = _with_totp(ctx, "helpdesk@doorvoer.example", Role.SUPPORT, None)

    support = _page(browser)
    _login(support, base, "helpdesk@doorvoer.example", PASSWORD)
    support.fill("input[name=code]", _next_code(helper, used))
    support.click("button[type=submit]")
    support.goto(f"{base}/t/acme/transfers")
    expect(support.locator("main")).to_contain_text("no active grant")
    support.click("main >> text=Support access")
    support.select_option("select[name=tenant]", "acme")
    support.fill("input[name=ticket]", "SUP-7")
    support.fill("textarea[name=reason]", "Two files failed last night")
    support.click("button:has-text('Ask for access')")
    expect(support.locator(".notice")).to_contain_text("Nothing is open")
    mail.wait_for("boss@acme.example", "Support asks for access")

    admin = _page(browser)
    _login(admin, base, "boss@acme.example", PASSWORD)
    admin.fill("input[name=code]", _next_code(boss, used))
    admin.click("button[type=submit]")
    admin.click("nav >> text=GDPR")
    expect(admin.locator("#requests")).to_contain_text("helpdesk@doorvoer.example")
    admin.select_option("select[name=hours]", "4")
    admin.click("button:has-text('Approve')")
    expect(admin.locator(".notice")).to_contain_text("Access approved")
    expect(admin.locator("#active")).to_contain_text("SUP-7")

    support.goto(f"{base}/support")
    support.click("text=Open Acme")
    support.click("nav >> text=Transfers")
    expect(support.locator("h1")).to_contain_text("Transfers")
    expect(support.locator("main")).to_contain_text("week1.csv")

    admin.goto(f"{base}/t/acme/gdpr")
    admin.click("#active >> button:has-text('Revoke')")
    expect(admin.locator(".notice")).to_contain_text("Access revoked")

    support.click("nav >> text=Dashboard")  # the next click after the revocation
    expect(support.locator("h1")).to_have_text("Not allowed")
    expect(support.locator("main")).to_contain_text("no active grant")

    admin.click("nav >> text=Audit log")
    table = admin.locator("#audit-entries")
    for action in ("grant:access:revoked", "staff:access:denied", "staff:access:allowed",
                   "grant:access:first_used", "grant:request:approved",
                   "grant:request:created"):
        expect(table).to_contain_text(action)
    admin.click("text=Verify now")
    expect(admin.locator("#chain .notice")).to_contain_text("The chain holds")


def test_your_data_download_then_an_erasure_asked_for_and_cancelled(
        browser: Browser, portal, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import json
    import zipfile

    ctx, base, mail = portal
    used: set[str] = set()
    dpo = _with_totp(ctx, "dpo@acme.example", Role.TENANT_ADMIN, "acme")
    page = _page(browser)
    _login(page, base, "dpo@acme.example", PASSWORD)
    page.fill("input[name=code]", _next_code(dpo, used))
    page.click("button[type=submit]")
    page.click("nav >> text='Your data'")
    expect(page.locator("#kinds")).to_contain_text("each file's passage")  # said first
    with page.expect_download() as download:
        page.click("text=Download everything (ZIP)")
    saved = tmp_path / "export.zip"
    download.value.save_as(saved)
    with zipfile.ZipFile(saved) as z:
        assert "README.txt" in z.namelist()
        files = [t["file"] for t in json.loads(z.read("data/transfers.json"))]
    assert "orders/week1.csv" in files

    page.fill("#erase input[name=confirm]", "not-acme")
    page.click("#erase button.danger")
    expect(page.locator("#erase .error")).to_contain_text("type the tenant's name")
    page.fill("#erase input[name=confirm]", "acme")
    page.click("#erase button.danger")
    expect(page.locator("#erasure-pending")).to_contain_text("will be erased on")
    mail.wait_for("dpo@acme.example", "will be erased")
    page.click("text=Cancel the erasure")
    expect(page.locator("#erase .notice")).to_contain_text("nothing was erased")
    expect(page.locator("#erase button.danger")).to_be_visible()
    mail.wait_for("dpo@acme.example", "cancelled")
    with ctx.reading() as w:
        assert require_tenant(w, "acme").contract == "active"


def test_an_incident_banner_until_the_admin_acknowledges(
        browser: Browser, portal) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from doorvoer.db import utcnow
    from doorvoer.privacy import incidents

    ctx, base, mail = portal
    with ctx.unit() as w:
        spec = incidents.IncidentSpec.model_validate({
            "became_known_at": utcnow() - timedelta(hours=5), "summary": "A backup tape "
            "went missing in transit", "tenants": ["acme"], "data_categories": ["names"],
            "approximate_subjects": 40, "likely_consequences": "unlikely to be read",
            "measures_taken": "courier traced", "measures_proposed": "encrypted tapes only",
            "contact": "dpo@processor.example"})
        incidents.record(w, spec, "ops@processor.example")
    with ThreadPoolExecutor(1) as pool:  # Playwright's loop runs in this thread
        pool.submit(asyncio.run, incidents.send_pending(ctx)).result(30)
    mail.wait_for(ADMIN, "Personal data incident")
    page = _page(browser)
    _login(page, base, ADMIN, PASSWORD)
    banner = page.locator("#incident-banner")
    expect(banner).to_contain_text("A backup tape went missing")
    expect(banner.locator(".clock")).to_contain_text(re.compile(r"^6[67] h \d+ min left$"))
    page.click("#incident-banner >> text=Read it and acknowledge")
    expect(page.locator("main")).to_contain_text("encrypted tapes only")
    page.click("button:has-text('Acknowledge')")
    expect(page.locator(".notice")).to_contain_text("Acknowledged")
    expect(page.locator("#incident-banner")).to_have_count(0)
    page.click("nav >> text=Dashboard")
    expect(page.locator("#incident-banner")).to_have_count(0)


def test_the_record_of_processing_page_and_its_pdf(browser: Browser, portal,  # type: ignore[no-untyped-def]
                                                   tmp_path: Path) -> None:
    _ctx, base, _ = portal
    page = _page(browser)
    _login(page, base, ADMIN, PASSWORD)
    page.click("nav >> text='Record'")
    expect(page.locator("h1")).to_contain_text("Record of processing activities")
    expect(page.locator(".controller h2")).to_have_text("Controller: Acme")
    expect(page.locator(".controller")).to_contain_text("read as csv")
    expect(page.locator("#security")).to_contain_text("AES-256-GCM")
    with page.expect_download() as download:
        page.click("text=PDF")
    saved = tmp_path / "record.pdf"
    download.value.save_as(saved)
    assert saved.read_bytes().startswith(b"%PDF-")
    page.click("nav >> text='Where your data goes'")
    expect(page.locator("#manifest")).to_contain_text("Acme's own pickup")
