"""Inspection windows (P6): the one way support sees file content, and only the
content of transfers that failed while the window was open.

A support user whose grant from the tenant has the `inspect` scope opens a window on
one process, for at most 24 hours and never past the grant. While it is open, a
transfer of that process that fails keeps its input and output, encrypted as always
(`transfers.lifecycle.finish_all`); the support user sees the first 1,000 rows of
each, read the way the process reads them, and every view is an audit entry. The
window closes when the tenant or the support user closes it, when its time is up, or
when the grant ends (revoked or expired); closing erases what it kept. Without an open
window nothing is kept and nothing can be viewed. Content is never logged: a preview
goes from the vault to the page and nowhere else."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import BinaryIO, cast

from sqlalchemy import Engine, select, update

from doorvoer.access.policy import Action, Resource, grant_for
from doorvoer.audit import service as audit
from doorvoer.audit.events import Event
from doorvoer.db import utcnow
from doorvoer.processes.models import Process
from doorvoer.processes.service import parsed_spec, process_named, set_inspection, window_open_on
from doorvoer.support import notices
from doorvoer.support.errors import InspectionRefused, NoSuchWindow
from doorvoer.support.models import Grant, InspectionWindow
from doorvoer.tenants.models import Tenant
from doorvoer.transfers.lifecycle import erase_kept
from doorvoer.transfers.models import Transfer
from doorvoer.unit import Work
from doorvoer.vault.service import Vault

MAX_WINDOW = timedelta(hours=24)
PREVIEW_ROWS = 1000
PREVIEW_BYTES = 8 << 20  # of the rendered rows; past it the preview stops early
RAW_BYTES = 4 << 20  # read of a file shown as lines (it could not be read as a table)
MAX_CELL = 2000  # characters of one value shown
PARTS = ("input", "output")


# ---------------------------------------------------------------- opening and closing


def open_window(w: Work, tenant: Tenant, process_name: str, hours: int) -> InspectionWindow:
    """The acting support user opens a window on one of the tenant's processes."""
    actor = w.actor
    held = grant_for(actor, Action.INSPECT_FILES, Resource(tenant.id)) if actor else None
    if actor is None or held is None or actor.user_id is None:
        raise InspectionRefused(f"opening a window needs an active grant of {tenant.name} "
                                "with the inspect scope")
    grant = w.session.get_one(Grant, held.id)
    process = process_named(w, tenant.id, process_name.strip())
    if process is None:
        raise InspectionRefused(f"{tenant.name} has no process named {process_name!r}")
    if not 1 <= hours <= MAX_WINDOW.total_seconds() // 3600:
        raise InspectionRefused("a window stays open from 1 to 24 hours")
    now = utcnow()
    if window_open_on(process.inspect_window, process.inspect_until, now):
        raise InspectionRefused(f"a window on {process.name} is open already")
    until = min(now + timedelta(hours=hours), grant.expires_at)
    window = InspectionWindow(tenant_id=tenant.id, process_id=process.id,
                              process_name=process.name, grant_id=grant.id,
                              staff_id=actor.user_id, staff_email=grant.staff_email,
                              opened_at=now, until=until)
    w.session.add(window)
    w.session.flush()
    set_inspection(w, process.id, window.id, until)
    audit.record(w, tenant.id, Event.INSPECT_WINDOW_OPENED,
                 f"{window.id} on {process.name} until {until.strftime('%Y-%m-%dT%H:%MZ')}",
                 actor=audit.who(actor, grant=grant.id))
    for to in notices.tenant_recipients(w, tenant):
        w.notify(notices.window_opened(w.settings, to, tenant, window))
    return window


def close_window(w: Work, tenant: Tenant, window_id: str, why: str) -> InspectionWindow:
    """Close an open window now (`why`: who closed it, or why it ended) and erase what
    it kept. The tenant's admins close any window of theirs; a support user theirs."""
    window = w.session.scalar(select(InspectionWindow).where(
        InspectionWindow.id == window_id, InspectionWindow.tenant_id == tenant.id))
    if window is None:
        raise NoSuchWindow
    actor = w.actor
    staff = actor is not None and actor.role.is_staff
    if staff and window.staff_id != (actor.user_id if actor else None):
        raise NoSuchWindow
    _close(w, window, why, audit.who(actor, grant=window.grant_id if staff else None))
    return window


