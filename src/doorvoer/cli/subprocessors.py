"""`doorvoer subprocessor add|change|list`: the sub-processor register (P17). An
addition or change is announced to every tenant now and takes effect after the notice
period (`subprocessor_notice_days`, 30)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from doorvoer.cli.common import (
    DataDir,
    JsonOut,
    app,
    cli_actor,
    emit,
    fail,
    iso,
    opened,
    out,
    send_mail,
    settings_for,
)
from doorvoer.privacy import subprocessors
from doorvoer.privacy.models import Subprocessor
from doorvoer.unit import Work

subprocessor_app = typer.Typer(no_args_is_help=True, help="The sub-processor register.")
app.add_typer(subprocessor_app, name="subprocessor")

Categories = Annotated[list[str] | None, typer.Option(
    "--category", help="A category of personal data it processes (repeatable)")]
Notice = Annotated[float | None, typer.Option(
    help="Days from the announcement to taking effect [default: the setting]")]


def _announce(data_dir: Path | None, fn: Callable[[Work, str], Subprocessor]) -> str:
    with opened(settings_for(data_dir)) as ctx:
        actor = cli_actor()
        with ctx.unit(actor=actor) as w:
            row = fn(w, actor.name or "cli")
            said = f"{row.key} v{row.version}: in effect from {iso(row.effective_at)}"
        send_mail(ctx, w.outgoing)
    return said


@subprocessor_app.command("add")
def subprocessor_add(
    key: str,
    name: Annotated[str, typer.Option(help="Who it is")],
    purpose: Annotated[str, typer.Option(help="What it does with the data")],
    country: Annotated[str, typer.Option(help="Where (ISO 3166-1 alpha-2: NL, DE, US…)")],
    category: Categories = None,
    safeguard: Annotated[str | None, typer.Option(
        help="Outside the EEA: the safeguard (adequacy decision, SCCs, BCRs)")] = None,
    notice_days: Notice = None,
    data_dir: DataDir = None,
) -> None:
    """Add a sub-processor: every tenant is told now; it takes effect after the notice."""
    if not category:
        raise fail("give at least one --category of personal data it processes")

    def add(w: Work, by: str) -> Subprocessor:
        spec = subprocessors.spec_of(name=name, purpose=purpose, country=country,
                                     data_categories=category, safeguard=safeguard)
        return subprocessors.add(w, key, spec, by, notice_days)

    said = _announce(data_dir, add)
    out.print(f"announced {said}", highlight=False, soft_wrap=True)


@subprocessor_app.command("change")
def subprocessor_change(
    key: str,
    name: Annotated[str | None, typer.Option()] = None,
    purpose: Annotated[str | None, typer.Option()] = None,
    country: Annotated[str | None, typer.Option()] = None,
    category: Categories = None,
    safeguard: Annotated[str | None, typer.Option()] = None,
    notice_days: Notice = None,
    data_dir: DataDir = None,
) -> None:
    """A new version of an entry (what you give changes): announced like an addition."""
    said = _announce(data_dir, lambda w, by: subprocessors.change(
        w, key, by, notice_days, name=name, purpose=purpose, country=country,
        data_categories=category, safeguard=safeguard))
    out.print(f"announced {said}", highlight=False, soft_wrap=True)


@subprocessor_app.command("list")
def subprocessor_list(data_dir: DataDir = None, as_json: JsonOut = False) -> None:
    """The register: each entry in force and announced, and how many tenants an entry
    outside the EEA may not be used for (no consent)."""
    with opened(settings_for(data_dir)) as ctx, ctx.reading() as w:
        rows: list[dict[str, Any]] = []
        for e in subprocessors.register(w):
            for row, state in ((e.current, "in force"), (e.announced, "announced")):
                if row is not None:
                    rows.append({"key": row.key, "version": row.version, "name": row.name,
                                 "purpose": row.purpose, "country": row.country,
                                 "in_eea": row.in_eea, "safeguard": row.safeguard,
                                 "data_categories": row.data_categories.split("\n"),
                                 "effective_at": iso(row.effective_at), "state": state,
                                 "not_for_tenants": subprocessors.not_for(w, row)})
    if not as_json:  # the table: what fits a terminal; --json has every field
        rows = [{"key": r["key"], "v": r["version"], "name": r["name"],
                 "country": r["country"] + ("" if r["in_eea"] else " (outside EEA)"),
                 "state": r["state"], "from": (r["effective_at"] or "")[:10],
                 "not for": r["not_for_tenants"]} for r in rows]
    emit(rows, as_json, "Sub-processors")
