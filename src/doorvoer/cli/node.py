"""The node's commands: init, serve, demo."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer

from doorvoer import log as logsetup
from doorvoer.cli.common import DataDir, app, err, fail, opened, out, settings_for
from doorvoer.context import Context
from doorvoer.errors import ConfigError, UserError
from doorvoer.vault.errors import VaultError


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