def _close(w: Work, window: InspectionWindow, why: str, who: audit.Who | None) -> None:
    """`who`: the closer as the log names them (None: the unit's actor)."""
    now = utcnow()
    done = w.session.execute(update(InspectionWindow).where(
        InspectionWindow.id == window.id, InspectionWindow.closed_at.is_(None))
        .values(closed_at=min(now, window.until), closed_by=why[:320])
        .execution_options(synchronize_session=False))
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise InspectionRefused("this window is closed already")
    w.session.refresh(window)
    set_inspection(w, window.process_id, None, None)
    window.kept = erase_kept(w, window.id)
    audit.record(w, window.tenant_id, Event.INSPECT_WINDOW_CLOSED,
                 f"{window.id} on {window.process_name} ({why}; {window.kept} kept "
                 f"{'file' if window.kept == 1 else 'files'} erased)", actor=who)


_EXPIRED = "its time was up"
_GRANT_ENDED = "the grant ended"


def close_due(w: Work, now: datetime | None = None) -> int:
    """Close every window whose time is up; returns how many. Nothing is kept past
    `until` whether or not this has run (`finish_all` checks it); this erases what was
    kept and writes it down."""
    now = now or utcnow()
    due = list(w.session.scalars(select(InspectionWindow).where(
        InspectionWindow.closed_at.is_(None), InspectionWindow.until <= now)
        .with_for_update(skip_locked=True)))
    for window in due:
        _close(w, window, _EXPIRED, audit.SYSTEM)
    return len(due)


def close_for_grant(w: Work, grant_id: str) -> int:
    """The grant a window was opened under ended: close its windows at once."""
    open_ones = list(w.session.scalars(select(InspectionWindow).where(
        InspectionWindow.grant_id == grant_id, InspectionWindow.closed_at.is_(None))))
    for window in open_ones:
        _close(w, window, _GRANT_ENDED, None)  # the revoking admin, or the expiry job
    return len(open_ones)


# ---------------------------------------------------------------- reading


def windows_of(w: Work, tenant_id: str, staff_id: str | None = None) -> list[InspectionWindow]:
    """A tenant's windows, newest first (of one support user, with `staff_id`)."""
    q = select(InspectionWindow).where(InspectionWindow.tenant_id == tenant_id)
    if staff_id is not None:
        q = q.where(InspectionWindow.staff_id == staff_id)
    return list(w.session.scalars(q.order_by(InspectionWindow.opened_at.desc())))


def kept_of(w: Work, window_id: str) -> list[Transfer]:
    """The transfers whose files a window keeps (metadata only)."""
    return list(w.session.scalars(select(Transfer).where(Transfer.kept_for == window_id)
                                  .order_by(Transfer.received_at)))


@dataclass(frozen=True)
class Viewing:
    """What `begin_view` allowed and wrote down: which blob, read how."""

    transfer_id: str
    part: str
    filename: str
    blob_id: str | None  # None: that part is not there (say, the input of a failed push)
    spec_yaml: str


def begin_view(w: Work, tenant: Tenant, window_id: str, transfer_id: str,
               part: str) -> Viewing:
    """The acting support user views one kept file of their open window: allowed only
    then, and written down (an `inspection:file:viewed` entry) before any byte is read."""
    if part not in PARTS:
        raise NoSuchWindow("no such part: input or output")
    actor = w.actor
    window = w.session.scalar(select(InspectionWindow).where(
        InspectionWindow.id == window_id, InspectionWindow.tenant_id == tenant.id))
    if window is None or actor is None or window.staff_id != actor.user_id:
        raise NoSuchWindow
    if not window.open_at(utcnow()) or not any(g.id == window.grant_id for g in actor.grants):
        raise InspectionRefused("this window is closed: what it kept has been erased")
    transfer = w.session.scalar(select(Transfer).where(
        Transfer.id == transfer_id, Transfer.kept_for == window.id))
    if transfer is None:
        raise NoSuchWindow("this window keeps no such transfer")
    process = w.session.get_one(Process, window.process_id)
    window.views += 1
    audit.record(w, tenant.id, Event.INSPECT_FILE_VIEWED,
                 f"{transfer.id} {part} ({transfer.path}) in window {window.id}",
                 actor=audit.who(actor, grant=window.grant_id))
    blob = transfer.input_blob_id if part == "input" else transfer.output_blob_id
    if part == "input" and transfer.input_erased_at is not None:
        blob = None
    return Viewing(transfer.id, part, transfer.path if part == "input"
                   else (transfer.output_name or "output"), blob, process.spec_yaml)


