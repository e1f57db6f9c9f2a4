"""The erasure certificate (P19): a signed note in the C2SP `signed-note` format, signed
with the node's key, the same as the audit checkpoints' (`audit/notes.py`). Its text,
one fact a line (the contract, docs/erasure.md):

    doorvoer/<node>/erasure
    tenant <internal id>
    reason request|contract-end|operator
    created <RFC 3339>              the tenant's start
    requested <RFC 3339>
    erased <RFC 3339>
    audit <origin> <seq> <base64 hash>   the last signed checkpoint of the erased chain
    count <kind> <n>                one line per kind of data, sorted by kind

No name, slug, contact, user, account, process or file name is in it."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime

from doorvoer.audit.chain import rfc3339
from doorvoer.audit.errors import BadNote
from doorvoer.audit.notes import Signer, Verifier, open_note
from doorvoer.privacy.errors import BadCertificate

REASONS = ("request", "contract-end", "operator")
_ORIGIN = re.compile(r"^doorvoer/[^\s/]+/erasure$")
_ID = re.compile(r"^[0-9a-zA-Z]{1,32}$")
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
_KIND = re.compile(r"^[a-z_]{1,64}$")


@dataclass(frozen=True)
class Certificate:
    node: str
    tenant_id: str
    reason: str
    created: str
    requested: str
    erased: str
    audit_origin: str
    audit_seq: int
    audit_hash: str  # hex
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def text(self) -> str:
        digest = base64.b64encode(bytes.fromhex(self.audit_hash)).decode()
        lines = [f"doorvoer/{self.node}/erasure", f"tenant {self.tenant_id}",
                 f"reason {self.reason}", f"created {self.created}",
                 f"requested {self.requested}", f"erased {self.erased}",
                 f"audit {self.audit_origin} {self.audit_seq} {digest}",
                 *(f"count {k} {n}" for k, n in sorted(self.counts.items()))]
        return "".join(line + "\n" for line in lines)

    def summary(self) -> str:
        return (f"tenant {self.tenant_id} erased at {self.erased} ({self.reason}): "
                f"{self.total} records of {len(self.counts)} kinds; its audit chain "
                f"up to seq {self.audit_seq}")


def issue(signer: Signer, node: str, tenant_id: str, reason: str, created: datetime,
          requested: datetime, erased: datetime, audit_origin: str, audit_seq: int,
          audit_hash: str, counts: dict[str, int]) -> tuple[Certificate, str]:
    """The certificate and its signed note."""
    cert = Certificate(node, tenant_id, reason, rfc3339(created), rfc3339(requested),
                       rfc3339(erased), audit_origin, audit_seq, audit_hash, dict(counts))
    return cert, signer.sign(cert.text())


def parse(text: str) -> Certificate:
    """The certificate a note's (verified) text states; BadCertificate naming the line
    that is not as the contract has it."""
    lines = text.rstrip("\n").split("\n")
    if not lines or not _ORIGIN.match(lines[0]):
        raise BadCertificate("line 1: not an erasure certificate (doorvoer/<node>/erasure)")
    fields: dict[str, str] = {}
    counts: dict[str, int] = {}
    for no, line in enumerate(lines[1:], start=2):
        key, _, value = line.partition(" ")
        if key == "count":
            kind, _, n = value.partition(" ")
            if not _KIND.match(kind) or not n.isascii() or not n.isdigit() or kind in counts:
                raise BadCertificate(f"line {no}: a count is 'count <kind> <n>', once a kind")
            counts[kind] = int(n)
        elif key in ("tenant", "reason", "created", "requested", "erased", "audit") \
                and key not in fields and not counts:
            fields[key] = value
        else:
            raise BadCertificate(f"line {no}: unexpected {key!r}")
    missing = [k for k in ("tenant", "reason", "created", "requested", "erased", "audit")
               if k not in fields]
    if missing:
        raise BadCertificate(f"no {', '.join(missing)} line")
    if not _ID.match(fields["tenant"]):
        raise BadCertificate("the tenant line holds no internal id")
    if fields["reason"] not in REASONS:
        raise BadCertificate(f"reason {fields['reason']!r}: one of {', '.join(REASONS)}")
    for key in ("created", "requested", "erased"):
        if not _TIME.match(fields[key]):
            raise BadCertificate(f"the {key} line holds no RFC 3339 time in UTC")
    parts = fields["audit"].split(" ")
    origin, seq, digest = parts if len(parts) == 3 else ("", "", "")
    try:
        raw = base64.b64decode(digest, validate=True)
    except binascii.Error:
        raw = b""
    if not origin or not seq.isascii() or not seq.isdigit() or len(raw) != 32:
        raise BadCertificate("the audit line is 'audit <origin> <seq> <base64 SHA-256>'")
    return Certificate(lines[0].split("/")[1], fields["tenant"], fields["reason"],
                       fields["created"], fields["requested"], fields["erased"], origin,
                       int(seq), raw.hex(), counts)


def verify(note: str, verifier: Verifier) -> Certificate:
    """The certificate of a note that `verifier` signed; BadCertificate saying why not."""
    try:
        text = open_note(note, verifier)
    except BadNote as exc:
        raise BadCertificate(str(exc)) from None
    return parse(text)
