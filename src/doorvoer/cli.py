"""The command-line door: `doorvoer …`. Exit 0 on success, 1 on a user error (one line
that says what to fix), 2 on a usage error."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from doorvoer import log as logsetup
from doorvoer.config import Settings, load_settings
from doorvoer.context import Context
from doorvoer.errors import ConfigError, UserError
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

out = Console()
err = Console(stderr=True)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data directory "
                    "[env DOORVOER_DATA_DIR; default ./doorvoer-data]", show_default=False)]
JsonOut = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


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


@app.command()
def init(data_dir: DataDir = None) -> None:
    """Create the configuration, host and master keys, and the database."""
    from doorvoer.bootstrap import host_key_fingerprint, init_data_dir

    settings = settings_for(data_dir)
    try:
        init_data_dir(settings).close()
    except (VaultError, ConfigError) as exc:
        raise fail(str(exc)) from None
    out.print(f"initialised {settings.data_dir}  (SFTP host key {host_key_fingerprint(settings)})")


@app.command()
def serve(
    data_dir: DataDir = None,
    sftp_port: Annotated[int | None, typer.Option(help="SFTP port [default 2222]")] = None,
    sftp_host: Annotated[str | None, typer.Option(help="Address to listen on")] = None,
    http_port: Annotated[int | None, typer.Option(help="HTTPS port [default 8443]")] = None,
    http_host: Annotated[str | None, typer.Option(help="Address for HTTPS")] = None,
) -> None:
    """Run the node: SFTP, HTTPS portal and API, workers and deliveries, until SIGINT or
    SIGTERM."""
    settings = settings_for(data_dir, sftp_port=sftp_port, sftp_host=sftp_host,
                            http_port=http_port, http_host=http_host)
    logsetup.setup(settings.log_level)
    with opened(settings) as ctx:
        from doorvoer.migrate import upgrade

        upgrade(ctx.engine)
        from doorvoer.app import run

        run(_serve(ctx))


async def _serve(ctx: Context) -> None:
    from doorvoer.app import Node

    node = Node(ctx, ctx.settings.sftp_host, ctx.settings.sftp_port,
                http_host=ctx.settings.http_host, http_port_wanted=ctx.settings.http_port)
    try:
        await node.start()
    except OSError as exc:
        raise fail(f"cannot listen (SFTP port {ctx.settings.sftp_port}, HTTPS port "
                   f"{ctx.settings.http_port}): {exc.strerror}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    err.print(f"doorvoer serving SFTP on {ctx.settings.sftp_host}:{node.sftp_port}, "
              f"HTTPS on {ctx.settings.http_host}:{node.http_port}")
    await stop.wait()
    await node.stop()


@tenant_app.command("create")
def tenant_create(
    slug: str,
    name: Annotated[str, typer.Option(help="Display name")],
    contact_email: Annotated[str | None, typer.Option(help="For contact and invoicing")] = None,
    data_dir: DataDir = None,
) -> None:
    """Create a tenant."""
    from doorvoer.tenants.service import create_tenant

    with unit_of_work(data_dir) as w:
        create_tenant(w, slug, name, contact_email)
    out.print(f"tenant {slug} created")


@tenant_app.command("list")
def tenant_list(data_dir: DataDir = None, as_json: JsonOut = False) -> None:
    """List tenants."""
    from doorvoer.tenants.service import list_tenants

    with unit_of_work(data_dir) as w:
        rows = [{"slug": t.slug, "name": t.name} for t in list_tenants(w)]
    _emit(rows, as_json, "Tenants")


@account_app.command("create")
def account_create(
    tenant: str,
    name: str,
    ssh_key: Annotated[list[Path] | None, typer.Option(
        help="OpenSSH public key file (repeatable)")] = None,
    password_stdin: Annotated[bool, typer.Option(
        help="Read a password from standard input")] = False,
    data_dir: DataDir = None,
) -> None:
    """Create an SFTP account; it logs in as NAME@TENANT."""
    from doorvoer.accounts.machines import create_account

    keys = []
    for path in ssh_key or []:
        try:
            keys.append(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise fail(f"--ssh-key {path}: cannot read it ({exc})") from None
    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    with unit_of_work(data_dir) as w:
        create_account(w, tenant, name, keys, password)
    out.print(f"account {name}@{tenant} created")


@user_app.command("create")
def user_create(
    email: str,
    role: Annotated[str, typer.Option(help="operator_admin, support, sysadmin, tenant_admin, "
                                           "tenant_member or external")],
    name: Annotated[str, typer.Option(help="Display name")] = "",
    tenant: Annotated[str | None, typer.Option(help="The tenant (not for staff)")] = None,
    permissions: Annotated[str, typer.Option(
        help="External users: comma-separated (reports, transfers, processes)")] = "",
    data_dir: DataDir = None,
) -> None:
    """Create a portal user: the first operator admin, or a tenant's admin. The password
    is read from standard input."""
    from doorvoer.access.policy import Role
    from doorvoer.accounts.people import create_user
    from doorvoer.tenants.service import require_tenant

    try:
        role_value = Role(role)
    except ValueError:
        roles = ", ".join(r.value for r in Role if r != Role.ACCOUNT)
        raise fail(f"--role {role!r}: use one of {roles}") from None
    password = sys.stdin.readline().rstrip("\r\n")
    with unit_of_work(data_dir) as w:
        tenant_id = require_tenant(w, tenant).id if tenant else None
        create_user(w, email, name, role_value, tenant_id, password,
                    frozenset(p.strip() for p in permissions.split(",") if p.strip()))
    out.print(f"user {email} created ({role_value.label})")


@process_app.command("apply")
def process_apply(tenant: str, spec: Path, data_dir: DataDir = None) -> None:
    """Create or update a process from its YAML spec."""
    from doorvoer.processes.service import apply_process
    from doorvoer.tenants.service import require_tenant

    try:
        text = spec.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"{spec}: cannot read it ({exc})") from None
    with unit_of_work(data_dir) as w:
        p = apply_process(w, require_tenant(w, tenant), text, str(spec))
        name, version, folder = p.name, p.version, p.folder
    out.print(f"process {name} v{version} applied: files go in /inbox/{folder}/")


@process_app.command("list")
def process_list(tenant: str, data_dir: DataDir = None, as_json: JsonOut = False) -> None:
    """List a tenant's processes."""
    from doorvoer.processes.service import list_processes
    from doorvoer.tenants.service import require_tenant

    with unit_of_work(data_dir) as w:
        rows = [
            {"name": p.name, "folder": f"/inbox/{p.folder}/", "version": p.version,
             "updated_at": _iso(p.updated_at)}
            for p in list_processes(w, require_tenant(w, tenant))
        ]
    _emit(rows, as_json, f"Processes of {tenant}")


