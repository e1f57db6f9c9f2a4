"""The kinds of data held about a tenant, as the export lays them out (P20): each with
its fields (name, JSON type, meaning) and the rows. Nothing here holds a password hash,
a TOTP secret, a token, a key or a connection's secret: only whether one is set."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from doorvoer.accounts.machines import scope_names
from doorvoer.accounts.models import Account, AccountKey, ApiToken, User
from doorvoer.audit.chain import rfc3339
from doorvoer.privacy import subprocessors
from doorvoer.privacy.incidents import deadline
from doorvoer.privacy.models import Incident, IncidentNotice, IncidentUpdate
from doorvoer.processes.models import Process
from doorvoer.secrets.service import connection_views
from doorvoer.support.models import Grant, InspectionWindow, Instruction, SupportMessage
from doorvoer.tenants.contacts import address_for, purposes_of, webhook_for_breach_notices
from doorvoer.tenants.models import Tenant
from doorvoer.transfers.models import Transfer
from doorvoer.unit import Work


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # string | integer | boolean; "time" is an RFC 3339 string
    meaning: str
    nullable: bool = True


@dataclass(frozen=True)
class Kind:
    name: str
    meaning: str
    why: str  # why it is held, and for how long
    fields: tuple[Field, ...]
    rows: Callable[[Work, Tenant], Iterator[dict[str, Any]]]


def _t(value: datetime | None) -> str | None:
    return rfc3339(value) if value is not None else None


def F(name: str, type_: str, meaning: str, nullable: bool = True) -> Field:
    return Field(name, type_, meaning, nullable)


def _tenant(w: Work, t: Tenant) -> Iterator[dict[str, Any]]:
    yield {"id": t.id, "slug": t.slug, "name": t.name, "reporting": t.report,
           "contract": t.contract, "created_at": _t(t.created_at)}


def _contacts(w: Work, t: Tenant) -> Iterator[dict[str, Any]]:
    for purposes in purposes_of(t).values():
        yield {"purpose": ", ".join(purposes), "email": address_for(t, purposes[0])}
    if webhook_for_breach_notices(t):
        yield {"purpose": "breach-notice (webhook)", "email": webhook_for_breach_notices(t)}


def _users(w: Work, t: Tenant) -> Iterator[dict[str, Any]]:
    for u in w.session.scalars(select(User).where(User.tenant_id == t.id).order_by(User.email)):
        yield {"id": u.id, "email": u.email, "name": u.name, "role": u.role,
               "permissions": u.permissions or None, "two_factor": u.totp_secret is not None,
               "password_set": u.password_hash is not None, "removed_at": _t(u.disabled_at),
               "suspended_at": _t(u.suspended_at),
               "created_at": _t(u.created_at)}


def _accounts(w: Work, t: Tenant) -> Iterator[dict[str, Any]]:
    for a in w.session.scalars(select(Account).where(Account.tenant_id == t.id)
                               .order_by(Account.name)):
        keys = w.session.scalars(select(AccountKey.fingerprint)
                                 .where(AccountKey.account_id == a.id)).all()
        yield {"id": a.id, "login": f"{a.name}@{t.slug}", "disabled": a.disabled,
               "password_set": a.password_hash is not None,
               "key_fingerprints": " ".join(keys) or None, "created_at": _t(a.created_at)}


def _tokens(w: Work, t: Tenant) -> Iterator[dict[str, Any]]:
    for k in w.session.scalars(select(ApiToken).where(ApiToken.tenant_id == t.id)
                               .order_by(ApiToken.created_at)):
        yield {"id": k.id, "name": k.name, "scopes": ",".join(scope_names(k)),
               "made_by": k.created_by, "created_at": _t(k.created_at),
               "expires_at": _t(k.expires_at), "revoked_at": _t(k.revoked_at),
               "last_used_at": _t(k.last_used_at)}


def _processes(w: Work, t: Tenant) -> Iterator[dict[str, Any]]:
    for p in w.session.scalars(select(Process).where(Process.tenant_id == t.id)
                               .order_by(Process.name)):
        yield {"id": p.id, "name": p.name, "folder": p.folder, "version": p.version,
               "spec_yaml": p.spec_yaml, "created_at": _t(p.created_at),
               "updated_at": _t(p.updated_at)}


def _connections(w: Work, t: Tenant) -> Iterator[dict[str, Any]]:
    for c in connection_views(w, t):
        yield {"name": c.name, "kind": c.kind, "host": c.host, "port": c.port,
               "username": c.username, "secret": c.secret, "updated_at": _t(c.updated_at)}


def _transfers(w: Work, t: Tenant) -> Iterator[dict[str, Any]]:
    q = (select(Transfer).where(Transfer.tenant_id == t.id).order_by(Transfer.opened_at)
         .execution_options(yield_per=1000))
    for r in w.session.scalars(q):
        yield {"id": r.id, "process": r.process_name, "file": f"{r.folder}/{r.filename}",
               "state": r.state.value, "error": r.error, "opened_at": _t(r.opened_at),
               "received_at": _t(r.received_at), "processed_at": _t(r.processed_at),
               "input_erased_at": _t(r.input_erased_at), "delivered_at": _t(r.delivered_at),
               "erased_at": _t(r.erased_at), "bytes_in": r.bytes_in, "bytes_out": r.bytes_out,
               "rows_in": r.rows_in, "rows_out": r.rows_out, "kept_for": r.kept_for}


def _grants(w: Work, t: Tenant) -> Iterator[dict[str, Any]]:
    for g in w.session.scalars(select(Grant).where(Grant.tenant_id == t.id)
                               .order_by(Grant.requested_at)):
        yield {"id": g.id, "staff": g.staff_email, "reason": g.reason, "ticket": g.ticket,
               "requested_scopes": g.requested_scopes, "scopes": g.scopes or None,
               "state": g.state, "requested_at": _t(g.requested_at),
               "expires_at": _t(g.expires_at), "answered_at": _t(g.answered_at),
               "answered_by": g.answered_by, "first_used_at": _t(g.first_used_at),
               "ended_at": _t(g.ended_at), "ended_by": g.ended_by}


def _windows(w: Work, t: Tenant) -> Iterator[dict[str, Any]]:
    for i in w.session.scalars(select(InspectionWindow).where(
            InspectionWindow.tenant_id == t.id).order_by(InspectionWindow.opened_at)):
        yield {"id": i.id, "staff": i.staff_email, "grant": i.grant_id,
               "process": i.process_name, "opened_at": _t(i.opened_at), "until": _t(i.until),
               "closed_at": _t(i.closed_at), "closed_by": i.closed_by, "kept": i.kept,
               "views": i.views}


def _instructions(w: Work, t: Tenant) -> Iterator[dict[str, Any]]:
    for i in w.session.scalars(select(Instruction).where(Instruction.tenant_id == t.id)
                               .order_by(Instruction.recorded_at)):
        yield {"id": i.id, "asked_by": i.asked_by, "asked_at": _t(i.asked_at),
               "channel": i.channel, "reference": i.reference, "text": i.text,
               "recorded_by": i.recorded_by, "recorded_at": _t(i.recorded_at)}


def _messages(w: Work, t: Tenant) -> Iterator[dict[str, Any]]:
    for m in w.session.scalars(select(SupportMessage).where(SupportMessage.tenant_id == t.id)
                               .order_by(SupportMessage.created_at, SupportMessage.id)):
        yield {"id": m.id, "author": m.author_email, "from_support": m.from_support,
               "grant": m.grant_id, "text": m.body, "created_at": _t(m.created_at)}


def _incidents(w: Work, t: Tenant) -> Iterator[dict[str, Any]]:
    for n in w.session.scalars(select(IncidentNotice).where(IncidentNotice.tenant_id == t.id)
                               .order_by(IncidentNotice.created_at, IncidentNotice.phase)):
        i = w.session.get_one(Incident, n.incident_id)
        update = None if n.phase == 0 else w.session.scalar(select(IncidentUpdate.text).where(
            IncidentUpdate.incident_id == i.id, IncidentUpdate.phase == n.phase))
        yield {"id": i.id, "phase": n.phase, "became_known_at": _t(i.became_known_at),
               "authority_deadline": _t(deadline(i)),
               "summary": i.summary, "data_categories": i.data_categories,
               "approximate_subjects": i.approximate_subjects,
               "likely_consequences": i.likely_consequences,
               "measures_taken": i.measures_taken, "measures_proposed": i.measures_proposed,
               "contact": i.contact, "update": update, "sent_at": _t(n.sent_at),
               "acknowledged_at": _t(n.acknowledged_at), "acknowledged_by": n.acknowledged_by}


def _subprocessors(w: Work, t: Tenant) -> Iterator[dict[str, Any]]:
    consents = subprocessors.consents_of(w, t.id)
    objected = {o.subprocessor_id: o for o in subprocessors.objections(w, t.id)}
    for entry in subprocessors.register(w):
        for row, announced in ((entry.current, False), (entry.announced, True)):
            if row is None:
                continue
            status = "announced" if announced else (
                "used for you" if subprocessors.may_use(row, consents)
                else "not used for you (no consent)")
            c = consents.get(row.key)
            o = objected.get(row.id)
            yield {"key": row.key, "version": row.version, "name": row.name,
                   "purpose": row.purpose, "data_categories": row.data_categories,
                   "country": row.country, "in_eea": row.in_eea, "safeguard": row.safeguard,
                   "effective_at": _t(row.effective_at), "status": status,
                   "consent_given_at": _t(c.given_at) if c else None,
                   "objection": o.reason if o else None,
                   "objected_at": _t(o.made_at) if o else None}


S, N, B, T = "string", "integer", "boolean", "time"
KINDS: tuple[Kind, ...] = (
    Kind("tenant", "who you are to Doorvoer", "the contract; until erasure", (
        F("id", S, "internal id", False), F("slug", S, "short name", False),
        F("name", S, "display name", False), F("reporting", B, "whether reports are kept", False),
        F("contract", S, "active or ended", False), F("created_at", T, "since", False)),
        _tenant),
    Kind("contacts", "addresses for contact, invoicing and breach notices",
         "each for its purposes only (P9); until changed or erased", (
        F("purpose", S, "what it is used for, and for nothing else", False),
        F("email", S, "the address (or the breach-notice webhook's URL)", False)),
        _contacts),
    Kind("users", "people of the tenant on the portal", "signing in; until removed", (
        F("id", S, "internal id", False), F("email", S, "sign-in name", False),
        F("name", S, "display name", False),
        F("role", S, "tenant_admin, tenant_member or external", False),
        F("permissions", S, "external users: what they may see"),
        F("two_factor", B, "whether two-factor is on", False),
        F("password_set", B, "whether a password is set (never the password)", False),
        F("removed_at", T, "when removed"), F("created_at", T, "since", False)), _users),
    Kind("accounts", "SFTP logins", "signing in systems; until removed", (
        F("id", S, "internal id", False), F("login", S, "the login name", False),
        F("disabled", B, "disabled", False),
        F("password_set", B, "whether a password is set (never the password)", False),
        F("key_fingerprints", S, "SHA-256 fingerprints of the public keys"),
        F("created_at", T, "since", False)), _accounts),
    Kind("tokens", "API tokens", "API access; until revoked or expired (never the token)", (
        F("id", S, "internal id", False), F("name", S, "its name", False),
        F("scopes", S, "what it may do", False), F("made_by", S, "the maker's user id"),
        F("created_at", T, "made", False), F("expires_at", T, "expires", False),
        F("revoked_at", T, "revoked"), F("last_used_at", T, "last used (to the minute)")),
        _tokens),
    Kind("processes", "what happens to your files, with each spec's YAML",
         "the agreed processing; until changed or erased", (
        F("id", S, "internal id", False), F("name", S, "name", False),
        F("folder", S, "inbox folder", False), F("version", N, "version", False),
        F("spec_yaml", S, "the spec", False), F("created_at", T, "made", False),
        F("updated_at", T, "last changed", False)), _processes),
    Kind("connections", "where pushes go (never a secret)", "delivery; until replaced", (
        F("name", S, "name", False), F("kind", S, "sftp", False), F("host", S, "host", False),
        F("port", N, "port", False), F("username", S, "login on the target", False),
        F("secret", S, "whether a secret is set", False),
        F("updated_at", T, "last changed", False)), _connections),
    Kind("transfers", "each file's passage: metadata, never content",
         "reports (P4); none when reporting is off", (
        F("id", S, "transfer id", False), F("process", S, "the process"),
        F("file", S, "folder/name", False), F("state", S, "where it ended", False),
        F("error", S, "why it failed"), F("opened_at", T, "upload began", False),
        F("received_at", T, "upload ended"), F("processed_at", T, "transformed"),
        F("input_erased_at", T, "input erased"), F("delivered_at", T, "delivered"),
        F("erased_at", T, "last blob erased"), F("bytes_in", N, "input size"),
        F("bytes_out", N, "output size"), F("rows_in", N, "input rows"),
        F("rows_out", N, "output rows"),
        F("kept_for", S, "the inspection window its files are kept for (P6)")), _transfers),
    Kind("grants", "support access requests and grants", "P12; kept with the audit log", (
        F("id", S, "id", False), F("staff", S, "the support user", False),
        F("reason", S, "why asked", False), F("ticket", S, "ticket", False),
        F("requested_scopes", S, "asked for", False), F("scopes", S, "granted"),
        F("state", S, "pending, active, refused, expired or revoked", False),
        F("requested_at", T, "asked", False), F("expires_at", T, "lapses or ends", False),
        F("answered_at", T, "answered"), F("answered_by", S, "by"),
        F("first_used_at", T, "first used"), F("ended_at", T, "ended"),
        F("ended_by", S, "ended by")), _grants),
    Kind("inspection_windows", "support's inspection windows on a process (never content)",
         "P6; kept with the audit log", (
        F("id", S, "id", False), F("staff", S, "the support user", False),
        F("grant", S, "the grant it was opened under", False),
        F("process", S, "the process", False), F("opened_at", T, "opened", False),
        F("until", T, "closes at the latest", False), F("closed_at", T, "closed"),
        F("closed_by", S, "who closed it, or why it ended"),
        F("kept", N, "failed transfers whose files it kept (erased on closing)", False),
        F("views", N, "files viewed", False)), _windows),
    Kind("instructions", "your instructions to the processor", "P10; kept with the audit log", (
        F("id", S, "id", False), F("asked_by", S, "who asked", False),
        F("asked_at", T, "when", False), F("channel", S, "portal, email or phone", False),
        F("reference", S, "reference", False), F("text", S, "what to do", False),
        F("recorded_by", S, "recorded by", False), F("recorded_at", T, "recorded", False)),
        _instructions),
    Kind("support_messages", "the support thread", "P13; until erasure", (
        F("id", S, "id", False), F("author", S, "who wrote", False),
        F("from_support", B, "written by support", False), F("grant", S, "a linked request"),
        F("text", S, "the message", False), F("created_at", T, "written", False)), _messages),
    Kind("subprocessors", "sub-processors of your data: in force and announced",
         "Art. 28(2) and (4), P17; the register as it stands", (
        F("key", S, "the entry's short name", False), F("version", N, "its version", False),
        F("name", S, "who", False), F("purpose", S, "what for", False),
        F("data_categories", S, "categories of personal data, one per line", False),
        F("country", S, "ISO 3166-1 country", False),
        F("in_eea", B, "inside the EEA", False),
        F("safeguard", S, "the safeguard for a transfer outside the EEA"),
        F("effective_at", T, "in effect from", False),
        F("status", S, "used for you; not used for you (no consent); or announced", False),
        F("consent_given_at", T, "your consent (outside the EEA)"),
        F("objection", S, "your objection to this version"),
        F("objected_at", T, "when you objected")), _subprocessors),
    Kind("incidents", "incidents reported to you (breach notices, Art. 33(2))",
         "P18; kept with the audit log", (
        F("id", S, "the incident's id", False), F("phase", N, "0: the first notice; then "
                                                  "each update", False),
        F("became_known_at", T, "when the processor learnt of it", False),
        F("authority_deadline", T, "72 hours on: your own notice is due", False),
        F("summary", S, "what happened", False),
        F("data_categories", S, "categories of personal data, one per line", False),
        F("approximate_subjects", N, "data subjects, approximately", False),
        F("likely_consequences", S, "likely consequences", False),
        F("measures_taken", S, "measures taken", False),
        F("measures_proposed", S, "measures proposed", False),
        F("contact", S, "whom to ask", False), F("update", S, "what a later phase said"),
        F("sent_at", T, "when you were told"), F("acknowledged_at", T, "acknowledged"),
        F("acknowledged_by", S, "by whom")), _incidents),
)
