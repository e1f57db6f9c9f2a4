"""`doorvoer instruction …`: recording what a tenant asked by e-mail or phone, so that a
change made for it can name it (`--instruction ID`), and listing them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from doorvoer.cli.common import (
    DataDir,
    JsonOut,
    cli_actor,
    emit,
    fail,
    instruction_app,
    iso,
    opened,
    out,
    settings_for,
)
from doorvoer.tenants.service import require_tenant

Tenant = Annotated[str, typer.Option("--tenant", help="The tenant's slug")]


@instruction_app.command("add")
def add(
    tenant: Tenant,
    asked_by: Annotated[str, typer.Option(help="Who at the tenant asked (name or e-mail)")],
    channel: Annotated[str, typer.Option(help="How: email, phone or portal")],
    reference: Annotated[str, typer.Option(
        help="The e-mail's subject and date, a ticket, a call note")],
    text: Annotated[str, typer.Option(help="What is to be done")],
    asked_at: Annotated[str | None, typer.Option(
        help="When they asked (ISO 8601, UTC if no offset; default now)")] = None,
    data_dir: DataDir = None,
) -> None:
    """Record an instruction of the tenant; prints its id."""
    from doorvoer.support.instructions import file_instruction

    when = None
    if asked_at:
        try:
            when = datetime.fromisoformat(asked_at)
        except ValueError:
            raise fail(f"--asked-at {asked_at!r}: use a time like 2026-12-07T09:30") from None
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    with opened(settings_for(data_dir)) as ctx, ctx.unit(actor=cli_actor()) as w:
        row = file_instruction(w, require_tenant(w, tenant), asked_by, channel, reference,
                               text, when)
        ident = row.id
    out.print(f"instruction {ident} recorded; name it with --instruction {ident}")


@instruction_app.command("list")
def list_instructions(tenant: Tenant, data_dir: DataDir = None,
                      as_json: JsonOut = False) -> None:
    """A tenant's instructions, newest first."""
    from doorvoer.support.instructions import instructions_of

    with opened(settings_for(data_dir)) as ctx, ctx.reading() as w:
        rows = [{"id": i.id, "asked_by": i.asked_by, "asked_at": iso(i.asked_at),
                 "channel": i.channel, "reference": i.reference, "text": i.text,
                 "recorded_by": i.recorded_by}
                for i in instructions_of(w, require_tenant(w, tenant).id)]
    emit(rows, as_json, f"Instructions of {tenant}")
