"""The inbox (P1, P2): the one name rule, routing a name to its process, uploads, and
what a client sees of its inbox folders.

Both doors drive the same `UploadSession`: the SFTP door opens it at OPEN, writes each
WRITE at its offset and finishes it at CLOSE; the HTTPS upload opens it, appends the
body and finishes it when the body ends. They only translate its errors.

A complete upload under a final name that its folder's process matches is RECEIVED; a
complete upload under a temporary or unmatched name waits (HELD) for a rename, which
only SFTP can send: the HTTPS door therefore refuses such names up front
(`refusal(…, renamable=False)`), with the same rule and the same reasons.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, or_, select, update

from doorvoer.audit import service as audit
from doorvoer.audit.events import Event
from doorvoer.db import FastRead, FastWrite, new_id, utcnow
from doorvoer.processes.models import Process
from doorvoer.processes.service import keeps_reports, parsed_spec
from doorvoer.processes.spec import ProcessSpec
from doorvoer.tenants.models import Tenant
from doorvoer.transfers.errors import Conflict, NameTaken, NoSuchFile, WriteRefused
from doorvoer.transfers.lifecycle import finish
from doorvoer.transfers.models import State, Transfer
from doorvoer.transfers.schemas import Entry
from doorvoer.unit import Work
from doorvoer.vault.service import BlobWriter

TEMP_SUFFIXES = (".filepart", ".part", ".partial", ".tmp", "~")
MAX_NAME_BYTES = 255  # one path component, as filesystems (NAME_MAX) and clients have it
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f/\\\ufffd]")

_T: Table = Transfer.__table__  # type: ignore[assignment]
_P: Table = Process.__table__  # type: ignore[assignment]
_TN: Table = Tenant.__table__  # type: ignore[assignment]
_INSERT = FastWrite(insert(_T))
_NAME_OF = FastRead(  # the upload's name now, the process of its folder, the tenant's switch
    select(_T.c.folder, _T.c.filename, _P.c.id, _P.c.name, _P.c.spec_yaml,
           _TN.c.report)
    .select_from(_T.outerjoin(_P, (_P.c.tenant_id == _T.c.tenant_id)
                              & (_P.c.folder == _T.c.folder))
                 .join(_TN, _TN.c.id == _T.c.tenant_id))
    .where(_T.c.id == bindparam("tid")))
_REPORT_OF = FastRead(select(_TN.c.report).where(_TN.c.id == bindparam("tenant")))
_RECEIVED = FastWrite(update(_T).where(_T.c.id == bindparam("tid")))
_PROCESS_OF = select(_P.c.id, _P.c.name, _P.c.spec_yaml).where(
    _P.c.tenant_id == bindparam("tenant"), _P.c.folder == bindparam("folder"))
_INBOX = (  # what a client sees of an inbox folder: waiting, or closed within the grace
    select(_T.c.id, _T.c.filename, _T.c.bytes_in, _T.c.received_at, _T.c.opened_at)
    .where(_T.c.tenant_id == bindparam("tenant"), _T.c.folder == bindparam("folder"),
           # (equalities, not IN: a FastRead takes no list parameters)
           or_(_T.c.state == State.RECEIVING, _T.c.state == State.HELD,
               _T.c.state == State.RECEIVED, _T.c.received_at >= bindparam("grace"))))
_INBOX_LIST = _INBOX.order_by(_T.c.opened_at)  # a later upload of a name wins
_INBOX_ENTRY = FastRead(_INBOX.where(_T.c.filename == bindparam("name"))
                        .order_by(_T.c.opened_at.desc()).limit(1))


# ---------------------------------------------------------------- the name rule


def is_temporary(name: str) -> bool:
    """Names clients upload under before renaming: they never match a process."""
    return name.startswith(".") or name.lower().endswith(TEMP_SUFFIXES)


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a file or folder name in the tree at all, or None. The same
    for every door: SFTP paths and HTTPS URLs are checked by it."""
    if not name or name in (".", ".."):
        return "the file needs a name"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"the file name is longer than {MAX_NAME_BYTES} bytes (UTF-8)"
    bad = _BAD_CHARS.search(name)
    if bad is not None:
        if bad.group() == "\ufffd":
            return "the file name must be valid UTF-8 (percent-encoded in a URL)"
        return "the file name must not contain slashes, backslashes or control characters"
    return None


