"""The audit chain (P23): written with the change it records, one unbroken chain per
tenant, and `audit verify` finds any deletion, edit, insertion or reordering, and any
consistent rewrite after a checkpoint, naming the right seq."""

from __future__ import annotations

import itertools
import secrets
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select, update

from doorvoer.audit import service as audit
from doorvoer.audit.chain import GENESIS, Head, entry_hash
from doorvoer.audit.events import Event
from doorvoer.audit.models import AuditEntry, AuditHead, Checkpoint
from doorvoer.audit.notes import Signer, Verifier, open_note
from doorvoer.audit.verify import read_checkpoint, verify
from doorvoer.context import Context
from doorvoer.errors import UserError
from doorvoer.tenants.service import create_tenant

E = AuditEntry.__table__


def _chain(ctx: Context, events: int, checkpoints_at: set[int]) -> str:
    """A fresh chain of `events` entries, signed after the entries in `checkpoints_at`."""
    chain = secrets.token_hex(16)
    with ctx.unit() as w:
        audit.start_chain(w, chain)
    for seq in range(1, events + 1):
        with ctx.unit(source="192.0.2.7") as w:
            audit.record(w, chain, Event.UPLOAD_ACCEPTED, f"{seq:032x} orders/é{seq}.csv",
                         checkpoint=seq in checkpoints_at)
    return chain


def _rows(ctx: Context, chain: str) -> list[Any]:
    with ctx.reading() as w:
        return w.execute(select(E).where(E.c.chain == chain).order_by(E.c.seq)).all()


def _verify(ctx: Context, chain: str, receipts: list[str] = ()) -> Any:  # type: ignore[assignment]
    with ctx.reading() as w:
        return verify(w, chain, list(receipts))


def test_entries_commit_with_their_change_and_never_without_it(ctx: Context) -> None:
    with ctx.unit() as w:
        tenant = create_tenant(w, "acme", "Acme", None)

    def failing() -> None:
        with ctx.unit() as w:
            audit.record(w, tenant.id, Event.PROCESS_APPLIED, "orders v1")
            create_tenant(w, "acme", "Again", None)  # fails: the entry goes with it

    with pytest.raises(UserError):
        failing()
    with ctx.reading() as w:
        got = [e["action"] for e in audit.entries(w, tenant.id)]
    assert got == ["tenant:tenant:created"]
    assert _verify(ctx, tenant.id).ok


def test_an_untouched_chain_verifies_with_its_checkpoints(ctx: Context) -> None:
    chain = _chain(ctx, 6, {2, 5})
    outcome = _verify(ctx, chain)
    assert outcome.ok, str(outcome)
    assert (outcome.entries, outcome.head.seq, outcome.checked) == (6, 6, 2)
    with ctx.reading() as w:
        notes = audit.checkpoints(w, chain)
        verifier = w.ctx.signer.verifier
    assert [read_checkpoint(c.note, verifier).seq for c in notes] == [2, 5]
    rows = _rows(ctx, chain)
    assert rows[0].prev == GENESIS and rows[0].source == "192.0.2.7"
    assert all(b.prev == a.hash for a, b in itertools.pairwise(rows))


MUTATIONS = st.sampled_from(["delete", "edit", "insert", "swap", "rewrite"])


@settings(max_examples=25, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture])
@given(n=st.integers(3, 9), mutation=MUTATIONS, data=st.data())
def test_any_tampering_is_found_at_the_right_seq(ctx: Context, n: int, mutation: str,
                                                 data: st.DataObject) -> None:
    marks = data.draw(st.sets(st.integers(1, n), max_size=3))
    chain = _chain(ctx, n, marks)
    k = data.draw(st.integers(1, n), label="seq")
    rows = _rows(ctx, chain)
    with ctx.unit() as w:
        if mutation == "delete":
            w.execute(delete(E).where(E.c.chain == chain, E.c.seq == k))
            expected = k
        elif mutation == "edit":
            w.execute(update(E).where(E.c.chain == chain, E.c.seq == k)
                      .values(object="nothing happened here"))
            expected = k
        elif mutation == "insert":
            row = dict(rows[-1]._mapping)
            w.execute(insert(E), {**row, "seq": n + 1, "object": "forged"})
            expected = n + 1
        elif mutation == "swap":
            j = data.draw(st.integers(1, n).filter(lambda x: x != k), label="other")
            a, b = sorted((k, j))
            for seq, src in ((a, rows[b - 1]), (b, rows[a - 1])):
                values = {c: v for c, v in src._mapping.items() if c not in ("chain", "seq")}
                w.execute(update(E).where(E.c.chain == chain, E.c.seq == seq).values(values))
            expected = a
        else:  # a consistent rewrite from k on: every hash and the head recomputed
            prev = rows[k - 2].hash if k > 1 else GENESIS
            for row in rows[k - 1:]:
                e = audit.as_entry(row)
                e["prev"] = prev
                if row.seq == k:
                    e["object"] = "rewritten"
                prev = entry_hash(e)
                w.execute(update(E).where(E.c.chain == chain, E.c.seq == row.seq)
                          .values(object=e["object"], prev=e["prev"], hash=prev))
            w.execute(update(AuditHead).where(AuditHead.chain == chain).values(hash=prev))
            later = sorted(m for m in marks if m >= k)
            if not later:
                return  # nothing signed covers it: not detectable, by design
            expected = later[0]
    outcome = _verify(ctx, chain)
    assert not outcome.ok
    assert outcome.problem is not None and outcome.problem.seq == expected, str(outcome)


