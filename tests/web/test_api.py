"""The JSON API over a real HTTPS node, on SQLite and PostgreSQL: tokens, scopes, tenants
kept apart, and uploads that stream into the vault like SFTP uploads."""

from __future__ import annotations

import json
import os
import secrets
import socket
import ssl
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from conftest import sftp_batch, wait_for
from doorvoer.access.policy import Role
from doorvoer.accounts.models import User
from doorvoer.cli import TRANSFER_FIELDS, transfer_rows
from doorvoer.db import utcnow
from doorvoer.transfers.models import State, Transfer
from doorvoer.transfers.outbox import outbox_entries
from doorvoer.transfers.schemas import TransferOut
from doorvoer.vault.models import BlobKey
from web.api_support import ORDERS, Web, start_web, stop_web

ALL = ["upload", "transfers:read", "processes:read"]
UPLOAD = "/api/v1/processes/orders/files/"


@pytest.fixture
def web(tmp_path: Path, database_url: str) -> Iterator[Web]:
    w = start_web(tmp_path, database_url, "acme", "other")
    yield w
    stop_web(w)


def transfer_row(web: Web, transfer_id: str) -> Transfer:
    with web.ctx.reading() as w:
        return w.session.get_one(Transfer, transfer_id)


def blobs_of(web: Web, transfer_id: str) -> list[BlobKey]:
    with web.ctx.reading() as w:
        return list(w.session.scalars(select(BlobKey).where(BlobKey.owner_id == transfer_id)))


def all_transfers(web: Web) -> list[Transfer]:
    with web.ctx.reading() as w:
        return list(w.session.scalars(select(Transfer)))


# ---------------------------------------------------------------- tokens


def test_a_request_without_a_live_token_is_refused(web: Web) -> None:
    admin_id, _, _ = web.person("acme")
    live = web.token("acme", ALL, created_by=admin_id)
    revoked = web.token("acme", ALL)
    expired = web.token("acme", ALL)
    with web.client(revoked) as c:
        assert c.get("/api/v1/transfers").status_code == 200
    web.revoke(revoked)
    web.expire(expired)

    for header in ({}, {"Authorization": "Bearer nonsense"},
                   {"Authorization": f"Bearer {live}x"}, {"Authorization": f"Basic {live}"},
                   {"Authorization": f"Bearer {revoked}"}, {"Authorization": f"Bearer {expired}"}):
        with web.client(headers=header) as c:
            r = c.get("/api/v1/transfers")
            assert r.status_code == 401, header
            assert r.json() == {"detail": "authentication required"}
            assert r.headers["www-authenticate"] == "Bearer"
            assert c.put(UPLOAD + "a.csv", content=ORDERS).status_code == 401
    assert not all_transfers(web)

    with web.client(live) as c:
        assert c.get("/api/v1/transfers").status_code == 200
        # A token stops working when the person who made it is disabled.
        with web.ctx.unit() as w:
            w.session.get_one(User, admin_id).disabled_at = utcnow()
        assert c.get("/api/v1/transfers").status_code == 401


def test_scopes_limit_what_a_token_may_do(web: Web) -> None:
    only_transfers = web.client(web.token("acme", ["transfers:read"]))
    only_processes = web.client(web.token("acme", ["processes:read"]))
    only_upload = web.client(web.token("acme", ["upload"]))
    with only_transfers, only_processes, only_upload:
        assert only_transfers.put(UPLOAD + "a.csv", content=ORDERS).status_code == 403
        assert only_transfers.get("/api/v1/processes").status_code == 403
        assert only_transfers.get("/api/v1/transfers").status_code == 200
        assert only_processes.get("/api/v1/transfers").status_code == 403
        assert only_processes.put(UPLOAD + "a.csv", content=ORDERS).status_code == 403
        assert only_processes.get("/api/v1/processes").status_code == 200
        assert not all_transfers(web)  # a refused upload leaves nothing behind
        r = only_upload.put(UPLOAD + "a.csv", content=ORDERS)
        assert r.status_code == 201
        assert only_upload.get("/api/v1/transfers").status_code == 403
        assert only_upload.get(r.headers["location"]).status_code == 403
        assert only_upload.get("/api/v1/processes").status_code == 403

    # Never more than the person who made it: an external user with reports only.
    external, _, _ = web.person("acme", Role.EXTERNAL, frozenset({"reports"}))
    with web.client(web.token("acme", ALL, created_by=external)) as c:
        assert c.get("/api/v1/transfers").status_code == 403
        assert c.put(UPLOAD + "b.csv", content=ORDERS).status_code == 403


