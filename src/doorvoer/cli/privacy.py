"""`doorvoer tenant erase` and `doorvoer certificate verify`: a tenant's erasure at
once, for the operator, and checking an erasure certificate (P19, docs/erasure.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from doorvoer.audit.errors import BadNote, BadSigningKey
from doorvoer.audit.notes import Verifier, load_signer
from doorvoer.cli.common import (
    DataDir,
    JsonOut,
    app,
    cli_actor,
    emit,
    fail,
    iso,
    opened,
    out,
    send_mail,
    settings_for,
    tenant_app,
)
from doorvoer.privacy import erasure
from doorvoer.privacy.certificate import verify
from doorvoer.privacy.errors import BadCertificate
from doorvoer.tenants.service import require_tenant

certificate_app = typer.Typer(no_args_is_help=True, help="Erasure certificates (signed "
                                                         "notes).")
app.add_typer(certificate_app, name="certificate")


@tenant_app.command("erase")
def tenant_erase(
    tenant: str,
    confirm: Annotated[str, typer.Option(
        "--confirm", help="The tenant's slug again, to confirm", show_default=False)],
    data_dir: DataDir = None,
) -> None:
    """Erase every row, blob and key of the tenant now, and print the signed erasure
    certificate (also mailed to the tenant's contact and admins)."""
    if confirm != tenant:
        raise fail(f"--confirm {confirm!r} is not {tenant!r}: give the tenant's slug twice")
    with opened(settings_for(data_dir)) as ctx:
        with ctx.unit(actor=cli_actor()) as w:
            done = erasure.erase(w, require_tenant(w, tenant))
        send_mail(ctx, w.outgoing)
    sys.stdout.write(done.note)
    sys.stderr.write(f"{done.certificate.summary()}\n")


@tenant_app.command("erasures")
def tenant_erasures(data_dir: DataDir = None, as_json: JsonOut = False) -> None:
    """The tombstones of erased tenants: internal id, dates, counts (no names)."""
    with opened(settings_for(data_dir)) as ctx, ctx.reading() as w:
        rows = [{"tenant_id": t.tenant_id, "reason": t.reason, "created": iso(t.created_at),
                 "requested": iso(t.requested_at), "erased": iso(t.erased_at),
                 "certificate": t.certificate} for t in erasure.tombstones(w)]
    if not as_json:
        for r in rows:
            del r["certificate"]
    emit(rows, as_json, "Erased tenants")


def _verifier(key: str | None, data_dir: Path | None) -> Verifier:
    if key is None:
        settings = settings_for(data_dir)
        if not settings.signing_key and not settings.signing_key_path.exists():
            raise fail("no --key given and no node here: pass the processor's verifier key")
        try:
            return load_signer(settings.signing_key_path, settings.signing_key,
                               settings.resolved_node_name).verifier
        except (BadNote, BadSigningKey) as exc:
            raise fail(str(exc)) from None
    try:
        return Verifier.parse(key)
    except BadNote:
        pass
    try:
        text = Path(key).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise fail(f"--key {key[:80]!r}: neither a verifier key (name+keyid+base64) nor "
                   "a file holding one") from None
    try:
        return Verifier.parse(text)
    except BadNote as exc:
        raise fail(f"--key {key}: {exc}") from None


@certificate_app.command("verify")
def certificate_verify(
    path: Annotated[Path, typer.Argument(help="The certificate (a signed note)")],
    key: Annotated[str | None, typer.Option(
        "--key", help="The verifier key (name+keyid+base64), or a file holding it; "
        "default: this node's", show_default=False)] = None,
    data_dir: DataDir = None,
) -> None:
    """Check an erasure certificate's signature and contents: exit 0 and what it
    states when valid, 1 and the reason otherwise."""
    try:
        # A mail program may have saved it with CRLF; a note's text never holds a CR.
        note = path.read_text(encoding="utf-8").replace("\r\n", "\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"{path}: cannot read it ({exc})") from None
    verifier = _verifier(key, data_dir)
    try:
        cert = verify(note, verifier)
    except BadCertificate as exc:
        raise fail(f"{path}: not valid: {exc}") from None
    out.print(f"valid, signed by {verifier.name}: {cert.summary()}", highlight=False,
              soft_wrap=True)


@tenant_app.command("contract")
def tenant_contract(
    tenant: str,
    status: Annotated[str, typer.Argument(help="ended (erasure follows after the grace "
                                               "period) or active (stops that erasure)")],
    data_dir: DataDir = None,
) -> None:
    """Mark the tenant's contract ended or active again."""
    with opened(settings_for(data_dir)) as ctx:
        with ctx.unit(actor=cli_actor()) as w:
            row = erasure.set_contract(w, require_tenant(w, tenant), status)
            due = iso(row.due_at) if row is not None else None
        send_mail(ctx, w.outgoing)
    out.print(f"contract of {tenant}: {status}" + (f"; erasure runs at {due}" if due else ""),
              highlight=False)


@tenant_app.command("contacts")
def tenant_contacts(
    tenant: str,
    contact: Annotated[str | None, typer.Option(help="General contact e-mail")] = None,
    invoicing: Annotated[str | None, typer.Option(help="E-mail for invoices only")] = None,
    breach_notice: Annotated[str | None, typer.Option(
        help="E-mail for breach notices only (P18)")] = None,
    breach_webhook: Annotated[str | None, typer.Option(
        help="https:// URL that receives each breach notice as JSON")] = None,
    data_dir: DataDir = None,
) -> None:
    """Set the tenant's contact data, each field for its purpose only (P9); '' clears
    one. Without options, show which field serves which purpose."""
    from doorvoer.tenants.contacts import purposes_of
    from doorvoer.tenants.service import change_contacts

    with opened(settings_for(data_dir)) as ctx, ctx.unit(actor=cli_actor()) as w:
        row = require_tenant(w, tenant)
        change_contacts(w, row, contact=contact, invoicing=invoicing,
                        breach_notice=breach_notice, webhook=breach_webhook)
        for field, purposes in purposes_of(row).items():
            out.print(f"{field}: {', '.join(purposes)}", highlight=False)


@app.command("record")
def record_of_processing(
    tenant: Annotated[str | None, typer.Option(
        "--tenant", help="One controller's record; default: the installation's")] = None,
    fmt: Annotated[str, typer.Option("--format", help="json or pdf")] = "json",
    out_path: Annotated[Path | None, typer.Option(
        "--out", help="Write to this file [default: standard output]")] = None,
    data_dir: DataDir = None,
) -> None:
    """The record of processing activities (GDPR Art. 30(2)), from the configuration."""
    from doorvoer.privacy.record import as_pdf, record

    if fmt not in ("json", "pdf"):
        raise fail(f"--format {fmt!r}: json or pdf")
    with opened(settings_for(data_dir)) as ctx, ctx.reading() as w:
        doc = record(w, require_tenant(w, tenant) if tenant else None)
    data = as_pdf(doc) if fmt == "pdf" else (json.dumps(doc, indent=2, ensure_ascii=False)
                                            + "\n").encode("utf-8")
    if out_path is not None:
        out_path.write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
