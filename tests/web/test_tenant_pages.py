"""A tenant's pages on a real HTTPS node (SQLite and PostgreSQL): who may see what, the
transfers report's filters and charts, and reporting switched off (P4)."""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

from sqlalchemy import select, update

from doorvoer.access.policy import Role
from doorvoer.accounts import totp
from doorvoer.accounts.models import User, WebSession
from doorvoer.db import utcnow
from doorvoer.processes.models import Process
from doorvoer.reports.format import human_duration
from doorvoer.reports.service import percentile
from doorvoer.tenants.service import require_tenant
from doorvoer.transfers import inbox
from doorvoer.transfers.inbox import UploadSession
from doorvoer.transfers.lifecycle import housekeeping
from doorvoer.transfers.models import State
from doorvoer.transfers.service import list_transfers
from doorvoer.workers import claim_and_process

from .conftest import ReportPortal, _root_conftest

root = _root_conftest()

INVOICES_SPEC = (root.CSV_SPEC.replace("name: orders", "name: invoices")
                 .replace("orders/*.csv", "invoices/*.csv")
                 .replace("pickup: orders/", "pickup: invoices/"))
ORDERS = "id;name;amount\r\n1;Bakker €;12,50\r\n2;\"De; Vries\";7,00\r\n".encode("cp1252")
OFF = "Reporting is switched off for this tenant: no per-transfer records are kept."


def _noon(d: date, minutes: int = 0) -> datetime:
    return datetime.combine(d, dtime(12, 0), tzinfo=UTC) + timedelta(minutes=minutes)


def _wide(html: str, chart_title: str) -> str:
    """The laptop version of the chart whose SVG <title> is `chart_title`."""
    for svg in re.findall(r'<div class="chart-wide">(<svg.*?</svg>)</div>', html, re.S):
        if f"<title>{chart_title}</title>" in svg:
            return str(svg)
    raise AssertionError(f"no chart {chart_title!r}")


def _marks(svg: str, *names: str) -> list[tuple[str, ...]]:
    """The data-* values of the chart's marks (bars), in drawing order."""
    out = []
    for rect in re.findall(r"<rect [^>]*>", svg):
        values = [re.search(rf'data-{n}="([^"]*)"', rect) for n in names]
        if all(values):
            out.append(tuple(v.group(1) for v in values if v))
    return out


def _files(html: str) -> list[str]:
    return re.findall(r'<span class="fname"[^>]*>([^<]*)</span>', html)


# ---------------------------------------------------------------- who may see what


