#!/usr/bin/env python3
"""Small-file ingest of Doorvoer variants in one run: two commits, or one commit with
and without a benchmark-only switch.

    .venv/bin/python benchmarks/ingest_compare.py --ref 43b4dbc       # it vs the work tree
    .venv/bin/python benchmarks/ingest_compare.py --ref A --ref B     # two commits
    .venv/bin/python benchmarks/ingest_compare.py --env NAME=VAR=1    # a switch, work tree
    .venv/bin/python benchmarks/ingest_compare.py --ref A --ref B --env-on B \
        --env noaudit=DOORVOER_BENCH_SKIP_AUDIT=1                     # both at once

Each variant is a `doorvoer serve` node of its own (its own data dir, SQLite, default
settings but a 1 s fetch grace), started from a git worktree of the commit (`--ref`) or
from this work tree, with the venv's Python and the variant's source first on
PYTHONPATH. All run side by side; the rounds alternate between them, so that the
machine's changing speed touches every variant alike. A round of a variant: one
`sftp -b` session of N `put`s of ~4 KiB CSV files (OpenSSH client, aes128-gcm), the
time until its last CLOSE is answered (ingest files/s), then until every output is
READY in the outbox (processed files/s), then the outbox is emptied and the run waits
until every transfer is erased. Printed: each round, the medians, and each variant's
ratio to the first variant, round by round and of the medians.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sftp_bench import (  # the benchmark's own helpers, beside this file
    CIPHER,
    INSTRUCTION,
    SPEC,
    BenchError,
    free_port,
    keygen,
    make_small_files,
    run,
    say,
    stop_process,
    tail,
    wait_port,
)

REPO = Path(__file__).resolve().parent.parent
TENANT, ACCOUNT, FOLDER = "bench", "robot", "bench"


@dataclass
class Variant:
    name: str
    src: Path  # the variant's src/ folder
    env: dict[str, str] = field(default_factory=dict)
    data: Path | None = None
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    ingest: list[float] = field(default_factory=list)
    processed: list[float] = field(default_factory=list)

    def environ(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(self.src), **self.env}

    def doorvoer(self, *args: str) -> str:
        assert self.data is not None
        return run([sys.executable, "-m", "doorvoer", *args, "--data-dir", str(self.data)],
                   180, f"{self.name}: doorvoer {' '.join(args[:2])}",
                   env=self.environ()).stdout

    def instruction(self) -> list[str]:
        """`--instruction ID` for the set-up's changes, where the variant's code asks
        for one (from the commit that brought instructions on)."""
        probe = subprocess.run([sys.executable, "-m", "doorvoer", "instruction", "--help"],
                               env=self.environ(), capture_output=True, check=False)
        if probe.returncode != 0:
            return []
        return ["--instruction", self.doorvoer(*INSTRUCTION).split()[1]]


def _worktree(ref: str, into: Path) -> Path:
    run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(into), ref], 120,
        f"git worktree add {ref}")
    return into / "src"


def _start(v: Variant, work: Path, key: Path) -> None:
    v.data = work / f"data-{v.name}"
    v.doorvoer("init")
    (v.data / "doorvoer.toml").write_text("fetch_grace_s = 1.0\n")
    v.doorvoer("tenant", "create", TENANT, "--name", "Bench B.V.")
    ident = v.instruction()
    v.doorvoer("account", "create", TENANT, ACCOUNT, "--ssh-key", f"{key}.pub", *ident)
    spec = work / "bench.yaml"
    spec.write_text(SPEC)
    v.doorvoer("process", "apply", TENANT, str(spec), *ident)
    v.port = free_port()
    http = free_port()
    log = work / f"{v.name}.log"
    with log.open("wb") as out:
        v.proc = subprocess.Popen(
            [sys.executable, "-m", "doorvoer", "serve", "--data-dir", str(v.data),
             "--sftp-port", str(v.port), "--sftp-host", "127.0.0.1", "--http-port", str(http),
             "--http-host", "127.0.0.1"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
            env=v.environ())
    wait_port(v.port, v.proc, 60, f"{v.name} serve", log)


def _sftp(v: Variant, key: Path, batch: str, timeout: float) -> float:
    cmd = ["sftp", "-F", "/dev/null", "-P", str(v.port), "-i", str(key), "-c", CIPHER,
           "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
           "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
           "-o", "BatchMode=yes", "-o", "Compression=no", "-o", "LogLevel=ERROR",
           "-b", "-", f"{ACCOUNT}@{TENANT}@127.0.0.1"]
    t0 = time.perf_counter()
    run(cmd, timeout, f"{v.name}: sftp -b", stdin=batch)
    return time.perf_counter() - t0


def _counts(v: Variant, prefix: str) -> dict[str, int]:
    import sqlite3

    assert v.data is not None
    with contextlib.closing(sqlite3.connect(f"file:{v.data / 'doorvoer.db'}?mode=ro",
                                            uri=True, timeout=30)) as db:
        rows = db.execute("SELECT state, count(*) FROM transfers WHERE filename LIKE ? "
                          "GROUP BY state", (prefix + "%",)).fetchall()
    return {str(s): int(n) for s, n in rows}


def _last_processed(v: Variant, prefix: str) -> float:
    import sqlite3
    from datetime import UTC, datetime

    assert v.data is not None
    with contextlib.closing(sqlite3.connect(f"file:{v.data / 'doorvoer.db'}?mode=ro",
                                            uri=True, timeout=30)) as db:
        last = db.execute("SELECT max(processed_at) FROM transfers WHERE filename LIKE ?",
                          (prefix + "%",)).fetchone()[0]
    return datetime.fromisoformat(last).replace(tzinfo=UTC).timestamp()


def _wait(v: Variant, prefix: str, n: int, states: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        if v.proc is not None and v.proc.poll() is not None:
            raise BenchError(f"{v.name} exited ({v.proc.returncode})")
        counts = _counts(v, prefix)
        if sum(counts.get(s, 0) for s in states) >= n:
            return
        bad = {s: c for s, c in counts.items() if s in {"FAILED", "INTERRUPTED", "DISCARDED"}}
        if bad:
            raise BenchError(f"{v.name}: transfers ended badly: {bad}")
        time.sleep(0.05)
    raise BenchError(f"{v.name}: not done after {timeout:.0f} s: {counts}")


def _round(v: Variant, key: Path, folder: Path, names: list[str], prefix: str) -> None:
    n = len(names)
    batch = f"lcd {folder}\ncd /inbox/{FOLDER}\n" + "".join(f"put {x}\n" for x in names)
    start = time.time()
    wall = _sftp(v, key, batch, max(120.0, n * 0.5))
    _wait(v, prefix, n, {"READY"}, max(120.0, n * 0.5))
    processed = _last_processed(v, prefix) - start
    v.ingest.append(n / wall)
    v.processed.append(n / processed)
    say(f"    {v.name:<12} ingest {n / wall:7.1f} files/s ({wall:.2f} s)   "
        f"all ready {n / processed:7.1f} files/s")
    _sftp(v, key, f"rm /outbox/{FOLDER}/{prefix}*\n", max(120.0, n * 0.5))
    _wait(v, prefix, n, {"ERASED"}, 120)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref", action="append", default=[],
                    help="a commit to compare (repeatable); with one, the work tree is "
                         "the second variant")
    ap.add_argument("--env", action="append", default=[],
                    help="NAME=VAR=VALUE: a variant with VAR set, of the work tree or of "
                         "the commit given with --env-on")
    ap.add_argument("--env-on", default=None,
                    help="the --ref whose tree the --env variants run (default: the work "
                         "tree)")
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--bytes", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="doorvoer-compare-"))
    variants: list[Variant] = []
    trees: list[Path] = []
    rc = 0
    try:
        for i, ref in enumerate(args.ref):
            tree = work / f"tree-{i}"
            variants.append(Variant(ref, _worktree(ref, tree)))
            trees.append(tree)
        if len(args.ref) < 2:
            variants.append(Variant("worktree", REPO / "src"))
        env_src = REPO / "src"
        if args.env_on is not None:
            if args.env_on not in args.ref:
                raise BenchError("--env-on names one of the --ref commits")
            env_src = variants[args.ref.index(args.env_on)].src
        for spec in args.env:
            name, _, assignment = spec.partition("=")
            var, _, value = assignment.partition("=")
            variants.append(Variant(name, env_src, {var: value}))
        if len(variants) < 2:
            raise BenchError("give at least two variants (--ref, --env)")
        key = work / "client_key"
        keygen(key)
        for v in variants:
            _start(v, work, key)
        say(f"{len(variants)} variants: " + ", ".join(
            f"{v.name} ({v.src}{', ' + str(v.env) if v.env else ''})" for v in variants))
        rng = random.Random(20251207)
        warm = make_small_files(work / "warm", "warm-", 20, args.bytes, rng)
        for v in variants:
            _round(v, key, work / "warm", warm, "warm-")
            v.ingest.clear()
            v.processed.clear()
        for r in range(1, args.rounds + 1):
            say(f"  round {r}: {args.files} files of ~{args.bytes // 1024} KiB")
            order = variants if r % 2 else list(reversed(variants))
            for v in order:
                prefix = f"r{r}-{variants.index(v)}-"
                folder = work / f"files-{prefix}"
                names = make_small_files(folder, prefix, args.files, args.bytes, rng)
                os.sync()
                _round(v, key, folder, names, prefix)
                shutil.rmtree(folder)
        base = variants[0]
        say("\nmedians (and each round's ratio to the first variant):")
        for v in variants:
            ingest, ready = statistics.median(v.ingest), statistics.median(v.processed)
            rounds = ", ".join(f"{a / b:.2f}x" for a, b in zip(v.ingest, base.ingest,
                                                                 strict=True))
            say(f"  {v.name:<12} ingest {ingest:7.1f} files/s "
                f"({ingest / statistics.median(base.ingest):.2f}x; rounds {rounds})   "
                f"all ready {ready:7.1f} files/s "
                f"({ready / statistics.median(base.processed):.2f}x)")
    except BenchError as exc:
        say(f"\nerror: {exc}")
        for v in variants:
            say(f"  {v.name} log:\n{tail(work / f'{v.name}.log')}")
        rc = 1
    except KeyboardInterrupt:
        rc = 130
    finally:
        for v in variants:
            if v.proc is not None:
                stop_process(v.proc, v.name)
        for tree in trees:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                            str(tree)], capture_output=True, check=False)
        if args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
