"""`doorvoer demo`: the embedded default end to end, told in a few tables."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import tempfile
from pathlib import Path

import asyncssh
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from sqlalchemy import func, select

from doorvoer.access.policy import Role
from doorvoer.accounts.machines import create_account
from doorvoer.accounts.people import create_user
from doorvoer.app import Node, free_ports
from doorvoer.bootstrap import host_key_fingerprint, init_data_dir
from doorvoer.config import load_settings
from doorvoer.context import Context
from doorvoer.processes.service import apply_process
from doorvoer.tenants.service import create_tenant
from doorvoer.tls import fingerprint
from doorvoer.transfers.models import Transfer
from doorvoer.vault.models import BlobKey

SPEC = """\
name: orders-to-webshop
match: "orders/*.csv"
read:
  format: csv
  delimiter: ";"
  encoding: cp1252
  header: true
  decimal: ","
transform:
  sql: |
    SELECT ordernr AS order_id,
           strptime(datum, '%d-%m-%Y')::DATE AS order_date,
           klant AS customer,
           artikel AS article,
           upper(land) AS country,
           replace(bedrag, ',', '.')::DECIMAL(10,2) AS amount
    FROM input
    WHERE status <> 'geannuleerd'
write:
  format: json
  filename: "{stem}.json"
deliver:
  - pickup: "orders/"
retention:
  pickup_within: 7d