def test_tenant_pages_by_role(report_portal: ReportPortal) -> None:
    p = report_portal
    p.tenant("acme")
    p.tenant("globex", spec=INVOICES_SPEC)
    now = utcnow()
    p.transfer("acme", now - timedelta(hours=1), filename="acme-secret-ledger.csv")
    p.transfer("acme", now - timedelta(hours=2), state=State.FAILED, filename="broken.csv",
               error="read: line 1: the header has 2 columns, the spec expects 3")

    admin = p.person(Role.TENANT_ADMIN, "acme")
    member = p.person(Role.TENANT_MEMBER, "acme")
    reports_only = p.person(Role.EXTERNAL, "acme", frozenset({"reports"}))
    transfers_only = p.person(Role.EXTERNAL, "acme", frozenset({"transfers"}))
    other = p.person(Role.TENANT_ADMIN, "globex")
    support = p.person(Role.SUPPORT)
    opadmin = p.person(Role.OPERATOR_ADMIN)
    anonymous = p.client()

    pages = ["dashboard", "processes", "transfers", "settings"]
    expected = {
        "admin": (admin, {"dashboard", "processes", "transfers", "settings"}),
        "member": (member, {"dashboard", "processes", "transfers"}),
        "external reports": (reports_only, {"dashboard", "transfers"}),
        "external transfers": (transfers_only, {"dashboard", "transfers"}),
        "other tenant's admin": (other, set()),
        "support": (support, set()),
        "operator admin": (opadmin, set()),
    }
    wrong = []
    for who, (client, allowed) in expected.items():
        for page in pages:
            r = client.get(f"/t/acme/{page}")
            want = 200 if page in allowed else 403
            if r.status_code != want:
                wrong.append(f"{who} on {page}: {r.status_code}, expected {want}")
    for page in pages:
        r = anonymous.get(f"/t/acme/{page}")
        assert r.status_code == 303
        assert r.headers["location"].startswith("/login?next=")
    assert wrong == []
    # An unknown tenant looks like a forbidden one.
    assert admin.get("/t/nosuch/dashboard").status_code == 403
    assert support.post("/t/acme/settings/reporting", data={"report": "off"}).status_code == 403

    # Each tenant user lands on its own tenant's dashboard.
    r = admin.get("/t/home")
    assert (r.status_code, r.headers["location"]) == (303, "/t/acme/dashboard")
    r = other.get("/t/home")
    assert (r.status_code, r.headers["location"]) == (303, "/t/globex/dashboard")

    # The navigation shows what the viewer may use.
    nav = re.compile(r'<nav class="nav">(.*?)</nav>', re.S)
    admin_nav = nav.findall(admin.get("/t/acme/dashboard").text)[0]
    member_nav = nav.findall(member.get("/t/acme/dashboard").text)[0]
    reports_nav = nav.findall(reports_only.get("/t/acme/dashboard").text)[0]
    for link in ("dashboard", "processes", "transfers", "users", "tokens", "settings"):
        assert f'href="/t/acme/{link}"' in admin_nav
    assert 'href="/t/acme/settings"' not in member_nav
    assert 'href="/t/acme/tokens"' not in member_nav
    assert 'href="/t/acme/processes"' not in reports_nav
    assert 'href="/t/acme/transfers"' in reports_nav

    # File names are for those who may see transfers; charts for those who may see reports.
    board = admin.get("/t/acme/dashboard").text
    assert "broken.csv" in board
    assert "the header has 2 columns" in board
    page = reports_only.get("/t/acme/transfers").text
    assert "Transfers per day by state" in page
    assert "acme-secret-ledger.csv" not in page
    assert "broken.csv" not in page
    assert "broken.csv" not in reports_only.get("/t/acme/dashboard").text
    page = reports_only.get("/t/acme/transfers", params={"name": "secret"}).text
    assert 'name="name"' not in page  # no file-name filter: it would reveal names
    page = transfers_only.get("/t/acme/transfers").text
    assert "acme-secret-ledger.csv" in page
    assert "Transfers per day by state" not in page
    # Another tenant's admin sees nothing of acme even through its own pages.
    assert "acme-secret-ledger.csv" not in other.get("/t/globex/transfers").text


def test_processes_page_shows_spec_validation_and_runs(report_portal: ReportPortal) -> None:
    p = report_portal
    p.tenant("acme")
    p.process("acme", INVOICES_SPEC + "report: false\n")
    when = utcnow() - timedelta(minutes=5)
    p.transfer("acme", when, filename="week45.csv")
    # A spec that was valid when applied and no longer is (a field the model dropped).
    with p.ctx.unit() as w:
        proc = w.session.scalars(select(Process).where(Process.name == "orders")).one()
        proc.spec_yaml += "colour: blue\n"
    admin = p.person(Role.TENANT_ADMIN, "acme")
    html = admin.get("/t/acme/processes").text
    orders = html[html.index('id="process-orders"'):]
    invoices = html[html.index('id="process-invoices"'):html.index('id="process-orders"')]
    assert "spec invalid" in orders
    assert "colour: unknown field" in orders
    assert "week45.csv" in orders
    assert "/inbox/orders/" in orders
    assert "SELECT id, upper(name) AS name" in orders  # the spec, read-only
    assert "spec valid" in invoices
    assert "report: false" in invoices
    external = p.person(Role.EXTERNAL, "acme", frozenset({"processes"}))
    html = external.get("/t/acme/processes").text
    assert "spec invalid" in html
    assert "week45.csv" not in html  # runs without file names: no VIEW_TRANSFERS


# ---------------------------------------------------------------- the report