def refusal(spec: ProcessSpec, folder: str, name: str, *, renamable: bool) -> str | None:
    """Why an upload of `name` into `folder` is refused, or None. Where a rename can
    follow (SFTP), a temporary or unmatched name is taken and waits for it; where none
    can (HTTPS), it would only wait and be discarded, so it is refused."""
    problem = name_problem(name)
    if problem is not None or renamable:
        return problem
    if is_temporary(name):
        return ("that is a temporary name (a leading dot, or .part, .partial, .filepart, "
                ".tmp or ~ at the end): upload under the final name")
    if not spec.matches(folder, name):
        return (f"process {spec.name!r} takes only names matching "
                f"{spec.match.partition('/')[2]!r}")
    return None


def route(w: Work, folder: str, filename: str, process: Any, now: datetime
          ) -> dict[str, Any]:
    """The columns that route a complete upload, given its folder's process (a row of
    id, name, spec_yaml, or None): RECEIVED for that process when it matches the final
    name, else HELD until a rename (or the rename wait) decides."""
    if (process is not None and process.id is not None and not is_temporary(filename)
            and parsed_spec(process.spec_yaml).matches(folder, filename)):
        return {"state": State.RECEIVED, "process_id": process.id,
                "process_name": process.name, "hold_until": None}
    return {"state": State.HELD,
            "hold_until": now + timedelta(seconds=w.settings.rename_wait_s)}


def _route_of(w: Work, tenant_id: str, folder: str, filename: str, now: datetime
              ) -> dict[str, Any]:
    process = None
    if not is_temporary(filename):
        process = w.execute(_PROCESS_OF, {"tenant": tenant_id, "folder": folder}).first()
    return route(w, folder, filename, process, now)


def described(transfer_id: str | None, path: str, keeps_names: bool) -> str:
    """An upload's `object` in the audit log: the transfer's id and the path, which the
    log keeps only where the tenant and the process keep reports (P4): otherwise the id
    alone (or nothing, for a refusal that made no transfer)."""
    if not keeps_names:
        return transfer_id or "(name not kept: reporting is off)"
    return f"{transfer_id} {path}" if transfer_id else path


def record_refusal(w: Work, tenant_id: str, path: str, reason: str) -> None:
    """An upload refused before any byte was stored (a name, a folder, a limit)."""
    row = _REPORT_OF.first(w.reader, {"tenant": tenant_id})
    keep = bool(row is not None and row.report)
    audit.record(w, tenant_id, Event.UPLOAD_REFUSED,
                 f"{described(None, path[:300], keep)}: {reason}"[:600])


# ---------------------------------------------------------------- uploads


