"""The outbox (P1, P2): outputs waiting for pickup, their names, a fetch, a removal.

An output never overwrites another that is still waiting: its name gets `-{seq}`
(`OutboxNames`). A complete download marks the delivery FETCHED; the housekeeping turns
it PICKED_UP after the fetch grace (lftp reads everything, then may fetch again), or
the client's delete does at once; then the output is erased with the transfer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, func, select, update

from doorvoer.audit import service as audit
from doorvoer.audit.events import Event
from doorvoer.db import UTCDateTime, utcnow
from doorvoer.transfers.errors import NoSuchFile
from doorvoer.transfers.lifecycle import settle
from doorvoer.transfers.models import Delivery, DState, Transfer
from doorvoer.transfers.schemas import Entry
from doorvoer.unit import Work

_T: Table = Transfer.__table__  # type: ignore[assignment]
_D: Table = Delivery.__table__  # type: ignore[assignment]
_WAITING = [DState.READY, DState.FETCHED]
_PICKUP = (select(_D.c.id, _D.c.state, _D.c.transfer_id)
           .where(_D.c.tenant_id == bindparam("tenant"), _D.c.kind == "pickup",
                  _D.c.outbox_folder == bindparam("folder"),
                  _D.c.outbox_name == bindparam("name"), _D.c.state.in_(_WAITING))
           .limit(1))
_PICKED = update(_D).where(_D.c.id == bindparam("did")).values(
    state=bindparam("new_state"),
    done_at=func.coalesce(_D.c.done_at, bindparam("now", type_=UTCDateTime())))
_FETCHED = (update(_D).where(_D.c.id == bindparam("did"), _D.c.state == DState.READY)
            .values(state=DState.FETCHED, fetched_at=bindparam("now"), done_at=bindparam("now"))
            .returning(_D.c.transfer_id, _D.c.tenant_id))
_WAITING_AMONG = select(_D.c.outbox_name).where(  # which of these names are taken
    _D.c.tenant_id == bindparam("tenant"), _D.c.outbox_folder == bindparam("folder"),
    _D.c.outbox_name.in_(bindparam("names", expanding=True)), _D.c.state.in_(_WAITING))
_OUTBOX = (  # waiting pickups of a folder, with what a listing or a download needs
    select(_D.c.id, _D.c.outbox_name, _T.c.id.label("tid"), _T.c.output_blob_id,
           _T.c.bytes_out, _T.c.processed_at, _T.c.opened_at)
    .select_from(_D.join(_T, _T.c.id == _D.c.transfer_id))
    .where(_D.c.tenant_id == bindparam("tenant"), _D.c.kind == "pickup",
           _D.c.outbox_folder == bindparam("folder"), _D.c.state.in_(_WAITING)))
_OUTBOX_ALL = _OUTBOX.order_by(_D.c.outbox_name)
_OUTBOX_ONE = _OUTBOX.where(_D.c.outbox_name == bindparam("name")).limit(1)


@dataclass(frozen=True)
class Pickup:
    """An output a client may download."""

    delivery_id: str
    transfer_id: str
    blob_id: str
    size: int


def _entry_of(row: Any) -> Entry:
    return Entry(row.outbox_name, row.bytes_out or 0, row.processed_at or row.opened_at)


def outbox_entries(w: Work, tenant_id: str, folder: str) -> list[Entry]:
    return [_entry_of(r) for r in w.execute(_OUTBOX_ALL, {"tenant": tenant_id,
                                                           "folder": folder})]


def _outbox_file(w: Work, tenant_id: str, folder: str, name: str) -> Any:
    return w.execute(_OUTBOX_ONE, {"tenant": tenant_id, "folder": folder,
                                   "name": name}).first()


def outbox_entry(w: Work, tenant_id: str, folder: str, name: str) -> Entry | None:
    row = _outbox_file(w, tenant_id, folder, name)
    return _entry_of(row) if row is not None else None


def open_pickup(w: Work, tenant_id: str, folder: str, name: str) -> Pickup | None:
    row = _outbox_file(w, tenant_id, folder, name)
    if row is None or row.output_blob_id is None:
        return None
    return Pickup(row.id, row.tid, row.output_blob_id, row.bytes_out or 0)


def mark_fetched(w: Work, delivery_id: str) -> None:
    """A complete download: the output is erased after the fetch grace. A second
    download of the same output changes nothing."""
    row = w.execute(_FETCHED, {"did": delivery_id, "now": utcnow()}).first()
    if row is not None:
        audit.record(w, row.tenant_id, Event.OUTBOX_FETCHED, row.transfer_id)


def remove_pickup(w: Work, tenant_id: str, folder: str, name: str) -> None:
    """The client deletes an output from its outbox: picked up if it was fetched whole,
    removed unread otherwise. Plain statements: clients delete every file they fetch."""
    row = w.execute(_PICKUP, {"tenant": tenant_id, "folder": folder, "name": name}).first()
    if row is None:
        raise NoSuchFile
    w.execute(_PICKED, {
        "did": row.id, "now": utcnow(),
        "new_state": DState.PICKED_UP if row.state == DState.FETCHED else DState.REMOVED})
    audit.record(w, tenant_id, Event.OUTBOX_REMOVED, row.transfer_id)
    settle(w, row.transfer_id)


# ---------------------------------------------------------------- output names


class OutboxNames:
    """Names taken in outbox folders (waiting outputs, and those given out in this
    batch). The waiting names are looked up by exact name on the outbox index (a folder
    may hold many thousands, and a pattern, LIKE, would read them all on SQLite, where
    LIKE ignores case and so skips the index): for a whole batch at once (`expect`), the
    first few candidates of each name, and NAMES_AT_ONCE more per query where those are
    taken. The batch's write transaction holds SQLite's writer lock, which uploads wait
    for."""

    NAMES_AT_ONCE = 32
    EXPECTED_AT_ONCE = 4  # candidates per name looked up by `expect`
    MAX_PARAMETERS = 500  # per query

    def __init__(self, w: Work) -> None:
        self._w = w
        self._checked: dict[tuple[str, str], set[str]] = {}  # looked up, per folder
        # of those, the waiting ones, and the names given out in this batch
        self._taken: dict[tuple[str, str], set[str]] = {}

    def expect(self, wanted: list[tuple[str, str, str]]) -> None:
        """Look up the first candidates of these (tenant, folder, name)s together."""
        per_folder: dict[tuple[str, str], list[str]] = {}
        for tenant_id, folder, name in wanted:
            per_folder.setdefault((tenant_id, folder), []).extend(
                numbered(name, seq) for seq in range(1, 1 + self.EXPECTED_AT_ONCE))
        for (tenant_id, folder), names in per_folder.items():
            self._look_up(tenant_id, folder, list(dict.fromkeys(names)))

    def free(self, tenant_id: str, folder: str, name: str) -> str:
        """The first free form of `name` in the folder; it is taken from now on."""
        checked = self._checked.setdefault((tenant_id, folder), set())
        taken = self._taken.setdefault((tenant_id, folder), set())
        seq = 1
        while True:
            candidate = numbered(name, seq)
            if candidate not in checked:
                self._look_up(tenant_id, folder, [
                    numbered(name, n) for n in range(seq, seq + self.NAMES_AT_ONCE)])
            if candidate not in taken:
                taken.add(candidate)
                return candidate
            seq += 1

    def _look_up(self, tenant_id: str, folder: str, names: list[str]) -> None:
        checked = self._checked.setdefault((tenant_id, folder), set())
        taken = self._taken.setdefault((tenant_id, folder), set())
        for at in range(0, len(names), self.MAX_PARAMETERS):
            part = names[at:at + self.MAX_PARAMETERS]
            taken.update(self._w.execute(_WAITING_AMONG, {
                "tenant": tenant_id, "folder": folder, "names": part}).scalars())
            checked.update(part)


def numbered(name: str, seq: int) -> str:
    """An outbox name and its numbered forms: orders.json, orders-2.json, ..."""
    if seq == 1:
        return name
    stem, dot, ext = name.rpartition(".")
    return f"{stem}-{seq}.{ext}" if dot else f"{name}-{seq}"