def test_transfers_report_filters_and_charts(report_portal: ReportPortal) -> None:
    p = report_portal
    p.tenant("acme")
    p.process("acme", INVOICES_SPEC)
    today = utcnow().date()
    d2, d1 = today - timedelta(days=2), today - timedelta(days=1)
    known = [  # (day, state, process, file, bytes in, bytes out, residence)
        (d2, State.ERASED, "orders", "Week45-orders.csv", 1000, 900, 0.5),
        (d2, State.ERASED, "orders", "week46-orders.csv", 2000, 1800, 3.0),
        (d2, State.ERASED, "invoices", "inv-001.csv", 4000, 3000, 7.0),
        (d2, State.FAILED, "orders", "bad-orders.csv", 500, None, 1.5),
        (d1, State.ERASED, "orders", "week47-orders.csv", 3000, 2500, 2.5),
        (d1, State.ERASED, "invoices", "inv-002.csv", 6000, 5000, 4000.0),
        (d1, State.INTERRUPTED, "orders", "cut.csv", 100, None, 40.0),
        (today, State.RECEIVING, "orders", "waiting.csv", 700, None, None),
    ]
    for i, (day, state, process, name, b_in, b_out, res) in enumerate(known):
        p.transfer("acme", _noon(day, i), state=state, process=process, filename=name,
                   bytes_in=b_in, bytes_out=b_out, residence=res,
                   error="read: line 1: bad header" if state == State.FAILED else None)
    member = p.person(Role.TENANT_MEMBER, "acme")

    html = member.get("/t/acme/transfers").text
    assert sorted(_files(html)) == sorted(k[3] for k in known)
    # Transfers per day by state: one stacked bar segment per (day, state group).
    per_day = Counter()
    for day, state, *_ in known:
        group = {State.ERASED: "done", State.FAILED: "failed",
                 State.INTERRUPTED: "interrupted"}.get(state, "active")
        per_day[(group, day.isoformat())] += 1
    bars = _marks(_wide(html, "Transfers per day by state"), "state", "day", "count")
    assert {(s, d): int(n) for s, d, n in bars} == per_day
    assert len(bars) == len(per_day)
    # Residence: the bins of the finished ones, and the percentiles marked.
    residences = sorted(k[6] for k in known if k[1].final)
    histogram = _wide(html, "Residence time distribution")
    assert _marks(histogram, "bin", "count") == [("0", "1"), ("1", "1"), ("2", "2"),
                                                 ("3", "1"), ("5", "1"), ("9", "1")]
    for q, key in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        value = percentile(residences, q)
        assert f"{key} {human_duration(value)}" in histogram
    assert 'role="img"' in histogram
    assert "aria-label=\"Residence time of 7 finished transfers" in histogram
    # Bytes in and out per day.
    volume = _marks(_wide(html, "Bytes in and out per day"), "bytes", "day", "value")
    sums: Counter[tuple[str, str]] = Counter()
    for day, _, _, _, b_in, b_out, _ in known:
        sums[("in", day.isoformat())] += b_in
        if b_out:
            sums[("out", day.isoformat())] += b_out
    assert {(w, d): int(v) for w, d, v in volume} == sums
    # Tooltips and an accessible table of the same numbers.
    assert f"<title>{_long(d2)}: 4 transfers (3 done, 1 failed)</title>" in html
    assert "Show as a table" in html

    # Filters: state, process, file name (case-insensitive), date range.
    def files(**params: str) -> list[str]:
        r = member.get("/t/acme/transfers", params=params)
        assert r.status_code == 200
        return sorted(_files(r.text))

    assert files(state="FAILED") == ["bad-orders.csv"]
    assert files(process="invoices") == ["inv-001.csv", "inv-002.csv"]
    assert files(name="WEEK4") == ["Week45-orders.csv", "week46-orders.csv",
                                   "week47-orders.csv"]
    assert files(name="%") == []  # a LIKE wildcard is taken literally
    assert files(**{"from": d1.isoformat(), "to": d1.isoformat()}) == [
        "cut.csv", "inv-002.csv", "week47-orders.csv"]
    assert files(**{"from": d1.isoformat(), "to": d1.isoformat(), "state": "ERASED",
                    "process": "orders"}) == ["week47-orders.csv"]
    # The charts follow the filters too.
    r = member.get("/t/acme/transfers", params={"process": "invoices"})
    bars = _marks(_wide(r.text, "Transfers per day by state"), "state", "day", "count")
    assert sorted(bars) == [("done", d2.isoformat(), "1"), ("done", d1.isoformat(), "1")]
    # Bad input is named, not a failure.
    r = member.get("/t/acme/transfers", params={"from": "yesterday", "state": "NOPE"})
    assert r.status_code == 200
    assert "The from date is not a date" in r.text
    assert "That state does not exist" in r.text
    r = member.get("/t/acme/transfers", params={"from": today.isoformat(),
                                                "to": d2.isoformat()})
    assert "swapped" in r.text
    assert len(_files(r.text)) == len(known)


def _long(d: date) -> str:
    return f"{d.strftime('%a')} {d.day} {d.strftime('%b %Y')}"