class UploadSession:
    """One upload, from OPEN to CLOSE. The transfer row exists from the start, so even a
    crash leaves something to report. Writes may arrive out of order (pipelining
    clients): they are buffered, bounded, and passed to the vault strictly in order,
    exactly as the client sent them. Complete means: the client said it is done, no
    write was refused, the bytes cover 0 to the end without a gap, and they match any
    size the client announced."""

    def __init__(self, transfer_id: str, tenant_id: str, writer: BlobWriter, folder: str,
                 name: str, max_bytes: int, buffer_limit: int,
                 expected_size: int | None) -> None:
        self.transfer_id = transfer_id
        self.tenant_id = tenant_id
        self.writer = writer
        self.folder = folder
        self.name = name
        self.max_bytes = max_bytes
        self.buffer_limit = buffer_limit
        self.expected_size = expected_size
        self.next_offset = 0
        self.pending: dict[int, bytes] = {}
        self.pending_bytes = 0
        self.refused: str | None = None
        self.client_closed = False

    @classmethod
    def begin(cls, w: Work, tenant_id: str, account_id: str | None, folder: str, name: str,
              expected_size: int | None = None) -> UploadSession:
        now = utcnow()
        transfer_id = new_id()
        writer = w.vault.prepare(transfer_id, "input")  # the file, before the write lock
        w.on_rollback(writer.abort)
        w.vault.register(w, writer)
        _INSERT(w.conn, {
            "id": transfer_id, "tenant_id": tenant_id, "account_id": account_id,
            "folder": folder, "filename": name, "state": State.RECEIVING,
            "opened_at": now, "lease_owner": w.ctx.node_id,
            "lease_until": now + timedelta(seconds=w.settings.lease_s),
            "input_blob_id": writer.blob_id, "attempts": 0,
        })
        return cls(transfer_id, tenant_id, writer, folder, name, w.settings.max_file_bytes,
                   w.settings.reorder_buffer_bytes, expected_size)

    @property
    def size(self) -> int:
        return self.next_offset

    def write(self, offset: int, data: bytes) -> None:
        """Take the bytes at `offset` (WriteRefused: the upload cannot be complete)."""
        if self.refused:
            raise WriteRefused(self.refused)
        end = offset + len(data)
        if end > self.max_bytes:
            raise self.refuse(f"the file is larger than the limit of {self.max_bytes} bytes")
        if offset < self.next_offset:
            # A resend of bytes already passed on: it must not change them, and we can
            # no longer compare (they are encrypted), so take only what is new.
            if end <= self.next_offset:
                return
            data = data[self.next_offset - offset:]
            offset = self.next_offset
        if offset > self.next_offset:
            if offset in self.pending:
                if len(self.pending[offset]) >= len(data):
                    return
                self.pending_bytes -= len(self.pending[offset])
            if self.pending_bytes + len(data) > self.buffer_limit:
                raise self.refuse("writes arrived too far out of order")
            self.pending[offset] = data
            self.pending_bytes += len(data)
            return
        self._store(data)
        self.next_offset = end
        self._drain()

    def append(self, data: bytes) -> None:
        """Take the next bytes of a stream (the HTTPS body)."""
        self.write(self.next_offset, data)

    def refuse(self, reason: str) -> WriteRefused:
        """Mark the upload as never complete; returns the error to raise, if any."""
        self.refused = reason
        return WriteRefused(reason)

    def _store(self, data: bytes) -> None:
        try:
            self.writer.write(data)
        except OSError as exc:  # a full disk, say: this upload can no longer complete
            self.refused = exc.strerror or "the server could not store the file"
            raise

    def _drain(self) -> None:
        while self.pending:
            first = min(self.pending)
            if first > self.next_offset:
                return
            data = self.pending.pop(first)
            self.pending_bytes -= len(data)
            end = first + len(data)
            if end > self.next_offset:
                self._store(data[self.next_offset - first:])
                self.next_offset = end

    def incomplete_reason(self) -> str | None:
        """None when the client's bytes cover 0..end with no gap and no refused write."""
        if self.refused:
            return f"a write was refused: {self.refused}"
        if not self.client_closed:
            return "the connection ended before the client closed the file"
        if self.pending:
            return "the upload has gaps: not every byte arrived"
        if self.expected_size is not None and self.expected_size != self.next_offset:
            return "the file is shorter than the size the client announced"
        return None

    def finish(self, w: Work) -> State:
        """At CLOSE (or when the connection ends): complete, or interrupt."""
        reason = self.incomplete_reason()
        if reason is None:
            return self.complete(w)
        return self.interrupt(w, reason)

    def complete(self, w: Work) -> State:
        """Seal the blob and route the transfer: RECEIVED, or HELD for a rename."""
        try:
            size = self.writer.close()
        except OSError as exc:
            return self.interrupt(w, f"upload could not be stored: {exc.strerror}")
        now = utcnow()
        # The name may have changed since OPEN: a rename while the file was open.
        row = _NAME_OF.first(w.conn, {"tid": self.transfer_id})
        if row is None:  # erased (the tenant's erasure, say) while it was open
            raise Conflict("the upload was removed while it was open")
        columns = route(w, row.folder, row.filename, row, now)
        _RECEIVED(w.conn, {"tid": self.transfer_id, "bytes_in": size, "received_at": now,
                           "lease_owner": None, "lease_until": None, "process_id": None,
                           "process_name": None, **columns})
        keep = bool(row.report) and (row.spec_yaml is None or keeps_reports(row.spec_yaml))
        audit.record(w, self.tenant_id, Event.UPLOAD_ACCEPTED,
                     described(self.transfer_id, f"{row.folder}/{row.filename}", keep))
        if columns["state"] == State.RECEIVED:
            w.after_commit(w.ctx.nudge)
        return cast(State, columns["state"])

    def interrupt(self, w: Work, reason: str) -> State:
        """An upload that did not complete is never processed: erase it and report."""
        self.writer.abort()
        finish(w, self.transfer_id, State.INTERRUPTED, reason,
               event=Event.UPLOAD_INTERRUPTED)
        return State.INTERRUPTED


