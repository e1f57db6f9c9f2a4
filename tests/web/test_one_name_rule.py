"""One name rule for both doors: SFTP and HTTPS refuse and accept exactly the same names.

A name either door refuses outright, both refuse with the same reason. A name SFTP takes
and processes at once, HTTPS takes. A name SFTP takes but holds for a rename (a temporary
or unmatched name), HTTPS refuses, since no rename can follow an HTTPS upload."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import asyncssh
import pytest

from conftest import asftp, transfers_of, wait_for
from doorvoer.transfers.inbox import name_problem
from doorvoer.transfers.models import State
from web.api_support import ORDERS, Web, start_web, stop_web

NAMES = [
    "week45.csv",  # taken by both
    "week 45 €.csv",
    "x" * 251 + ".csv",  # 255 bytes: the longest name
    "é" * 125 + ".csv",  # 254 bytes in 129 characters
    "é" * 126 + ".csv",  # 256 bytes in 130 characters: too long, in bytes
    "x" * 252 + ".csv",  # 256 bytes
    "week45.CSV",  # the pattern is *.csv: held (SFTP), refused (HTTPS)
    "week45.txt",
    "week45.csv.part",  # temporary names
    "week45.csv.filepart",
    ".week45.csv",
    "week45.csv~",
    "a\\b.csv",  # never a name
    "a\x01b.csv",
    "a\x7fb.csv",
    "a\ufffdb.csv",
]
ALL = ["upload", "transfers:read", "processes:read"]


@pytest.fixture
def web(tmp_path: Path, sqlite_url: str) -> Iterator[Web]:
    w = start_web(tmp_path, sqlite_url, "acme", stat_grace_s=0.0, rename_wait_s=60.0)
    yield w
    stop_web(w)


def _sftp(web: Web, name: str) -> str:
    """'refused: <reason>', 'received' or 'held'."""

    async def go() -> str:
        conn, sftp = await asftp(web.node.port, web.logins["acme"])
        async with conn:
            try:
                async with sftp.open(f"/inbox/orders/{name}".encode(), "wb") as f:
                    await f.write(ORDERS)
            except asyncssh.SFTPError as exc:
                return f"refused: {exc.reason}"
        return "closed"

    outcome = asyncio.run(go())
    if outcome != "closed":
        return outcome
    t = wait_for(lambda: [t for t in transfers_of(web.ctx) if t.filename == name
                          and t.state != State.RECEIVING], what=f"{name!r} closed")[-1]
    return "held" if t.state == State.HELD else "received"


def _https(web: Web, name: str) -> str:
    with web.client(web.token("acme", ALL)) as c:
        r = c.put("/api/v1/processes/orders/files/" + quote(name, safe=""),
                  content=ORDERS)
    if r.status_code == 201:
        return "received"
    assert r.status_code == 400, (name, r.status_code, r.text)
    return f"refused: {r.json()['detail']}"


def test_sftp_and_https_refuse_and_accept_the_same_names(web: Web) -> None:
    seen = {}
    for name in NAMES:
        sftp, https = _sftp(web, name), _https(web, name)
        seen[name] = (sftp, https)
        problem = name_problem(name)
        if problem is not None:  # no such name in either door
            assert sftp.startswith("refused:") and problem in sftp, (name, sftp)
            assert https == f"refused: {problem}", (name, https)
        elif sftp == "received":
            assert https == "received", name
        else:
            assert sftp == "held", (name, sftp)
            assert https.startswith("refused: "), (name, https)
    # What the list above says of itself, so that every kind of name is covered.
    kinds = [v[0].split(":")[0] for v in seen.values()]
    assert kinds.count("received") == 4
    assert kinds.count("held") == 6
    assert kinds.count("refused") == 6
