"""Many writers of one chain at once — 8 SFTP clients, API uploads, portal sign-ins,
the worker — leave one unbroken chain per tenant, with every event in it once."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import asftp, transfers_of, wait_for
from doorvoer.access.policy import Role
from doorvoer.audit import service as audit
from doorvoer.audit.verify import verify
from doorvoer.transfers.models import State
from web.api_support import ORDERS, Web, start_web, stop_web

CLIENTS, FILES = 8, 6


@pytest.fixture
def web(tmp_path: Path, database_url: str) -> Iterator[Web]:
    w = start_web(tmp_path, database_url, "acme", "other", workers=4)
    yield w
    stop_web(w)


def test_concurrent_writers_keep_one_unbroken_chain_per_tenant(web: Web) -> None:
    token = web.token("acme", ["upload"])
    _, email, password = web.person("acme", Role.TENANT_MEMBER)

    async def sftp_client(n: int, slug: str) -> None:
        conn, sftp = await asftp(web.node.port, web.logins[slug])
        async with conn:
            for i in range(FILES):
                async with sftp.open(f"/inbox/orders/c{n}-{i}.csv", "wb") as f:
                    await f.write(ORDERS)

    async def sftp_clients() -> None:
        await asyncio.gather(*(sftp_client(n, "acme" if n % 4 else "other")
                               for n in range(CLIENTS)))

    def api_uploads() -> None:
        with web.client(token) as c:
            for i in range(FILES):
                assert c.put(f"/api/v1/processes/orders/files/api-{i}.csv",
                             content=ORDERS).status_code == 201

    def portal() -> None:
        for _ in range(4):
            with web.client() as c:
                c.post("/login", data={"email": email, "password": "wrong password!"})
            with web.logged_in(email, password) as c:
                assert c.get("/t/acme/dashboard").status_code == 200

    threads = [threading.Thread(target=api_uploads), threading.Thread(target=portal)]
    for t in threads:
        t.start()
    asyncio.run(sftp_clients())
    for t in threads:
        t.join(60)
    uploads = CLIENTS * FILES + FILES
    wait_for(lambda: sum(t.state == State.READY for t in transfers_of(web.ctx)) == uploads,
             timeout=60, what="every upload processed")

    for slug, sftp_files, api_files in (("acme", 6 * FILES, FILES), ("other", 2 * FILES, 0)):
        chain = web.tenant_id(slug)
        with web.ctx.reading() as w:
            outcome = verify(w, chain)
            actions = Counter(e["action"] for e in audit.entries(w, chain))
        assert outcome.ok, str(outcome)
        assert actions["upload:file:accepted"] == sftp_files + api_files
        assert actions["transfer:file:processed"] == sftp_files + api_files
        assert actions["transfer:input:erased"] == sftp_files + api_files
        assert actions["sftp:session:started"] == (6 if slug == "acme" else 2)
        if slug == "acme":
            assert actions["portal:login:succeeded"] == 4
            assert actions["portal:login:failed"] == 4
