"""Where a tenant's data goes (P8): per process and per target, which output columns go
to which party, derived from the spec (`processes.manifest`) and the connection's host.
Nothing is shared that is not here: a process delivers only to its targets."""

from __future__ import annotations

from typing import Any

from doorvoer.processes.manifest import shares_of_process
from doorvoer.processes.models import Process
from doorvoer.processes.service import list_processes
from doorvoer.secrets.service import connection_views
from doorvoer.tenants.models import Tenant
from doorvoer.unit import Work


def manifest_of(w: Work, tenant: Tenant, process: Process) -> list[dict[str, Any]]:
    hosts = {c.name: f"{c.host}:{c.port}" for c in connection_views(w, tenant)}
    out = []
    for share in shares_of_process(process):
        if share.kind == "pickup":
            party = f"{tenant.name}'s own pickup, /outbox/{share.target.rstrip('/')}/ over SFTP"
        else:
            party = (f"SFTP server {hosts.get(share.target, '(connection not set)')} "
                     f"(connection {share.target})")
        out.append({"process": process.name, "version": process.version, "kind": share.kind,
                    "party": party, "columns": list(share.columns)})
    return out


def manifest(w: Work, tenant: Tenant) -> list[dict[str, Any]]:
    """Every process's shares, in process order."""
    return [row for p in list_processes(w, tenant) for row in manifest_of(w, tenant, p)]