def test_a_receipt_the_tenant_kept_finds_a_rewrite_of_the_node_s_own_checkpoints(
        ctx: Context) -> None:
    """Someone with database access rewrites the chain and deletes the checkpoints:
    the receipt the tenant downloaded still catches it."""
    chain = _chain(ctx, 4, {3})
    with ctx.reading() as w:
        receipt = audit.checkpoints(w, chain)[-1].note
    rows = _rows(ctx, chain)
    with ctx.unit() as w:
        prev = rows[0].hash
        for row in rows[1:]:
            e = {**audit.as_entry(row), "prev": prev, "object": "nothing to see"}
            prev = entry_hash(e)
            w.execute(update(E).where(E.c.chain == chain, E.c.seq == row.seq)
                      .values(object=e["object"], prev=e["prev"], hash=prev))
        w.execute(update(AuditHead).where(AuditHead.chain == chain).values(hash=prev))
        w.execute(delete(Checkpoint).where(Checkpoint.chain == chain))
    assert _verify(ctx, chain).ok  # without the receipt, nothing shows
    outcome = _verify(ctx, chain, [receipt])
    assert outcome.problem is not None and outcome.problem.seq == 3
    assert "history rewritten" in str(outcome)


def test_a_receipt_not_signed_by_the_node_is_refused(ctx: Context) -> None:
    chain = _chain(ctx, 2, {2})
    forged = Signer.generate(ctx.signer.name).sign(
        audit.checkpoint_text(f"doorvoer/{ctx.settings.resolved_node_name}/{chain}",
                              Head(2, "00" * 32)))
    outcome = _verify(ctx, chain, [forged])
    assert not outcome.ok and "does not verify" in str(outcome)


def test_signed_notes_round_trip_and_refuse_changes() -> None:
    signer = Signer.generate("doorvoer/test")
    note = signer.sign("doorvoer/test/abc\n7\nAAAA\n")
    verifier = Verifier.parse(str(signer.verifier))
    assert open_note(note, verifier) == "doorvoer/test/abc\n7\nAAAA\n"
    assert Signer.parse(str(signer)).verifier == signer.verifier
    with pytest.raises(UserError, match="does not verify"):
        open_note(note.replace("\n7\n", "\n8\n"), verifier)
    with pytest.raises(UserError, match="no signature by"):
        open_note(note, Signer.generate("doorvoer/other").verifier)


def test_the_node_signs_a_moving_chain_at_least_hourly_and_a_still_one_never(
        ctx: Context) -> None:
    from datetime import timedelta

    from doorvoer import jobs
    from doorvoer.db import utcnow

    moving = _chain(ctx, 3, {1})  # signed at seq 1, moved since
    still = _chain(ctx, 2, {2})  # signed at its head
    assert jobs.checkpoints_due(ctx) == 0  # signed within the hour: not yet
    with ctx.unit() as w:
        w.execute(update(AuditHead).values(checkpointed_at=utcnow() - timedelta(hours=2)))
    assert jobs.checkpoints_due(ctx) == 1
    with ctx.reading() as w:
        assert [c.seq for c in audit.checkpoints(w, moving)] == [1, 3]
        assert [c.seq for c in audit.checkpoints(w, still)] == [2]
    assert jobs.checkpoints_due(ctx) == 0  # nothing moved since
    assert _verify(ctx, moving).ok