report: true
"""

ORDERS = [
    ("100231", "03-11-2026", "Bakkerij De Vries", "Kaas 'Oude Reypenaer' €-actie", "nl",
     "12,50", "betaald"),
    ("100232", "04-11-2026", "Jansen & Zn.", "Stroopwafels; 24 stuks", "nl", "7,95", "open"),
    ("100233", "05-11-2026", "Café 't Hoekje", "Koffie \"Extra Donker\"", "be", "23,10",
     "geannuleerd"),
    ("100234", "06-11-2026", "Müller GmbH", "Drop, zout", "de", "4,25", "betaald"),
    ("100235", "07-11-2026", "Ørsted Bakeri", "Speculaas\nin geschenkdoos", "dk", "15,00",
     "betaald"),
]


def demo_csv() -> bytes:
    """A small Dutch-style order file: cp1252, ';', decimal commas, dd-mm-yyyy."""
    lines = ["ordernr;datum;klant;artikel;land;bedrag;status"]
    for row in ORDERS:
        cells = []
        for cell in row:
            if any(c in cell for c in ';"\n'):
                cell = '"' + cell.replace('"', '""') + '"'
            cells.append(cell)
        lines.append(";".join(cells))
    return ("\r\n".join(lines) + "\r\n").encode("cp1252")


DEMO_ADMIN = "admin@demo.example"


def _setup(ctx: Context, key_path: Path, password: str) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    key.write_private_key(str(key_path))
    key_path.chmod(0o600)
    with ctx.unit() as w:
        tenant = create_tenant(w, "demo", "Demo Groothandel B.V.", "privacy@demo.example")
        create_account(w, "demo", "demo", [key.export_public_key().decode()], password)
        apply_process(w, tenant, SPEC, "demo process")
        create_user(w, DEMO_ADMIN, "Demo Admin", Role.TENANT_ADMIN, tenant.id, password)


async def _send_and_fetch(port: int, key_path: Path, csv: bytes) -> bytes:
    async with asyncssh.connect(
        "127.0.0.1", port, username="demo@demo", client_keys=[str(key_path)],
        known_hosts=None, agent_path=None, config=[],
    ) as conn, conn.start_sftp_client() as sftp:
        # Upload the way WinSCP does: a temporary name, renamed when complete.
        async with sftp.open("/inbox/orders/orders-week45.csv.filepart", "wb") as f:
            await f.write(csv)
        await sftp.rename("/inbox/orders/orders-week45.csv.filepart",
                          "/inbox/orders/orders-week45.csv")
        for _ in range(300):
            if "orders-week45.json" in await sftp.listdir("/outbox/orders"):
                break
            await asyncio.sleep(0.05)
        async with sftp.open("/outbox/orders/orders-week45.json", "rb") as f:
            data = await f.read()
            assert isinstance(data, bytes)
            return data


def _story(console: Console, ctx: Context, output: bytes) -> None:
    with ctx.reading() as w:
        transfers = list(w.session.scalars(select(Transfer).order_by(Transfer.opened_at)))
        keys_left = w.session.scalar(select(func.count()).select_from(BlobKey))
    blobs_left = sum(1 for _ in ctx.vault.store.ids())
    spare_bytes = ctx.vault.store.spare_bytes()

    came = Table(title="What came in", header_style="bold cyan")
    for col in ("file", "size", "rows", "received"):
        came.add_column(col)
    went = Table(title="What went out", header_style="bold cyan")
    for col in ("file", "size", "rows", "picked up"):
        went.add_column(col)
    life = Table(title="How long it stayed", header_style="bold cyan")
    for col in ("file", "state", "input erased after", "output erased after", "residence"):
        life.add_column(col)
    for t in transfers:
        received = t.received_at or t.opened_at
        came.add_row(t.path, f"{t.bytes_in} B", str(t.rows_in), f"{received:%H:%M:%S.%f}"[:-3])
        went.add_row(f"orders/{t.output_name}", f"{t.bytes_out} B", str(t.rows_out),
                     f"{t.delivered_at:%H:%M:%S.%f}"[:-3] if t.delivered_at else "-")
        life.add_row(
            t.path, str(t.state),
            f"{(t.input_erased_at - received).total_seconds():.3f} s" if t.input_erased_at
            else "-",
            f"{(t.erased_at - received).total_seconds():.3f} s" if t.erased_at else "-",
            f"{t.residence_seconds:.3f} s" if t.residence_seconds is not None else "-",
        )
    console.print(came, went, life)
    records = json.loads(output)
    sample = Table(title="The output, as the tenant fetched it (first 3 records)",
                   header_style="bold cyan")
    for col in records[0]:
        sample.add_column(col)
    for rec in records[:3]:
        sample.add_row(*[json.dumps(v, ensure_ascii=False) for v in rec.values()])
    console.print(sample)
    proof = Table(title="Proof that nothing is left", header_style="bold green")
    proof.add_column("check")
    proof.add_column("found")
    proof.add_row("encrypted blobs in the vault folder", str(blobs_left))
    proof.add_row("bytes in the vault's spare files (empty files made ahead)",
                  str(spare_bytes))
    proof.add_row("data keys in the database", str(keys_left))
    proof.add_row("plaintext of the input anywhere in the data dir",
                  str(_plaintext_found(ctx.settings.data_dir)))
    console.print(proof)


def _plaintext_found(data_dir: Path) -> int:
    needle = b"Stroopwafels"
    hits = 0
    for path in data_dir.rglob("*"):
        if path.is_file() and needle in path.read_bytes():
            hits += 1
    return hits


async def run_demo(console: Console, once: bool, preferred_port: int,
                   data_dir: Path | None) -> None:
    temporary = data_dir is None
    root = Path(tempfile.mkdtemp(prefix="doorvoer-demo-")) if data_dir is None else data_dir
    if data_dir is not None and (data_dir / "doorvoer.db").exists():
        from doorvoer.errors import UserError

        raise UserError(f"{data_dir} holds data already; the demo needs a new folder")
    port, http_port = free_ports("127.0.0.1", preferred_port, 8443)
    settings = load_settings(root, sftp_host="127.0.0.1", sftp_port=port, fetch_grace_s=1.0,
                             stat_grace_s=1.0, fsync=False, http_host="127.0.0.1",
                             http_port=http_port)
    ctx = await asyncio.to_thread(init_data_dir, settings)
    password = "demo-" + secrets.token_urlsafe(12)
    key_path = root / "demo_id_ed25519"
    await asyncio.to_thread(_setup, ctx, key_path, password)
    node = Node(ctx, "127.0.0.1", port, http_host="127.0.0.1", http_port_wanted=http_port)
    await node.start()
    try:
        console.print(Panel.fit(
            f"Doorvoer demo: data in {root}\nSFTP on 127.0.0.1:{node.sftp_port}, host key "
            f"{host_key_fingerprint(settings)}\nPortal on https://localhost:{node.http_port}/ "
            f"(self-signed, {fingerprint(settings.tls_paths[0])})", border_style="cyan"))
        console.print("Uploading a cp1252 order file over SFTP (as orders-week45.csv.filepart, "
                      "then renamed), waiting for the output, fetching it …")
        output = await _send_and_fetch(node.sftp_port, key_path, demo_csv())
        await node.idle(timeout=30)
        _story(console, ctx, output)
        if once:
            return
        console.print(Panel.fit(
            "Try it by hand (Ctrl-C stops the demo):\n"
            f"  portal: https://localhost:{node.http_port}/  log in as {DEMO_ADMIN}\n"
            f"          with the password {password} (the certificate is self-signed)\n"
            f"  sftp -P {node.sftp_port} -i {key_path} demo@localhost\n"
            f"  (or with the same password as the portal)\n"
            "  sftp> put yourfile.csv /inbox/orders/\n"
            "  sftp> ls /outbox/orders/      sftp> get /outbox/orders/yourfile.json\n"
            f"  doorvoer transfers list --data-dir {root}",
            border_style="green"))
        await asyncio.Event().wait()
    finally:
        await node.stop()
        ctx.close()
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
