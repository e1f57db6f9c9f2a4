from __future__ import annotations

from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from doorvoer.db import utcnow
from doorvoer.errors import UserError
from doorvoer.processes.models import Process
from doorvoer.processes.spec import ProcessSpec, parse_spec
from doorvoer.tenants.models import Tenant


@lru_cache(maxsize=256)
def parsed_spec(spec_yaml: str) -> ProcessSpec:
    return parse_spec(spec_yaml)


def spec_of(process: Process) -> ProcessSpec:
    return parsed_spec(process.spec_yaml)


def apply_process(session: Session, tenant: Tenant, spec_yaml: str, source: str) -> Process:
    """Create or update the process the spec names. Returns it."""
    spec = parse_spec(spec_yaml, source)
    for target in spec.deliver:
        if hasattr(target, "sftp"):
            from doorvoer.secrets.service import get_connection

            if get_connection(session, tenant, target.sftp.connection) is None:
                raise UserError(
                    f"{source}: deliver: connection {target.sftp.connection!r} is not set for "
                    f"tenant {tenant.slug!r}; set it with `doorvoer connection set`"
                )
    for other in list_processes(session, tenant):
        if other.name != spec.name and other.folder == spec.folder:
            raise UserError(
                f"{source}: match: folder {spec.folder!r} is already used by process "
                f"{other.name!r}; each process has a folder of its own"
            )
    process = session.scalar(
        select(Process).where(Process.tenant_id == tenant.id, Process.name == spec.name)
    )
    if process is None:
        process = Process(tenant_id=tenant.id, name=spec.name, folder=spec.folder,
                          spec_yaml=spec_yaml)
        session.add(process)
    elif process.spec_yaml != spec_yaml:
        process.spec_yaml = spec_yaml
        process.folder = spec.folder
        process.version += 1
        process.updated_at = utcnow()
    session.flush()
    return process


def list_processes(session: Session, tenant: Tenant) -> list[Process]:
    return list(
        session.scalars(
            select(Process).where(Process.tenant_id == tenant.id).order_by(Process.name)
        )
    )


def process_named(session: Session, tenant_id: str, name: str) -> Process | None:
    return session.scalar(
        select(Process).where(Process.tenant_id == tenant_id, Process.name == name))


def inbox_folders(session: Session, tenant_id: str) -> dict[str, Process]:
    rows = session.scalars(select(Process).where(Process.tenant_id == tenant_id))
    return {p.folder: p for p in rows}


def outbox_folders(session: Session, tenant_id: str) -> set[str]:
    folders: set[str] = set()
    for p in session.scalars(select(Process).where(Process.tenant_id == tenant_id)):
        for target in spec_of(p).deliver:
            if hasattr(target, "pickup"):
                folders.add(target.pickup)
    return folders
