#!/usr/bin/env python3
"""Doorvoer vs. OpenSSH sftp-server on loopback, both driven by OpenSSH's `sftp -b`.

    .venv/bin/python benchmarks/sftp_bench.py [--quick]

Starts, in one run and on 127.0.0.1:
- a private OpenSSH `sshd` (own config, host key, authorized_keys, free port) whose
  sftp subsystem writes into a temporary folder: the reference;
- asyncssh's own SFTP server and nothing else (`benchmarks/bare_sftp.py`, uvloop,
  files written to a temporary folder), for (a) only: Doorvoer's SFTP door is an
  asyncssh server, so this is the ceiling of (a)'s ratio on the machine at hand;
- a Doorvoer node (`doorvoer serve`, a separate process, SQLite, default settings but
  a 1 s fetch grace) with one tenant, one account and one CSV -> CSV pickup process;
  its RSS is sampled every 50 ms.

and measures
(a) many small CSV files put in one `sftp -b` session: ingest files/s for both, and
    Doorvoer's rate until every output is READY in the outbox (from upload start);
(b) one large CSV put: MB/s for both (wall time of the `sftp -b` session);
(c) a steady stream into Doorvoer (asyncssh client, one persistent connection, one
    upload every 1/rate s) while a second connection fetches and deletes outputs:
    ingest->output-ready (received_at -> processed_at) and residence (received_at ->
    erased_at) percentiles.

Everything it starts is stopped, and every temporary file removed, at the end, on
error and on Ctrl-C. Every wait has a timeout. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

CIPHER = "aes128-gcm@openssh.com"
TENANT = "bench"
ACCOUNT = "robot"
FOLDER = "bench"
SPEC = f"""\
name: bench
match: "{FOLDER}/*.csv"
read: {{format: csv}}
transform: {{sql: "SELECT * FROM input"}}
write: {{format: csv}}
deliver:
  - pickup: "{FOLDER}/"
"""
RSS_INTERVAL_S = 0.05
FINAL_STATES = frozenset({"ERASED", "FAILED", "INTERRUPTED", "DISCARDED"})
MiB = 1024 * 1024


class BenchError(Exception):
    """Something the benchmark needs is missing or broke; the message says what."""


@dataclass
class Config:
    small_files: int
    small_bytes: int
    big_mib: int
    rate: float
    steady_s: float
    rounds: int
    keep: bool

    @classmethod
    def from_args(cls, ns: argparse.Namespace) -> Config:
        quick = ns.quick
        return cls(
            small_files=ns.small_files or (200 if quick else 1000),
            small_bytes=4096,
            big_mib=ns.big_mib or (32 if quick else 256),
            rate=ns.rate,
            steady_s=ns.steady_seconds or (10.0 if quick else 60.0),
            rounds=ns.rounds or (1 if quick else 3),
            keep=ns.keep,
        )


# ----------------------------------------------------------------------------- output


def say(msg: str = "") -> None:
    print(msg, flush=True)


def pct(values: list[float], p: float) -> float:
    """Percentile with linear interpolation (p in 0..100)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def net(amount: float, wall: float, setup: float, unit: str) -> str:
    """The rate without the session setup, when the setup does not dominate the wall time
    (it varies by +-0.1 s from session to session)."""
    if wall < 3 * setup:
        return "the session setup dominates this wall time"
    return f"{amount / (wall - setup):.0f} {unit} without the session setup"


def dist(values: list[float]) -> str:
    if not values:
        return "n=0"
    return (f"p50 {pct(values, 50):.3f} s  p90 {pct(values, 90):.3f} s  "
            f"p99 {pct(values, 99):.3f} s  max {max(values):.3f} s  (n={len(values)})")


# ----------------------------------------------------------------------------- processes


def free_port() -> int:
    from doorvoer.app import free_ports

    return free_ports("127.0.0.1", 0)[0]


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float, what: str,
              log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with code {proc.returncode} at start-up:\n"
                             f"{tail(log)}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise BenchError(f"{what} did not listen on port {port} within {timeout:.0f} s:\n"
                     f"{tail(log)}")


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:]) or "    (empty log)"