def test_transfers_report_pages(report_portal: ReportPortal) -> None:
    p = report_portal
    p.tenant("acme")
    day = utcnow().date() - timedelta(days=3)
    for i in range(62):
        p.transfer("acme", _noon(day, i), filename=f"bulk-{i:03d}.csv")
    admin = p.person(Role.TENANT_ADMIN, "acme")
    first = admin.get("/t/acme/transfers").text
    assert len(_files(first)) == 50
    assert _files(first)[0] == "bulk-061.csv"  # newest first
    assert "Page 1 of 2" in first
    assert "62 transfers" in first
    link = re.search(r'href="([^"]*page=2)#list" rel="next"', first)
    assert link is not None
    second = admin.get(link.group(1).replace("&amp;", "&")).text
    assert _files(second) == [f"bulk-{i:03d}.csv" for i in range(11, -1, -1)]
    assert "Page 2 of 2" in second
    # Beyond the last page: the last page.
    assert _files(admin.get("/t/acme/transfers", params={"page": "9"}).text) == \
        _files(second)


# ---------------------------------------------------------------- reporting off (P4)


def _upload_and_fetch(port: int, login: object, folder: str, name: str, tmp: Path) -> None:
    src = tmp / name
    src.write_bytes(ORDERS)
    root.sftp_batch(port, login, f"put {src} /inbox/{folder}/{name}\n")
    out = name.replace(".csv", ".json")
    root.wait_for(lambda: out in root.sftp_batch(port, login, f"ls /outbox/{folder}\n").stdout,
                  what="the output in the outbox")
    root.sftp_batch(port, login, f"get /outbox/{folder}/{out} {tmp / out}\n")


def test_reporting_off_keeps_no_record_of_finished_transfers(
        report_portal: ReportPortal) -> None:
    p = report_portal
    login = p.tenant("acme")
    p.transfer("acme", utcnow() - timedelta(days=1), filename="kept-so-far.csv")
    p.transfer("acme", utcnow() - timedelta(days=2), filename="also-kept.csv")
    admin = p.person(Role.TENANT_ADMIN, "acme")
    assert "kept-so-far.csv" in admin.get("/t/acme/transfers").text

    r = p.post_form(admin, "/t/acme/settings", "/t/acme/settings/reporting", {"report": "off"})
    assert r.status_code == 303
    page = admin.get(r.headers["location"]).text
    assert "2 records of finished transfers deleted" in page
    assert p.transfer_count("acme") == 0  # what was kept so far is gone at once
    for path in ("/t/acme/dashboard", "/t/acme/transfers", "/t/acme/settings"):
        assert OFF in admin.get(path).text
    assert "Transfers per day by state" not in admin.get("/t/acme/transfers").text

    # A transfer through the real SFTP path: in flight it has a row, finished it has none.
    _upload_and_fetch(p.node.port, login, "orders", "week45.csv", p.tmp_path)
    root.wait_for(lambda: p.transfer_count("acme") == 0, timeout=20,
                  what="the finished transfer's record to be deleted")
    time.sleep(1.5)  # a housekeeping round later, still nothing
    assert p.transfer_count("acme") == 0
    with p.ctx.reading() as w:
        assert require_tenant(w, "acme").report is False

    # Switched on again, transfers are kept.
    r = p.post_form(admin, "/t/acme/settings", "/t/acme/settings/reporting", {"report": "on"})
    assert r.status_code == 303
    _upload_and_fetch(p.node.port, login, "orders", "week46.csv", p.tmp_path)
    done = root.wait_for(lambda: [t for t in root.transfers_of(p.ctx)
                                  if t.state == State.ERASED], what="the transfer erased")
    assert [t.filename for t in done] == ["week46.csv"]
    assert "week46.csv" in admin.get("/t/acme/transfers").text


def test_process_with_report_false_keeps_no_record(report_portal: ReportPortal) -> None:
    p = report_portal
    login = p.tenant("acme")
    p.process("acme", INVOICES_SPEC + "report: false\n")
    _upload_and_fetch(p.node.port, login, "orders", "o1.csv", p.tmp_path)
    _upload_and_fetch(p.node.port, login, "invoices", "i1.csv", p.tmp_path)
    root.wait_for(lambda: [t.filename for t in root.transfers_of(p.ctx)] == ["o1.csv"]
                  and root.transfers_of(p.ctx)[0].state == State.ERASED,
                  what="only the reported process's record left")
    admin = p.person(Role.TENANT_ADMIN, "acme")
    page = admin.get("/t/acme/transfers").text
    assert "o1.csv" in page
    assert "i1.csv" not in page
    assert "<strong>invoices</strong>" in page  # the page says which process keeps none


