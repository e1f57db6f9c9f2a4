"""`doorvoer audit …`: a tenant's audit chain, its signed checkpoints, and checking them
(docs/audit.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from doorvoer.audit import service as audit
from doorvoer.audit.events import Event
from doorvoer.audit.verify import verify
from doorvoer.cli.common import (
    DataDir,
    JsonOut,
    audit_app,
    emit,
    fail,
    iso,
    opened,
    settings_for,
    unit_of_work,
)
from doorvoer.tenants.service import require_tenant

Tenant = Annotated[str, typer.Option("--tenant", help="The tenant's slug")]


@audit_app.command("export")
def export(tenant: Tenant, data_dir: DataDir = None) -> None:
    """The tenant's chain on standard output: JSON lines, one entry each, oldest first."""
    with unit_of_work(data_dir) as w:
        chain = require_tenant(w, tenant).id
        audit.record(w, chain, Event.AUDIT_EXPORTED, "cli")
        for entry in audit.entries(w, chain):
            sys.stdout.write(json.dumps(entry, ensure_ascii=False) + "\n")


@audit_app.command("checkpoint")
def checkpoint(tenant: Tenant, data_dir: DataDir = None) -> None:
    """The newest signed checkpoint of the tenant's chain (a signed note)."""
    with opened(settings_for(data_dir)) as ctx, ctx.reading() as w:
        notes = audit.checkpoints(w, require_tenant(w, tenant).id)
    if not notes:
        raise fail(f"tenant {tenant!r} has no checkpoint yet")
    sys.stdout.write(notes[-1].note)


@audit_app.command("checkpoints")
def checkpoints(tenant: Tenant, data_dir: DataDir = None, as_json: JsonOut = False) -> None:
    """Every checkpoint the node signed of the tenant's chain, oldest first."""
    with opened(settings_for(data_dir)) as ctx, ctx.reading() as w:
        rows = audit.checkpoints(w, require_tenant(w, tenant).id)
    if as_json:
        emit([{"seq": c.seq, "hash": c.hash, "signed_at": iso(c.signed_at), "note": c.note}
              for c in rows], True, "")
        return
    for c in rows:
        sys.stdout.write(c.note)


@audit_app.command("verify")
def verify_chain(
    tenant: Tenant,
    receipt: Annotated[list[Path] | None, typer.Option(
        "--receipt", help="A checkpoint you kept (a signed note; repeatable)")] = None,
    data_dir: DataDir = None,
) -> None:
    """Recompute the chain and check every checkpoint and receipt: exit 0 and one line
    when all holds, 1 naming the first bad seq otherwise."""
    receipts = []
    for path in receipt or []:
        try:
            receipts.append(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise fail(f"--receipt {path}: cannot read it ({exc})") from None
    with opened(settings_for(data_dir)) as ctx, ctx.reading() as w:
        outcome = verify(w, require_tenant(w, tenant).id, receipts)
    if not outcome.ok:
        raise fail(str(outcome))
    sys.stdout.write(f"{outcome}\n")


@audit_app.command("key")
def key(data_dir: DataDir = None) -> None:
    """The verifier key of the node's checkpoints: name+keyid+base64(0x01 ‖ key)."""
    with opened(settings_for(data_dir)) as ctx:
        sys.stdout.write(f"{ctx.signer.verifier}\n")
