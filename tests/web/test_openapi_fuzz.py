"""schemathesis against the OpenAPI document that a live node serves, with a valid token:
no 5xx, no response that breaks the document, no accepted request that the document
forbids, no refused request that it allows (every check schemathesis has)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import CSV_SPEC, add_tenant
from doorvoer.access.policy import Role
from doorvoer.accounts.machines import SCOPES
from doorvoer.accounts.people import create_user
from doorvoer.support import service as support
from doorvoer.tenants.service import require_tenant
from web.api_support import start_web, stop_web

# The API cannot tell in its document which names a tenant's process takes (that is in
# the tenant's spec), so a name outside `match` is refused with a 400 that a schema-valid
# request would not expect. The fuzzed tenant's one process takes every name, so that
# every other rule of the document is held to exactly.
ANY_NAME_SPEC = (CSV_SPEC.replace("name: orders", "name: fuzz")
                 .replace('"orders/*.csv"', '"fuzz/*"').replace("pickup: orders/", "pickup: fuzz/"))
MAX_EXAMPLES = 20  # per operation and phase; about 25 s a database


def test_schemathesis_finds_nothing_against_the_served_document(tmp_path: Path,
                                                                database_url: str) -> None:
    web = start_web(tmp_path, database_url, "other")
    try:
        add_tenant(web.ctx, tmp_path, "fuzz", ANY_NAME_SPEC)
        with web.ctx.unit() as w:  # an admin's token: the audit log and grants too
            admin = create_user(w, "fuzz-admin@example.org", "Fuzz", Role.TENANT_ADMIN,
                                require_tenant(w, "fuzz").id, None)
            w.session.flush()
            admin_id = admin.id
            staff = create_user(w, "fuzz-support@example.org", "Support", Role.SUPPORT,
                                None, None)
            # A request to list, refuse and revoke: a random id finds nothing (404).
            grant_id = support.request_grant(w, staff, require_tenant(w, "fuzz"), "fuzz",
                                             "F-1", ["reports"]).id
        token = web.token("fuzz", SCOPES, created_by=admin_id)
        work = tmp_path / "schemathesis"
        work.mkdir()
        (work / "schemathesis.toml").write_text(f'[parameters]\ngrant_id = "{grant_id}"\n')
        result = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run",
             f"{web.node.base_url}/api/v1/openapi.json",
             "--header", f"Authorization: Bearer {token}",
             "--tls-verify", web.cert,
             "--checks", "all",
             # Strings a URL can carry: a lone surrogate has no UTF-8 form, and the
             # client sends U+FFFD for it, which the API refuses as a bad escape.
             "--generation-codec", "utf-8",
             "--max-examples", str(MAX_EXAMPLES),
             "--request-timeout", "30"],
            cwd=work, capture_output=True, text=True, timeout=300, check=False,
            env={**os.environ, "NO_COLOR": "1"},
        )
        report = result.stdout[-20000:] + result.stderr[-5000:]
        assert result.returncode == 0, report
        assert "No issues found" in result.stdout, report
        assert "12 selected / 12 total" in result.stdout, report
    finally:
        stop_web(web)