def stop_process(proc: subprocess.Popen[bytes], name: str, timeout: float = 15.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        say(f"  {name} did not stop within {timeout:.0f} s after SIGTERM: killing it")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
    # Anything left in its process group (sshd session children) goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)


def run(cmd: list[str], timeout: float, what: str, stdin: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(cmd, input=stdin, capture_output=True, text=True,
                                timeout=timeout, check=False, env=env)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{what}: timed out after {timeout:.0f} s") from None
    except FileNotFoundError as exc:
        raise BenchError(f"{what}: {exc}") from None
    if result.returncode != 0:
        detail = (result.stderr.strip() or result.stdout.strip())[-2000:]
        raise BenchError(f"{what}: exit code {result.returncode}: {detail}")
    return result


class RssSampler:
    """Samples a process's RSS plus its children's (the worker process) every
    RSS_INTERVAL_S; max overall and per phase. A sum of RSS counts shared library pages
    once per process: it overstates what the node costs, never understates it. The sum
    of PSS (each shared page divided among the processes that map it) is sampled too:
    it is what the node and its worker take from the machine together. At the peak the
    file-backed part (libraries' pages, mapped from the page cache) is kept apart from
    the anonymous part (what the processes allocated): the first varies with the state of
    the page cache (how large the kernel's folios of a library file are), not with
    Doorvoer's work."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._proc = psutil.Process(pid)
        self._psutil = psutil
        self.phase = "start-up"
        self.peak = 0
        self.peak_pss = 0
        self.peak_file = 0  # of the peak RSS sample: file-backed (and shared memory) pages
        self.peak_phase: dict[str, int] = {}
        self.peak_node = 0  # the node process alone
        self.peak_children = 0  # its worker processes together
        self.last = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss", daemon=True)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def _rss(self) -> tuple[int, int, int]:
        """(sum of RSS, sum of PSS, sum of file-backed RSS) of the node and its children."""
        info = self._proc.memory_full_info()
        rss, pss, file = info.rss, info.pss, info.shared
        self.peak_node = max(self.peak_node, int(rss))
        children = 0
        for child in self._proc.children(recursive=True):
            with contextlib.suppress(self._psutil.Error):
                info = child.memory_full_info()
                rss, pss, file = rss + info.rss, pss + info.pss, file + info.shared
                children += info.rss
        self.peak_children = max(self.peak_children, int(children))
        return int(rss), int(pss), int(file)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                rss, pss, file = self._rss()
            except self._psutil.Error:
                return
            self.last = rss
            self.samples += 1
            if rss > self.peak:
                self.peak, self.peak_file = rss, file
            self.peak_pss = max(self.peak_pss, pss)
            self.peak_phase[self.phase] = max(self.peak_phase.get(self.phase, 0), rss)
            self._stop.wait(RSS_INTERVAL_S)

    def cpu_seconds(self) -> float:
        """The node's CPU time so far, its worker processes included."""
        try:
            t = self._proc.cpu_times()
            total = t.user + t.system
            for child in self._proc.children(recursive=True):
                with contextlib.suppress(self._psutil.Error):
                    c = child.cpu_times()
                    total += c.user + c.system
        except self._psutil.Error:
            return float("nan")
        return float(total)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


# ----------------------------------------------------------------------------- data

FIRST = ["Jan", "Anouk", "Pieter", "Sanne", "Kees", "Fatima", "Mohammed", "Lotte", "Daan",
         "Emma", "Bram", "Yara", "Sem", "Julia", "Thijs", "Noor", "Ruben", "Iris", "Wim",
         "Esther"]
LAST = ["de Vries", "Jansen", "van den Berg", "Bakker", "Visser", "Smit", "Meijer",
        "de Boer", "Mulder", "de Groot", "Bos", "Vos", "Peters", "Hendriks", "van Leeuwen",
        "Dekker", "Brouwer", "de Wit", "Dijkstra", "Smits"]
CITIES = [("Amsterdam", "1011"), ("Rotterdam", "3011"), ("Utrecht", "3511"),
          ("Den Haag", "2511"), ("Eindhoven", "5611"), ("Groningen", "9711"),
          ("Tilburg", "5038"), ("Almere", "1315"), ("Breda", "4811"), ("Nijmegen", "6511"),
          ("Zwolle", "8011"), ("Leiden", "2311"), ("Haarlem", "2011"), ("Arnhem", "6811")]
STATUS = ["paid", "paid", "paid", "shipped", "shipped", "open", "cancelled", "refunded"]
HEADER = ("order_id,order_date,customer,email,street,postcode,city,country,sku,"
          "quantity,unit_price,amount,currency,status\n")


def _row_tail(rng: random.Random) -> str:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    city, pc = rng.choice(CITIES)
    qty = rng.randint(1, 12)
    price = rng.randint(199, 24999) / 100
    email = f"{first}.{last}".lower().replace(" ", "") + f"{rng.randint(1, 99)}@example.nl"
    street = f"{rng.choice(['Kerkstraat', 'Dorpsstraat', 'Stationsweg', 'Molenweg', 'Schoolstraat'])} {rng.randint(1, 250)}"  # noqa: E501
    date = f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    return (f"{date},\"{first} {last}\",{email},{street},{pc} {rng.choice('ABCDEFGHJK')}"
            f"{rng.choice('LMNPRSTVWX')},{city},NL,SKU-{rng.randint(10000, 99999)},{qty},"
            f"{price:.2f},{qty * price:.2f},EUR,{rng.choice(STATUS)}\n")


def make_small_files(folder: Path, prefix: str, count: int, size: int,
                     rng: random.Random) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    order = 100000
    for i in range(1, count + 1):
        parts = [HEADER]
        total = len(HEADER)
        while total < size - 60:
            order += 1
            line = f"{order}," + _row_tail(rng)
            parts.append(line)
            total += len(line)
        name = f"{prefix}{i:05d}.csv"
        (folder / name).write_text("".join(parts), encoding="utf-8")
        names.append(name)
    return names


def make_big_file(path: Path, size: int, rng: random.Random) -> int:
    tails = [_row_tail(rng) for _ in range(20000)]
    written = 0
    order = 1
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write(HEADER)
        written += len(HEADER)
        while written < size:
            chunk = []
            for t in rng.choices(tails, k=5000):
                chunk.append(f"{order},{t}")
                order += 1
            text = "".join(chunk)
            f.write(text)
            written += len(text)
    return path.stat().st_size


# ----------------------------------------------------------------------------- servers


@dataclass
class Server:
    name: str
    port: int
    user: str
    target: str  # remote folder the files go to
    local: Path | None = None  # where they land on this machine (the references)


@dataclass
class Env:
    cfg: Config
    work: Path
    client_key: Path
    sftp_bin: str
    doorvoer_cmd: list[str]
    stack: contextlib.ExitStack
    sshd: Server | None = None
    bare: Server | None = None
    node: Server | None = None
    node_proc: subprocess.Popen[bytes] | None = None
    data_dir: Path | None = None
    rss: RssSampler | None = None
    engine: Any = None
    results: dict[str, Any] = field(default_factory=dict)


def preflight() -> tuple[str, str, str, str | None, list[str]]:
    missing = []
    for mod in ("psutil", "asyncssh", "sqlalchemy"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(f"python module {mod} (pip install -e . in the venv)")
    try:
        import doorvoer.transfers.models  # noqa: F401
    except Exception as exc:
        missing.append(f"doorvoer is not importable ({type(exc).__name__}: {exc}); run "
                       "with the project's venv: .venv/bin/python benchmarks/sftp_bench.py")
    sftp = shutil.which("sftp")
    keygen = shutil.which("ssh-keygen")
    sshd = "/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else shutil.which("sshd")
    if not sftp:
        missing.append("OpenSSH client `sftp` (apt-get install -y openssh-client)")
    if not keygen:
        missing.append("`ssh-keygen` (apt-get install -y openssh-client)")
    if not sshd:
        missing.append("OpenSSH server /usr/sbin/sshd (apt-get install -y openssh-server)")
    server_bin = next((p for p in ("/usr/lib/openssh/sftp-server",
                                   "/usr/libexec/openssh/sftp-server",
                                   "/usr/libexec/sftp-server") if Path(p).exists()), None)
    venv_cli = Path(sys.executable).parent / "doorvoer"
    doorvoer_cmd = [str(venv_cli)] if venv_cli.exists() else [sys.executable, "-m", "doorvoer"]
    if missing:
        raise BenchError("missing prerequisites:\n  - " + "\n  - ".join(missing))
    assert sftp
    assert keygen
    assert sshd
    return sftp, keygen, sshd, server_bin, doorvoer_cmd


def keygen(path: Path) -> None:
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "doorvoer-bench", "-f",
         str(path)], 30, "ssh-keygen")


def start_sshd(env: Env, sshd_bin: str, server_bin: str | None) -> None:
    d = env.work / "sshd"
    d.mkdir(mode=0o700)
    target = env.work / "openssh-target"
    target.mkdir()
    keygen(d / "host_key")
    (d / "authorized_keys").write_text(Path(str(env.client_key) + ".pub").read_text())
    port = free_port()
    user = getpass.getuser()
    root = os.geteuid() == 0
    if root and not Path("/run/sshd").exists():
        # sshd running as root needs its privilege separation directory.
        Path("/run/sshd").mkdir(mode=0o755)
        env.stack.callback(lambda: shutil.rmtree("/run/sshd", ignore_errors=True))
    (d / "sshd_config").write_text(f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {d / 'host_key'}
PidFile none
UsePAM no
StrictModes no
PermitRootLogin {'prohibit-password' if root else 'no'}
PubkeyAuthentication yes
AuthorizedKeysFile {d / 'authorized_keys'}
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowTcpForwarding no
X11Forwarding no
PrintMotd no
UseDNS no
MaxStartups 100
LogLevel ERROR
Subsystem sftp {server_bin or 'internal-sftp'}
""")
    log = env.work / "sshd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sshd_bin, "-D", "-e", "-f", str(d / "sshd_config")],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True)
    env.stack.callback(stop_process, proc, "sshd")
    wait_port(port, proc, 20, "sshd", log)
    env.sshd = Server("OpenSSH", port, user, str(target), target)
    try:
        sftp_batch(env, env.sshd, f"cd {target}\npwd\n", 30, "OpenSSH login check")
    except BenchError as exc:
        raise BenchError(f"{exc}\n  sshd log:\n{tail(log)}") from None


def start_bare(env: Env) -> None:
    """asyncssh's stock SFTP server in a process of its own (see bare_sftp.py)."""
    d = env.work / "bare"
    target = d / "root"  # its chroot
    target.mkdir(parents=True)
    keygen(d / "host_key")
    port = free_port()
    log = env.work / "bare.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("bare_sftp.py")), str(port),
             str(target), str(env.client_key) + ".pub", str(d / "host_key")],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
    env.stack.callback(stop_process, proc, "asyncssh alone")
    wait_port(port, proc, 30, "asyncssh alone", log)
    env.bare = Server("asyncssh", port, getpass.getuser(), "/", target)
    try:
        sftp_batch(env, env.bare, "pwd\n", 30, "asyncssh alone login check")
    except BenchError as exc:
        raise BenchError(f"{exc}\n  its log:\n{tail(log)}") from None


INSTRUCTION = ("instruction", "add", "--tenant", "bench", "--asked-by", "the benchmark",
               "--channel", "email", "--reference", "benchmark set-up",
               "--text", "an account and the benchmark's process")


def doorvoer(env: Env, *args: str, stdin: str | None = None) -> str:
    assert env.data_dir is not None
    return run([*env.doorvoer_cmd, *args, "--data-dir", str(env.data_dir)], 180,
               f"doorvoer {' '.join(args[:2])}", stdin=stdin).stdout


def start_doorvoer(env: Env) -> None:
    from sqlalchemy import create_engine

    env.data_dir = env.work / "doorvoer-data"
    doorvoer(env, "init")
    # Default settings, except a short fetch grace (a fetched but not deleted output is
    # erased 1 s after its download instead of 10 s).
    (env.data_dir / "doorvoer.toml").write_text("fetch_grace_s = 1.0\n")
    doorvoer(env, "tenant", "create", TENANT, "--name", "Bench B.V.")
    said = doorvoer(env, *INSTRUCTION)  # staff changes name the tenant's instruction
    ident = ["--instruction", said.split()[1]]
    doorvoer(env, "account", "create", TENANT, ACCOUNT, "--ssh-key",
             str(env.client_key) + ".pub", *ident)
    spec = env.work / "bench.yaml"
    spec.write_text(SPEC)
    doorvoer(env, "process", "apply", TENANT, str(spec), *ident)
    from doorvoer.app import free_ports

    port, http_port = free_ports("127.0.0.1", 0, 0)
    log = env.work / "doorvoer.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*env.doorvoer_cmd, "serve", "--data-dir", str(env.data_dir), "--sftp-port",
             str(port), "--sftp-host", "127.0.0.1", "--http-port", str(http_port),
             "--http-host", "127.0.0.1"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
    env.stack.callback(stop_process, proc, "doorvoer")
    env.node_proc = proc
    env.rss = RssSampler(proc.pid).start()
    env.stack.callback(env.rss.stop)
    wait_port(port, proc, 60, "doorvoer serve", log)
    env.node = Server("Doorvoer", port, f"{ACCOUNT}@{TENANT}", f"/inbox/{FOLDER}")
    # The benchmark's own read-only view of the node's database (no BEGIN IMMEDIATE,
    # so it never queues behind or blocks the node's writers).
    env.engine = create_engine(f"sqlite:///{env.data_dir / 'doorvoer.db'}",
                               connect_args={"timeout": 30})
    env.stack.callback(env.engine.dispose)
    try:
        sftp_batch(env, env.node, f"cd {env.node.target}\npwd\n", 30, "Doorvoer login check")
    except BenchError as exc:
        raise BenchError(f"{exc}\n  doorvoer log:\n{tail(log)}") from None


def check_node(env: Env) -> None:
    if env.node_proc is not None and env.node_proc.poll() is not None:
        raise BenchError(f"doorvoer exited with code {env.node_proc.returncode}:\n"
                         f"{tail(env.work / 'doorvoer.log')}")


def sftp_cmd(env: Env, server: Server) -> list[str]:
    # Identical client options for both servers.
    return [env.sftp_bin, "-F", "/dev/null", "-P", str(server.port), "-i", str(env.client_key),
            "-c", CIPHER, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "Compression=no", "-o", "LogLevel=ERROR",
            "-b", "-", f"{server.user}@127.0.0.1"]


def sftp_batch(env: Env, server: Server, batch: str, timeout: float, what: str) -> float:
    """Run one `sftp -b` session; returns its wall time in seconds."""
    t0 = time.perf_counter()
    run(sftp_cmd(env, server), timeout, what, stdin=batch)
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------- database


def transfers_like(env: Env, prefix: str) -> list[Any]:
    from sqlalchemy import select

    from doorvoer.transfers.models import Transfer

    with env.engine.connect() as c:
        return list(c.execute(
            select(Transfer.filename, Transfer.state, Transfer.opened_at,
                   Transfer.received_at, Transfer.processed_at, Transfer.erased_at,
                   Transfer.error, Transfer.bytes_in, Transfer.bytes_out)
            .where(Transfer.filename.startswith(prefix, autoescape=True))))


def state_counts(env: Env, prefix: str) -> dict[str, int]:
    from sqlalchemy import func, select

    from doorvoer.transfers.models import Transfer

    with env.engine.connect() as c:
        rows = c.execute(select(Transfer.state, func.count())
                         .where(Transfer.filename.startswith(prefix, autoescape=True))
                         .group_by(Transfer.state))
        return {str(s): int(n) for s, n in rows}


def wait_states(env: Env, prefix: str, count: int, done: set[str], timeout: float,
                what: str) -> tuple[float, dict[str, int]]:
    """Poll until `count` transfers named prefix* are in one of `done` (or final)
    states. Returns (time.time() when seen, the counts)."""
    final = FINAL_STATES
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        check_node(env)
        counts = state_counts(env, prefix)
        if sum(n for s, n in counts.items() if s in done | final) >= count:
            return time.time(), counts
        time.sleep(0.05)
    raise BenchError(f"{what}: not done after {timeout:.0f} s; states: {counts}")


def ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


# ----------------------------------------------------------------------------- asyncssh


async def connect(env: Env) -> tuple[Any, Any]:
    import asyncssh

    assert env.node is not None
    conn = await asyncio.wait_for(asyncssh.connect(
        "127.0.0.1", env.node.port, username=env.node.user,
        client_keys=[str(env.client_key)], known_hosts=None, agent_path=None, config=[],
        encryption_algs=[CIPHER], compression_algs=["none"]), 30)
    return conn, await asyncio.wait_for(conn.start_sftp_client(), 30)


async def fetch_and_delete(sftp: Any, name: str, fetch: bool = True) -> int:
    path = f"/outbox/{FOLDER}/{name}"
    size = 0
    if fetch:
        async with sftp.open(path, "rb") as f:
            size = len(await f.read())
    await sftp.remove(path)
    return size


async def drain_outbox(env: Env, timeout: float, fetch: bool = True,
                       concurrency: int = 8) -> tuple[int, float]:
    """Fetch (optionally) and delete every output in the outbox: they are erased."""
    t0 = time.perf_counter()
    conn, sftp = await connect(env)
    done = 0
    try:
        async def job(name: str) -> None:
            nonlocal done
            async with sem:
                await fetch_and_delete(sftp, name, fetch)
                done += 1

        sem = asyncio.Semaphore(concurrency)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            names = [n for n in await sftp.listdir(f"/outbox/{FOLDER}")
                     if n not in (".", "..")]
            if not names:
                break
            remaining = deadline - time.monotonic()
            try:
                await asyncio.wait_for(asyncio.gather(*(job(n) for n in names)),
                                       max(remaining, 1))
            except TimeoutError:
                raise BenchError(f"draining the outbox: {done} outputs fetched, not empty "
                                 f"after {timeout:.0f} s") from None
        else:
            raise BenchError(f"draining the outbox: not empty after {timeout:.0f} s")
    finally:
        conn.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.wait_closed(), 5)
    return done, time.perf_counter() - t0


