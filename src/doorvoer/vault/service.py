"""The vault: the one place where file bytes are written, read and erased (P2, P3).

Every blob is encrypted with a data key of its own, in Tink's streaming AEAD format
(AES256-GCM-HKDF, 4 KiB segments), bound to the blob id as associated data. The data
key is wrapped with the master key (AES-256-GCM) and stored in `vault_keys`; erasing
a blob deletes both its file and its key row, so any stray copy of the ciphertext is
unreadable (crypto-shredding).
"""

from __future__ import annotations

import base64
import io
import os
import secrets
from pathlib import Path
from typing import BinaryIO, cast

import tink
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, Table, bindparam, delete, insert, select
from sqlalchemy.orm import Session
from tink import cleartext_keyset_handle, streaming_aead

from doorvoer.db import new_id, utcnow
from doorvoer.vault.models import BlobKey
from doorvoer.vault.store import DiskFull, LocalStore

streaming_aead.register()
_KEYS: Table = BlobKey.__table__  # type: ignore[assignment]
_INSERT_KEY = insert(_KEYS)  # built once: the statement cache does the rest
_KEY_OF = select(_KEYS.c.wrapped_key).where(_KEYS.c.blob_id == bindparam("blob_id"))
_DELETE_KEYS = delete(_KEYS).where(_KEYS.c.blob_id.in_(bindparam("blob_ids", expanding=True)))
_BLOBS_OF = select(_KEYS.c.blob_id).where(
    _KEYS.c.owner_id.in_(bindparam("owners", expanding=True)), _KEYS.c.role == bindparam("role"))
# 4 KiB segments: each stream's buffers are small (a 1 MiB segment cost a fresh 1 MiB
# buffer per file, about a third of a small upload's time) and large files still
# stream at over 1 GB/s. The segment size is part of each key, so blobs written with
# another size stay readable.
_TEMPLATE = streaming_aead.streaming_aead_key_templates.AES256_GCM_HKDF_4KB
_NONCE = 12
SEGMENTS_BUFFER = 64 * 1024


class VaultError(Exception):
    pass


