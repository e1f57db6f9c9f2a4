"""The vault's spare files: created ahead by a thread, taken and renamed by new blobs,
never counted as blobs, removed on close and by the start-up sweep."""

from __future__ import annotations

import time
from pathlib import Path

from conftest import wait_for
from doorvoer.context import Context
from doorvoer.vault.store import BLOB_ID, SPARE, LocalStore


def _spares(root: Path) -> list[Path]:
    return sorted(root.glob(f"{SPARE}*"))


def test_new_blobs_take_spares_made_ahead(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "vault", spares=4)
    try:
        first_id, first = store.create_new()  # none ready yet: made at once
        first.close()
        wait_for(lambda: len(_spares(store.root)) == 4, what="four spares made ahead")
        made = set(_spares(store.root))
        ids = []
        for _ in range(3):
            blob_id, f = store.create_new()
            f.write(b"ciphertext")
            f.close()
            ids.append(blob_id)
        assert all(BLOB_ID.match(i) for i in ids)
        assert not made <= set(_spares(store.root))  # taken: renamed to the blob ids
        assert sorted(store.ids()) == sorted([first_id, *ids])  # spares are no blobs
        assert all(store.path(i).read_bytes() == b"ciphertext" for i in ids)
        assert all(p.stat().st_size == 0 and p.stat().st_mode & 0o777 == 0o600
                   for p in _spares(store.root))
        # made again once half were gone (3 or 4 now, by when the third was taken)
        wait_for(lambda: len(_spares(store.root)) > 2, what="the spares made again")
    finally:
        store.close()
    assert _spares(store.root) == []
    assert store._maker is not None and not store._maker.is_alive()


def test_a_spare_swept_away_is_replaced_at_once(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "vault", spares=2)
    try:
        store.create_new()[1].close()
        wait_for(lambda: len(_spares(store.root)) == 2, what="spares")
        assert LocalStore(store.root).sweep_spares() == 2  # another process's start-up
        blob_id, f = store.create_new()
        f.write(b"x")
        f.close()
        assert store.path(blob_id).read_bytes() == b"x"
    finally:
        store.close()


def test_the_start_up_sweep_removes_spares_of_a_dead_process(ctx: Context) -> None:
    dead = ctx.vault.store.root / f"{SPARE}{'0' * 32}"
    dead.touch()
    with ctx.unit() as u:
        w = ctx.vault.create(u, "0" * 32, "input")
    w.write(b"kept")
    w.close()
    with ctx.reading() as r:
        assert ctx.vault.sweep_files(r) >= 1
    assert not dead.exists()
    assert list(ctx.vault.store.ids()) == [w.blob_id]  # a blob with a key stays


def test_spares_are_made_again_when_half_are_taken(tmp_path: Path) -> None:
    """One wake-up of the thread per half of the spares, not one per new blob."""
    store = LocalStore(tmp_path / "vault", spares=4)
    try:
        store.create_new()[1].close()
        # ready: in the store's list (a file is on disk a moment before it is listed)
        wait_for(lambda: len(store._spares) == 4, what="four spares made ahead")
        store.create_new()[1].close()
        time.sleep(0.2)  # the thread would have made the next one by now
        assert len(_spares(store.root)) == 3
        store.create_new()[1].close()  # half are gone
        wait_for(lambda: len(_spares(store.root)) == 4, what="the spares made again")
    finally:
        store.close()
