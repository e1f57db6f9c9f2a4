"""`doorvoer transfers list`: each file's passage, newest first."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import select

from doorvoer.cli.common import (
    DataDir,
    JsonOut,
    emit,
    opened,
    out,
    settings_for,
    transfers_app,
)
from doorvoer.context import Context

TRANSFER_FIELDS = ("id", "tenant", "process", "filename", "state", "received_at",
                   "processed_at", "input_erased_at", "delivered_at", "erased_at",
                   "residence_seconds", "bytes_in", "bytes_out", "rows_in", "rows_out",
                   "error")


def transfer_rows(ctx: Context, tenant: str | None) -> list[dict[str, Any]]:
    from doorvoer.tenants.models import Tenant
    from doorvoer.tenants.service import require_tenant
    from doorvoer.transfers.schemas import TransferOut
    from doorvoer.transfers.service import list_transfers

    with ctx.reading() as w:
        tenant_id = require_tenant(w, tenant).id if tenant else None
        slugs = {r.id: r.slug for r in w.execute(select(Tenant.id, Tenant.slug))}
        return [TransferOut.of(t, slugs.get(t.tenant_id)).model_dump(mode="json")
                for t in list_transfers(w, tenant_id)]


@transfers_app.command("list")
def transfers_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant")] = None,
    data_dir: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """List transfers, newest first."""
    with opened(settings_for(data_dir)) as ctx:
        rows = transfer_rows(ctx, tenant)
    if as_json:
        emit(rows, True, "")
        return
    table = Table(title="Transfers", header_style="bold")
    for col in ("tenant", "process", "filename", "state", "received", "residence", "in",
                "out", "rows", "error"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            r["tenant"], r["process"] or "", r["filename"], r["state"],
            (r["received_at"] or "")[:19].replace("T", " "),
            f"{r['residence_seconds']:.2f}s" if r["residence_seconds"] is not None else "",
            _bytes(r["bytes_in"]), _bytes(r["bytes_out"]),
            f"{r['rows_in'] or 0}→{r['rows_out'] or 0}" if r["rows_in"] is not None else "",
            r["error"] or "",
        )
    out.print(table)


def _bytes(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)

