#!/usr/bin/env python3
"""The readers and writers at size, each in a fresh process: wall time and peak memory.

    .venv/bin/python benchmarks/formats.py [--rounds 3]

Cases (the transform `SELECT * FROM input`, or a count where the output is not the
point): a CSV of 1,000,000 rows to JSON lines through Doorvoer's engine, beside the same
SQL in bare DuckDB over the same bytes as a plaintext file (the reference, in the same
run); an XLSX of 200,000 rows read; an XML of 500,000 records read; 200,000 rows written
as XLSX and as XML. Printed: each round, the medians, and the CSV ratio to bare DuckDB.
Peak memory is the child's VmHWM (the whole process: Python, DuckDB and the input read
into memory).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = ("csv_1m_to_jsonl", "duckdb_csv_1m_to_jsonl", "xlsx_200k_read", "xml_500k_read",
         "xlsx_200k_write", "xml_200k_write")


def _csv(rows: int) -> bytes:
    return b"id,name,amount,day\n" + b"".join(
        b"%d,name %d,%d.%02d,2026-12-%02d\n" % (i, i % 977, i % 1000, i % 100, i % 28 + 1)
        for i in range(rows))


def _xlsx(rows: int) -> bytes:
    import xlsxwriter

    out = io.BytesIO()
    wb = xlsxwriter.Workbook(out, {"in_memory": True, "constant_memory": False})
    ws = wb.add_worksheet("S")
    ws.write_row(0, 0, ["id", "name", "amount"])
    for i in range(rows):
        ws.write_row(i + 1, 0, [i, f"name {i % 977}", i / 100])
    wb.close()
    return out.getvalue()


def _xml(records: int) -> bytes:
    return (b"<orders>" + b"".join(b'<o id="%d"><name>n %d</name><total>%d.5</total></o>'
                                   % (i, i % 977, i) for i in range(records))
            + b"</orders>")


def child(case: str, folder: str) -> None:
    """Run one case in this (fresh) process; print seconds and peak RSS in KiB."""
    sys.path.insert(0, str(ROOT / "src"))
    from doorvoer.transforms import ReadSpec, TransformSpec, WriteSpec, run_transform

    data = Path(folder, case.split("_")[0] + {"csv": ".csv", "duckdb": ".csv", "xlsx": ".xlsx",
                                               "xml": ".xml"}[case.split("_")[0]]).read_bytes() \
        if not case.endswith("_write") else Path(folder, "write.csv").read_bytes()
    sink = open("/dev/null", "wb")  # noqa: SIM115 - closed at exit
    start = time.perf_counter()
    if case == "csv_1m_to_jsonl":
        run_transform(ReadSpec(format="csv"), TransformSpec(sql="SELECT * FROM input"),
                      WriteSpec(format="jsonl"), io.BytesIO(data), sink)
    elif case == "duckdb_csv_1m_to_jsonl":
        import duckdb

        con = duckdb.connect()
        path = Path(folder, "csv.csv")
        con.execute(f"COPY (SELECT * FROM read_csv('{path}', all_varchar=true)) "
                    f"TO '{Path(folder, 'out.jsonl')}' (FORMAT json)")
    elif case == "xlsx_200k_read":
        run_transform(ReadSpec(format="xlsx"), TransformSpec(sql="SELECT count(*) FROM input"),
                      WriteSpec(format="jsonl"), io.BytesIO(data), sink)
    elif case == "xml_500k_read":
        run_transform(ReadSpec(format="xml", record="/orders/o"),
                      TransformSpec(sql="SELECT count(*) FROM input"),
                      WriteSpec(format="jsonl"), io.BytesIO(data), sink)
    else:
        fmt = "xlsx" if case.startswith("xlsx") else "xml"
        run_transform(ReadSpec(format="csv"), TransformSpec(sql="SELECT * FROM input"),
                      WriteSpec(format=fmt), io.BytesIO(data), sink)
    seconds = time.perf_counter() - start
    # VmHWM, not ru_maxrss: the latter keeps the forking parent's size across exec
    hwm = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text()
               .splitlines() if line.startswith("VmHWM:"))
    print(json.dumps({"s": seconds, "rss_kib": hwm}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="doorvoer-formats-") as folder:
        Path(folder, "csv.csv").write_bytes(_csv(1_000_000))
        Path(folder, "duckdb.csv").write_bytes(Path(folder, "csv.csv").read_bytes())
        Path(folder, "xlsx.xlsx").write_bytes(_xlsx(200_000))
        Path(folder, "xml.xml").write_bytes(_xml(500_000))
        Path(folder, "write.csv").write_bytes(_csv(200_000))
        got: dict[str, list[dict[str, float]]] = {c: [] for c in CASES}
        for n in range(args.rounds):
            for case in CASES:
                r = subprocess.run([sys.executable, __file__, "--child", case, folder],
                                   capture_output=True, text=True, check=True)
                got[case].append(json.loads(r.stdout.strip().splitlines()[-1]))
                print(f"round {n + 1} {case:24} {got[case][-1]['s']:6.2f} s "
                      f"{got[case][-1]['rss_kib'] / 1024:7.1f} MiB", flush=True)
        print()
        for case in CASES:
            print(f"median {case:24} {statistics.median(x['s'] for x in got[case]):6.2f} s "
                  f"{statistics.median(x['rss_kib'] for x in got[case]) / 1024:7.1f} MiB")
        ratio = (statistics.median(x["s"] for x in got["csv_1m_to_jsonl"])
                 / statistics.median(x["s"] for x in got["duckdb_csv_1m_to_jsonl"]))
        print(f"CSV 1M rows to JSON lines: Doorvoer / bare DuckDB = {ratio:.2f}x wall time")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