def drain(env: Env, timeout: float, fetch: bool = True) -> tuple[int, float]:
    return asyncio.run(asyncio.wait_for(drain_outbox(env, timeout, fetch), timeout + 10))


# ----------------------------------------------------------------------------- phases


def phase(env: Env, name: str) -> Callable[[], tuple[float, float]]:
    """Mark a phase for RSS; returns a function giving (wall s, Doorvoer CPU s) since."""
    assert env.rss is not None
    env.rss.phase = name
    t0, c0 = time.perf_counter(), env.rss.cpu_seconds()

    def end() -> tuple[float, float]:
        assert env.rss is not None
        return time.perf_counter() - t0, env.rss.cpu_seconds() - c0

    return end


def warm_up(env: Env, rng: random.Random) -> None:
    assert env.node is not None
    assert env.sshd is not None
    say("warm-up: 5 files to each server")
    d = env.work / "warmup"
    names = make_small_files(d, "warmup-", 5, 4096, rng)
    batch = f"lcd {d}\n" + "".join(f"put {n}\n" for n in names)
    assert env.bare is not None
    for server in (env.sshd, env.bare, env.node):
        sftp_batch(env, server, f"cd {server.target}\n" + batch, 60, f"{server.name} warm-up")
    _, counts = wait_states(env, "warmup-", 5, {"READY"}, 60, "Doorvoer warm-up")
    if counts.get("READY", 0) != 5:
        bad = [r for r in transfers_like(env, "warmup-") if str(r.state) != "READY"]
        raise BenchError(f"Doorvoer warm-up: states {counts}; first error: "
                         f"{bad[0].error if bad else '?'}\n{tail(env.work / 'doorvoer.log')}")
    drain(env, 60)
    wait_states(env, "warmup-", 5, set(), 30, "warm-up erasure")
    for server in (env.sshd, env.bare):
        assert server.local is not None
        for n in names:
            (server.local / n).unlink(missing_ok=True)
    # What one `sftp -b` session costs before any file: connect, key exchange, login.
    for server in (env.sshd, env.bare, env.node):
        times = sorted(sftp_batch(env, server, f"cd {server.target}\n", 30, "session setup")
                       for _ in range(3))
        env.results[f"setup_{server.name}"] = times[1]
    say(f"session setup (an empty `sftp -b` session, median of 3): OpenSSH "
        f"{env.results['setup_OpenSSH']:.3f} s, asyncssh alone "
        f"{env.results['setup_asyncssh']:.3f} s, Doorvoer "
        f"{env.results['setup_Doorvoer']:.3f} s; included in every wall time below")