def load_master_key(path: Path, from_env: str) -> bytes:
    """The master key: from the environment (base64) or a 0600 file, made on first use."""
    if from_env:
        key = base64.b64decode(from_env, validate=True)
    elif path.exists():
        if path.stat().st_mode & 0o077:
            raise VaultError(f"{path} must be readable by its owner only (chmod 600)")
        key = base64.b64decode(path.read_bytes().strip(), validate=True)
    else:
        key = secrets.token_bytes(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(base64.b64encode(key) + b"\n")
    if len(key) != 32:
        raise VaultError("the master key must be 32 bytes (base64 of 32 random bytes)")
    return key


class _SyncedFile(io.RawIOBase):
    """The ciphertext file: flushed and fsynced when the encrypting stream closes it."""

    def __init__(self, f: BinaryIO, fsync: bool) -> None:
        self._f = f
        self._fsync = fsync
        self.size = 0
        self.disk_full = False

    def writable(self) -> bool:
        return True

    def write(self, b: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        try:
            n = self._f.write(b)
        except OSError as exc:
            if exc.errno == 28:  # ENOSPC
                self.disk_full = True
                raise DiskFull(28, "the vault's disk is full") from None
            raise
        self.size += n
        return n

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._f.flush()
            if self._fsync:
                os.fsync(self._f.fileno())
        finally:
            self._f.close()
            super().close()


class BlobWriter:
    """Plaintext in, ciphertext to the store. `close()` seals it; `abort()` discards it."""

    def __init__(self, blob_id: str, stream: BinaryIO, file: _SyncedFile, vault: Vault) -> None:
        self.blob_id = blob_id
        self.plaintext_bytes = 0
        self.key_row: dict[str, object] = {}
        self._stream = stream
        self._file = file
        self._vault = vault

    def write(self, data: bytes | bytearray | memoryview) -> int:
        try:
            n = self._stream.write(data)
        except Exception as exc:  # noqa: BLE001 - Tink's own error types vary
            raise self._storage_error(exc) from None
        self.plaintext_bytes += len(data)
        return n if n is not None else len(data)

    def close(self) -> int:
        """Seal the blob (final segment, fsync). Returns the plaintext size."""
        try:
            self._stream.close()
        except Exception as exc:  # noqa: BLE001 - Tink's own error types vary
            raise self._storage_error(exc) from None
        return self.plaintext_bytes

    def _storage_error(self, exc: Exception) -> OSError:
        # Tink reports a failed write of its destination in its own words.
        if self._file.disk_full:
            return DiskFull(28, "the vault's disk is full")
        if isinstance(exc, OSError):
            return exc
        return OSError(5, "the vault could not store the file")

    def abort(self) -> None:
        try:
            self._stream.close()
        except Exception:  # noqa: BLE001 - the blob is deleted either way
            self._file.close()
        self._vault.store.delete(self.blob_id)


class Vault:
    def __init__(self, store: LocalStore, master_key: bytes, fsync: bool = True) -> None:
        self.store = store
        self._master = AESGCM(master_key)
        self._fsync = fsync

    # -- keys
    def _wrap(self, blob_id: str, handle: tink.KeysetHandle) -> bytes:
        out = io.BytesIO()
        cleartext_keyset_handle.write(tink.BinaryKeysetWriter(out), handle)
        nonce = secrets.token_bytes(_NONCE)
        return nonce + self._master.encrypt(nonce, out.getvalue(), blob_id.encode())

    def _unwrap(self, blob_id: str, wrapped: bytes) -> streaming_aead.StreamingAead:
        raw = self._master.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], blob_id.encode())
        handle = cleartext_keyset_handle.read(tink.BinaryKeysetReader(raw))
        return handle.primitive(streaming_aead.StreamingAead)

    # -- blobs
    def prepare(self, owner_id: str, role: str) -> BlobWriter:
        """A new blob, ready for writing, whose key row is not stored yet: `register`
        it in the owner's transaction. Until then the file is residue that the start-up
        sweep removes (and unreadable: its key exists only in this process)."""
        blob_id = new_id()
        handle = tink.new_keyset_handle(_TEMPLATE)
        primitive = handle.primitive(streaming_aead.StreamingAead)
        try:
            raw = _SyncedFile(self.store.create(blob_id), self._fsync)
        except OSError as exc:
            if exc.errno == 28:
                raise DiskFull(28, "the vault's disk is full") from None
            raise
        # Tink writes each 4 KiB segment with a call of its own: a C buffer in between
        # keeps those calls out of Python.
        buffered = io.BufferedWriter(cast(io.FileIO, raw), SEGMENTS_BUFFER)
        stream = primitive.new_encrypting_stream(cast(BinaryIO, buffered), blob_id.encode())
        writer = BlobWriter(blob_id, stream, raw, self)
        writer.key_row = {"blob_id": blob_id, "owner_id": owner_id, "role": role,
                          "wrapped_key": self._wrap(blob_id, handle)}
        return writer

    def register(self, db: Session | Connection, *writers: BlobWriter) -> None:
        """Store the prepared blobs' wrapped keys in `db`'s transaction."""
        now = utcnow()
        db.execute(_INSERT_KEY, [{**w.key_row, "created_at": now} for w in writers])

    def create(self, db: Session | Connection, owner_id: str, role: str) -> BlobWriter:
        """A new blob whose key row is written in `db`'s transaction (commit it with the
        owner)."""
        writer = self.prepare(owner_id, role)
        self.register(db, writer)
        return writer

    def open(self, db: Session | Connection, blob_id: str) -> BinaryIO:
        """A decrypting reader of the blob's plaintext (sequential)."""
        wrapped = db.execute(_KEY_OF, {"blob_id": blob_id}).scalar()
        if wrapped is None:
            raise VaultError("blob has been erased")
        primitive = self._unwrap(blob_id, wrapped)
        stream: BinaryIO = primitive.new_decrypting_stream(self.store.open(blob_id),
                                                           blob_id.encode())
        return stream

    def erase(self, db: Session | Connection, *blob_ids: str) -> None:
        """Shred: the key rows go with `db`'s commit, the files at once."""
        if not blob_ids:
            return
        db.execute(_DELETE_KEYS, {"blob_ids": list(blob_ids)})
        for blob_id in blob_ids:
            self.store.delete(blob_id)

    def blobs_of(self, db: Session | Connection, owner_ids: list[str], role: str) -> list[str]:
        """The blobs with this role that these owners have."""
        return list(db.execute(_BLOBS_OF, {"owners": owner_ids, "role": role}).scalars())

    def owned_by(self, session: Session, owner_id: str) -> list[BlobKey]:
        return list(session.scalars(select(BlobKey).where(BlobKey.owner_id == owner_id)))

    def sweep_files(self, session: Session) -> int:
        """Delete blob files that have no key (unreadable residue). Returns how many."""
        known = set(session.scalars(select(BlobKey.blob_id)))
        gone = 0
        for blob_id in list(self.store.ids()):
            if blob_id not in known:
                self.store.delete(blob_id)
                gone += 1
        return gone
