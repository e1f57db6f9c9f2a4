"""`doorvoer incident …`: record an incident from a YAML file, add an update (a new
phase), and list the register (P18). Every affected tenant is told at once."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from doorvoer.cli.common import DataDir, JsonOut, app, cli_actor, fail, opened, out, settings_for
from doorvoer.privacy import incidents

incident_app = typer.Typer(no_args_is_help=True, help="Incidents and breach notices.")
app.add_typer(incident_app, name="incident")


@incident_app.command("create")
def incident_create(
    source: Annotated[Path, typer.Option("--from", help="The incident, as YAML: "
                      "became_known_at, summary, tenants (slugs, or all), data_categories, "
                      "approximate_subjects, likely_consequences, measures_taken, "
                      "measures_proposed, contact")],
    data_dir: DataDir = None,
) -> None:
    """Record an incident and notify every affected tenant now."""
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"--from {source}: cannot read it ({exc})") from None
    with opened(settings_for(data_dir)) as ctx:
        spec = incidents.parse(text, str(source))
        actor = cli_actor()
        with ctx.unit(actor=actor) as w:
            incident = incidents.record(w, spec, actor.name or "cli")
            incident_id = incident.id
            told = len(incidents.register_of(w, incident_id)["notices"])
        sent = asyncio.run(incidents.send_pending(ctx))
    out.print(f"incident {incident_id} recorded; {told} tenant{'s' if told != 1 else ''} to "
              f"tell, {sent} notice{'s' if sent != 1 else ''} sent now"
              + ("" if sent == told else " (the node retries the rest, and alerts the "
                 "operator admins after 15 minutes)"), highlight=False, soft_wrap=True)


@incident_app.command("update")
def incident_update(
    incident_id: str,
    text: Annotated[str, typer.Option("--text", help="What is known now, what was done")],
    data_dir: DataDir = None,
) -> None:
    """Add a phase to an incident and notify every tenant it touches."""
    with opened(settings_for(data_dir)) as ctx:
        actor = cli_actor()
        with ctx.unit(actor=actor) as w:
            row = incidents.add_update(w, incident_id, text, actor.name or "cli")
            phase = row.phase
        sent = asyncio.run(incidents.send_pending(ctx))
    out.print(f"incident {incident_id}: phase {phase} recorded, {sent} notices sent now",
              highlight=False, soft_wrap=True)


@incident_app.command("list")
def incident_list(data_dir: DataDir = None, as_json: JsonOut = False) -> None:
    """The incident register: each incident with its phases and, per tenant (internal
    id), when it was told and when it acknowledged. --json exports it whole."""
    with opened(settings_for(data_dir)) as ctx, ctx.reading() as w:
        rows = incidents.register(w)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
        return
    for r in rows:
        told = [n for n in r["notices"] if n["phase"] == 0]
        out.print(f"{r['id']}  known {r['became_known_at']}  {len(told)} tenants, "
                  f"{sum(1 for n in r['notices'] if n['sent_at'])}/{len(r['notices'])} "
                  f"notices sent, {sum(1 for n in told if n['acknowledged_at'])} "
                  f"acknowledged  {r['summary'][:60]}", highlight=False, soft_wrap=True)
