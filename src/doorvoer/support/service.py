"""Support access, opened only by the tenant (P12), and the record of every staff
request for a tenant's data (P23).

Support staff ask (`request_grant`: reason, ticket, scopes); a tenant admin approves
with a fresh second factor, choosing the scopes (of those asked) and an expiry of at
most 7 days, or refuses; the tenant revokes at any moment. Requests lapse after 48
hours unanswered. Every answer is a conditional update, so two admins answering at
once cannot both win. The door loads a support user's active grants with each request
(`active_grants`), which is what makes a revocation take effect at the next click.

`staff_request` is where every staff request for a tenant's data is written down,
allowed or denied, with the grant it relied on; the first use of a grant is mailed to
the tenant."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import delete, select, update

from doorvoer.access.policy import (
    GRANT_SCOPES,
    Action,
    Actor,
    Resource,
    Role,
    StaffGrant,
    grant_for,
    is_allowed,
)
from doorvoer.accounts.models import User
from doorvoer.accounts.totp import verify_totp
from doorvoer.audit import service as audit
from doorvoer.audit.events import Event
from doorvoer.audit.models import OPERATOR_CHAIN
from doorvoer.db import utcnow
from doorvoer.support import inspection, notices
from doorvoer.support.errors import GrantRefused, NoSuchGrant
from doorvoer.support.models import (
    Grant,
    GrantState,
    InspectionWindow,
    Instruction,
    SupportMessage,
)
from doorvoer.support.thread import link_request
from doorvoer.tenants.models import Tenant
from doorvoer.unit import Work

REQUEST_TTL = timedelta(hours=48)
MAX_GRANT = timedelta(days=7)
MAX_REASON = 1000
MAX_TICKET = 100
SCOPES = tuple(GRANT_SCOPES)
SCOPE_LABELS = {
    "reports": "transfer metadata and reports",
    "config": "process configuration and connection names (never secrets)",
    "inspect": "may open an inspection window on one process",
}


def _scopes(wanted: Iterable[str]) -> list[str]:
    chosen = {s.strip() for s in wanted if s.strip()}
    unknown = chosen - set(SCOPES)
    if unknown:
        raise GrantRefused(f"unknown scope {sorted(unknown)[0]!r}: use {', '.join(SCOPES)}")
    if not chosen:
        raise GrantRefused("pick at least one scope")
    return [s for s in SCOPES if s in chosen]


def _tell(w: Work, tenant: Tenant, make: Callable[..., EmailMessage], grant: Grant,
          *extra: str, staff: bool = False) -> None:
    """Mail the tenant's admins and contact (and the support user, with `staff`)."""
    to = notices.tenant_recipients(w, tenant) + ([grant.staff_email] if staff else [])
    for address in to:
        w.notify(make(w.settings, address, tenant, grant, *extra))


def _move(w: Work, grant: Grant, states: tuple[GrantState, ...], refusal: str,
          **values: object) -> None:
    """Move the grant on from one of `states`, unless someone else moved it first (a
    conditional update: two admins answering at once cannot both win)."""
    done = w.session.execute(update(Grant).where(
        Grant.id == grant.id, Grant.state.in_([s.value for s in states])).values(**values)
        .execution_options(synchronize_session=False))
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise GrantRefused(refusal)
    w.session.refresh(grant)


# ---------------------------------------------------------------- asking and answering


def request_grant(w: Work, staff: User, tenant: Tenant, reason: str, ticket: str,
                  scopes: Iterable[str]) -> Grant:
    """A support user asks the tenant for access."""
    if staff.role != Role.SUPPORT.value:
        raise GrantRefused("only support staff ask for access to a tenant's data")
    reason, ticket = reason.strip(), ticket.strip()
    if not reason:
        raise GrantRefused("say why you need access (the reason)")
    if len(reason) > MAX_REASON:
        raise GrantRefused(f"the reason is too long: at most {MAX_REASON} characters")
    if not ticket:
        raise GrantRefused("name the ticket this is for")
    if len(ticket) > MAX_TICKET:
        raise GrantRefused(f"the ticket reference is too long: at most {MAX_TICKET} "
                           "characters")
    wanted = _scopes(scopes)
    now = utcnow()
    open_one = w.session.scalar(select(Grant.id).where(
        Grant.tenant_id == tenant.id, Grant.staff_id == staff.id,
        Grant.state == GrantState.PENDING.value, Grant.expires_at > now))
    if open_one is not None:
        raise GrantRefused(f"you have a request waiting for {tenant.name}'s answer already")
    grant = Grant(tenant_id=tenant.id, staff_id=staff.id, staff_email=staff.email,
                  reason=reason, ticket=ticket, requested_scopes=",".join(wanted),
                  requested_at=now, expires_at=now + REQUEST_TTL)
    w.session.add(grant)
    w.session.flush()
    audit.record(w, tenant.id, Event.GRANT_REQUESTED,
                 f"{grant.id} ({','.join(wanted)}; ticket {ticket})",
                 actor=audit.who(w.actor, grant=grant.id))
    _tell(w, tenant, notices.requested, grant)
    link_request(w, tenant, staff, grant.id,
                 f"Asking for access ({', '.join(wanted)}), ticket {ticket}: {reason}")
    return grant


