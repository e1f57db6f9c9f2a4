"""Checking a chain against every checkpoint the node issued and every receipt a tenant
kept (`doorvoer audit verify`, the portal, the API). docs/audit.md gives the same
algorithm as a script of 30 lines that needs only Python and `cryptography`.

A removed, edited, inserted or reordered entry breaks the chain itself (`chain.check`
names the first bad seq). A whole chain rewritten consistently after a checkpoint was
signed still breaks against that checkpoint: the entry at its seq no longer has the
hash it signed, or is gone. The first bad seq is then the checkpoint's (the rewrite is
at or before it, after the last checkpoint that still matches)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from doorvoer.audit import chain as chains
from doorvoer.audit.errors import BadNote
from doorvoer.audit.models import AuditEntry
from doorvoer.audit.notes import Verifier, open_note
from doorvoer.audit.service import checkpoints, entries, head_of, origin
from doorvoer.unit import Work


@dataclass(frozen=True)
class Signed:
    """What a checkpoint says: this chain's entry `seq` has this hash."""

    origin: str
    seq: int
    hash: str


def read_checkpoint(note: str, verifier: Verifier) -> Signed:
    """A checkpoint's claim, once its signature verifies (BadNote otherwise)."""
    lines = open_note(note, verifier).split("\n")
    if len(lines) != 4 or not lines[1].isdigit():
        raise BadNote("not a checkpoint: origin, seq and hash, one per line")
    try:
        raw = base64.b64decode(lines[2], validate=True)
    except binascii.Error:
        raise BadNote("the checkpoint's hash is not base64") from None
    if len(raw) != 32:
        raise BadNote("the checkpoint's hash is not 32 bytes")
    return Signed(lines[0], int(lines[1]), raw.hex())


@dataclass(frozen=True)
class Outcome:
    entries: int
    head: chains.Head
    checked: int  # checkpoints and receipts that hold
    problem: chains.Problem | None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def __str__(self) -> str:
        if self.problem is not None:
            return f"audit chain broken at {self.problem}"
        return (f"{self.entries} entries, head seq {self.head.seq}, head hash "
                f"{self.head.hash}; {self.checked} checkpoint(s) and receipt(s) hold")


def verify(w: Work, chain: str, receipts: Sequence[str] = ()) -> Outcome:
    """Recompute the chain; check it against the node's checkpoints and `receipts`."""
    verifier = w.ctx.signer.verifier
    expected = origin(w, chain)
    problems: list[chains.Problem] = []
    claims: list[Signed] = []
    for note in [c.note for c in checkpoints(w, chain)] + list(receipts):
        try:
            signed = read_checkpoint(note, verifier)
        except BadNote as exc:
            problems.append(chains.Problem(0, f"a checkpoint or receipt does not verify: "
                                              f"{exc}"))
            continue
        if signed.origin != expected:
            problems.append(chains.Problem(
                signed.seq, f"a checkpoint or receipt of another chain ({signed.origin})"))
            continue
        claims.append(signed)
    wanted = {c.seq for c in claims}
    seen: dict[int, str] = {}
    count = 0

    def walk() -> Iterator[dict[str, Any]]:
        nonlocal count
        for entry in entries(w, chain):
            count += 1
            if entry["seq"] in wanted:
                seen[entry["seq"]] = entry["hash"]
            yield entry

    head, broken = chains.check(walk())
    if broken is not None:
        problems.append(broken)
    else:
        recorded = head_of(w, chain)  # where the chain's writers say it ends
        if head.seq < recorded.seq:
            problems.append(chains.Problem(head.seq + 1, (
                f"missing: the chain ends at seq {head.seq}, its head is seq "
                f"{recorded.seq} (entries removed from the end)")))
        elif head.seq > recorded.seq:
            problems.append(chains.Problem(recorded.seq + 1, (
                f"inserted: entries after the head, seq {recorded.seq}")))
        elif head.hash != recorded.hash:
            problems.append(chains.Problem(head.seq, (
                "history rewritten: the last entry is not the head the node wrote")))
    checked = 0
    for claim in claims:
        stored = seen[claim.seq] if claim.seq in seen else _stored_hash(w, chain, claim.seq)
        if stored is None:
            problems.append(chains.Problem(claim.seq, (
                "gone: the checkpoint signed for this seq has no entry any more "
                "(entries were removed)")))
        elif stored != claim.hash:
            problems.append(chains.Problem(claim.seq, (
                "history rewritten: the entry no longer has the hash the checkpoint "
                "signed for it")))
        else:
            checked += 1
    first = min(problems, key=lambda p: p.seq) if problems else None
    return Outcome(count, head, checked, first)


def _stored_hash(w: Work, chain: str, seq: int) -> str | None:
    return w.execute(select(AuditEntry.hash).where(AuditEntry.chain == chain,
                                                    AuditEntry.seq == seq)).scalar()
