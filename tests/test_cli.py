"""The command contract: exit codes, messages that say what to fix, JSON output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import asyncssh
import pytest
from typer.testing import CliRunner

from doorvoer.cli import app
from doorvoer.config import load_settings

SPEC = """\
name: orders
match: "orders/*.csv"
read:
  format: csv
  delimiter: ";"
transform:
  sql: SELECT * FROM input
write:
  format: json
deliver:
  - pickup: orders/
"""


@pytest.fixture
def cli(tmp_path: Path, database_url: str):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    env = {"DOORVOER_DATABASE_URL": database_url}

    def invoke(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        return runner.invoke(app, [*args, "--data-dir", str(tmp_path / "data")], input=input,
                             env=env)

    return invoke


def test_init_is_idempotent_and_makes_keys(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("init")
    assert r.exit_code == 0, r.output
    assert "SHA256:" in r.output
    data = tmp_path / "data"
    assert (data / "ssh_host_ed25519_key").stat().st_mode & 0o777 == 0o600
    assert (data / "master.key").stat().st_mode & 0o777 == 0o600
    key = asyncssh.read_private_key(str(data / "ssh_host_ed25519_key"))
    assert key.algorithm == b"ssh-ed25519"
    assert cli("init").exit_code == 0
    assert asyncssh.read_private_key(str(data / "ssh_host_ed25519_key")).export_public_key() \
        == key.export_public_key()


def test_commands_before_init_say_so(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("tenant", "create", "acme", "--name", "Acme")
    assert r.exit_code == 1
    assert "doorvoer init" in r.output


def test_tenant_account_process_flow(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("init").exit_code == 0
    assert cli("tenant", "create", "acme", "--name", "Acme B.V.").exit_code == 0
    r = cli("tenant", "create", "acme", "--name", "Again")
    assert r.exit_code == 1 and "exists already" in r.output
    r = cli("tenant", "create", "Bad Slug", "--name", "x")
    assert r.exit_code == 1 and "slug" in r.output

    key = asyncssh.generate_private_key("ssh-ed25519")
    pub = tmp_path / "k.pub"
    pub.write_bytes(key.export_public_key())
    # A change to a tenant's data by staff needs the tenant's instruction (P10).
    r = cli("account", "create", "acme", "robot", "--ssh-key", str(pub))
    assert r.exit_code == 1 and "needs an instruction" in r.output
    r = cli("account", "create", "acme", "robot", "--ssh-key", str(pub),
            "--instruction", "0" * 32)
    assert r.exit_code == 1 and "no instruction" in r.output
    r = cli("instruction", "add", "--tenant", "acme", "--asked-by", "Piet (acme IT)",
            "--channel", "fax", "--reference", "x", "--text", "x")
    assert r.exit_code == 1 and "channel" in r.output
    r = cli("instruction", "add", "--tenant", "acme", "--asked-by", "Piet (acme IT)",
            "--channel", "email", "--reference", "mail of 2026-12-07 09:12",
            "--text", "Set up the orders feed", "--asked-at", "2026-12-07T09:12")
    assert r.exit_code == 0, r.output
    ident = r.output.split()[1]
    listed = json.loads(cli("instruction", "list", "--tenant", "acme", "--json").stdout)
    assert [i["id"] for i in listed] == [ident] and listed[0]["channel"] == "email"
    r = cli("account", "create", "acme", "robot", "--ssh-key", str(pub), "--password-stdin",
            "--instruction", ident, input="a-long-enough-password\n")
    assert r.exit_code == 0, r.output
    r = cli("account", "create", "acme", "weak", "--password-stdin", "--instruction", ident,
            input="short\n")
    assert r.exit_code == 1 and "too short" in r.output
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key")
    r = cli("account", "create", "acme", "x", "--ssh-key", str(bad), "--instruction", ident)
    assert r.exit_code == 1 and "public key" in r.output

    spec = tmp_path / "orders.yaml"
    spec.write_text(SPEC)
    r = cli("process", "apply", "acme", str(spec))
    assert r.exit_code == 1 and "needs an instruction" in r.output
    r = cli("process", "apply", "acme", str(spec), "--instruction", ident)
    assert r.exit_code == 0 and "/inbox/orders/" in r.output
    r = cli("process", "list", "acme", "--json")
    assert json.loads(r.stdout)[0]["name"] == "orders"
    spec.write_text(SPEC.replace("SELECT *", "SELECT 1 AS one,"))
    assert "v2" in cli("process", "apply", "acme", str(spec), "--instruction", ident).output
    # The tenant's log names the instruction for each change made under it.
    entries = [json.loads(line) for line in
               cli("audit", "export", "--tenant", "acme").stdout.splitlines()]
    under = [e for e in entries if e["actor"].get("instruction") == ident]
    assert [e["action"] for e in under] == ["account:sftp:created", "process:spec:applied",
                                            "process:spec:applied", "process:sharing:changed"]
    assert all(e["actor"]["kind"] == "staff" and e["actor"]["name"].startswith("cli:")
               for e in under)
    assert "instruction:record:filed" in [e["action"] for e in entries]


@pytest.mark.parametrize(("broken", "expected"), [
    (SPEC.replace("format: csv", "format: csvv"), "line 4: read.format"),
    (SPEC.replace('  delimiter: ";"', '  delimiter: ";"\n  colour: red'),
     "line 6: read.colour: unknown field"),
    (SPEC.replace('match: "orders/*.csv"', 'match: "*.csv"'), "line 2: match"),
    (SPEC.replace("  - pickup: orders/", "  - pickup: ../etc"), "line 11: deliver[0].pickup"),
    (SPEC.replace("name: orders\n", ""), "name: Field required"),
    (SPEC.replace("write:\n  format: json", "write:\n  format: [json"), "not valid YAML"),
    (SPEC + "retention:\n  pickup_within: 7 weeks\n", "line 13: retention.pickup_within"),
])
def test_spec_errors_name_file_line_and_field(cli, tmp_path: Path, broken: str,  # type: ignore[no-untyped-def]
                                              expected: str) -> None:
    cli("init")
    cli("tenant", "create", "acme", "--name", "Acme")
    spec = tmp_path / "broken.yaml"
    spec.write_text(broken)
    r = cli("instruction", "add", "--tenant", "acme", "--asked-by", "x", "--channel", "phone",
            "--reference", "call", "--text", "change it")
    r = cli("process", "apply", "acme", str(spec), "--instruction", r.output.split()[1])
    assert r.exit_code == 1
    assert str(spec) in r.output
    assert expected in r.output.replace("\n", " ") or expected in r.output
    assert "Traceback" not in r.output


def test_transfers_list_json_is_only_a_json_array(cli) -> None:  # type: ignore[no-untyped-def]
    cli("init")
    r = cli("transfers", "list", "--json")
    assert r.exit_code == 0
    assert json.loads(r.stdout) == []


def test_usage_error_exits_2(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("tenant", "create").exit_code == 2


def test_settings_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "d"
    data.mkdir()
    (data / "doorvoer.toml").write_text("sftp_port = 3000\nhttp_port = 9000\nworkers = 3\n")
    monkeypatch.setenv("DOORVOER_SFTP_PORT", "4000")
    monkeypatch.setenv("DOORVOER_HTTP_PORT", "9001")
    s = load_settings(data, sftp_port=5000)
    assert s.sftp_port == 5000  # flag beats environment
    assert s.http_port == 9001  # environment beats file
    assert s.workers == 3  # file beats default
    assert s.fetch_grace_s == 10.0  # default
    assert s.resolved_database_url.endswith("/d/doorvoer.db")
    monkeypatch.setenv("DOORVOER_DATA_DIR", str(data))
    assert load_settings().sftp_port == 4000


def test_bad_setting_is_a_clear_error(tmp_path: Path) -> None:
    env = {**os.environ, "DOORVOER_SFTP_PORT": "many"}
    r = subprocess.run([sys.executable, "-m", "doorvoer", "init", "--data-dir",
                        str(tmp_path / "x")], capture_output=True, text=True, env=env,
                       check=False)
    assert r.returncode == 1
    assert "sftp_port" in r.stderr and "Traceback" not in r.stderr


def test_user_create_makes_the_first_operator_admin(cli) -> None:  # type: ignore[no-untyped-def]
    cli("init")
    r = cli("user", "create", "root@operator.example", "--role", "operator_admin",
            input="a long operator password\n")
    assert r.exit_code == 0, r.output
    r = cli("user", "create", "x@operator.example", "--role", "king", input="whatever pw\n")
    assert r.exit_code == 1 and "--role" in r.output
    r = cli("user", "create", "y@operator.example", "--role", "support",
            input="password123456\n")
    assert r.exit_code == 1 and "common" in r.output
    cli("tenant", "create", "acme", "--name", "Acme")
    r = cli("user", "create", "ada@acme.example", "--role", "tenant_admin", "--tenant", "acme",
            input="a long tenant admin password\n")
    assert r.exit_code == 0, r.output
    r = cli("user", "create", "z@acme.example", "--role", "tenant_admin",
            input="a long tenant admin password\n")
    assert r.exit_code == 1 and "needs a tenant" in r.output
