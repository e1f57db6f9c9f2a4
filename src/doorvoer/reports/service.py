"""What a tenant sees of its transfers (P4): the report, the dashboard, the processes'
last runs, and what staff see of a tenant (counts only). Only reads: what is forgotten
when a tenant keeps no reports is `transfers.lifecycle`'s."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, true

from doorvoer.accounts.models import User
from doorvoer.db import utcnow
from doorvoer.errors import UserError
from doorvoer.processes.models import Process
from doorvoer.processes.service import unreported_process_ids
from doorvoer.processes.spec import parse_spec
from doorvoer.tenants.models import Tenant
from doorvoer.transfers.models import FINAL, State, Transfer
from doorvoer.unit import Work

NOT_FINAL = frozenset(State) - FINAL
PROBLEMS = (State.FAILED, State.INTERRUPTED, State.DISCARDED)
MAX_RANGE_DAYS = 366


def hidden_processes(w: Work, tenant: Tenant) -> list[str]:
    """Names of the processes whose spec says `report: false`."""
    ids = unreported_process_ids(w, tenant.id)
    if not ids:
        return []
    return sorted(w.execute(select(Process.name).where(Process.id.in_(ids))).scalars())


# ---------------------------------------------------------------- filters and rows


@dataclass(frozen=True)
class Filters:
    start: date  # inclusive, UTC
    end: date  # inclusive, UTC
    state: State | None = None
    process: str | None = None
    filename: str | None = None  # contains, case-insensitive

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]


def default_filters(today: date | None = None, days: int = 14) -> Filters:
    today = today or utcnow().date()
    return Filters(start=today - timedelta(days=days - 1), end=today)


def parse_filters(today: date, start: str | None, end: str | None, state: str | None,
                  process: str | None, filename: str | None) -> tuple[Filters, list[str]]:
    """Filters from a query string; what cannot be used is named in the messages."""
    errors: list[str] = []
    base = default_filters(today)

    def day(text: str | None, fallback: date, what: str) -> date:
        if not text:
            return fallback
        try:
            return date.fromisoformat(text)
        except ValueError:
            errors.append(f"The {what} date is not a date (use YYYY-MM-DD).")
            return fallback

    first = day(start, base.start, "from")
    last = day(end, max(base.end, first), "to")
    if first > last:
        errors.append("The from date is after the to date: they were swapped.")
        first, last = last, first
    if (last - first).days >= MAX_RANGE_DAYS:
        errors.append(f"A report covers at most {MAX_RANGE_DAYS} days: the from date moved.")
        first = last - timedelta(days=MAX_RANGE_DAYS - 1)
    chosen: State | None = None
    if state:
        try:
            chosen = State(state)
        except ValueError:
            errors.append("That state does not exist: showing every state.")
    return Filters(start=first, end=last, state=chosen, process=process or None,
                   filename=(filename or "").strip()[:255] or None), errors


def _start_of(d: date) -> datetime:
    return datetime.combine(d, time.min, tzinfo=UTC)


def _kept(tenant: Tenant, hidden: set[str]) -> ColumnElement[bool]:
    """Rows a report may show: with reporting off only what is in flight; a process with
    `report: false` shows none of its finished transfers."""
    in_flight = Transfer.state.in_(NOT_FINAL)
    if not tenant.report:
        return in_flight
    if hidden:
        return or_(in_flight, Transfer.process_id.is_(None),
                   Transfer.process_id.not_in(hidden))
    return true()


def _where(w: Work, tenant: Tenant, f: Filters, by_name: bool) -> list[ColumnElement[bool]]:
    hidden = unreported_process_ids(w, tenant.id)
    conds: list[ColumnElement[bool]] = [
        Transfer.tenant_id == tenant.id,
        _kept(tenant, hidden),
        Transfer.opened_at >= _start_of(f.start),
        Transfer.opened_at < _start_of(f.end + timedelta(days=1)),
    ]
    if f.state is not None:
        conds.append(Transfer.state == f.state)
    if f.process is not None:
        conds.append(Transfer.process_name == f.process)
    if f.filename and by_name:
        conds.append(func.lower(Transfer.filename).contains(f.filename.lower(), autoescape=True))
    return conds


@dataclass(frozen=True)
class Page:
    rows: list[Transfer]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def first(self) -> int:
        return 0 if self.total == 0 else (self.page - 1) * self.per_page + 1

    @property
    def last(self) -> int:
        return min(self.total, self.page * self.per_page)


def transfer_page(w: Work, tenant: Tenant, f: Filters, page: int = 1,
                  per_page: int = 50) -> Page:
    conds = _where(w, tenant, f, by_name=True)
    total = w.session.scalar(select(func.count()).select_from(Transfer).where(*conds)) or 0
    pages = max(1, math.ceil(total / per_page))
    page = min(max(1, page), pages)
    rows = list(w.session.scalars(
        select(Transfer).where(*conds)
        .order_by(Transfer.opened_at.desc(), Transfer.id)
        .offset((page - 1) * per_page).limit(per_page)))
    return Page(rows, total, page, per_page)


def process_names(w: Work, tenant: Tenant) -> list[str]:
    """Names to filter by: the processes, and names that only old transfers remember."""
    names = set(w.session.scalars(select(Process.name).where(Process.tenant_id == tenant.id)))
    names |= {n for n in w.session.scalars(select(Transfer.process_name).distinct().where(
        Transfer.tenant_id == tenant.id, Transfer.process_name.is_not(None))) if n}
    return sorted(names)


# ---------------------------------------------------------------- aggregates


@dataclass(frozen=True)
class Group:
    """A series of the per-day chart: states drawn as one colour."""

    key: str
    label: str
    color: str
    states: frozenset[State]


GROUPS = (
    Group("done", "Done", "#2f8f74", frozenset({State.ERASED})),
    Group("failed", "Failed", "#c8453b", frozenset({State.FAILED})),
    Group("interrupted", "Interrupted", "#e39545", frozenset({State.INTERRUPTED})),
    Group("discarded", "Discarded", "#b4ad9f", frozenset({State.DISCARDED})),
    Group("active", "In progress", "#5b8def", NOT_FINAL),
)


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return None
    k = (len(sorted_values) - 1) * p
    lo = math.floor(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


@dataclass
class Day:
    day: date
    states: Counter[State] = field(default_factory=Counter)
    bytes_in: int = 0
    bytes_out: int = 0
    residences: list[float] = field(default_factory=list)  # seconds, of finished ones

    @property
    def total(self) -> int:
        return sum(self.states.values())

    def count(self, group: Group) -> int:
        return sum(n for state, n in self.states.items() if state in group.states)


@dataclass
class Report:
    filters: Filters
    days: list[Day]

    @property
    def by_state(self) -> Counter[State]:
        total: Counter[State] = Counter()
        for d in self.days:
            total.update(d.states)
        return total

    def count(self, group: Group) -> int:
        return sum(d.count(group) for d in self.days)

    @property
    def total(self) -> int:
        return sum(d.total for d in self.days)

    @property
    def bytes_in(self) -> int:
        return sum(d.bytes_in for d in self.days)

    @property
    def bytes_out(self) -> int:
        return sum(d.bytes_out for d in self.days)

    @property
    def residences(self) -> list[float]:
        return sorted(r for d in self.days for r in d.residences)

    @property
    def percentiles(self) -> dict[str, float | None]:
        values = self.residences
        return {"p50": percentile(values, 0.50), "p95": percentile(values, 0.95),
                "p99": percentile(values, 0.99)}

    def last(self, days: int) -> Report:
        """The last `days` days of this report."""
        kept = self.days[-days:]
        return Report(Filters(start=kept[0].day, end=kept[-1].day, state=self.filters.state,
                              process=self.filters.process, filename=self.filters.filename),
                      kept)


def _residence(opened: datetime, received: datetime | None, erased: datetime | None
               ) -> float | None:
    if erased is None:
        return None
    return max(0.0, (erased - (received or opened)).total_seconds())


def build_report(w: Work, tenant: Tenant, f: Filters, by_name: bool = True) -> Report:
    """Per day: counts by state, bytes in and out, residence times. Only the columns it
    needs are read: never a file name."""
    rows = w.session.execute(
        select(Transfer.opened_at, Transfer.received_at, Transfer.erased_at, Transfer.state,
               Transfer.bytes_in, Transfer.bytes_out)
        .where(*_where(w, tenant, f, by_name=by_name)))
    days = {d: Day(d) for d in f.days}
    for opened, received, erased, state, b_in, b_out in rows:
        day = days.get(opened.astimezone(UTC).date())
        if day is None:
            continue
        state = State(state)
        day.states[state] += 1
        day.bytes_in += b_in or 0
        day.bytes_out += b_out or 0
        r = _residence(opened, received, erased)
        if r is not None and state.final:
            day.residences.append(r)
    return Report(f, list(days.values()))


@dataclass
class Dashboard:
    today: Report
    week: Report
    fortnight: Report
    in_flight: int
    problems: list[Transfer]


def dashboard(w: Work, tenant: Tenant, now: datetime | None = None,
              problems: int = 8) -> Dashboard:
    today = (now or utcnow()).date()
    fortnight = build_report(w, tenant, default_filters(today, 14))
    in_flight = w.session.scalar(select(func.count()).select_from(Transfer).where(
        Transfer.tenant_id == tenant.id, Transfer.state.in_(NOT_FINAL))) or 0
    hidden = unreported_process_ids(w, tenant.id)
    last = list(w.session.scalars(
        select(Transfer)
        .where(Transfer.tenant_id == tenant.id, _kept(tenant, hidden),
               Transfer.state.in_(PROBLEMS))
        .order_by(Transfer.opened_at.desc()).limit(problems)))
    return Dashboard(fortnight.last(1), fortnight.last(7), fortnight, in_flight, last)


# ---------------------------------------------------------------- processes


@dataclass
class ProcessView:
    process: Process
    valid: bool
    error: str | None
    reports: bool
    runs: list[Transfer]


def process_views(w: Work, tenant: Tenant, runs: int = 5) -> list[ProcessView]:
    """Each process with its spec re-validated now, and its last runs (none where the
    tenant or the process keeps no reports, apart from what is in flight)."""
    out = []
    for p in w.session.scalars(select(Process).where(Process.tenant_id == tenant.id)
                       .order_by(Process.name)):
        try:
            spec = parse_spec(p.spec_yaml, f"{p.name}.yaml")
            valid, error, reports = True, None, spec.report
        except UserError as exc:
            valid, error, reports = False, str(exc), True
        q = select(Transfer).where(Transfer.tenant_id == tenant.id,
                                   Transfer.process_id == p.id)
        if not (tenant.report and reports):
            q = q.where(Transfer.state.in_(NOT_FINAL))
        last = list(w.session.scalars(q.order_by(Transfer.opened_at.desc()).limit(runs)))
        out.append(ProcessView(p, valid, error, reports, last))
    return out


# ---------------------------------------------------------------- the operator's view


@dataclass(frozen=True)
class TenantCounts:
    """What staff may see of a tenant without a grant: who it is and how much, never
    what (P11, P12)."""

    tenant: Tenant
    users: int
    processes: int
    transfers_30d: int


def _counts(w: Work, column: Any, *where: Any) -> dict[str, int]:
    q = select(column, func.count()).where(*where).group_by(column)
    return {k: n for k, n in w.session.execute(q) if k is not None}


def tenant_counts(w: Work, now: datetime | None = None) -> list[TenantCounts]:
    since = (now or utcnow()) - timedelta(days=30)
    users = _counts(w, User.tenant_id)
    processes = _counts(w, Process.tenant_id)
    transfers = _counts(w, Transfer.tenant_id, Transfer.opened_at >= since)
    return [TenantCounts(t, users.get(t.id, 0), processes.get(t.id, 0),
                         transfers.get(t.id, 0))
            for t in w.session.scalars(select(Tenant).order_by(Tenant.name, Tenant.slug))]