def _pending(w: Work, tenant: Tenant, grant_id: str) -> Grant:
    grant = w.session.scalar(select(Grant).where(Grant.id == grant_id,
                                                 Grant.tenant_id == tenant.id))
    if grant is None:
        raise NoSuchGrant
    if grant.state != GrantState.PENDING.value or grant.expires_at <= utcnow():
        raise GrantRefused("this request is not waiting for an answer any more")
    return grant


_ANSWERED = "this request was answered already"


def approve(w: Work, admin: User, tenant: Tenant, grant_id: str, scopes: Iterable[str],
            hours: int) -> Grant:
    """Open access: the scopes chosen (of those asked for) until `hours` from now. The
    door has checked the admin's fresh second factor; an admin without one cannot."""
    if admin.totp_secret is None:
        raise GrantRefused("turn on two-factor authentication first: approving support "
                           "access needs a fresh two-factor check")
    grant = _pending(w, tenant, grant_id)
    chosen = _scopes(scopes)
    beyond = set(chosen) - set(grant.requested_list)
    if beyond:
        raise GrantRefused(f"support did not ask for {sorted(beyond)[0]!r}: approve only "
                           "scopes that were asked for")
    if not 1 <= hours <= MAX_GRANT.total_seconds() // 3600:
        raise GrantRefused("the access may last from 1 hour to 7 days (168 hours)")
    now = utcnow()
    _move(w, grant, (GrantState.PENDING,), _ANSWERED, state=GrantState.ACTIVE.value,
          scopes=",".join(chosen), answered_at=now, answered_by=admin.email,
          expires_at=now + timedelta(hours=hours))
    audit.record(w, tenant.id, Event.GRANT_APPROVED,
                 f"{grant.id} ({','.join(chosen)}; until "
                 f"{grant.expires_at.strftime('%Y-%m-%dT%H:%MZ')})")
    _tell(w, tenant, notices.approved, grant, staff=True)
    return grant


class CodeRefused(GrantRefused):
    """The two-factor code given with an approval is wrong or used."""


def approve_with_code(w: Work, admin: User, tenant: Tenant, grant_id: str, code: str,
                      scopes: Iterable[str], hours: int) -> Grant:
    """Approve where no portal session vouches for a fresh check (the API): the admin's
    current two-factor code is the check."""
    if admin.totp_secret is None or not verify_totp(w, admin, code.strip()):
        raise CodeRefused("approving needs a current two-factor code of the admin who "
                          "made the token")
    return approve(w, admin, tenant, grant_id, scopes, hours)


def refuse(w: Work, admin: User, tenant: Tenant, grant_id: str) -> Grant:
    grant = _pending(w, tenant, grant_id)
    _move(w, grant, (GrantState.PENDING,), _ANSWERED, state=GrantState.REFUSED.value,
          answered_at=utcnow(), answered_by=admin.email)
    audit.record(w, tenant.id, Event.GRANT_REFUSED, grant.id)
    w.notify(notices.refused(w.settings, tenant, grant))
    return grant


def revoke(w: Work, admin: User, tenant: Tenant, grant_id: str) -> Grant:
    """End an active grant (or withdraw a pending request) now."""
    grant = w.session.scalar(select(Grant).where(Grant.id == grant_id,
                                                 Grant.tenant_id == tenant.id))
    if grant is None:
        raise NoSuchGrant
    _move(w, grant, (GrantState.ACTIVE, GrantState.PENDING), "this access has ended already",
          state=GrantState.REVOKED.value, ended_at=utcnow(), ended_by=admin.email)
    audit.record(w, tenant.id, Event.GRANT_REVOKED, grant.id)
    inspection.close_for_grant(w, grant.id)
    _tell(w, tenant, notices.ended, grant, "was revoked", staff=True)
    return grant


def expire_due(w: Work, now: datetime | None = None) -> int:
    """Lapse unanswered requests, end grants whose time is up (closing their inspection
    windows) and close windows whose time is up; returns how many.
    Access ends at `expires_at` whether or not this has run (`active_grants`); this
    writes it down and tells the tenant."""
    now = now or utcnow()
    due = list(w.session.scalars(select(Grant).where(
        Grant.state.in_([GrantState.PENDING.value, GrantState.ACTIVE.value]),
        Grant.expires_at <= now).with_for_update(skip_locked=True)))
    for grant in due:
        tenant = w.session.get_one(Tenant, grant.tenant_id)
        was_active = grant.state == GrantState.ACTIVE.value
        grant.state = GrantState.EXPIRED.value
        grant.ended_at = grant.expires_at
        audit.record(w, tenant.id, Event.GRANT_EXPIRED if was_active else Event.GRANT_LAPSED,
                     grant.id, actor=audit.SYSTEM)
        inspection.close_for_grant(w, grant.id)
        _tell(w, tenant, notices.ended, grant,
              "expired" if was_active else "lapsed unanswered", staff=True)
    return len(due) + inspection.close_due(w, now)