def bench_small(env: Env, rng: random.Random) -> None:
    """(a), in rounds that alternate the two servers, so that a change of the machine's
    speed during the run (seen here: OpenSSH's rate doubling or halving from one minute
    to the next) touches both sides of a ratio alike. The medians are the results."""
    cfg = env.cfg
    say(f"\n(a) {cfg.small_files} small CSV files (~{cfg.small_bytes // 1024} KiB), one "
        f"`sftp -b` session of {cfg.small_files} puts each, {cfg.rounds} round(s): OpenSSH, "
        "asyncssh alone, then Doorvoer")
    rounds = [_small_round(env, rng, r) for r in range(1, cfg.rounds + 1)]
    ssh_rate, bare_rate, dv_rate, ratio, bare_ratio, proc_rate = (
        statistics.median(x) for x in zip(*rounds, strict=True))
    if cfg.rounds > 1:
        say(f"    median of {cfg.rounds} rounds: OpenSSH {ssh_rate:.0f} files/s, asyncssh "
            f"alone {bare_rate:.0f}, Doorvoer {dv_rate:.0f} files/s ingest, ratio "
            f"{ratio:.2f}x (rounds: {', '.join(f'{r[3]:.2f}x' for r in rounds)}); "
            f"asyncssh alone {bare_ratio:.2f}x OpenSSH (rounds: "
            f"{', '.join(f'{r[4]:.2f}x' for r in rounds)}); all ready {proc_rate:.0f} files/s")
    env.results.update(small_ssh=ssh_rate, small_bare=bare_rate, small_dv=dv_rate,
                       small_ratio=ratio, small_bare_ratio=bare_ratio,
                       small_processed=proc_rate)