def test_another_tenants_token_sees_none_of_this_tenants_data(web: Web) -> None:
    with web.client(web.token("acme", ALL)) as acme:
        mine = acme.put(UPLOAD + "week45.csv", content=ORDERS).json()
    with web.client(web.token("other", ALL)) as other:
        assert other.get("/api/v1/transfers").json() == []
        assert other.get(f"/api/v1/transfers/{mine['id']}").status_code == 404
        unknown = other.get(f"/api/v1/transfers/{secrets.token_hex(16)}")
        assert unknown.status_code == 404
        assert unknown.json() == other.get(f"/api/v1/transfers/{mine['id']}").json()
        assert other.get("/api/v1/transfers", params={"process": "orders"}).json() == []
        theirs = other.put(UPLOAD + "week45.csv", content=ORDERS)
        assert theirs.status_code == 201
        assert theirs.json()["tenant"] == "other"
        assert [t["id"] for t in other.get("/api/v1/transfers").json()] == \
            [theirs.json()["id"]]
    assert transfer_row(web, mine["id"]).tenant_id == web.tenant_id("acme")
    assert transfer_row(web, theirs.json()["id"]).tenant_id == web.tenant_id("other")


# ---------------------------------------------------------------- reading


def test_transfers_and_processes_are_listed_with_the_cli_fields(web: Web) -> None:
    assert tuple(TransferOut.model_fields) == TRANSFER_FIELDS
    with web.client(web.token("acme", ALL)) as c:
        processes = c.get("/api/v1/processes").json()
        assert len(processes) == 1
        p = processes[0]
        assert (p["name"], p["folder"], p["match"], p["version"], p["inbox"],
                p["upload_url"]) == ("orders", "orders", "orders/*.csv", 1, "/inbox/orders/",
                                     "/api/v1/processes/orders/files/")
        assert p["updated_at"].endswith("Z")

        good = c.put(UPLOAD + "good.csv", content=ORDERS).json()
        bad = c.put(UPLOAD + "bad.csv", content=b"id;name\r\n1;2;3;4\r\n").json()
        wait_for(lambda: transfer_row(web, good["id"]).state == State.READY, what="READY")
        wait_for(lambda: transfer_row(web, bad["id"]).state == State.FAILED, what="FAILED")

        listed = c.get("/api/v1/transfers").json()
        assert [t["id"] for t in listed] == [bad["id"], good["id"]]  # newest first
        # One serializer: the API gives exactly what `transfers list --json` gives.
        assert listed == transfer_rows(web.ctx, "acme")
        assert set(listed[0]) == set(TRANSFER_FIELDS)
        assert listed[1]["state"] == "READY"
        assert listed[1]["filename"] == "orders/good.csv"
        assert listed[1]["received_at"].endswith("Z")
        assert listed[0]["error"] and "1;2;3;4" not in listed[0]["error"]

        def ids(**params: str | int) -> list[str]:
            r = c.get("/api/v1/transfers", params=params)
            assert r.status_code == 200, r.text
            return [t["id"] for t in r.json()]

        assert ids(state="READY") == [good["id"]]
        assert ids(state="FAILED") == [bad["id"]]
        assert ids(state="ERASED") == []
        assert ids(process="orders") == [bad["id"], good["id"]]
        assert ids(process="invoices") == []
        assert ids(limit=1) == [bad["id"]]
        future = (utcnow() + timedelta(hours=1)).isoformat()
        past = (utcnow() - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
        assert ids(since=future) == []
        assert ids(since=past) == [bad["id"], good["id"]]
        assert ids(since="9999-12-31T23:59:59-05:00") == []
        for bad_params in ({"limit": 0}, {"limit": 1001}, {"state": "DONE"},
                           {"since": "yesterday"}, {"since": "2025-01-01T00:00:00"},
                           {"process": "a/b"}):
            assert c.get("/api/v1/transfers", params=bad_params).status_code == 422, \
                bad_params

        one = c.get(f"/api/v1/transfers/{good['id']}")
        assert one.status_code == 200
        assert one.json() == listed[1]
        assert c.get("/api/v1/transfers/not-an-id").status_code == 404


# ---------------------------------------------------------------- uploading


def test_an_https_upload_is_transformed_and_waits_in_the_outbox(web: Web) -> None:
    with web.client(web.token("acme", ALL)) as c:
        r = c.put(UPLOAD + "week45.csv", content=ORDERS,
                  headers={"Content-Type": "text/csv"})
        assert r.status_code == 201, r.text
        body = r.json()
        assert r.headers["location"] == f"/api/v1/transfers/{body['id']}"
        assert body["state"] in {"RECEIVED", "PROCESSING", "DELIVERING", "READY"}
        assert (body["process"], body["filename"], body["bytes_in"]) == \
            ("orders", "orders/week45.csv", len(ORDERS))
        ready = wait_for(lambda: (t := c.get(r.headers["location"]).json())["state"] ==
                         "READY" and t, what="the transfer READY")
    assert (ready["rows_in"], ready["rows_out"]) == (2, 2)
    assert ready["input_erased_at"] is not None
    t = transfer_row(web, body["id"])
    assert t.account_id is None  # no SFTP account: a token uploaded it
    assert [b.role for b in blobs_of(web, t.id)] == ["output"]  # the input is erased
    assert [e.name for e in web.ctx.run(outbox_entries, web.tenant_id("acme"), "orders")] == \
        ["week45.json"]
    # The same outbox over SFTP: one byte path, whichever door the file came in by.
    dest = web.tmp_path / "got.json"
    sftp_batch(web.node.port, web.logins["acme"], f"get /outbox/orders/week45.json {dest}\n")
    assert json.loads(dest.read_bytes()) == [
        {"id": "1", "name": "BAKKER €", "amount": 12.5},
        {"id": "2", "name": "DE; VRIES", "amount": 7.0},
    ]


REFUSED_NAMES = [
    ("week45.csv.part", 400, "temporary name"),
    ("week45.csv.filepart", 400, "temporary name"),
    (".week45.csv", 400, "temporary name"),
    ("week45.csv~", 400, "temporary name"),
    ("WEEK45.CSV.TMP", 400, "temporary name"),
    ("week45.txt", 400, "takes only names matching '*.csv'"),
    ("a%5Cb.csv", 400, "backslashes"),
    ("a%01b.csv", 400, "control characters"),
    ("a%0Ab.csv", 400, "control characters"),
    ("a%7Fb.csv", 400, "control characters"),
    ("%FF.csv", 400, "UTF-8"),
    ("x" * 252 + ".csv", 400, "longer than 255"),
    ("a%2Fb.csv", 404, None),  # a slash makes another path, which does not exist
    ("..%2F..%2Fetc.csv", 404, None),
]


def test_a_name_sftp_would_refuse_is_refused_with_a_reason(web: Web) -> None:
    with web.client(web.token("acme", ALL)) as c:
        for filename, status, message in REFUSED_NAMES:
            r = c.put(UPLOAD + filename, content=ORDERS)
            assert r.status_code == status, (filename, r.text)
            if message:
                assert message in r.json()["detail"], filename
        r = c.put("/api/v1/processes/invoices/files/a.csv", content=ORDERS)
        assert r.status_code == 404
        assert r.json() == {"detail": "no process named 'invoices'"}
    assert not all_transfers(web)


def _files_containing(needle: bytes, roots: list[Path], since: float) -> list[Path]:
    found = []
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                path = Path(dirpath, name)
                try:
                    if not path.is_file() or path.stat().st_mtime < since:
                        continue
                    if needle in path.read_bytes():
                        found.append(path)
                except OSError:
                    continue
    return found


def _open_files_containing(needle: bytes) -> list[str]:
    """Files this process (test and node alike) holds open, unlinked ones included: a
    spooled temporary file is usually unlinked at once, so no directory shows it."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
            if not target.startswith("/") or target.startswith(("/dev/", "/proc/",
                                                                  "/memfd:")):
                continue  # sockets, pipes, memory: not disk
            with open(f"/proc/self/fd/{fd}", "rb") as f:
                if needle in f.read(64 * 1024 * 1024):
                    found.append(target)
        except OSError:
            continue
    return found


def test_a_large_upload_streams_into_the_vault_without_a_temporary_file(web: Web) -> None:
    sentinel = ("plaintext-" + secrets.token_hex(12)).encode()
    header = b"id;name;amount\r\n"
    rows = 40_000  # about 1.9 MiB
    chunk_rows = 1000
    size = len(header) + sum(len(b"%d;%s;1,00\r\n" % (i, sentinel)) for i in range(rows))
    assert size > 1024 * 1024
    roots = sorted({Path(tempfile.gettempdir()).resolve(), Path("/tmp").resolve(),
                    Path("/var/tmp").resolve(), Path("/dev/shm").resolve()})
    seen: list[Path] = []
    start = time.time() - 1

    def body() -> Iterator[bytes]:
        yield header
        for first in range(0, rows, chunk_rows):
            yield b"".join(b"%d;%s;1,00\r\n" % (i, sentinel)
                           for i in range(first, first + chunk_rows))
            if first == rows // 2:
                time.sleep(0.3)  # let the server take in what it has been sent
                seen.extend(_files_containing(sentinel, roots, start))
                seen.extend(map(Path, _open_files_containing(sentinel)))

    with web.client(web.token("acme", ALL)) as c:
        r = c.put(UPLOAD + "big.csv", content=body())
        assert r.status_code == 201, r.text
        seen.extend(_files_containing(sentinel, roots, start))
        assert seen == [], f"plaintext on disk: {seen}"
        assert r.json()["bytes_in"] == size
        done = wait_for(lambda: (t := c.get(r.headers["location"]).json())["state"] in
                        ("READY", "FAILED") and t, timeout=60, what="processed")
    assert done["state"] == "READY", done["error"]
    assert done["rows_in"] == rows


def test_an_oversize_upload_is_refused_and_interrupted(tmp_path: Path,
                                                      database_url: str) -> None:
    limit = 256 * 1024
    web = start_web(tmp_path, database_url, "acme", max_file_bytes=limit)
    try:
        with web.client(web.token("acme", ALL)) as c:
            # Chunked, so the server finds out while it reads.
            chunks = (b"x" * 65536 for _ in range(16))
            r = c.put(UPLOAD + "streamed.csv", content=chunks)
            assert r.status_code == 413
            assert r.json()["detail"] == f"the file is larger than the limit of {limit} bytes"
            # With a Content-Length, refused before a byte is read.
            r = c.put(UPLOAD + "declared.csv", content=b"x" * (limit + 1))
            assert r.status_code == 413
            # Exactly the limit is fine.
            assert c.put(UPLOAD + "exact.csv", content=b"x" * limit).status_code == 201
        states = {t.filename: t for t in all_transfers(web)}
        for name in ("streamed.csv", "declared.csv"):
            t = states[name]
            assert t.state == State.INTERRUPTED
            assert t.error is not None and "limit" in t.error
            assert t.erased_at is not None
            assert blobs_of(web, t.id) == []

        # A client that asks first (Expect: 100-continue, as curl does) never has to send.
        with _tls(web) as sock:
            sock.sendall(_put_head(web, "asked.csv", 10 * limit, expect=True))
            head = _read_head(sock)
        assert head.startswith(b"HTTP/1.1 413"), head
        wait_for(lambda: any(t.filename == "asked.csv" and t.state == State.INTERRUPTED
                             for t in all_transfers(web)), what="asked.csv INTERRUPTED")
    finally:
        stop_web(web)


def test_a_client_that_aborts_mid_body_leaves_an_interrupted_transfer(web: Web) -> None:
    with _tls(web) as sock:
        sock.sendall(_put_head(web, "cut.csv", 1_000_000))
        sock.sendall(ORDERS * 2000)  # about 100 KiB of the promised 1 MB
        wait_for(lambda: any(t.filename == "cut.csv" for t in all_transfers(web)),
                 what="the upload to begin")
    t = wait_for(lambda: next((t for t in all_transfers(web)
                               if t.filename == "cut.csv" and t.state.final), None),
                 what="the cut upload to end")
    assert t.state == State.INTERRUPTED
    assert t.error == "the connection ended before the whole file arrived"
    assert t.received_at is None and t.process_id is None  # never processed
    assert blobs_of(web, t.id) == []


def _tls(web: Web) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", web.node.node.http_port), timeout=10)
    return web.tls.wrap_socket(raw, server_hostname="127.0.0.1")


def _put_head(web: Web, name: str, length: int, expect: bool = False) -> bytes:
    token = web.token("acme", ["upload"])
    lines = [f"PUT {UPLOAD}{name} HTTP/1.1", "Host: 127.0.0.1",
             f"Authorization: Bearer {token}", f"Content-Length: {length}",
             "Content-Type: application/octet-stream"]
    if expect:
        lines.append("Expect: 100-continue")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_head(sock: ssl.SSLSocket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        got = sock.recv(4096)
        if not got:
            break
        data += got
    return data


def test_the_openapi_document_describes_tokens_errors_and_a_binary_body(web: Web) -> None:
    doc = httpx.get(web.node.base_url + "/api/v1/openapi.json", verify=web.tls).json()
    assert doc["components"]["securitySchemes"]["ApiToken"]["scheme"] == "bearer"
    upload = doc["paths"]["/api/v1/processes/{name}/files/{filename}"]["put"]
    assert upload["requestBody"]["content"] == {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    assert {"201", "400", "401", "403", "404", "413"} <= set(upload["responses"])
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert op["security"] == [{"ApiToken": []}], (method, path)
            assert {"401", "403"} <= set(op["responses"]), (method, path)
    assert all(p.startswith("/api/v1/") for p in doc["paths"])  # no portal pages
