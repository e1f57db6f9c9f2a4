"""Tink's streaming AEAD format, AES-GCM-HKDF, written with `cryptography`.

The format is Tink's, unchanged, so any Tink can decrypt what we write and we can
decrypt Tink's (both are tested against Tink itself); only the code is ours, a few
dozen lines over `cryptography`'s AES-GCM and HKDF. Tink's Python package cost each
process 10 MiB of memory and a C++ call per 4 KiB segment; here a segment is one call.

    ciphertext = header || segment_0 || ... || segment_n
    header     = len(header) (1 byte, 40) || salt (32) || nonce prefix (7)
    file key   = HKDF-SHA256(ikm = data key, salt = salt, info = associated data, 32 bytes)
    segment_i  = AES-256-GCM(file key, nonce = prefix || i (4 bytes, big endian)
                             || last (1 byte: 1 for the final segment, else 0),
                             plaintext_i, no associated data)

Every ciphertext segment but the last is `segment_size` long, the first one less the
header. A cut-off, reordered or altered blob fails to decrypt: each segment's number
and whether it is the last are in its nonce.
"""

from __future__ import annotations

import io
import secrets
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from doorvoer.vault.errors import DecryptionError

KEY_BYTES = 32
TAG = 16
PREFIX = 7
HEADER = 1 + KEY_BYTES + PREFIX
DEFAULT_SEGMENT = 64 * 1024
MIN_SEGMENT = HEADER + TAG + 1
MAX_SEGMENT = 1 << 24


def _file_key(key: bytes, salt: bytes, associated_data: bytes) -> AESGCM:
    derived = HKDF(hashes.SHA256(), KEY_BYTES, salt, associated_data).derive(key)
    return AESGCM(derived)


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    if index >= 1 << 32:
        raise ValueError("too many segments for one stream")
    return prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def _check(key: bytes, segment_size: int) -> None:
    if len(key) != KEY_BYTES:
        raise ValueError("the data key must be 32 bytes")
    if not MIN_SEGMENT <= segment_size <= MAX_SEGMENT:
        raise ValueError("unsupported segment size")


class EncryptingWriter(io.RawIOBase):
    """Plaintext in, ciphertext out to `sink`. `close()` writes the final segment and
    closes the sink. A full segment is held back until more plaintext arrives, since
    only then is it known not to be the last."""

    def __init__(self, key: bytes, sink: BinaryIO, associated_data: bytes,
                 segment_size: int = DEFAULT_SEGMENT) -> None:
        super().__init__()
        _check(key, segment_size)
        salt, self._prefix = secrets.token_bytes(KEY_BYTES), secrets.token_bytes(PREFIX)
        self._aead = _file_key(key, salt, associated_data)
        self._sink = sink
        self._plain = segment_size - TAG  # plaintext per segment after the first
        self._room = self._plain - HEADER  # plaintext the current segment takes
        self._buf = bytearray()
        self._index = 0
        self._header = bytes([HEADER]) + salt + self._prefix  # written with segment 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("write to a closed stream")
        n = len(data)
        self._buf += data
        while len(self._buf) > self._room:
            self._emit(self._room, last=False)
        return n

    def _emit(self, size: int, last: bool) -> None:
        chunk = bytes(self._buf[:size])
        del self._buf[:size]
        sealed = self._aead.encrypt(_nonce(self._prefix, self._index, last), chunk, None)
        self._sink.write(self._header + sealed if self._index == 0 else sealed)
        self._index += 1
        self._room = self._plain

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._emit(len(self._buf), last=True)
            self._sink.close()
        finally:
            super().close()

    def discard(self) -> None:
        """Close without the final segment (the blob is thrown away)."""
        if not self.closed:
            self._buf.clear()
            super().close()
            self._sink.close()


class DecryptingReader(io.RawIOBase):
    """Ciphertext from `source` in, plaintext out, sequentially. A segment is given out
    only after its tag checked; a stream that ends early or was altered raises
    DecryptionError."""

    def __init__(self, key: bytes, source: BinaryIO, associated_data: bytes,
                 segment_size: int = DEFAULT_SEGMENT) -> None:
        super().__init__()
        _check(key, segment_size)
        self._source = source
        header = self._read_exactly(HEADER)
        if len(header) != HEADER or header[0] != HEADER:
            raise DecryptionError("not a vault blob, or cut off in its header")
        self._aead = _file_key(key, header[1 : 1 + KEY_BYTES], associated_data)
        self._prefix = header[1 + KEY_BYTES :]
        self._segment = segment_size
        self._index = 0
        self._out = b""
        self._pos = 0
        self._done = False
        # One segment of lookahead: a segment is the last when nothing follows it.
        self._next = self._read_exactly(segment_size - HEADER)

    def readable(self) -> bool:
        return True

    def _read_exactly(self, n: int) -> bytes:
        parts = []
        while n > 0:
            chunk = self._source.read(n)
            if not chunk:
                break
            parts.append(chunk)
            n -= len(chunk)
        return b"".join(parts)

    def _advance(self) -> None:
        current = self._next
        self._next = self._read_exactly(self._segment)
        last = not self._next
        if len(current) < TAG:
            raise DecryptionError("the blob is cut off")
        try:
            self._out = self._aead.decrypt(_nonce(self._prefix, self._index, last), current,
                                           None)
        except InvalidTag:
            raise DecryptionError("the blob is damaged, cut off or not for this key") from None
        self._pos = 0
        self._index += 1
        self._done = last

    def read(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("read from a closed stream")
        if size is None or size < 0:
            parts = []
            while chunk := self.read(1 << 20):
                parts.append(chunk)
            return b"".join(parts)
        while self._pos >= len(self._out):
            if self._done:
                return b""
            self._advance()
        chunk = self._out[self._pos : self._pos + size]
        self._pos += len(chunk)
        return chunk

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self.read(len(buffer))
        n = len(chunk)
        memoryview(buffer)[:n] = chunk
        return n

    def close(self) -> None:
        if not self.closed:
            self._source.close()
            super().close()
