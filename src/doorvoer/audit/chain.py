"""The audit chain's contract (docs/audit.md), as pure functions: an entry's canonical
encoding, its hash, and the check of a whole chain. The export, `doorvoer audit verify`
and a tenant's own script all rest on exactly this.

An entry is a JSON object with exactly the members `seq`, `time`, `actor`, `action`,
`object`, `source`, `prev` and `hash`. `hash` is the hex SHA-256 of the UTF-8 bytes of
the entry without `hash`, serialised canonically: keys sorted, no insignificant
whitespace, non-ASCII kept as UTF-8, no floating-point numbers (Python's
`json.dumps(e, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`, which
matches RFC 8785 for such values). `prev` is the previous entry's hash, 64 zeros for
seq 1.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64
MEMBERS = ("seq", "time", "actor", "action", "object", "source", "prev", "hash")
ACTOR_KINDS = ("person", "account", "staff", "system")


def canonical(entry: dict[str, Any]) -> bytes:
    """The bytes that are hashed: the entry without its `hash`, canonically."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def entry_hash(entry: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(entry)).hexdigest()


def rfc3339(at: datetime) -> str:
    """A time as the chain writes it: UTC, microseconds, `Z`."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def seal(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry with its hash (every other member set)."""
    return {**entry, "hash": entry_hash(entry)}


@dataclass(frozen=True)
class Problem:
    """What is wrong at the first bad place of a chain."""

    seq: int
    reason: str

    def __str__(self) -> str:
        return f"seq {self.seq}: {self.reason}" if self.seq else self.reason


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str


def check(entries: Iterable[dict[str, Any]]) -> tuple[Head, Problem | None]:
    """Walk a chain, oldest first: the last good head, and the first problem (None when
    the whole chain holds). A removed entry is a gap, an inserted one a seq or `prev`
    that does not follow, an edited one a hash that does not match, entries out of
    order a seq that does not follow."""
    head = Head(0, GENESIS)
    for entry in entries:
        expected = head.seq + 1
        seq = entry.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            return head, Problem(expected, "an entry without an integer seq")
        if set(entry) != set(MEMBERS):
            return head, Problem(seq, "the entry's members are not exactly "
                                      + ", ".join(MEMBERS))
        if seq > expected:
            return head, Problem(expected, f"missing: the chain jumps to seq {seq} (a gap)")
        if seq < expected:
            return head, Problem(seq, f"out of order or repeated: seq {seq} after "
                                      f"seq {head.seq}")
        if entry["prev"] != head.hash:
            return head, Problem(seq, "prev is not the hash of the entry before it "
                                      "(reordered, inserted or rewritten)")
        if entry["hash"] != entry_hash(entry):
            return head, Problem(seq, "the hash does not match the entry (edited)")
        head = Head(seq, entry["hash"])
    return head, None
