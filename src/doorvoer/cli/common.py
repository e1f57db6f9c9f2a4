"""What every command shares: the Typer app and its groups, settings, opening the data
directory, the unit of work, and how a result or a failure is printed. Exit 0 on
success, 1 on a user error (one line that says what to fix), 2 on a usage error."""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from doorvoer.access.policy import Actor, Role
from doorvoer.config import Settings, load_settings
from doorvoer.context import Context
from doorvoer.errors import ConfigError, UserError
from doorvoer.tenants.models import Tenant
from doorvoer.unit import Work
from doorvoer.vault.errors import VaultError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Doorvoer: zero-retention file transfer and transformation.")
tenant_app = typer.Typer(no_args_is_help=True, help="Tenants (the processor's clients).")
account_app = typer.Typer(no_args_is_help=True, help="SFTP accounts of a tenant.")
process_app = typer.Typer(no_args_is_help=True, help="Processes: what happens to a file.")
connection_app = typer.Typer(no_args_is_help=True, help="Targets that outputs are pushed to.")
transfers_app = typer.Typer(no_args_is_help=True, help="Transfers: each file's passage.")
user_app = typer.Typer(no_args_is_help=True, help="People who use the portal.")
app.add_typer(tenant_app, name="tenant")
app.add_typer(account_app, name="account")
app.add_typer(process_app, name="process")
app.add_typer(connection_app, name="connection")
app.add_typer(transfers_app, name="transfers")
app.add_typer(user_app, name="user")
audit_app = typer.Typer(no_args_is_help=True, help="A tenant's audit log and its signed "
                                                   "checkpoints.")
app.add_typer(audit_app, name="audit")
instruction_app = typer.Typer(no_args_is_help=True, help="Instructions of a tenant: what "
                              "a change by staff to its data relies on.")
app.add_typer(instruction_app, name="instruction")

out = Console()
err = Console(stderr=True)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data directory "
                    "[env DOORVOER_DATA_DIR; default ./doorvoer-data]", show_default=False)]
JsonOut = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
InstructionOpt = Annotated[str | None, typer.Option(
    "--instruction", help="The tenant's instruction this change relies on (its id, from "
    "`doorvoer instruction add` or the tenant's portal); required", show_default=False)]



def fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(1)


def settings_for(data_dir: Path | None, **flags: Any) -> Settings:
    try:
        return load_settings(data_dir, **flags)
    except ConfigError as exc:
        raise fail(str(exc)) from None


@contextmanager
def opened(settings: Settings, need_init: bool = True) -> Iterator[Context]:
    if need_init and not settings.host_key_path.exists():
        raise fail(f"{settings.data_dir} is not initialised: run `doorvoer init` first")
    try:
        ctx = Context.open(settings)
    except (VaultError, ConfigError, ValueError) as exc:
        raise fail(str(exc)) from None
    try:
        yield ctx
    except UserError as exc:
        raise fail(str(exc)) from None
    finally:
        ctx.close()


@contextmanager
def unit_of_work(data_dir: Path | None) -> Iterator[Work]:
    """The command's one unit of work: it commits when the command succeeds."""
    with opened(settings_for(data_dir)) as ctx, ctx.unit() as w:
        yield w



def cli_actor(instruction: str | None = None) -> Actor:
    """Who acts at the shell: operator staff (the node's sysadmin), by login name."""
    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        login = "?"
    return Actor(user_id=None, role=Role.SYSADMIN, tenant_id=None, two_factor=True,
                 name=f"cli:{login}", instruction=instruction)


@contextmanager
def staff_change(data_dir: Path | None, tenant: str,
                 instruction: str | None) -> Iterator[tuple[Work, Tenant]]:
    """The unit of work of a change to a tenant's data made at the shell: refused unless
    it names an instruction of that tenant (P10), whose id its audit entries carry."""
    from doorvoer.support.instructions import instruction_for
    from doorvoer.tenants.service import require_tenant

    with opened(settings_for(data_dir)) as ctx, \
            ctx.unit(actor=cli_actor(instruction)) as w:
        row = require_tenant(w, tenant)
        instruction_for(w, row, instruction)
        yield w, row


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def emit(rows: list[dict[str, Any]], as_json: bool, title: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title=title, header_style="bold")
    for col in rows[0].keys() if rows else ["(none)"]:
        table.add_column(col)
    for r in rows:
        table.add_row(*[str(v) if v is not None else "" for v in r.values()])
    out.print(table)


def send_mail(ctx: Context, outgoing: list[Any]) -> None:
    """Send what a command's unit queued; say so when some could not be sent (the change
    itself stands)."""
    import asyncio

    from doorvoer import mail

    failed = sum(not asyncio.run(mail.send(ctx.settings, msg)) for msg in outgoing)
    if failed:
        err.print(f"[yellow]warning:[/] {failed} of {len(outgoing)} mails could not be sent "
                  f"(SMTP {ctx.settings.smtp_host}:{ctx.settings.smtp_port})",
                  highlight=False, soft_wrap=True)
