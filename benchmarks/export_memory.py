#!/usr/bin/env python3
"""A tenant's export streams (P20): its peak memory does not grow with the data.

    .venv/bin/python benchmarks/export_memory.py [--rows 20000] [--factor 10]

Two tenants in one SQLite data directory, one with ROWS transfer records and audit
entries, the other with ROWS × FACTOR. Each export runs in a fresh process
(`doorvoer tenant export`), alternating, three rounds; printed: each run's peak
resident memory (ru_maxrss of the child) and the ZIP's size, the medians, and the
ratio of the large export's peak to the small one's against the ratio of their rows.
A streamed export keeps the first near 1.0 while the second is FACTOR.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def _fill(data: Path, slug: str, rows: int) -> None:
    """A tenant with `rows` finished transfer records and as many audit entries."""
    os.environ["DOORVOER_DATA_DIR"] = str(data)
    from sqlalchemy import insert

    from doorvoer.audit import service as audit
    from doorvoer.audit.events import Event
    from doorvoer.bootstrap import init_data_dir
    from doorvoer.config import load_settings
    from doorvoer.db import new_id, utcnow
    from doorvoer.tenants.service import create_tenant
    from doorvoer.transfers.models import State, Transfer

    ctx = init_data_dir(load_settings(data))
    with ctx.unit() as w:
        tenant_id = create_tenant(w, slug, slug.title(), f"dpo@{slug}.example").id
    start = utcnow() - timedelta(days=20)
    for lo in range(0, rows, 5000):
        n = min(5000, rows - lo)
        with ctx.unit() as w:
            w.execute(insert(Transfer), [{
                "id": new_id(), "tenant_id": tenant_id, "account_id": "0" * 32,
                "process_id": "0" * 32, "process_name": "orders", "folder": "orders",
                "filename": f"week-{lo + i:07d}.csv", "state": State.ERASED,
                "opened_at": start + timedelta(seconds=lo + i),
                "received_at": start + timedelta(seconds=lo + i),
                "erased_at": start + timedelta(seconds=lo + i + 1), "bytes_in": 4096,
                "bytes_out": 4000, "rows_in": 40, "rows_out": 40, "attempts": 1}
                for i in range(n)])
            for i in range(n):
                audit.record(w, tenant_id, Event.UPLOAD_ACCEPTED, f"t{lo + i} orders/x.csv")
    ctx.close()


def _export(data: Path, slug: str, out: Path) -> int:
    """Peak resident memory (KiB) of one `doorvoer tenant export` run."""
    probe = (  # a fresh parent per run, so that RUSAGE_CHILDREN is this export's alone
        "import resource, subprocess, sys\n"
        "r = subprocess.run(sys.argv[1:]).returncode\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(r)\n")
    r = subprocess.run([PY, "-c", probe, PY, "-m", "doorvoer", "tenant", "export", slug,
                        "--out", str(out), "--data-dir", str(data)],
                       capture_output=True, text=True, check=True)
    return int(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--factor", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="doorvoer-export-bench-") as tmp:
        data = Path(tmp) / "data"
        sizes = {"small": args.rows, "large": args.rows * args.factor}
        for slug, rows in sizes.items():
            subprocess.run([PY, __file__, "--fill", slug, str(rows), str(data)], check=True)
        peaks: dict[str, list[int]] = {k: [] for k in sizes}
        for n in range(args.rounds):
            for slug in sizes:
                out = Path(tmp) / f"{slug}.zip"
                kib = _export(data, slug, out)
                peaks[slug].append(kib)
                print(f"round {n + 1} {slug:5} {sizes[slug]:>9,} rows: peak {kib / 1024:7.1f} "
                      f"MiB, zip {out.stat().st_size / 1024**2:7.1f} MiB", flush=True)
        small, large = (statistics.median(peaks[k]) for k in sizes)
        print(f"median peak: {small / 1024:.1f} MiB for {sizes['small']:,} rows, "
              f"{large / 1024:.1f} MiB for {sizes['large']:,} rows")
        print(f"ratio: rows x{args.factor}, peak memory x{large / small:.2f}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--fill":
        sys.path.insert(0, str(ROOT / "src"))
        _fill(Path(sys.argv[4]), sys.argv[2], int(sys.argv[3]))
    else:
        main()
