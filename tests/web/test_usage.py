"""Anonymised usage statistics (P21): per day and feature, how many tenants used it,
each tenant at most once, read from the audit chains; released with OpenDP's discrete
Laplace noise at the configured epsilon within a yearly budget; a tenant that opted out
is not counted; no tenant id, name or raw count is in a release."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from doorvoer.access.policy import Role
from doorvoer.audit import service as audit
from doorvoer.audit.events import Event
from doorvoer.db import utcnow
from doorvoer.privacy import usage
from doorvoer.privacy.models import UsageRelease
from doorvoer.tenants.service import create_tenant, require_tenant, set_usage_stats

from .conftest import AccountPortal


def test_usage_is_counted_once_per_tenant_released_with_noise_and_opt_out_holds(
        account_portal: AccountPortal) -> None:
    p, ctx = account_portal, account_portal.ctx
    with ctx.unit() as w:
        ids = {slug: create_tenant(w, slug, slug.title(), None).id
               for slug in ("acme", "globex", "initech")}
    with ctx.unit() as w:
        for _ in range(5):  # five uploads count once
            audit.record(w, ids["acme"], Event.UPLOAD_ACCEPTED, "x")
        audit.record(w, ids["globex"], Event.UPLOAD_ACCEPTED, "x")
        audit.record(w, ids["initech"], Event.PORTAL_LOGIN_SUCCEEDED, "x")
    today = utcnow().date()
    with ctx.reading() as w:
        raw = dict(zip(usage.FEATURES, usage._counts(w, today), strict=True))
    assert raw["uploads"] == 2 and raw["portal"] == 1 and raw["pickups"] == 0
    with ctx.unit() as w:
        set_usage_stats(w, require_tenant(w, "globex"), False)
    with ctx.reading() as w:
        raw = dict(zip(usage.FEATURES, usage._counts(w, today), strict=True))
        yesterday = dict(zip(usage.FEATURES, usage._counts(w, today - timedelta(days=1)),
                             strict=True))
    assert raw["uploads"] == 1  # globex opted out: not counted at all
    assert set(yesterday.values()) == {0}

    # Today is released only once it has ended, once; each day costs the set epsilon.
    # The job releases every ended day since the last release (the first time: yesterday;
    # the node's own loop may have been first).
    with ctx.unit() as w:
        usage.release_due(w, today)
        assert usage.release_due(w, today) == 0
    with ctx.reading() as w:
        assert w.session.scalar(select(UsageRelease.id).where(
            UsageRelease.day == str(today - timedelta(days=1))).limit(1))
    with ctx.unit() as w:
        assert usage.release(w, today) is None
        assert usage.release(w, today, today + timedelta(days=1)) == ctx.settings.usage_epsilon
        assert usage.release(w, today, today + timedelta(days=1)) is None
    # Thirty days without any use: every raw count is 0, so any figure above 0 is the
    # noise (with ε 0.5 over 9 counts, the chance that all 270 come out 0 is nil).
    start = today - timedelta(days=40)
    with ctx.unit() as w:
        for n in range(28):
            assert usage.release(w, start + timedelta(days=n), today) is not None
    with ctx.reading() as w:
        rows = list(w.session.scalars(select(UsageRelease)))
        assert len(rows) == 30 * len(usage.FEATURES)
        quiet = [r for r in rows if r.day < str(today - timedelta(days=1))]
        assert any(r.value > 0 for r in quiet) and all(r.value >= 0 for r in rows)
        assert abs(usage.spent(w, today.year) - sum(
            ctx.settings.usage_epsilon for d in {r.day for r in rows}
            if d.startswith(str(today.year)))) < 1e-9
        every = [str(v) for r in w.session.scalars(select(UsageRelease))
                 for v in (r.day, r.feature, r.value, r.epsilon)]
    for tenant_id in ids.values():
        assert not any(tenant_id in v for v in every)
    assert not any(slug in " ".join(every) for slug in ("acme", "globex", "initech"))

    # The yearly budget ends the releases.
    ctx.settings.usage_yearly_epsilon = ctx.settings.usage_epsilon * 2
    with ctx.unit() as w:
        assert usage.release(w, today - timedelta(days=45), today) is None

    # Operator admins see the chart; the tenant's switch is on its settings page.
    boss, password, clock = p.person_with_2fa(Role.OPERATOR_ADMIN)
    c = p.login(boss, password, clock)
    page = c.get("/operator/usage").text
    assert page.count("<svg") == len(usage.FEATURES) and "<rect" in page
    admin, pw, admin_clock = p.person_with_2fa(Role.TENANT_ADMIN, "acme")
    a = p.login(admin, pw, admin_clock)
    r = p.post(a, "/t/acme/settings/usage", {"usage": "off"}, page="/t/acme/settings")
    assert r.status_code == 303
    assert "no longer counted" in a.get(r.headers["location"]).text
    with ctx.reading() as w:
        assert not require_tenant(w, "acme").usage_stats
        assert "privacy:usage:opted" in [e["action"] for e in audit.entries(w, ids["acme"])]
