"""Anonymised usage statistics (P21): for each day, how many tenants used each feature,
released with noise from OpenDP's discrete Laplace mechanism, never sold.

- What is counted: whether a tenant used a feature on a day (at most once per feature
  per day), read at release time from the audit chains; nothing is recorded for it on
  any request path, and no tenant id, name, file name or content enters a release.
- The raw counts live in memory during the release only; what is stored is the noisy
  figure (clamped at 0), the day, the feature and the epsilon spent.
- One tenant changes each of the `len(FEATURES)` counts by at most 1, so a day's vector
  of counts has L1 sensitivity `len(FEATURES)`; the noise's scale is that over
  `usage_epsilon`, so one day's release costs `usage_epsilon` (by OpenDP's own map).
  The year's releases stop when they would spend more than `usage_yearly_epsilon`.
- A tenant that opted out (its settings) is not counted at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from doorvoer.audit import service as audit
from doorvoer.audit.events import Event
from doorvoer.db import utcnow
from doorvoer.privacy.models import UsageRelease
from doorvoer.tenants.models import Tenant
from doorvoer.unit import Work

# feature -> the audit action that shows a tenant used it
FEATURES: dict[str, str] = {
    "sftp_sessions": str(Event.SFTP_SESSION_STARTED),
    "uploads": str(Event.UPLOAD_ACCEPTED),
    "pickups": str(Event.OUTBOX_FETCHED),
    "sftp_pushes": str(Event.DELIVERY_DONE),
    "api": str(Event.API_SESSION_STARTED),
    "portal": str(Event.PORTAL_LOGIN_SUCCEEDED),
    "exports": str(Event.TENANT_EXPORTED),
    "support_access": str(Event.GRANT_APPROVED),
    "process_changes": str(Event.PROCESS_APPLIED),
}
BACKFILL_DAYS = 31


def _mechanism(epsilon: float) -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    space = dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int)
    return space >> dp.m.then_laplace(scale=len(FEATURES) / epsilon)


def _counts(w: Work, day: date) -> list[int]:
    """How many tenants (that did not opt out) used each feature on `day`: in memory."""
    since = datetime(day.year, day.month, day.day, tzinfo=UTC)
    until = since + timedelta(days=1)
    counts = dict.fromkeys(FEATURES, 0)
    for tenant_id in w.session.scalars(select(Tenant.id).where(Tenant.usage_stats)):
        actions = audit.actions_between(w, tenant_id, since, until)
        for feature, action in FEATURES.items():
            counts[feature] += action in actions
    return [counts[f] for f in FEATURES]


def spent(w: Work, year: int) -> float:
    """The epsilon the year's releases spent (one figure per day counts once)."""
    rows = w.session.execute(select(UsageRelease.day, func.max(UsageRelease.epsilon)).where(
        UsageRelease.day.startswith(f"{year}-")).group_by(UsageRelease.day)).all()
    return float(sum(e for _, e in rows))


def release(w: Work, day: date, today: date | None = None) -> float | None:
    """Release `day`'s figures (a day before `today`, not released before, within the
    year's budget). Returns the epsilon spent, or None when nothing was released."""
    key = day.isoformat()
    if day >= (today or utcnow().date()) or w.session.scalar(
            select(UsageRelease.id).where(UsageRelease.day == key).limit(1)):
        return None
    want = w.settings.usage_epsilon
    if spent(w, day.year) + want > w.settings.usage_yearly_epsilon:
        return None
    mechanism = _mechanism(want)
    epsilon = float(mechanism.map(len(FEATURES)))
    noisy = mechanism(_counts(w, day))
    for feature, value in zip(FEATURES, noisy, strict=True):
        w.session.add(UsageRelease(day=key, feature=feature, value=max(0, int(value)),
                                   epsilon=epsilon))
    audit.record(w, None, Event.USAGE_RELEASED, f"{key}: epsilon {epsilon:g}")
    return epsilon


def release_due(w: Work, today: date | None = None) -> int:
    """Release every ended day since the last release (at most a month back)."""
    today = today or utcnow().date()
    last = w.session.scalar(select(func.max(UsageRelease.day)))
    first = today - timedelta(days=1) if last is None else \
        max(date.fromisoformat(last) + timedelta(days=1), today - timedelta(days=BACKFILL_DAYS))
    done = 0
    day = first
    while day < today:
        done += release(w, day, today) is not None
        day += timedelta(days=1)
    return done


@dataclass(frozen=True)
class Figures:
    days: list[str]
    by_feature: dict[str, list[int | None]]  # per day, None where not released
    epsilon_per_day: float
    spent_this_year: float
    budget: float


def figures(w: Work, days: int = 30) -> Figures:
    """The released figures of the last `days` days, for the operator's chart."""
    today = utcnow().date()
    keys = [(today - timedelta(days=n)).isoformat() for n in range(days, 0, -1)]
    rows = w.session.scalars(select(UsageRelease).where(UsageRelease.day >= keys[0]))
    got = {(r.day, r.feature): r.value for r in rows}
    return Figures(keys, {f: [got.get((d, f)) for d in keys] for f in FEATURES},
                   w.settings.usage_epsilon, spent(w, today.year),
                   w.settings.usage_yearly_epsilon)
