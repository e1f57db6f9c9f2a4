"""A tenant's export (P20, GDPR Art. 20 and 28(3)(e–h)): one ZIP with everything held
about it, in open formats, streamed (rows are written as they are read; nothing is held
whole). The layout is a contract:

    README.txt                    every file, its format and its meaning
    data/<kind>.json              a JSON array of objects
    data/<kind>.csv               the same, UTF-8 with a header row
    schema/<kind>.schema.json     JSON Schema 2020-12 of data/<kind>.json
    audit/audit.jsonl             the audit chain, as `doorvoer audit export` writes it
    audit/checkpoints.txt         every signed checkpoint of the chain (signed notes)

No password hash, TOTP secret, token, key or connection secret is in it."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from doorvoer.access.policy import Actor
from doorvoer.audit import service as audit
from doorvoer.audit.events import Event
from doorvoer.context import Context
from doorvoer.privacy.kinds import KINDS, Field, Kind
from doorvoer.tenants.models import Tenant
from doorvoer.unit import Work

STALE_S = 3600  # a temporary export older than this was never sent: it goes
_JSON_TYPE = {"string": "string", "integer": "integer", "boolean": "boolean", "time": "string"}


def schema_of(kind: Kind) -> dict[str, Any]:
    def prop(f: Field) -> dict[str, Any]:
        out: dict[str, Any] = {"type": [_JSON_TYPE[f.type], "null"] if f.nullable
                               else _JSON_TYPE[f.type], "description": f.meaning}
        if f.type == "time":
            out["format"] = "date-time"
        return out

    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://doorvoer.example/export/{kind.name}.schema.json",
            "title": kind.name, "description": kind.meaning, "type": "array",
            "items": {"type": "object", "additionalProperties": False,
                      "required": [f.name for f in kind.fields],
                      "properties": {f.name: prop(f) for f in kind.fields}}}


def readme(tenant: Tenant) -> str:
    lines = [f"Everything Doorvoer holds about {tenant.name} ({tenant.slug}, id {tenant.id}).",
             "No file content is kept, so none is here; no password, TOTP secret, token,",
             "key or connection secret either.", "", "Files:", ""]
    for k in KINDS:
        lines += [f"data/{k.name}.json   JSON array: {k.meaning}. Held for: {k.why}.",
                  f"data/{k.name}.csv    the same as CSV (UTF-8, header row)",
                  f"schema/{k.name}.schema.json   its JSON Schema (2020-12)"]
    lines += ["audit/audit.jsonl   the audit chain, one JSON entry a line, oldest first",
              "                    (check it as docs/audit.md shows)",
              "audit/checkpoints.txt   every signed checkpoint of the chain (C2SP signed notes)",
              "", "Times are RFC 3339 in UTC. Empty CSV cells are nulls.", ""]
    return "\n".join(lines)


def _member(name: str) -> zipfile.ZipInfo:
    """A streamed member, dated now (a bare name would be dated 1980) and compressed."""
    info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def write_export(w: Work, tenant: Tenant, out: IO[bytes],
                 progress: Callable[[str], None] = lambda _: None) -> dict[str, int]:
    """Write the tenant's export to `out` (a seekable binary file), reading in `w` (a
    reading unit: one consistent view, no writer held); returns the rows per kind."""
    counts: dict[str, int] = {}
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("README.txt", readme(tenant))
        for kind in KINDS:
            progress(kind.name)
            names = [f.name for f in kind.fields]
            n = 0
            # One pass for each file (a ZIP takes one writer at a time); the reading
            # unit sees the same rows both times.
            with z.open(_member(f"data/{kind.name}.json"), "w", force_zip64=True) as raw:
                raw.write(b"[")
                for row in kind.rows(w, tenant):
                    ordered = {name: row.get(name) for name in names}
                    raw.write((b",\n" if n else b"\n") + json.dumps(
                        ordered, ensure_ascii=False).encode("utf-8"))
                    n += 1
                raw.write(b"\n]\n" if n else b"]\n")
            with z.open(_member(f"data/{kind.name}.csv"), "w", force_zip64=True) as raw:
                text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
                writer = csv.writer(text)
                writer.writerow(names)
                for row in kind.rows(w, tenant):
                    writer.writerow([_csv_value(row.get(name)) for name in names])
                text.flush()
                text.detach()
            counts[kind.name] = n
            z.writestr(f"schema/{kind.name}.schema.json",
                       json.dumps(schema_of(kind), indent=2) + "\n")
        progress("audit")
        with z.open(_member("audit/audit.jsonl"), "w", force_zip64=True) as raw:
            for entry in audit.entries(w, tenant.id):
                raw.write((json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8"))
        z.writestr("audit/checkpoints.txt",
                   "".join(c.note for c in audit.checkpoints(w, tenant.id)))
    return counts


def export(ctx: Context, tenant_id: str, out: IO[bytes], *, actor: Actor | None,
           how: str, source: str | None = None,
           progress: Callable[[str], None] = lambda _: None) -> dict[str, int]:
    """The tenant's export into `out`, read in one snapshot (no writer held meanwhile),
    then recorded in the tenant's audit log. Returns the rows per kind."""
    with ctx.reading(actor=actor, snapshot=True) as r:
        counts = write_export(r, r.session.get_one(Tenant, tenant_id), out, progress)
    with ctx.unit(actor=actor, source=source) as w:
        audit.record(w, tenant_id, Event.TENANT_EXPORTED,
                     f"{how}: {sum(counts.values())} records")
    return counts


def export_file(ctx: Context, tenant_id: str, actor: Actor | None, source: str | None,
                how: str) -> Path:
    """The export as a temporary file in the data directory (0600), for a door to send
    and then delete."""
    folder = ctx.settings.data_dir / "tmp"
    folder.mkdir(mode=0o700, exist_ok=True)
    for old in folder.glob("export-*.zip"):  # left by a node that stopped mid-send
        if old.stat().st_mtime < time.time() - STALE_S:
            old.unlink(missing_ok=True)
    fd, name = tempfile.mkstemp(prefix=f"export-{tenant_id}-", suffix=".zip", dir=folder)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            export(ctx, tenant_id, f, actor=actor, source=source, how=how)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def export_to(ctx: Context, tenant_id: str, path: Path, actor: Actor | None, how: str,
              progress: Callable[[str], None] = lambda _: None) -> dict[str, int]:
    """The export into a file beside `path`, moved into place once whole."""
    tmp = path.with_name(f".{path.name}.partial")
    try:
        with tmp.open("wb") as f:
            counts = export(ctx, tenant_id, f, actor=actor, how=how, progress=progress)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return counts