@dataclass
class Preview:
    """The first rows of a kept file, for the page only."""

    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # when it is not readable as a table
    more: bool = False  # there is more than is shown
    note: str | None = None  # why it is shown as lines, or why there is nothing


def preview(vault: Vault, engine: Engine, viewing: Viewing, memory_mb: int,
            time_s: float) -> Preview:
    """Read the file the way its process reads its input (an output the way it was
    written) through the sandboxed reader, first 1,000 rows; a file that reader refuses
    is shown as its first lines, with the reader's reason. Writes nothing anywhere."""
    if viewing.blob_id is None:
        return Preview(note=f"The {viewing.part} was erased when processing succeeded; "
                            "only the output was kept.")
    from doorvoer.transforms import Limits, ReadSpec, TransformError, TransformSpec, WriteSpec
    from doorvoer.transforms.engine import run_transform

    spec = parsed_spec(viewing.spec_yaml)
    read = spec.read if viewing.part == "input" else ReadSpec(
        format=spec.write.format, delimiter=spec.write.delimiter,
        encoding=spec.write.encoding, header=spec.write.header)
    sink = _Capped()
    try:
        with vault.open(engine, viewing.blob_id) as source:
            run_transform(read, TransformSpec(sql=f"SELECT * FROM input LIMIT {PREVIEW_ROWS + 1}"),
                          WriteSpec(format="jsonl"), source, cast(BinaryIO, sink),
                          Limits(memory_limit_mb=memory_mb, time_limit_s=time_s))
    except TransformError as exc:
        with vault.open(engine, viewing.blob_id) as source:
            shown = _lines(source, read.encoding)
        shown.note = f"Not readable as {read.format}: {exc}. Shown as its first lines."
        return shown
    except _Full:
        shown = _table(sink.lines())
        shown.more = True
        return shown
    return _table(sink.lines())


class _Full(Exception):
    """The preview has as much as it shows."""


class _Capped(io.RawIOBase):
    """A sink that holds the first rows and refuses more (ending the read early)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.newlines = 0

    def writable(self) -> bool:
        return True

    def write(self, b: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = bytes(b)
        self.data += chunk
        self.newlines += chunk.count(b"\n")
        if len(self.data) > PREVIEW_BYTES or self.newlines > PREVIEW_ROWS:
            raise _Full
        return len(chunk)

    def lines(self) -> Iterator[bytes]:
        whole = bytes(self.data[:self.data.rfind(b"\n") + 1])
        return iter(whole.splitlines())


def _cell(value: object) -> str:
    text = "" if value is None else value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= MAX_CELL else text[:MAX_CELL] + "…"


def _table(lines: Iterator[bytes]) -> Preview:
    shown = Preview()
    for line in lines:
        if len(shown.rows) == PREVIEW_ROWS:
            shown.more = True
            break
        record = json.loads(line)
        if not shown.columns:
            shown.columns = list(record)
        shown.rows.append([_cell(record.get(c)) for c in shown.columns])
    return shown


def _lines(source: BinaryIO, encoding: str) -> Preview:
    raw = source.read(RAW_BYTES + 1)
    text = raw[:RAW_BYTES].decode(encoding, errors="replace")
    lines = text.splitlines()
    shown = Preview(lines=[_cell(line) for line in lines[:PREVIEW_ROWS]])
    shown.more = len(lines) > PREVIEW_ROWS or len(raw) > RAW_BYTES
    return shown
