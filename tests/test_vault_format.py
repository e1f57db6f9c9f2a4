"""The vault's streaming encryption is Tink's AES-GCM-HKDF format: checked against Tink
itself in both directions, at every segment boundary, and against damage."""

from __future__ import annotations

import io
import os
import secrets

import pytest
import tink
from tink import cleartext_keyset_handle, streaming_aead
from tink.proto import aes_gcm_hkdf_streaming_pb2, common_pb2, tink_pb2

from doorvoer.context import Context
from doorvoer.vault import streaming
from doorvoer.vault.streaming import DecryptingReader, DecryptionError, EncryptingWriter

streaming_aead.register()
AD = b"0123456789abcdef0123456789abcdef"
TYPE_URL = "type.googleapis.com/google.crypto.tink.AesGcmHkdfStreamingKey"


def _tink(key: bytes, segment: int) -> streaming_aead.StreamingAead:
    """Tink's own primitive for a raw data key and segment size."""
    proto = aes_gcm_hkdf_streaming_pb2.AesGcmHkdfStreamingKey(
        version=0, key_value=key,
        params=aes_gcm_hkdf_streaming_pb2.AesGcmHkdfStreamingParams(
            ciphertext_segment_size=segment, derived_key_size=32,
            hkdf_hash_type=common_pb2.SHA256))
    keyset = tink_pb2.Keyset(primary_key_id=7, key=[tink_pb2.Keyset.Key(
        key_data=tink_pb2.KeyData(type_url=TYPE_URL, value=proto.SerializeToString(),
                                  key_material_type=tink_pb2.KeyData.SYMMETRIC),
        status=tink_pb2.ENABLED, key_id=7, output_prefix_type=tink_pb2.RAW)])
    handle = cleartext_keyset_handle.read(tink.BinaryKeysetReader(keyset.SerializeToString()))
    return handle.primitive(streaming_aead.StreamingAead)


class _Sink(io.BytesIO):
    def close(self) -> None:  # keep the bytes readable after the writer closes it
        self.kept = self.getvalue()
        super().close()


def _ours(key: bytes, plain: bytes, segment: int, piece: int = 1000) -> bytes:
    sink = _Sink()
    w = EncryptingWriter(key, sink, AD, segment)
    for i in range(0, len(plain), piece):
        w.write(plain[i:i + piece])
    w.close()
    return sink.kept


def _read_all(r: DecryptingReader) -> bytes:
    out = b"".join(iter(lambda: r.read(777), b""))
    r.close()
    return out


def _decrypt(key: bytes, blob: bytes, segment: int) -> bytes:
    return _read_all(DecryptingReader(key, io.BytesIO(blob), AD, segment))


def _sizes(segment: int) -> list[int]:
    first = segment - streaming.HEADER - streaming.TAG
    rest = segment - streaming.TAG
    edges = [0, 1, first - 1, first, first + 1, first + rest - 1, first + rest,
             first + rest + 1, first + 3 * rest + 5]
    return sorted(set(edges))


@pytest.mark.parametrize("segment", [4096, streaming.DEFAULT_SEGMENT])
def test_tink_decrypts_ours_and_we_decrypt_tinks(segment: int) -> None:
    for size in _sizes(segment):
        key, plain = secrets.token_bytes(32), os.urandom(size)
        tink_primitive = _tink(key, segment)
        ours = _ours(key, plain, segment)
        with tink_primitive.new_decrypting_stream(io.BytesIO(ours), AD) as r:
            assert r.read() == plain, size
        theirs = _Sink()
        with tink_primitive.new_encrypting_stream(theirs, AD) as w:
            w.write(plain)
        assert _decrypt(key, theirs.kept, segment) == plain, size
        assert len(theirs.kept) == len(ours), size  # the very same layout


def test_damage_of_any_kind_is_refused() -> None:
    segment = 4096
    key, plain = secrets.token_bytes(32), os.urandom(3 * segment)
    blob = _ours(key, plain, segment)
    first = segment - streaming.HEADER
    damaged = {
        "a flipped bit": blob[:100] + bytes([blob[100] ^ 1]) + blob[101:],
        "the last segment dropped": blob[:first + segment],
        "cut off mid-segment": blob[:-10],
        "bytes appended": blob + b"x" * 20,
        "segments swapped": blob[:first] + blob[first + segment:first + 2 * segment]
        + blob[first:first + segment] + blob[first + 2 * segment:],
        "the header cut off": blob[:20],
    }
    for what, data in damaged.items():
        with pytest.raises(DecryptionError):  # noqa: PT012 - the message names the case
            _decrypt(key, data, segment)
            pytest.fail(f"{what}: decrypted")
    with pytest.raises(DecryptionError):
        _decrypt(secrets.token_bytes(32), blob, segment)  # another key
    with pytest.raises(DecryptionError):
        _read_all(DecryptingReader(key, io.BytesIO(blob), b"another blob", segment))


def test_a_blob_of_the_tink_era_is_still_read(ctx: Context) -> None:
    """Blobs written before this format change have a Tink keyset as their key."""
    from doorvoer.vault.models import BlobKey

    handle = tink.new_keyset_handle(
        streaming_aead.streaming_aead_key_templates.AES256_GCM_HKDF_4KB)
    blob_id = secrets.token_hex(16)
    plain = b"Bakkerij De Vries;12,50\n" * 1000
    with ctx.vault.store.create(blob_id) as f, handle.primitive(
            streaming_aead.StreamingAead).new_encrypting_stream(f, blob_id.encode()) as w:
        w.write(plain)
    out = io.BytesIO()
    cleartext_keyset_handle.write(tink.BinaryKeysetWriter(out), handle)
    nonce = secrets.token_bytes(12)
    wrapped = nonce + ctx.vault._master.encrypt(nonce, out.getvalue(), blob_id.encode())
    with ctx.unit() as w:
        w.session.add(BlobKey(blob_id=blob_id, owner_id="0" * 32, role="output",
                              wrapped_key=wrapped))
    with ctx.reading() as w:
        r = ctx.vault.open(w, blob_id)
    assert r.read() == plain
    r.close()
