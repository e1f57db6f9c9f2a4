"""The vault: per-file keys, authenticated encryption, crypto-shredding."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from doorvoer.context import Context
from doorvoer.vault.models import BlobKey
from doorvoer.vault.reader import WindowReader
from doorvoer.vault.service import VaultError, load_master_key
from doorvoer.vault.streaming import DecryptionError

PLAIN = b"Bakkerij De Vries;12,50\n" * 50_000


def _store(ctx: Context, data: bytes) -> str:
    with ctx.unit() as u:
        w = ctx.vault.create(u, "0" * 32, "input")
    for i in range(0, len(data), 65_536):
        w.write(data[i:i + 65_536])
    assert w.close() == len(data)
    return w.blob_id


def _read(ctx: Context, blob_id: str) -> bytes:
    with ctx.reading() as w:
        r = ctx.vault.open(w, blob_id)
    try:
        return r.read()
    finally:
        r.close()


def _read_by(ctx: Context, blob_id: str, how: str) -> bytes:
    """The blob's plaintext, its key read through a Session, an Engine or a Connection."""
    if how == "session":
        return _read(ctx, blob_id)
    if how == "engine":
        r = ctx.vault.open(ctx.engine, blob_id)
    else:
        with ctx.engine.connect() as conn:
            r = ctx.vault.open(conn, blob_id)
    try:
        return r.read()
    finally:
        r.close()


def test_roundtrip_and_ciphertext_reveals_nothing(ctx: Context) -> None:
    blob = _store(ctx, PLAIN)
    assert _read(ctx, blob) == PLAIN
    assert _read_by(ctx, blob, "engine") == _read_by(ctx, blob, "connection") == PLAIN
    raw = ctx.vault.store.path(blob).read_bytes()
    assert b"Bakkerij" not in raw
    assert ctx.vault.store.path(blob).stat().st_mode & 0o777 == 0o600
    with ctx.reading() as w:
        wrapped = w.session.get_one(BlobKey, blob).wrapped_key
    assert b"Bakkerij" not in wrapped


def test_each_blob_has_its_own_key(ctx: Context) -> None:
    a, b = _store(ctx, b"same"), _store(ctx, b"same")
    with ctx.reading() as w:
        keys = w.session.get_one(BlobKey, a), w.session.get_one(BlobKey, b)
        assert keys[0].wrapped_key != keys[1].wrapped_key
    assert ctx.vault.store.path(a).read_bytes() != ctx.vault.store.path(b).read_bytes()


def test_tampering_is_detected(ctx: Context) -> None:
    blob = _store(ctx, PLAIN)
    path = ctx.vault.store.path(blob)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(DecryptionError):
        _read(ctx, blob)


def test_erase_shreds_key_and_file(ctx: Context, tmp_path: Path) -> None:
    blob = _store(ctx, PLAIN)
    copy = tmp_path / "stolen-copy"
    copy.write_bytes(ctx.vault.store.path(blob).read_bytes())
    with ctx.unit() as w:
        ctx.vault.erase(w, blob)
    assert not ctx.vault.store.exists(blob)
    for how in ("session", "engine", "connection"):
        with pytest.raises(VaultError, match="erased"):
            _read_by(ctx, blob, how)


def test_an_erase_that_rolls_back_leaves_the_blob_whole(ctx: Context) -> None:
    """The files go after the commit: a unit of work that fails after an erase (a full
    disk at the commit, say) must not have destroyed the input it still refers to."""
    blob = _store(ctx, PLAIN)

    def erase_then_fail() -> None:
        with ctx.unit() as w:
            ctx.vault.erase(w, blob)
            assert ctx.vault.store.path(blob).exists()  # not before the commit either
            raise RuntimeError("the commit never happens")

    with pytest.raises(RuntimeError, match="never happens"):
        erase_then_fail()
    assert _read(ctx, blob) == PLAIN

    with ctx.unit() as w:
        ctx.vault.erase(w, blob)
    assert not ctx.vault.store.path(blob).exists()
    with pytest.raises(VaultError):
        _read(ctx, blob)


def test_window_reader_random_access(ctx: Context) -> None:
    blob = _store(ctx, PLAIN)
    opens = 0

    def opener():  # type: ignore[no-untyped-def]
        nonlocal opens
        opens += 1
        with ctx.reading() as w:
            return ctx.vault.open(w, blob)

    r = WindowReader(opener, window=256 * 1024)
    assert r.read(0, 100) == PLAIN[:100]
    assert r.read(500_000, 10) == PLAIN[500_000:500_010]
    assert r.read(499_990, 10) == PLAIN[499_990:500_000]  # a little back: from the window
    assert opens == 1
    assert r.read(len(PLAIN) + 10, 10) == b""  # past the end
    assert r.read(0, 5) == PLAIN[:5]  # far back: restart
    assert opens == 2
    r.close()


def test_master_key_file_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    key = load_master_key(path, "")
    assert len(key) == 32 and path.stat().st_mode & 0o777 == 0o600
    assert load_master_key(path, "") == key
    os.chmod(path, 0o644)
    with pytest.raises(VaultError, match="chmod 600"):
        load_master_key(path, "")
    env_key = base64.b64encode(b"k" * 32).decode()
    assert load_master_key(tmp_path / "unused", env_key) == b"k" * 32
    with pytest.raises(VaultError, match="32 bytes"):
        load_master_key(tmp_path / "unused", base64.b64encode(b"short").decode())
