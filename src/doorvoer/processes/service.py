"""Processes (a spec and its state): applying a spec, and what the other areas read of
them (the inbox folders, the outbox folders, whether a process keeps reports, whether
an inspection window is open on it)."""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache

from sqlalchemy import delete, select, update

from doorvoer.audit import service as audit
from doorvoer.audit.events import Event
from doorvoer.db import utcnow
from doorvoer.errors import UserError
from doorvoer.processes.errors import SpecError
from doorvoer.processes.manifest import change_of, columns_of, shares_of, shares_of_process
from doorvoer.processes.models import Process
from doorvoer.processes.spec import PickupTarget, ProcessSpec, SftpTarget, parse_spec
from doorvoer.tenants.models import Tenant
from doorvoer.unit import Work


@lru_cache(maxsize=256)
def parsed_spec(spec_yaml: str) -> ProcessSpec:
    return parse_spec(spec_yaml)


def spec_of(process: Process) -> ProcessSpec:
    return parsed_spec(process.spec_yaml)


def apply_process(w: Work, tenant: Tenant, spec_yaml: str, source: str) -> Process:
    """Create or update the process the spec names. Returns it."""
    # Imported here: the transform workers read specs, and must not load asyncssh.
    from doorvoer.secrets.service import get_connection

    spec = parse_spec(spec_yaml, source)
    for target in spec.deliver:
        if isinstance(target, SftpTarget) and get_connection(
                w, tenant, target.sftp.connection) is None:
            raise SpecError(
                f"{source}: deliver: connection {target.sftp.connection!r} is not set for "
                f"tenant {tenant.slug!r}; set it with `doorvoer connection set`"
            )
    for other in list_processes(w, tenant):
        if other.name != spec.name and other.folder == spec.folder:
            raise SpecError(
                f"{source}: match: folder {spec.folder!r} is already used by process "
                f"{other.name!r}; each process has a folder of its own"
            )
    s = w.session
    process = s.scalar(
        select(Process).where(Process.tenant_id == tenant.id, Process.name == spec.name)
    )
    changed = process is None or process.spec_yaml != spec_yaml
    columns = columns_of(spec) if changed else None
    # A change to what an existing process shares with whom (P8); a new one's shares
    # are in its spec, applied in the entry below.
    shared = change_of(shares_of_process(process), shares_of(spec, columns)) \
        if changed and process is not None else None
    if process is None:
        process = Process(tenant_id=tenant.id, name=spec.name, folder=spec.folder,
                          spec_yaml=spec_yaml)
        s.add(process)
    elif process.spec_yaml != spec_yaml:
        process.spec_yaml = spec_yaml
        process.folder = spec.folder
        process.version += 1
        process.updated_at = utcnow()
    if columns is not None:
        process.columns = json.dumps(columns)
    s.flush()
    if changed:
        audit.record(w, tenant.id, Event.PROCESS_APPLIED, f"{process.name} v{process.version}")
    if shared:  # what goes to whom changed (P8): the difference, in the log
        audit.record(w, tenant.id, Event.PROCESS_SHARING_CHANGED,
                     f"{process.name} v{process.version}: {shared}")
    return process


def list_processes(w: Work, tenant: Tenant) -> list[Process]:
    return list(w.session.scalars(
        select(Process).where(Process.tenant_id == tenant.id).order_by(Process.name)))


def process_named(w: Work, tenant_id: str, name: str) -> Process | None:
    return w.session.scalar(
        select(Process).where(Process.tenant_id == tenant_id, Process.name == name))


def inbox_folders(w: Work, tenant_id: str) -> set[str]:
    return set(w.execute(select(Process.folder).where(Process.tenant_id == tenant_id))
               .scalars())


def outbox_folders(w: Work, tenant_id: str) -> set[str]:
    folders: set[str] = set()
    for spec_yaml in w.execute(select(Process.spec_yaml).where(
            Process.tenant_id == tenant_id)).scalars():
        for target in parsed_spec(spec_yaml).deliver:
            if isinstance(target, PickupTarget):
                folders.add(target.pickup)
    return folders


def keeps_reports(spec_yaml: str) -> bool:
    """Whether a process spec keeps reports (`report: true`, the default)."""
    try:
        return parsed_spec(spec_yaml).report
    except UserError:
        return True  # a spec that no longer parses: the tenant's switch decides


def unreported_process_ids(w: Work, tenant_id: str | None = None) -> set[str]:
    """Processes whose spec says `report: false`."""
    q = select(Process.id, Process.spec_yaml).where(
        Process.spec_yaml.contains("report"))  # a cheap prefilter
    if tenant_id is not None:
        q = q.where(Process.tenant_id == tenant_id)
    return {row.id for row in w.execute(q) if not keeps_reports(row.spec_yaml)}


def window_open_on(window_id: str | None, until: datetime | None,
                   now: datetime) -> str | None:
    """The inspection window open on a process now (from its `inspect_window` and
    `inspect_until`, of a row or an object): the one rule both sides read."""
    return window_id if window_id is not None and until is not None and until > now \
        else None


def set_inspection(w: Work, process_id: str, window_id: str | None,
                   until: datetime | None) -> None:
    """Mark the process as inspected by a window until `until` (None: no window). Only
    `support.inspection` calls this; the transfers' lifecycle reads it."""
    w.session.execute(update(Process).where(Process.id == process_id).values(
        inspect_window=window_id, inspect_until=until)
        .execution_options(synchronize_session="fetch"))


def erase_tenant(w: Work, tenant: Tenant) -> dict[str, int]:
    """A tenant's erasure (P19), this area's part: its processes and their specs."""
    gone = w.changed(delete(Process).where(Process.tenant_id == tenant.id))
    return {"processes": gone}
