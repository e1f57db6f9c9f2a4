"""Hostile files never take the node down or hang it (issue 16): each one, uploaded over
real SFTP and transformed in a real worker process, ends as a FAILED transfer whose
reason names the problem, with its blobs erased, while another tenant's files go
through the same node meanwhile."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import xlsxwriter
from sqlalchemy import select

from conftest import NodeThread, add_tenant, make_ctx, sftp_batch, transfers_of, wait_for
from doorvoer.processes.service import apply_process
from doorvoer.tenants.service import require_tenant
from doorvoer.transfers.models import State, Transfer
from doorvoer.vault.models import BlobKey


def _spec(name: str, folder: str, read: str, ext: str) -> str:
    return (f"name: {name}\nmatch: \"{folder}/*.{ext}\"\nread: {read}\n"
            "transform: {sql: SELECT * FROM input}\n"
            "write: {format: jsonl, filename: \"{stem}.jsonl\"}\n"
            f"deliver:\n  - pickup: {folder}/\n")


def _xlsx_bomb() -> bytes:
    out = io.BytesIO()
    wb = xlsxwriter.Workbook(out, {"in_memory": True})
    wb.add_worksheet("S").write(0, 0, "a")
    wb.close()
    good = zipfile.ZipFile(io.BytesIO(out.getvalue()))
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        for item in good.infolist():
            if item.filename == "xl/worksheets/sheet1.xml":
                with z.open(item.filename, "w") as f:
                    for _ in range(300):  # 300 MiB unpacked, a few hundred KiB packed
                        f.write(b" " * 1_048_576)
            else:
                z.writestr(item, good.read(item))
    return bomb.getvalue()


def _xlsx_far() -> bytes:
    out = io.BytesIO()
    wb = xlsxwriter.Workbook(out, {"in_memory": True})
    ws = wb.add_worksheet("S")
    ws.write(0, 0, "a")
    ws.write(1_048_575, 25, "z")  # one cell a million rows down: a dense range of 27 M
    wb.close()
    return out.getvalue()


LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
          + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1
                                                    else b"&lol;") * 10) for i in range(1, 10))
          + b"]><r><a>&lol9;</a></r>")
HOSTILE = {  # file name -> (its bytes, what the reason must say)
    "xml/laughs.xml": (LAUGHS, "xml: a DOCTYPE is not allowed"),
    "xml/external.xml": (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM '
                         b'"file:///etc/passwd">]><r><a>&x;</a></r>',
                         "xml: a DOCTYPE is not allowed"),
    "xml/one-element.xml": (b"<r><a>" + b"x" * (40 * 1_048_576) + b"</a></r>",
                            "past the parser's limits"),
    "json/deep.json": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "csv/long-line.csv": (b"a,b\n" + b"x" * (16 * 1_048_576) + b",1\n",
                          "csv: line 2 is longer than the limit"),
    "csv/garbage.csv": (bytes(range(256)) * 4096, "not valid UTF-8"),
    "csv/cp1252.csv": ("naam\nMüller\n".encode("cp1252"), "encoding: line 2"),
    "xlsx/bomb.xlsx": (_xlsx_bomb(), "a zip bomb?"),
    "xlsx/far.xlsx": (_xlsx_far(), "1,048,576 rows by 26 columns"),
}


def test_each_hostile_file_fails_with_its_reason_and_the_node_serves_others_meanwhile(
        tmp_path: Path, sqlite_url: str) -> None:
    ctx = make_ctx(tmp_path, sqlite_url, worker_processes=1)
    evil = add_tenant(ctx, tmp_path, "evil", spec=_spec("csvs", "csv", "{format: csv}", "csv"))
    with ctx.unit() as w:
        tenant = require_tenant(w, "evil")
        for name, folder, read, ext in (
                ("xmls", "xml", "{format: xml, record: /r/a}", "xml"),
                ("jsons", "json", "{format: json}", "json"),
                ("sheets", "xlsx", "{format: xlsx}", "xlsx")):
            apply_process(w, tenant, _spec(name, folder, read, ext), "spec")
    good = add_tenant(ctx, tmp_path, "good")
    node = NodeThread(ctx).start()
    try:
        puts = []
        for path, (data, _) in HOSTILE.items():
            local = tmp_path / path.replace("/", "-")
            local.write_bytes(data)
            puts.append(f"put {local} /inbox/{path}")
        sftp_batch(node.port, evil, "\n".join(puts) + "\n")
        fine = tmp_path / "fine.csv"
        fine.write_bytes(b"id;name;amount\n1;Jansen;7,00\n")
        sftp_batch(node.port, good, "".join(f"put {fine} /inbox/orders/w{i}.csv\n"
                                            for i in range(5)))

        def settled() -> bool:
            return len([t for t in transfers_of(ctx) if t.state in (State.FAILED,
                                                                     State.READY)]) == 14

        wait_for(settled, timeout=180, what="every hostile file failed, every good one ready")
        with ctx.reading() as w:
            evil_id = require_tenant(w, "evil").id
            rows = {f"{t.folder}/{t.filename}": t for t in w.session.scalars(
                select(Transfer).where(Transfer.tenant_id == evil_id))}
            kept = w.session.scalars(select(BlobKey.owner_id).where(
                BlobKey.owner_id.in_([t.id for t in rows.values()]))).all()
        for path, (_, says) in HOSTILE.items():
            assert rows[path].state == State.FAILED, path
            assert says in (rows[path].error or ""), (path, rows[path].error)
            assert "lol" not in rows[path].error and "passwd" not in rows[path].error
        assert kept == []  # every blob of theirs erased
        assert [t.state for t in transfers_of(ctx) if t.tenant_id != evil_id] == \
            [State.READY] * 5
    finally:
        node.stop()
        ctx.close()
