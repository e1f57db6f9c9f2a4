"""Setting up tenants: tenants, their SFTP accounts, portal users, processes and
connections."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from doorvoer.cli.common import (
    DataDir,
    InstructionOpt,
    JsonOut,
    account_app,
    cli_actor,
    connection_app,
    emit,
    err,
    fail,
    iso,
    opened,
    out,
    process_app,
    settings_for,
    staff_change,
    tenant_app,
    unit_of_work,
    user_app,
)


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
    emit(rows, as_json, "Tenants")


@account_app.command("create")
def account_create(
    tenant: str,
    name: str,
    ssh_key: Annotated[list[Path] | None, typer.Option(
        help="OpenSSH public key file (repeatable)")] = None,
    password_stdin: Annotated[bool, typer.Option(
        help="Read a password from standard input")] = False,
    instruction: InstructionOpt = None,
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
    with staff_change(data_dir, tenant, instruction) as (w, _):
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
def process_apply(tenant: str, spec: Path, instruction: InstructionOpt = None,
                  data_dir: DataDir = None) -> None:
    """Create or update a process from its YAML spec."""
    from doorvoer.processes.service import apply_process

    try:
        text = spec.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"{spec}: cannot read it ({exc})") from None
    with staff_change(data_dir, tenant, instruction) as (w, row):
        p = apply_process(w, row, text, str(spec))
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
             "updated_at": iso(p.updated_at)}
            for p in list_processes(w, require_tenant(w, tenant))
        ]
    emit(rows, as_json, f"Processes of {tenant}")


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
    instruction: InstructionOpt = None,
    data_dir: DataDir = None,
) -> None:
    """Set (create or replace) a push target. The secret is read from standard input,
    stored sealed and never shown again."""
    from doorvoer.secrets.service import SftpConnection, set_connection

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
    with staff_change(data_dir, tenant, instruction) as (w, row):
        set_connection(w, row, name, conn)
    out.print(f"connection {name} of {tenant} set (stored sealed; it will not be shown again)")


@tenant_app.command("export")
def tenant_export(
    tenant: str,
    out_path: Annotated[Path, typer.Option("--out", help="The ZIP file to write")],
    data_dir: DataDir = None,
) -> None:
    """Everything held about the tenant, in one ZIP (README.txt says what is in it)."""
    from rich.progress import Progress

    from doorvoer.privacy.export import export_to
    from doorvoer.privacy.kinds import KINDS
    from doorvoer.tenants.service import require_tenant

    if out_path.is_dir():
        raise fail(f"--out {out_path}: that is a folder; give a file name like {tenant}.zip")
    with opened(settings_for(data_dir)) as ctx, Progress(transient=True, console=err) as bar:
        with ctx.reading() as r:
            tenant_id = require_tenant(r, tenant).id
        task = bar.add_task("exporting", total=len(KINDS) + 1)

        def step(name: str) -> None:
            bar.update(task, description=f"exporting {name}", advance=1)

        try:
            counts = export_to(ctx, tenant_id, out_path, cli_actor(), "cli", step)
        except OSError as exc:
            raise fail(f"--out {out_path}: cannot write it ({exc.strerror})") from None
    total = sum(counts.values())
    out.print(f"{out_path}: {total} records of {len(counts)} kinds, the audit log and its "
              "checkpoints")