def _small_round(env: Env, rng: random.Random, round_no: int
                 ) -> tuple[float, float, float, float, float, float]:
    """One round of (a); returns (OpenSSH files/s, asyncssh alone files/s, Doorvoer
    files/s, Doorvoer's ratio, asyncssh alone's ratio, Doorvoer files/s until all are
    ready)."""
    assert env.node is not None
    assert env.sshd is not None
    assert env.bare is not None
    cfg = env.cfg
    n = cfg.small_files
    d = env.work / "small"
    prefix = f"order-a{round_no}-"
    names = make_small_files(d, prefix, n, cfg.small_bytes, rng)
    os.sync()  # the generated files' write-back must not land in a measurement
    if cfg.rounds > 1:
        say(f"    round {round_no}")
    batch = f"lcd {d}\n" + "".join(f"put {x}\n" for x in names)
    timeout = max(120.0, n * 0.5)

    t_ssh = _put_to_reference(env, env.sshd, batch, names, prefix, timeout)
    ssh_rate = n / t_ssh
    say(f"    OpenSSH  ingest: {ssh_rate:8.1f} files/s  ({t_ssh:.2f} s; "
        f"{net(n, t_ssh, env.results['setup_OpenSSH'], 'files/s')})")
    t_bare = _put_to_reference(env, env.bare, batch, names, prefix, timeout)
    bare_rate = n / t_bare
    say(f"    asyncssh alone:  {bare_rate:8.1f} files/s  ({t_bare:.2f} s; "
        f"{net(n, t_bare, env.results['setup_asyncssh'], 'files/s')})"
        f"   ratio asyncssh/OpenSSH = {bare_rate / ssh_rate:.2f}x (the ceiling of Doorvoer's)")

    end = phase(env, "a: small files")
    start_wall = time.time()
    t_dv = sftp_batch(env, env.node, f"cd {env.node.target}\n" + batch, timeout,
                      "Doorvoer small files")
    ingest_cpu = end()[1]
    dv_rate = n / t_dv
    say(f"    Doorvoer ingest: {dv_rate:8.1f} files/s  ({t_dv:.2f} s; "
        f"{net(n, t_dv, env.results['setup_Doorvoer'], 'files/s')})"
        f"   ratio Doorvoer/OpenSSH = {dv_rate / ssh_rate:.2f}x")
    seen, counts = wait_states(env, prefix, n, {"READY"}, max(120.0, n * 0.5),
                               "Doorvoer small files processing")
    wall, cpu = end()
    rows = transfers_like(env, prefix)
    if counts.get("READY", 0) != n:
        bad = [r for r in rows if str(r.state) != "READY"]
        raise BenchError(f"Doorvoer small files: states {counts}; first error: "
                         f"{bad[0].error if bad else '?'}")
    last_ready = max(ts(r.processed_at) or 0.0 for r in rows)
    proc_s = last_ready - start_wall
    proc_rate = n / proc_s
    lat = [ts(r.processed_at) - ts(r.received_at) for r in rows]  # type: ignore[operator]
    say(f"    Doorvoer all {n} outputs READY in the outbox {proc_s:.2f} s after the upload "
        f"started: {proc_rate:.1f} files/s (upload start -> last processed_at; "
        f"poll saw it at +{seen - start_wall:.2f} s)")
    say(f"    Doorvoer received->ready per file: {dist(lat)}")
    say(f"    Doorvoer CPU: {ingest_cpu:.1f} s during the upload, {cpu:.1f} s until all "
        f"ready ({wall:.1f} s wall, {cpu / wall * 100:.0f}% of one core)")
    fetched, drain_s = drain(env, max(120.0, n * 0.5))
    wait_states(env, prefix, n, set(), 60, "small files erasure")
    say(f"    (fetched and deleted {fetched} outputs over SFTP in {drain_s:.1f} s: "
        f"{fetched / drain_s:.0f} files/s)")
    shutil.rmtree(d)
    return ssh_rate, bare_rate, dv_rate, dv_rate / ssh_rate, bare_rate / ssh_rate, proc_rate