def test_unreported_transfer_stays_statable_for_the_grace(tmp_path: Path,
                                                          database_url: str) -> None:
    """rclone stats what it just wrote: the row of a transfer that ended within the stat
    grace stays until the grace is over, then housekeeping deletes it."""
    ctx = root.make_ctx(tmp_path, database_url, stat_grace_s=1.0)
    try:
        root.add_tenant(ctx, tmp_path, "acme")
        with ctx.unit() as w:
            tenant = require_tenant(w, "acme")
            tenant.report = False
            tenant_id = tenant.id
        upload = ctx.run(UploadSession.begin, tenant_id, None, "orders", "bad.csv")
        upload.append(b"id;name;amount\n1;x;not a number\n")
        assert ctx.run(upload.complete) == State.RECEIVED
        assert claim_and_process(ctx, 1) == {upload.transfer_id: State.FAILED}
        entry = ctx.run(inbox.inbox_entry, tenant_id, "orders", "bad.csv")
        assert entry is not None
        assert entry.size == 32
        time.sleep(1.1)
        ctx.run(housekeeping)
        assert ctx.run(inbox.inbox_entry, tenant_id, "orders", "bad.csv") is None
        assert ctx.run(list_transfers) == []
        # An upload cut off before it completed leaves nothing either.
        upload = ctx.run(UploadSession.begin, tenant_id, None, "orders", "cut.csv")
        ctx.run(upload.interrupt, "the connection dropped")
        assert ctx.run(list_transfers) == []
    finally:
        ctx.close()


def test_dashboard_figures(report_portal: ReportPortal) -> None:
    p = report_portal
    p.tenant("acme")
    now = utcnow()
    today = now.date()
    # Today (or, just after midnight, as early today as possible) and earlier this week.
    early = datetime.combine(today, dtime(0, 0), tzinfo=UTC)
    p.transfer("acme", early, bytes_in=2_000_000, bytes_out=1_000_000, residence=2.0)
    p.transfer("acme", early, state=State.FAILED, bytes_out=None, residence=4.0,
               error="transform: line 3, column 2: a value is not a number")
    p.transfer("acme", _noon(today - timedelta(days=3)), bytes_in=3_000_000,
               bytes_out=500_000, residence=6.0)
    p.transfer("acme", _noon(today - timedelta(days=10)), bytes_in=9_000_000,
               residence=100.0)  # outside the week
    p.transfer("acme", early, state=State.READY, residence=None)
    admin = p.person(Role.TENANT_ADMIN, "acme")
    html = admin.get("/t/acme/dashboard").text

    def card(label: str) -> str:
        start = html.index(f'<div class="stat-label">{label}</div>')
        return html[start:html.index("</section>", start)]

    assert '<div class="stat">3</div>' in card("Today")
    assert '<div class="stat">4</div>' in card("Last 7 days")
    assert "5.0 MB" in card("Data, last 7 days")  # 2 MB + 3 MB + the 1000 B default
    assert "1.5 MB out" in card("Data, last 7 days")
    assert '<div class="stat">4 s</div>' in card("Residence, last 7 days")  # median 2, 4, 6
    assert '<div class="stat">1</div>' in card("In progress now")
    assert "a value is not a number" in html
    bars = _marks(_wide(html, "Transfers per day by state"), "state", "day", "count")
    assert ("done", (today - timedelta(days=10)).isoformat(), "1") in bars


def test_switching_reporting_off_needs_a_fresh_second_factor(
        report_portal: ReportPortal) -> None:
    p = report_portal
    p.tenant("acme")
    admin = p.person(Role.TENANT_ADMIN, "acme")
    with p.ctx.unit() as w:
        user = w.session.scalars(select(User).where(
            User.role == Role.TENANT_ADMIN.value)).one()
        user.totp_secret = totp.seal_secret(p.ctx.sealer, user, totp.new_secret())
        w.session.execute(update(WebSession).values(reauth_at=None))
    r = p.post_form(admin, "/t/acme/settings", "/t/acme/settings/reporting", {"report": "off"})
    assert r.status_code == 303
    assert r.headers["location"].startswith("/account/reauth")
    with p.ctx.reading() as w:
        assert require_tenant(w, "acme").report is True