# ---------------------------------------------------------------- using


def active_grants(w: Work, staff_id: str, now: datetime | None = None
                  ) -> tuple[StaffGrant, ...]:
    """A support user's grants that are open now, as the policy takes them."""
    rows = w.session.execute(select(Grant.id, Grant.tenant_id, Grant.scopes).where(
        Grant.staff_id == staff_id, Grant.state == GrantState.ACTIVE.value,
        Grant.expires_at > (now or utcnow()))).all()
    return tuple(StaffGrant(r.id, r.tenant_id, frozenset(r.scopes.split(","))) for r in rows)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    grant: StaffGrant | None
    why: str | None = None


def staff_request(w: Work, actor: Actor, action: Action, tenant: Tenant | None,
                  what: str) -> Decision:
    """Decide (the one policy) and write down a staff member's request for a tenant's
    data, `what` naming it (the page or call): allowed with the grant relied on, or
    denied with why. An unknown tenant's denial goes to the operator's chain."""
    resource = Resource(tenant.id if tenant else None)
    allowed = tenant is not None and is_allowed(actor, action, resource)
    grant = grant_for(actor, action, resource) if allowed else None
    why = None if allowed else _why_denied(actor, tenant)
    audit.record(w, tenant.id if tenant else OPERATOR_CHAIN,
                 Event.STAFF_ACCESS_ALLOWED if allowed else Event.STAFF_ACCESS_DENIED,
                 f"{action.value} {what}"[:600],
                 actor=audit.who(actor, grant=grant.id if grant else None))
    if grant is not None and tenant is not None:
        _first_use(w, tenant, grant.id)
    return Decision(allowed, grant, why)


def _why_denied(actor: Actor, tenant: Tenant | None) -> str:
    if tenant is None:
        return "There is no such tenant."
    if actor.role != Role.SUPPORT:
        return (f"Your role ({actor.role.label}) never reaches a tenant's data. Support "
                "staff may ask a tenant for access.")
    if any(g.tenant_id == tenant.id for g in actor.grants):
        return (f"{tenant.name}'s grant to you does not cover this page. Ask for the "
                "scope you need on the Support page.")
    return (f"You hold no active grant from {tenant.name}. Ask for access on the Support "
            "page; it opens when one of its admins approves. This request is in the "
            "tenant's audit log.")


def _first_use(w: Work, tenant: Tenant, grant_id: str) -> None:
    now = utcnow()
    done = w.session.execute(update(Grant).where(
        Grant.id == grant_id, Grant.first_used_at.is_(None)).values(first_used_at=now)
        .execution_options(synchronize_session=False))
    if done.rowcount == 1:  # type: ignore[attr-defined]
        grant = w.session.get_one(Grant, grant_id)
        w.session.refresh(grant)
        audit.record(w, tenant.id, Event.GRANT_FIRST_USED, grant.id,
                     actor=audit.who(w.actor, grant=grant.id))
        _tell(w, tenant, notices.first_used, grant)


# ---------------------------------------------------------------- reading


def grants_of_tenant(w: Work, tenant_id: str) -> list[Grant]:
    return list(w.session.scalars(select(Grant).where(Grant.tenant_id == tenant_id)
                                  .order_by(Grant.requested_at.desc())))


def grants_of_staff(w: Work, staff_id: str) -> list[tuple[Grant, Tenant]]:
    return [(g, t) for g, t in w.session.execute(
        select(Grant, Tenant).join(Tenant, Tenant.id == Grant.tenant_id)
        .where(Grant.staff_id == staff_id).order_by(Grant.requested_at.desc()))]


def all_grants(w: Work) -> list[tuple[Grant, Tenant]]:
    """Which grants exist (for operator admins): who, which tenant, scopes, state."""
    return [(g, t) for g, t in w.session.execute(
        select(Grant, Tenant).join(Tenant, Tenant.id == Grant.tenant_id)
        .order_by(Grant.requested_at.desc()))]


def current_state(grant: Grant, now: datetime | None = None) -> GrantState:
    """The state as it is now: a grant past its time is expired even before the job has
    written it down."""
    state = GrantState(grant.state)
    if state in (GrantState.PENDING, GrantState.ACTIVE) and grant.expires_at <= (now or utcnow()):
        return GrantState.EXPIRED
    return state


def erase_tenant(w: Work, tenant: Tenant) -> dict[str, int]:
    """A tenant's erasure (P19), this area's part: its inspection windows, support
    thread, instructions and grants."""
    return {kind: w.changed(delete(table).where(table.tenant_id == tenant.id))
            for kind, table in (("inspection_windows", InspectionWindow),
                                ("support_messages", SupportMessage),
                                ("instructions", Instruction), ("grants", Grant))}