@connection_app.command("set")
def connection_set(
    tenant: str,
    name: str,
    host: Annotated[str, typer.Option(help="Target SFTP host")],
    username: Annotated[str, typer.Option(help="Login name on the target")],
    host_key: Annotated[Path, typer.Option(help="The target's public host key file "
                                           "(pinned; e.g. from ssh-keyscan)")],
    port: Annotated[int, typer.Option(help="Target SFTP port")] = 22,
    private_key_stdin: Annotated[bool, typer.Option(
        help="Standard input holds a private key (default: a password)")] = False,
    data_dir: DataDir = None,
) -> None:
    """Set (create or replace) a push target. The secret is read from standard input,
    stored sealed and never shown again."""
    from doorvoer.secrets.service import SftpConnection, set_connection
    from doorvoer.tenants.service import require_tenant

    try:
        key_text = host_key.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"--host-key {host_key}: cannot read it ({exc})") from None
    if key_text and not key_text.startswith(("ssh-", "ecdsa-")) and " " in key_text:
        key_text = key_text.split(" ", 1)[1]  # a known_hosts line: drop the host name
    secret = sys.stdin.read()
    conn = SftpConnection(
        host=host, port=port, username=username, host_key=key_text,
        password=None if private_key_stdin else secret.rstrip("\r\n"),
        private_key=secret if private_key_stdin else None,
    )
    with unit_of_work(data_dir) as w:
        set_connection(w, require_tenant(w, tenant), name, conn)
    out.print(f"connection {name} of {tenant} set (stored sealed; it will not be shown again)")


TRANSFER_FIELDS = ("id", "tenant", "process", "filename", "state", "received_at",
                   "processed_at", "input_erased_at", "delivered_at", "erased_at",
                   "residence_seconds", "bytes_in", "bytes_out", "rows_in", "rows_out",
                   "error")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


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
        _emit(rows, True, "")
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


def _emit(rows: list[dict[str, Any]], as_json: bool, title: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title=title, header_style="bold")
    for col in rows[0].keys() if rows else ["(none)"]:
        table.add_column(col)
    for r in rows:
        table.add_row(*[str(v) if v is not None else "" for v in r.values()])
    out.print(table)


@app.command()
def demo(
    once: Annotated[bool, typer.Option(help="Exit after the story instead of serving")] = False,
    sftp_port: Annotated[int, typer.Option(help="Preferred SFTP port")] = 2222,
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="Keep the demo's data here (default: a temporary folder)")] = None,
) -> None:
    """The embedded default end to end: a demo tenant, process and file, over real SFTP."""
    from doorvoer.demo import run_demo

    try:
        from doorvoer.app import run

        run(run_demo(out, once=once, preferred_port=sftp_port, data_dir=data_dir))
    except KeyboardInterrupt:
        out.print("stopped")
    except UserError as exc:
        raise fail(str(exc)) from None


def main() -> None:
    with suppress(BrokenPipeError):
        app()


if __name__ == "__main__":
    main()
