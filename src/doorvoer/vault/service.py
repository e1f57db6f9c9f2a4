"""The vault: the one place where file bytes are written, read and erased (P2, P3).

Every blob is encrypted with a data key of its own, in Tink's streaming AEAD format
(AES256-GCM-HKDF, 64 KiB segments: see streaming.py), bound to the blob id as
associated data. The data key is wrapped with the master key (AES-256-GCM) and stored
in `vault_keys`; erasing a blob deletes both its file and its key row, so any stray
copy of the ciphertext is unreadable (crypto-shredding).

A wrapped key holds `_RECORD` (a zero byte, the format version, the segment size and
the data key). Blobs of earlier versions hold a Tink keyset instead (a protobuf, whose
first byte is never zero); they are read with Tink, imported only for them.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import secrets
import struct
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, Engine, Table, bindparam, delete, insert, select

from doorvoer.db import FastRead, FastWrite, utcnow
from doorvoer.vault import streaming
from doorvoer.vault.errors import DiskFull, VaultError
from doorvoer.vault.models import BlobKey
from doorvoer.vault.store import LocalStore

if TYPE_CHECKING:
    from doorvoer.unit import Work

_KEYS: Table = BlobKey.__table__  # type: ignore[assignment]
_INSERT_KEY = FastWrite(insert(_KEYS))
_KEY_OF = FastRead(select(_KEYS.c.wrapped_key).where(_KEYS.c.blob_id == bindparam("blob_id")))
_DELETE_KEYS = delete(_KEYS).where(_KEYS.c.blob_id.in_(bindparam("blob_ids", expanding=True)))
_OWNED = select(_KEYS.c.blob_id).where(_KEYS.c.owner_id.in_(bindparam("owners", expanding=True)))
_BLOBS_OF = select(_KEYS.c.blob_id).where(
    _KEYS.c.owner_id.in_(bindparam("owners", expanding=True)), _KEYS.c.role == bindparam("role"))
_NONCE = 12
# A zero byte (never the first byte of a Tink keyset), the version, the segment size.
_RECORD = struct.Struct(">BBI")
_RECORD_V1 = 1
_SEGMENT = streaming.DEFAULT_SEGMENT  # new blobs; each key records its own


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

    def writable(self) -> bool:
        return True

    def write(self, b: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(b)
        try:
            while view:  # an unbuffered file may take less than it is given
                n = self._f.write(view)
                view = view[n:]
        except OSError as exc:
            if exc.errno == 28:  # ENOSPC
                raise DiskFull(28, "the vault's disk is full") from None
            raise
        return len(b)

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

    def __init__(self, blob_id: str, stream: streaming.EncryptingWriter, vault: Vault) -> None:
        self.blob_id = blob_id
        self.plaintext_bytes = 0
        self.key_row: dict[str, object] = {}
        self._stream = stream
        self._vault = vault

    def write(self, data: bytes | bytearray | memoryview) -> int:
        n = self._stream.write(data)
        self.plaintext_bytes += n
        return n

    def close(self) -> int:
        """Seal the blob (final segment, fsync). Returns the plaintext size."""
        self._stream.close()
        return self.plaintext_bytes

    def abort(self) -> None:
        with contextlib.suppress(OSError):  # the blob is deleted either way
            self._stream.discard()
        self._vault.store.delete(self.blob_id)


class Vault:
    def __init__(self, store: LocalStore, master_key: bytes, fsync: bool = True) -> None:
        self.store = store
        self._master = AESGCM(master_key)
        self._fsync = fsync

    # -- keys
    def _wrap(self, blob_id: str, key: bytes, segment_size: int) -> bytes:
        record = _RECORD.pack(0, _RECORD_V1, segment_size) + key
        nonce = secrets.token_bytes(_NONCE)
        return nonce + self._master.encrypt(nonce, record, blob_id.encode())

    def _decrypting(self, blob_id: str, wrapped: bytes, source: BinaryIO) -> BinaryIO:
        raw = self._master.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], blob_id.encode())
        if raw[:1] != b"\0":
            return _tink_decrypting(raw, source, blob_id.encode())
        _, version, segment_size = _RECORD.unpack_from(raw)
        if version != _RECORD_V1:
            raise VaultError(f"unknown key record version {version}")
        key = raw[_RECORD.size:]
        return cast(BinaryIO, streaming.DecryptingReader(key, source, blob_id.encode(),
                                                         segment_size))

    # -- blobs
    def prepare(self, owner_id: str, role: str) -> BlobWriter:
        """A new blob, ready for writing, whose key row is not stored yet: `register`
        it in the owner's transaction. Until then the file is residue that the start-up
        sweep removes (and unreadable: its key exists only in this process)."""
        key = secrets.token_bytes(streaming.KEY_BYTES)
        try:
            blob_id, file = self.store.create_new()
            raw = _SyncedFile(file, self._fsync)
        except OSError as exc:
            if exc.errno == 28:
                raise DiskFull(28, "the vault's disk is full") from None
            raise
        stream = streaming.EncryptingWriter(key, cast(BinaryIO, raw), blob_id.encode(),
                                            _SEGMENT)
        writer = BlobWriter(blob_id, stream, self)
        writer.key_row = {"blob_id": blob_id, "owner_id": owner_id, "role": role,
                          "wrapped_key": self._wrap(blob_id, key, _SEGMENT)}
        return writer

    def register(self, w: Work, *writers: BlobWriter) -> None:
        """Store the prepared blobs' wrapped keys in the unit of work."""
        now = utcnow()
        _INSERT_KEY(w.conn, *({**x.key_row, "created_at": now} for x in writers))

    def create(self, w: Work, owner_id: str, role: str) -> BlobWriter:
        """A new blob whose key row is written in the unit of work (it commits with the
        owner; a rollback deletes the file)."""
        writer = self.prepare(owner_id, role)
        w.on_rollback(writer.abort)
        self.register(w, writer)
        return writer

    def open(self, db: Work | Connection | Engine, blob_id: str) -> BinaryIO:
        """A decrypting reader of the blob's plaintext (sequential): in a unit of work,
        or outside one (an Engine: a download, a worker, a push)."""
        reader = db if isinstance(db, Connection | Engine) else db.reader
        row = _KEY_OF.first(reader, {"blob_id": blob_id})
        if row is None:
            raise VaultError("blob has been erased")
        source = self.store.open(blob_id)
        try:
            return self._decrypting(blob_id, row.wrapped_key, source)
        except BaseException:
            source.close()
            raise

    def erase(self, w: Work, *blob_ids: str) -> None:
        """Shred: the key rows go with the unit's commit, the files right after it.
        Never the other way round: a unit that rolls back after an erase (a full disk
        at the commit, say) must leave the blob whole, or a transfer that is retried
        would find its input gone. A file whose key went (a crash between the commit
        and the unlink) is unreadable, and the start-up sweep removes it."""
        if not blob_ids:
            return
        ids = list(blob_ids)
        w.execute(_DELETE_KEYS, {"blob_ids": ids})
        w.after_commit(lambda: self._delete_files(ids))

    def _delete_files(self, blob_ids: list[str]) -> None:
        for blob_id in blob_ids:
            self.store.delete(blob_id)

    def blobs_of(self, w: Work, owner_ids: list[str], role: str) -> list[str]:
        """The blobs with this role that these owners have."""
        return list(w.execute(_BLOBS_OF, {"owners": owner_ids, "role": role}).scalars())

    def erase_owned(self, w: Work, *owner_ids: str) -> None:
        """Shred every blob these owners have."""
        self.erase(w, *w.execute(_OWNED, {"owners": list(owner_ids)}).scalars())

    def sweep_files(self, w: Work) -> int:
        """Delete blob files that have no key (unreadable residue) and spare files of
        processes that are gone. Returns how many."""
        known = set(w.execute(select(BlobKey.blob_id)).scalars())
        gone = self.store.sweep_spares()
        for blob_id in list(self.store.ids()):
            if blob_id not in known:
                self.store.delete(blob_id)
                gone += 1
        return gone


def _tink_decrypting(keyset: bytes, source: BinaryIO, associated_data: bytes) -> BinaryIO:
    """A blob of an earlier version, whose key is a Tink keyset (the same format)."""
    import tink
    from tink import cleartext_keyset_handle, streaming_aead

    streaming_aead.register()
    handle = cleartext_keyset_handle.read(tink.BinaryKeysetReader(keyset))
    primitive = handle.primitive(streaming_aead.StreamingAead)
    stream: BinaryIO = primitive.new_decrypting_stream(source, associated_data)
    return stream
