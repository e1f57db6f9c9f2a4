"""What a process shares with whom (P8), derived from its spec: the output columns (from
the transform's SQL, `transforms.columns`) and each target (the tenant's own pickup
folder, or an SFTP connection). `privacy.manifest` names the parties (a connection's
host); a spec change that alters either is written in the audit log with the
difference (`change_of`)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from doorvoer.processes.models import Process
from doorvoer.processes.spec import PickupTarget, ProcessSpec, SftpTarget


@dataclass(frozen=True)
class Share:
    kind: str  # pickup | sftp
    target: str  # the pickup folder, or the connection's name
    columns: tuple[str, ...]


def columns_of(spec: ProcessSpec) -> list[str]:
    """The output columns, parsed from the SQL (DuckDB: loaded only here; the doors and
    pages read what `apply_process` stored on the process)."""
    from doorvoer.transforms.columns import output_columns

    return output_columns(spec.transform.sql)


def shares_of(spec: ProcessSpec, columns: list[str] | None = None) -> list[Share]:
    cols = tuple(columns_of(spec) if columns is None else columns)
    out = []
    for target in spec.deliver:
        if isinstance(target, PickupTarget):
            out.append(Share("pickup", target.pickup, cols))
        elif isinstance(target, SftpTarget):
            out.append(Share("sftp", target.sftp.connection, cols))
    return out


def change_of(old: list[Share], new: list[Share]) -> str | None:
    """The difference, as an audit entry's object says it; None when nothing changed."""
    if old == new:
        return None
    parts = []
    old_cols = {c for s in old for c in s.columns}
    new_cols = {c for s in new for c in s.columns}
    if added := [c for c in dict.fromkeys(c for s in new for c in s.columns)
                 if c not in old_cols]:
        parts.append("columns added: " + ", ".join(added))
    if removed := [c for c in dict.fromkeys(c for s in old for c in s.columns)
                   if c not in new_cols]:
        parts.append("columns removed: " + ", ".join(removed))
    old_t = {(s.kind, s.target) for s in old}
    new_t = {(s.kind, s.target) for s in new}
    if gained := sorted(new_t - old_t):
        parts.append("targets added: " + ", ".join(f"{k} {t}" for k, t in gained))
    if lost := sorted(old_t - new_t):
        parts.append("targets removed: " + ", ".join(f"{k} {t}" for k, t in lost))
    return "; ".join(parts) or "column order changed"


def shares_of_process(process: Process) -> list[Share]:
    """The shares of a stored process, from the columns stored when it was applied."""
    from doorvoer.processes.service import spec_of

    stored = json.loads(process.columns) if process.columns else None
    return shares_of(spec_of(process), stored)
