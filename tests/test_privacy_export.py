"""`doorvoer tenant export`: one ZIP with everything held about a tenant, laid out as
the contract says (README.txt, data/<kind>.json and .csv, schema/<kind>.schema.json,
audit/), each JSON file valid against its JSON Schema 2020-12, the CSV the same rows,
the audit chain whole, and not one secret anywhere in it."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import zipfile
from pathlib import Path

import asyncssh
import jsonschema_rs
from sqlalchemy import select
from typer.testing import CliRunner

from conftest import NodeThread, add_tenant, asftp, make_ctx, transfers_of, wait_for
from doorvoer.access.policy import Role
from doorvoer.accounts import totp
from doorvoer.accounts.machines import create_token
from doorvoer.accounts.models import User
from doorvoer.accounts.people import create_user
from doorvoer.audit.chain import check
from doorvoer.cli import app
from doorvoer.privacy.kinds import KINDS
from doorvoer.secrets.service import SftpConnection, set_connection
from doorvoer.support import service as support
from doorvoer.support.instructions import file_instruction
from doorvoer.support.thread import post
from doorvoer.tenants.models import Tenant
from doorvoer.tenants.service import require_tenant

PASSWORD = "a long and quiet password"
TARGET_SECRET = "target-password-that-must-not-leak"


def test_the_export_holds_everything_in_the_contract_and_no_secret(
        tmp_path: Path, database_url: str) -> None:
    ctx = make_ctx(tmp_path, database_url)
    login = add_tenant(ctx, tmp_path, "acme")
    add_tenant(ctx, tmp_path, "globex")
    totp_secret = totp.new_secret()
    with ctx.unit() as w:
        tenant = require_tenant(w, "acme")
        admin = create_user(w, "ada@acme.example", "Ada", Role.TENANT_ADMIN, tenant.id,
                            PASSWORD)
        w.session.flush()
        admin.totp_secret = totp.seal_secret(ctx.sealer, admin, totp_secret)
        staff = create_user(w, "help@doorvoer.example", "Help", Role.SUPPORT, None, PASSWORD)
        token = create_token(w, tenant.id, admin.id, "erp", ["upload"], days=1).secret
        set_connection(w, tenant, "webshop", SftpConnection(
            host="sftp.webshop.example", port=22, username="dv",
            host_key=asyncssh.generate_private_key("ssh-ed25519").export_public_key()
            .decode(), password=TARGET_SECRET, private_key=None))
        grant = support.request_grant(w, staff, tenant, "a failed file", "SUP-1", ["reports"])
        file_instruction(w, tenant, "ada@acme.example", "portal", "CR-1", "add a feed")
        post(w, tenant, admin, "Hello support")
        password_hash = w.session.get_one(User, admin.id).password_hash
    node = NodeThread(ctx).start()

    async def upload() -> None:
        conn, sftp = await asftp(node.port, login)
        async with conn, sftp.open("/inbox/orders/week1.csv", "wb") as f:
            await f.write(b"id;name;amount\n1;Jansen;7,00\n")

    asyncio.run(upload())
    wait_for(lambda: transfers_of(ctx), what="the transfer recorded")
    node.stop()
    ctx.close()

    out = tmp_path / "acme.zip"
    r = CliRunner().invoke(app, ["tenant", "export", "acme", "--out", str(out),
                                 "--data-dir", str(tmp_path / "data")],
                           env={"DOORVOER_DATABASE_URL": database_url})
    assert r.exit_code == 0, r.output
    assert "records of 14 kinds" in r.output

    z = zipfile.ZipFile(out)
    names = set(z.namelist())
    readme = z.read("README.txt").decode()
    listed = {line.split()[0] for line in readme.splitlines()
              if line.startswith(("data/", "schema/", "audit/"))}
    assert names == listed | {"README.txt"}
    for kind in ("tenant", "contacts", "users", "accounts", "processes", "connections",
                 "transfers", "grants", "inspection_windows", "instructions",
                 "support_messages", "subprocessors", "incidents"):
        assert {f"data/{kind}.json", f"data/{kind}.csv", f"schema/{kind}.schema.json"} <= names

    for kind in KINDS:
        rows = json.loads(z.read(f"data/{kind.name}.json"))
        schema = json.loads(z.read(f"schema/{kind.name}.schema.json"))
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema_rs.Draft202012Validator(schema).validate(rows)
        table = list(csv.reader(io.StringIO(z.read(f"data/{kind.name}.csv").decode("utf-8"))))
        assert table[0] == list(schema["items"]["properties"])
        assert len(table) - 1 == len(rows)

    data = {k.name: json.loads(z.read(f"data/{k.name}.json")) for k in KINDS}
    assert data["tenant"][0]["slug"] == "acme" and len(data["tenant"]) == 1
    assert [u["email"] for u in data["users"]] == ["ada@acme.example"]
    assert data["users"][0]["two_factor"] is True
    assert data["accounts"][0]["login"] == "robot@acme"
    assert "SELECT" in data["processes"][0]["spec_yaml"]
    assert data["connections"][0]["host"] == "sftp.webshop.example"
    assert data["connections"][0]["secret"] == "password set"
    assert [t["file"] for t in data["transfers"]] == ["orders/week1.csv"]
    assert data["grants"][0]["id"] == grant.id
    assert data["instructions"][0]["reference"] == "CR-1"
    assert "Hello support" in [m["text"] for m in data["support_messages"]]

    entries = [json.loads(line) for line in z.read("audit/audit.jsonl").splitlines()]
    head, problem = check(entries)
    assert problem is None and head.seq == len(entries) > 5
    assert z.read("audit/checkpoints.txt").decode().startswith("doorvoer/")

    # Not one secret, in any file: passwords, their hash, the TOTP secret, the token,
    # the target's password, the SFTP account's password; nor the other tenant.
    everything = b"".join(z.read(n) for n in names)
    for secret in (PASSWORD, password_hash, totp_secret, token, TARGET_SECRET,
                   login.password, "globex"):
        assert secret and secret.encode() not in everything, secret
    ctx = make_ctx(tmp_path, database_url)
    with ctx.reading() as w:
        tenant_id = w.session.scalars(select(Tenant.id).where(Tenant.slug == "acme")).one()
        from doorvoer.audit import service as audit

        assert [e["action"] for e in audit.entries(w, tenant_id)][-1] == \
            "privacy:export:created"
    ctx.close()


def test_an_export_into_a_folder_or_of_no_tenant_says_so(tmp_path: Path,
                                                         database_url: str) -> None:
    ctx = make_ctx(tmp_path, database_url)
    add_tenant(ctx, tmp_path, "acme")
    ctx.close()
    runner = CliRunner()
    env = {"DOORVOER_DATABASE_URL": database_url}
    base = ["--data-dir", str(tmp_path / "data")]
    r = runner.invoke(app, ["tenant", "export", "acme", "--out", str(tmp_path), *base], env=env)
    assert r.exit_code == 1 and "is a folder" in r.output
    r = runner.invoke(app, ["tenant", "export", "nope", "--out", str(tmp_path / "x.zip"),
                            *base], env=env)
    assert r.exit_code == 1 and "nope" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "x.zip").exists()