def _put_to_reference(env: Env, server: Server, batch: str, names: list[str], prefix: str,
                      timeout: float) -> float:
    """One `sftp -b` session of puts to a reference server; its wall time. Checks that
    every file arrived and removes them."""
    assert server.local is not None
    wall = sftp_batch(env, server, f"cd {server.target}\n" + batch, timeout,
                      f"{server.name} small files")
    got = len(list(server.local.glob(f"{prefix}*")))
    if got != len(names):
        raise BenchError(f"{server.name} small files: {got} of {len(names)} arrived")
    for x in names:
        (server.local / x).unlink()
    return wall


def bench_big(env: Env, rng: random.Random) -> None:
    assert env.node is not None
    assert env.sshd is not None
    cfg = env.cfg
    path = env.work / "big-orders.csv"
    say(f"\n(b) one large CSV file: generating {cfg.big_mib} MiB ...")
    size = make_big_file(path, cfg.big_mib * MiB, rng)
    os.sync()
    say(f"    {size / MiB:.0f} MiB, one `sftp -b` session with one put; MB = 10^6 bytes")
    batch = f"lcd {path.parent}\nput {path.name}\n"
    timeout = max(120.0, cfg.big_mib * 2.0)

    t_ssh = sftp_batch(env, env.sshd, f"cd {env.sshd.target}\n" + batch, timeout,
                       "OpenSSH large file")
    got = (Path(env.sshd.target) / path.name).stat().st_size
    if got != size:
        raise BenchError(f"OpenSSH large file: {got} of {size} bytes arrived")
    (Path(env.sshd.target) / path.name).unlink()
    ssh_mbs = size / t_ssh / 1e6
    say(f"    OpenSSH  upload: {ssh_mbs:8.1f} MB/s  ({t_ssh:.2f} s; "
        f"{net(size / 1e6, t_ssh, env.results['setup_OpenSSH'], 'MB/s')})")

    end = phase(env, "b: large file")
    t_dv = sftp_batch(env, env.node, f"cd {env.node.target}\n" + batch, timeout,
                      "Doorvoer large file")
    up_cpu = end()[1]
    dv_mbs = size / t_dv / 1e6
    say(f"    Doorvoer upload: {dv_mbs:8.1f} MB/s  ({t_dv:.2f} s; "
        f"{net(size / 1e6, t_dv, env.results['setup_Doorvoer'], 'MB/s')})   "
        f"ratio Doorvoer/OpenSSH = {dv_mbs / ssh_mbs:.2f}x   (Doorvoer CPU {up_cpu:.1f} s)")
    env.results.update(big_ssh=ssh_mbs, big_dv=dv_mbs, big_ratio=dv_mbs / ssh_mbs)
    # Not a target, but it shapes RSS: let the node transform it, then delete the output.
    wait_states(env, path.name, 1, {"READY"}, 420, "Doorvoer large file processing")
    cpu = end()[1]
    row = transfers_like(env, path.name)[0]
    if str(row.state) == "READY":
        took = ts(row.processed_at) - ts(row.received_at)  # type: ignore[operator]
        say(f"    Doorvoer transformed it in {took:.1f} s (received->ready; "
            f"{size / took / 1e6:.1f} MB/s; {row.bytes_out / MiB:.0f} MiB out; CPU {cpu:.1f} s)")
        drain(env, 120, fetch=False)
        wait_states(env, path.name, 1, set(), 60, "large file erasure")
    else:
        say(f"    Doorvoer did NOT transform it: state {row.state}: {row.error}")
    env.results["big_state"] = str(row.state)
    path.unlink()


