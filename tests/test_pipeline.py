"""The whole path with OpenSSH's sftp: upload, transform, pickup, erase."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import Login, NodeThread, sftp_batch, transfers_of, wait_for
from doorvoer.context import Context
from doorvoer.transfers.models import State
from doorvoer.vault.models import BlobKey

ORDERS = "id;name;amount\r\n1;Bakker €;12,50\r\n2;\"De; Vries\";7,00\r\n".encode("cp1252")


def test_upload_is_transformed_picked_up_and_erased(
    ctx: Context, node: NodeThread, login: Login, tmp_path: Path
) -> None:
    src = tmp_path / "week45.csv"
    src.write_bytes(ORDERS)
    sftp_batch(node.port, login, f"put {src} /inbox/orders/week45.csv\n")

    listing = wait_for(
        lambda: "week45.json" in sftp_batch(node.port, login, "ls /outbox/orders\n").stdout,
        what="the output in the outbox",
    )
    assert listing
    dest = tmp_path / "got.json"
    sftp_batch(node.port, login, f"get /outbox/orders/week45.json {dest}\n")
    assert json.loads(dest.read_bytes()) == [
        {"id": "1", "name": "BAKKER €", "amount": 12.5},
        {"id": "2", "name": "DE; VRIES", "amount": 7.0},
    ]

    t = wait_for(lambda: [t for t in transfers_of(ctx) if t.state == State.ERASED],
                 what="the transfer to be erased")[0]
    assert t.filename == "week45.csv"
    assert t.folder == "orders"
    assert t.bytes_in == len(ORDERS)
    assert t.bytes_out == dest.stat().st_size
    assert (t.rows_in, t.rows_out) == (2, 2)
    assert t.received_at <= t.processed_at <= t.input_erased_at <= t.erased_at
    assert t.residence_seconds is not None
    assert t.residence_seconds < 10
    with ctx.reading() as w:
        assert w.session.query(BlobKey).count() == 0
    assert list(ctx.vault.store.ids()) == []
    # Gone from the outbox once the fetch grace is over.
    assert "week45.json" not in sftp_batch(node.port, login, "ls /outbox/orders\n").stdout


FIXED_SPEC = """\
name: ledger
match: "ledger/*.txt"
read:
  format: fixed
  encoding: cp1252
  skip_lines: 1
  columns:
    - {name: account, start: 1, width: 6}
    - {name: holder, width: 14}
    - {name: amount, start: 22, width: 9}
transform:
  sql: SELECT account, holder, CAST(replace(amount, ',', '.') AS DECIMAL(9,2)) AS amount
       FROM input
write: {format: json, filename: "{stem}.json"}
deliver:
  - pickup: ledger/
"""


def test_a_fixed_width_file_over_sftp_is_read_by_its_layout(
        ctx: Context, tmp_path: Path) -> None:
    from conftest import add_tenant

    login = add_tenant(ctx, tmp_path, "bank", spec=FIXED_SPEC)
    node = NodeThread(ctx).start()
    try:
        src = tmp_path / "day1.txt"
        src.write_bytes(("REKNR NAAM           BEDRAG\r\n"
                         "100200Bakker & Zn.   0001250,50\r\n"
                         "100201Müller         0000007,00\r\n").encode("cp1252"))
        bad = tmp_path / "day2.txt"
        bad.write_bytes(b"header\r\n100200Bakker\r\n")
        sftp_batch(node.port, login, f"put {src} /inbox/ledger/day1.txt\n"
                                     f"put {bad} /inbox/ledger/day2.txt\n")
        wait_for(lambda: {t.state for t in transfers_of(ctx)} == {State.READY, State.FAILED},
                 what="one output ready, one transfer failed")
        dest = tmp_path / "got.json"
        sftp_batch(node.port, login, f"get /outbox/ledger/day1.json {dest}\n")
        assert json.loads(dest.read_bytes()) == [
            {"account": "100200", "holder": "Bakker & Zn.", "amount": 1250.5},
            {"account": "100201", "holder": "Müller", "amount": 7.0}]
        failed = next(t for t in transfers_of(ctx) if t.state == State.FAILED)
        assert failed.error == "fixed: line 2: the record has 12 characters; the layout needs 30"
    finally:
        node.stop()


XLSX_SPEC = """\
name: prices
match: "prices/*.xlsx"
read: {format: xlsx, sheet: Prijzen, header_row: 2}
transform:
  sql: SELECT sku, price, since FROM input WHERE price > 1
write: {format: csv, filename: "{stem}.csv", delimiter: ";", encoding: cp1252, newline: crlf}
deliver:
  - pickup: prices/
"""


def test_an_excel_price_list_over_sftp_is_read_with_its_types(
        ctx: Context, tmp_path: Path) -> None:
    import datetime as dt
    import io

    import xlsxwriter

    from conftest import add_tenant

    out = io.BytesIO()
    wb = xlsxwriter.Workbook(out, {"in_memory": True})
    ws = wb.add_worksheet("Prijzen")
    ws.write_row(0, 0, ["Prijslijst"])
    ws.write_row(1, 0, ["sku", "price", "since"])
    ws.write_row(2, 0, ["A-1", 1.5])
    ws.write_datetime(2, 2, dt.datetime(2026, 12, 1), wb.add_format({"num_format": "d-m-yy"}))
    ws.write_row(3, 0, ["B-2", 0.5, None])
    ws.write_row(4, 0, ["Ü-3", 12])
    wb.close()
    login = add_tenant(ctx, tmp_path, "shop", spec=XLSX_SPEC)
    node = NodeThread(ctx).start()
    try:
        src = tmp_path / "week49.xlsx"
        src.write_bytes(out.getvalue())
        sftp_batch(node.port, login, f"put {src} /inbox/prices/week49.xlsx\n")
        wait_for(lambda: {t.state for t in transfers_of(ctx)} == {State.READY},
                 what="the output ready")
        dest = tmp_path / "got.csv"
        sftp_batch(node.port, login, f"get /outbox/prices/week49.csv {dest}\n")
        assert dest.read_bytes() == ("sku;price;since\r\nA-1;1.5;2026-12-01\r\n"
                                     "Ü-3;12.0;\r\n").encode("cp1252")
    finally:
        node.stop()