# ---------------------------------------------------------------- inbox files


def rename_upload(w: Work, tenant_id: str, old: tuple[str, str], new: tuple[str, str]
                  ) -> None:
    """Rename an inbox file that is still open or held; routing follows the new name."""
    now = utcnow()
    t = _inbox_file(w, tenant_id, *old, now)
    if t is None:
        raise NoSuchFile
    if t.state not in (State.RECEIVING, State.HELD):
        raise Conflict("the file is already being processed and cannot be renamed")
    if _inbox_file(w, tenant_id, *new, now) is not None:
        raise NameTaken
    row = _REPORT_OF.first(w.conn, {"tenant": tenant_id})
    keep = bool(row is not None and row.report)
    audit.record(w, tenant_id, Event.UPLOAD_RENAMED, described(
        t.id, f"{old[0]}/{old[1]} -> {new[0]}/{new[1]}", keep))
    t.folder, t.filename = new
    if t.state == State.HELD:
        columns = _route_of(w, tenant_id, *new, now)
        for column, value in columns.items():
            setattr(t, column, value)
        if columns["state"] == State.RECEIVED:
            w.after_commit(w.ctx.nudge)


def remove_upload(w: Work, tenant_id: str, folder: str, name: str) -> None:
    """The client deletes a file it left under a temporary or unmatched name."""
    t = _inbox_file(w, tenant_id, folder, name, utcnow())
    if t is None:
        raise NoSuchFile
    if t.state != State.HELD:
        raise Conflict("only a file waiting for a rename can be removed")
    finish(w, t.id, State.DISCARDED, "removed by the client before processing",
           event=Event.UPLOAD_REMOVED)


def _inbox_file(w: Work, tenant_id: str, folder: str, name: str, now: datetime
                ) -> Transfer | None:
    grace = now - timedelta(seconds=w.settings.stat_grace_s)
    row = _INBOX_ENTRY.first(w.conn, {"tenant": tenant_id, "folder": folder, "name": name,
                                      "grace": grace})
    return w.session.get(Transfer, row.id) if row is not None else None


def inbox_entries(w: Work, tenant_id: str, folder: str) -> list[Entry]:
    """What a client may see of its inbox folder: waiting files, and files closed within
    the stat grace (rclone stats what it just wrote). Plain Core: clients list the folder
    they upload to, and it may hold many files waiting for the worker."""
    grace = utcnow() - timedelta(seconds=w.settings.stat_grace_s)
    out: dict[str, Entry] = {}
    for row in w.execute(_INBOX_LIST, {"tenant": tenant_id, "folder": folder,
                                       "grace": grace}):
        out[row.filename] = Entry(row.filename, row.bytes_in or 0,
                                  row.received_at or row.opened_at)
    return list(out.values())


def inbox_entry(w: Work, tenant_id: str, folder: str, name: str) -> Entry | None:
    """One file of an inbox folder (what the client may stat), on the fast path: clients
    stat every file they put."""
    grace = utcnow() - timedelta(seconds=w.settings.stat_grace_s)
    row = _INBOX_ENTRY.first(w.reader, {"tenant": tenant_id, "folder": folder, "name": name,
                                        "grace": grace})
    if row is None:
        return None
    return Entry(row.filename, row.bytes_in or 0, row.received_at or row.opened_at)