async def steady(env: Env, payloads: list[bytes]) -> dict[str, Any]:
    cfg = env.cfg
    n = int(cfg.rate * cfg.steady_s)
    interval = 1.0 / cfg.rate
    up_conn, up = await connect(env)
    fe_conn, fe = await connect(env)
    uploads: dict[str, tuple[float, float]] = {}
    errors: list[str] = []
    lags: list[float] = []
    fetched: dict[str, float] = {}
    in_fetch: set[str] = set()
    uploading_done = asyncio.Event()
    up_sem = asyncio.Semaphore(32)
    fe_sem = asyncio.Semaphore(8)

    async def upload(name: str, data: bytes) -> None:
        try:
            t0 = time.time()
            async with up.open(f"/inbox/{FOLDER}/{name}", "wb") as f:
                await f.write(data)
            uploads[name] = (t0, time.time())
        except Exception as exc:
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
        finally:
            up_sem.release()

    async def producer() -> None:
        loop = asyncio.get_running_loop()
        tasks = []
        start = loop.time() + 0.2
        for i in range(n):
            due = start + i * interval
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await up_sem.acquire()
            lags.append(loop.time() - due)
            name = f"order-s-{i:06d}.csv"
            tasks.append(asyncio.create_task(upload(name, payloads[i % len(payloads)])))
        await asyncio.gather(*tasks)
        uploading_done.set()

    async def fetch_one(name: str) -> None:
        try:
            async with fe_sem:
                await fetch_and_delete(fe, name)
            fetched[name] = time.time()
        except Exception as exc:
            errors.append(f"fetch {name}: {type(exc).__name__}: {exc}")
        finally:
            in_fetch.discard(name)

    async def fetcher() -> None:
        tasks = []
        while True:
            names = [x for x in await fe.listdir(f"/outbox/{FOLDER}")
                     if x.startswith("order-s-") and x not in fetched and x not in in_fetch]
            for x in names:
                in_fetch.add(x)
                tasks.append(asyncio.create_task(fetch_one(x)))
            if uploading_done.is_set() and not in_fetch:
                if len(fetched) >= len(uploads):
                    break
                # Outputs that will never come (a failed transform) must not stall us.
                counts = await asyncio.to_thread(state_counts, env, "order-s-")
                if sum(v for k, v in counts.items() if k in FINAL_STATES) >= len(uploads):
                    break
            await asyncio.sleep(0.1)
        await asyncio.gather(*tasks)

    t0 = time.time()
    try:
        prod = asyncio.create_task(producer())
        fetch_task = asyncio.create_task(fetcher())
        # A node that cannot keep up slows the producer down (at most 32 uploads in
        # flight): allow for that, within bounds.
        try:
            await asyncio.wait_for(prod, cfg.steady_s * 6 + 60)
        except TimeoutError:
            raise BenchError(f"steady load: {len(uploads)} of {n} uploads done after "
                             f"{cfg.steady_s * 6 + 60:.0f} s") from None
        t_uploaded = time.time()
        try:
            await asyncio.wait_for(fetch_task, max(120.0, n * 0.2))
        except TimeoutError:
            raise BenchError(f"steady load: {len(fetched)} of {len(uploads)} outputs fetched "
                             f"{max(120.0, n * 0.2):.0f} s after the last upload") from None
    finally:
        for c in (up_conn, fe_conn):
            c.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(c.wait_closed(), 5)
    return {"n": n, "uploads": uploads, "errors": errors, "lags": lags, "fetched": fetched,
            "t0": t0, "t_uploaded": t_uploaded}


def bench_steady(env: Env, rng: random.Random) -> None:
    cfg = env.cfg
    d = env.work / "steady-src"
    names = make_small_files(d, "src-", 200, cfg.small_bytes, rng)
    payloads = [(d / x).read_bytes() for x in names]
    n = int(cfg.rate * cfg.steady_s)
    say(f"\n(c) steady load: {cfg.rate:.0f} files/s for {cfg.steady_s:.0f} s ({n} files of "
        f"~4 KiB) into Doorvoer over one persistent asyncssh connection; a second "
        f"connection lists /outbox/{FOLDER}/ every 0.1 s and fetches + deletes each output")
    end = phase(env, "c: steady")
    timeout = cfg.steady_s * 6 + max(120.0, n * 0.2) + 120
    r = asyncio.run(asyncio.wait_for(steady(env, payloads), timeout))
    wall, cpu = end()
    if r["errors"]:
        say(f"    {len(r['errors'])} errors, first: {r['errors'][0]}")
    lags = r["lags"]
    offered = (n - 1) / ((n - 1) / cfg.rate + (lags[-1] - lags[0])) if n > 1 else 0.0
    say(f"    offered {offered:.1f} files/s (schedule lag p99 {pct(lags, 99) * 1000:.0f} ms, "
        f"max {max(lags) * 1000:.0f} ms); uploads done {r['t_uploaded'] - r['t0']:.1f} s "
        f"after start")
    client = [b - a for a, b in r["uploads"].values()]
    say(f"    client upload open->close-ack:      {dist(client)}")
    wait_states(env, "order-s-", n, set(), 60, "steady-state erasure")
    rows = transfers_like(env, "order-s-")
    ready = [ts(x.processed_at) - ts(x.received_at) for x in rows  # type: ignore[operator]
             if x.processed_at is not None and x.received_at is not None]
    resid = [ts(x.erased_at) - ts(x.received_at) for x in rows  # type: ignore[operator]
             if x.erased_at is not None and x.received_at is not None
             and str(x.state) == "ERASED"]
    waited = [ts(x.erased_at) - ts(x.processed_at) for x in rows  # type: ignore[operator]
              if x.erased_at is not None and x.processed_at is not None]
    states: dict[str, int] = {}
    for x in rows:
        states[str(x.state)] = states.get(str(x.state), 0) + 1
    say(f"    states: {states}")
    say(f"    ingest->output-ready (received_at -> processed_at, the target): {dist(ready)}")
    say(f"    residence_seconds (received_at -> erased_at, incl. our fetch loop): {dist(resid)}")
    say(f"      of which waiting in the outbox for our fetch+delete: {dist(waited)}")
    say(f"    Doorvoer CPU: {cpu:.1f} s over {wall:.1f} s wall "
        f"({cpu / wall * 100:.0f}% of one core)")
    shutil.rmtree(d)
    env.results.update(steady_p50=pct(ready, 50), steady_p99=pct(ready, 99),
                       resid_p50=pct(resid, 50), resid_p99=pct(resid, 99),
                       steady_offered=offered, steady_errors=len(r["errors"]),
                       steady_ok=len(ready))


# ----------------------------------------------------------------------------- main


