"""Real SFTP clients with their default options: upload, and fetch the output."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import Login, NodeThread, transfers_of, wait_for
from doorvoer.context import Context
from doorvoer.transfers.models import State

ORDERS = "id;name;amount\r\n1;Ümit €;12,50\r\n2;Jansen;7,00\r\n".encode("cp1252")
EXPECTED = [
    {"id": "1", "name": "ÜMIT €", "amount": 12.5},
    {"id": "2", "name": "JANSEN", "amount": 7.0},
]


def sh(args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False,
                       stdin=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
    assert r.returncode == 0, f"{args[0]} failed: {r.stdout}\n{r.stderr}"
    return r


def wait_output(ctx: Context, name: str) -> None:
    wait_for(lambda: any(t.output_name == name and t.state == State.READY
                         for t in transfers_of(ctx)), what=f"{name} in the outbox")


def assert_done(ctx: Context, filename: str) -> None:
    t = wait_for(lambda: [t for t in transfers_of(ctx)
                          if t.filename == filename and t.state.final], what="erasure")[0]
    assert t.state == State.ERASED, t.error
    others = [x for x in transfers_of(ctx) if x.state not in (State.ERASED,)]
    assert not [x for x in others if x.state in (State.FAILED, State.INTERRUPTED)], [
        (x.filename, x.state, x.error) for x in others]


@pytest.fixture
def upload(tmp_path: Path) -> Path:
    p = tmp_path / "week46.csv"
    p.write_bytes(ORDERS)
    return p


def test_rclone(ctx: Context, node: NodeThread, login: Login, upload: Path,
                tmp_path: Path) -> None:
    env = {**os.environ, "RCLONE_CONFIG_DV_TYPE": "sftp", "RCLONE_CONFIG_DV_HOST": "127.0.0.1",
           "RCLONE_CONFIG_DV_PORT": str(node.port), "RCLONE_CONFIG_DV_USER": login.user,
           "RCLONE_CONFIG_DV_KEY_FILE": str(login.key_path), "RCLONE_CONFIG": "/dev/null"}
    sh(["rclone", "copyto", str(upload), "dv:/inbox/orders/week46.csv"], env=env)
    wait_output(ctx, "week46.json")
    out = tmp_path / "out.json"
    sh(["rclone", "copyto", "dv:/outbox/orders/week46.json", str(out)], env=env)
    assert json.loads(out.read_bytes()) == EXPECTED
    assert_done(ctx, "week46.csv")


def test_rclone_large_file_with_trailing_bytes(ctx: Context, node: NodeThread, login: Login,
                                               tmp_path: Path) -> None:
    """rclone 1.60 pads its last write of a file over 32 KiB: tolerated like OpenSSH."""
    big = tmp_path / "big.csv"
    rows = "".join(f"{i};name {i};{i},50\r\n" for i in range(20000))
    big.write_bytes(("id;name;amount\r\n" + rows).encode("cp1252"))
    env = {**os.environ, "RCLONE_CONFIG_DV_TYPE": "sftp", "RCLONE_CONFIG_DV_HOST": "127.0.0.1",
           "RCLONE_CONFIG_DV_PORT": str(node.port), "RCLONE_CONFIG_DV_USER": login.user,
           "RCLONE_CONFIG_DV_KEY_FILE": str(login.key_path), "RCLONE_CONFIG": "/dev/null"}
    sh(["rclone", "copyto", str(big), "dv:/inbox/orders/big.csv"], env=env)
    wait_output(ctx, "big.json")
    t = next(t for t in transfers_of(ctx) if t.filename == "big.csv")
    assert t.bytes_in == big.stat().st_size
    assert t.rows_in == 20000
    assert len([x for x in transfers_of(ctx) if x.filename == "big.csv"]) == 1


def test_openssh_sftp_reput_style_and_get(ctx: Context, node: NodeThread, login: Login,
                                          upload: Path, tmp_path: Path) -> None:
    from conftest import sftp_batch

    sftp_batch(node.port, login, f"put {upload} /inbox/orders/\n")
    wait_output(ctx, "week46.json")
    out = tmp_path / "o.json"
    sftp_batch(node.port, login, f"get /outbox/orders/week46.json {out}\n")
    assert json.loads(out.read_bytes()) == EXPECTED
    assert_done(ctx, "week46.csv")


def test_curl_libssh2(ctx: Context, node: NodeThread, login: Login, upload: Path,
                      tmp_path: Path) -> None:
    base = f"sftp://127.0.0.1:{node.port}"
    auth = ["-u", f"{login.user}:{login.password}", "--insecure", "-sS"]
    sh(["curl", *auth, "-T", str(upload), f"{base}/inbox/orders/week46.csv"])
    wait_output(ctx, "week46.json")
    out = tmp_path / "c.json"
    sh(["curl", *auth, "-o", str(out), f"{base}/outbox/orders/week46.json"])
    assert json.loads(out.read_bytes()) == EXPECTED
    assert_done(ctx, "week46.csv")


def test_lftp(ctx: Context, node: NodeThread, login: Login, upload: Path,
              tmp_path: Path) -> None:
    connect = (f"ssh -a -x -i {login.key_path} -o StrictHostKeyChecking=no "
               "-o UserKnownHostsFile=/dev/null -o BatchMode=yes")
    out = tmp_path / "l.json"
    script = (f'set sftp:connect-program "{connect}"; '
              f"open -u {login.user},x sftp://127.0.0.1:{node.port}; "
              f"put {upload} -o /inbox/orders/week46.csv; bye")
    sh(["lftp", "-c", script])
    wait_output(ctx, "week46.json")
    script = (f'set sftp:connect-program "{connect}"; '
              f"open -u {login.user},x sftp://127.0.0.1:{node.port}; "
              f"get /outbox/orders/week46.json -o {out}; bye")
    sh(["lftp", "-c", script])
    assert json.loads(out.read_bytes()) == EXPECTED
    assert_done(ctx, "week46.csv")


def test_psftp(ctx: Context, node: NodeThread, login: Login, upload: Path,
               tmp_path: Path) -> None:
    fingerprint = sh(["ssh-keygen", "-lf", str(ctx.settings.host_key_path) + ".pub"]
                     ).stdout.split()[1]
    script = tmp_path / "psftp.txt"
    out = tmp_path / "p.json"
    script.write_text(f"put {upload} /inbox/orders/week46.csv\n")
    base = ["psftp", "-batch", "-P", str(node.port), "-hostkey", fingerprint,
            "-l", login.user, "-pw", login.password, "127.0.0.1"]
    sh([*base, "-b", str(script)])
    wait_output(ctx, "week46.json")
    script.write_text(f"get /outbox/orders/week46.json {out}\n")
    sh([*base, "-b", str(script)])
    assert json.loads(out.read_bytes()) == EXPECTED
    assert_done(ctx, "week46.csv")