def summary(env: Env) -> None:
    r = env.results
    assert env.rss is not None
    rss = env.rss.peak / MiB
    say("\nDoorvoer RSS peaks per phase: " + ", ".join(
        f"{k} {v / MiB:.0f} MiB" for k, v in env.rss.peak_phase.items()))
    say(f"Doorvoer peak RSS: {rss:.0f} MiB ({env.rss.samples} samples every "
        f"{RSS_INTERVAL_S * 1000:.0f} ms; the sum over the node and its worker process)")
    say(f"  each at its own peak: node {env.rss.peak_node / MiB:.0f} MiB, worker process(es) "
        f"{env.rss.peak_children / MiB:.0f} MiB")
    say(f"  of which file-backed (libraries' pages, shared): {env.rss.peak_file / MiB:.0f} MiB, "
        f"allocated by the processes: {(env.rss.peak - env.rss.peak_file) / MiB:.0f} MiB")
    say(f"Doorvoer peak PSS: {env.rss.peak_pss / MiB:.0f} MiB (the same sum with each shared "
        "page counted once)")

    def mark(ok: bool | None) -> str:
        return "n/a " if ok is None else ("PASS" if ok else "MISS")

    def get(key: str) -> float | None:
        v = r.get(key)
        return float(v) if isinstance(v, int | float) else None

    lines = []
    v = get("small_ratio")
    lines.append((f"small files ingest   {v:.2f}x OpenSSH" if v is not None else
                  "small files ingest   not measured", ">= 0.70x",
                  mark(None if v is None else v >= 0.7)))
    v = get("small_bare_ratio")
    if v is not None:  # a reference, not a target
        lines.append((f"  asyncssh alone     {v:.2f}x OpenSSH", "(the ceiling)", ""))
    v = get("small_processed")
    lines.append((f"small files ready    {v:.0f} files/s" if v is not None else
                  "small files ready    not measured", ">= 100 files/s",
                  mark(None if v is None else v >= 100)))
    v = get("big_ratio")
    lines.append((f"large file upload    {v:.2f}x OpenSSH" if v is not None else
                  "large file upload    not measured", ">= 1.00x",
                  mark(None if v is None else v >= 1.0)))
    v = get("steady_p99")
    ok = None if v is None else (v < 2.0 and r.get("steady_errors", 0) == 0
                                 and r.get("steady_ok") == int(env.cfg.rate * env.cfg.steady_s))
    lines.append((f"steady p99 ingest->ready {v:.2f} s" if v is not None else
                  "steady p99           not measured", "< 2 s", mark(ok)))
    lines.append((f"peak RSS             {rss:.0f} MiB", "< 300 MiB", mark(rss < 300)))
    say("\n==== summary " + "=" * 55)
    say(f"  small: OpenSSH {r.get('small_ssh', 0):.0f} files/s, asyncssh alone "
        f"{r.get('small_bare', 0):.0f} files/s, Doorvoer "
        f"{r.get('small_dv', 0):.0f} files/s ingest, {r.get('small_processed', 0):.0f} "
        f"files/s to ready")
    say(f"  large: OpenSSH {r.get('big_ssh', 0):.0f} MB/s, Doorvoer {r.get('big_dv', 0):.0f} "
        f"MB/s")
    if "steady_p99" in r:
        say(f"  steady {env.cfg.rate:.0f}/s: ingest->ready p50 {r['steady_p50']:.3f} s p99 "
            f"{r['steady_p99']:.3f} s; residence (->erased) p50 {r['resid_p50']:.3f} s "
            f"p99 {r['resid_p99']:.3f} s")
    for text, target, verdict in lines:
        say(f"  {text:<36} target {target:<15} {verdict}")
    say("=" * 68)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="200 small files, 32 MiB, 10 s of steady load")
    ap.add_argument("--small-files", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=0,
                    help="rounds of (a), alternating the servers [3; --quick: 1]")
    ap.add_argument("--big-mib", type=int, default=0)
    ap.add_argument("--rate", type=float, default=50.0, help="steady files/s [50]")
    ap.add_argument("--steady-seconds", type=float, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    cfg = Config.from_args(ap.parse_args())

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with it ignored
    rc = 0
    work: Path | None = None
    env: Env | None = None
    with contextlib.ExitStack() as stack:
        try:
            sftp_bin, _, sshd_bin, server_bin, doorvoer_cmd = preflight()
            work = Path(tempfile.mkdtemp(prefix="doorvoer-bench-"))
            if not cfg.keep:
                stack.callback(shutil.rmtree, work, ignore_errors=True)
            key = work / "client_key"
            keygen(key)
            env = Env(cfg, work, key, sftp_bin, doorvoer_cmd, stack)
            ver = subprocess.run(["ssh", "-V"], capture_output=True, text=True, timeout=10,
                                 check=False).stderr.strip()
            say(f"doorvoer sftp benchmark: {platform.node()}, {os.cpu_count()} CPUs, "
                f"Python {platform.python_version()}, {ver}")
            say(f"cipher {CIPHER}; client: sftp -b (default -B 32768 -R 64); "
                f"work dir {work}")
            start_sshd(env, sshd_bin, server_bin)
            say(f"OpenSSH sshd on 127.0.0.1:{env.sshd.port if env.sshd else '?'} "
                f"(subsystem {server_bin or 'internal-sftp'}), user {getpass.getuser()}, "
                f"target {work / 'openssh-target'}")
            start_bare(env)
            say(f"asyncssh alone (benchmarks/bare_sftp.py) on 127.0.0.1:"
                f"{env.bare.port if env.bare else '?'}, target {env.bare and env.bare.local}")
            start_doorvoer(env)
            assert env.rss is not None
            assert env.node is not None
            say(f"Doorvoer node pid {env.node_proc.pid if env.node_proc else '?'} on "
                f"127.0.0.1:{env.node.port}, SQLite, default settings + fetch_grace_s=1; "
                f"RSS after start {env.rss.last / MiB:.0f} MiB")
            rng = random.Random(20250101)
            warm_up(env, rng)
            bench_small(env, rng)
            bench_big(env, rng)
            bench_steady(env, rng)
            check_node(env)
            summary(env)
        except KeyboardInterrupt:
            say("\ninterrupted: stopping servers and cleaning up")
            rc = 130
        except BenchError as exc:
            say(f"\nerror: {exc}")
            rc = 1
        except Exception as exc:
            import traceback

            traceback.print_exc()
            say(f"\nerror: unexpected {type(exc).__name__}: {exc}")
            rc = 1
        finally:
            if rc != 0 and env is not None and env.results and env.rss is not None:
                say("\n(partial results)")
                summary(env)
            if work is not None and cfg.keep:
                say(f"kept {work}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
