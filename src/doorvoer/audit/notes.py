"""Signed notes in the C2SP `signed-note` format (Go's golang.org/x/mod/sumdb/note),
Ed25519 only: the audit checkpoints and, later, erasure certificates.

A note is its text (UTF-8, ending in a newline), an empty line, and signature lines
`— <key name> <base64(4-byte key id ‖ 64-byte signature)>`. The key id is the first 4
bytes of SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ public key). A verifier key is written
`<key name>+<8 hex key id>+<base64(0x01 ‖ public key)>`; the signing key, kept 0600 in
the data directory (or in a setting), in Go's own form
`PRIVATE+KEY+<key name>+<8 hex key id>+<base64(0x01 ‖ 32-byte seed)>`, so that Go's
note package reads it too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from doorvoer.audit.errors import BadNote, BadSigningKey

ALG_ED25519 = 0x01
DASH = "\u2014"  # the em dash that starts a signature line
_NAME = re.compile(r"^[^\s+]+$")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


def key_id(name: str, public: bytes) -> int:
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public).digest()
    return int(struct.unpack(">I", digest[:4])[0])


@dataclass(frozen=True)
class Verifier:
    name: str
    public: bytes  # 32 raw bytes

    @property
    def id(self) -> int:
        return key_id(self.name, self.public)

    def __str__(self) -> str:
        raw = base64.b64encode(bytes([ALG_ED25519]) + self.public).decode()
        return f"{self.name}+{self.id:08x}+{raw}"

    @classmethod
    def parse(cls, text: str) -> Verifier:
        """A verifier key in its text form (BadNote when it is not one)."""
        name, sep, rest = text.strip().partition("+")
        hex_id, sep2, raw = rest.partition("+")
        try:
            data = base64.b64decode(raw, validate=True)
            wanted = int(hex_id, 16)
        except (binascii.Error, ValueError):
            raise BadNote("not a verifier key: name+keyid+base64(key)") from None
        if not (sep and sep2 and _NAME.match(name) and len(hex_id) == 8) \
                or len(data) != 33 or data[0] != ALG_ED25519:
            raise BadNote("not an Ed25519 verifier key: name+keyid+base64(0x01 ‖ key)")
        verifier = cls(name, data[1:])
        if verifier.id != wanted:
            raise BadNote("the verifier key's id does not match its name and key")
        return verifier


class Signer:
    """An Ed25519 signing key with its name."""

    def __init__(self, name: str, seed: bytes) -> None:
        if not _NAME.match(name):
            raise BadSigningKey(f"key name {name!r}: no spaces and no '+'")
        self.name = name
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self._seed = seed
        self.verifier = Verifier(name, self._key.public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw))

    @classmethod
    def generate(cls, name: str) -> Signer:
        return cls(name, os.urandom(32))

    def __str__(self) -> str:
        """Go's form of a signing key (secret: written to a 0600 file, never logged)."""
        raw = base64.b64encode(bytes([ALG_ED25519]) + self._seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.id:08x}+{raw}"

    @classmethod
    def parse(cls, text: str) -> Signer:
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise BadSigningKey("not a signing key: PRIVATE+KEY+name+keyid+base64(key)")
        try:
            data = base64.b64decode(parts[4], validate=True)
        except binascii.Error:
            raise BadSigningKey("the signing key is not valid base64") from None
        if len(data) != 33 or data[0] != ALG_ED25519:
            raise BadSigningKey("not an Ed25519 signing key")
        signer = cls(parts[2], data[1:])
        if f"{signer.verifier.id:08x}" != parts[3]:
            raise BadSigningKey("the signing key's id does not match its name and key")
        return signer

    def sign(self, text: str) -> str:
        """The note: `text` (ending in a newline), an empty line, one signature."""
        check_text(text)
        sig = self._key.sign(text.encode("utf-8"))
        raw = base64.b64encode(struct.pack(">I", self.verifier.id) + sig).decode()
        return f"{text}\n{DASH} {self.name} {raw}\n"


def check_text(text: str) -> None:
    if not text.endswith("\n") or _CONTROL.search(text) or "\n\n" in text:
        raise BadNote("a note's text is lines of text, each ending in a newline")


def open_note(note: str, verifier: Verifier) -> str:
    """The text of a note that `verifier` signed (BadNote otherwise, saying why)."""
    text, sep, sigs = note.rpartition("\n\n")
    if not sep or not sigs.endswith("\n"):
        raise BadNote("not a signed note: the text, an empty line, signature lines")
    text += "\n"
    check_text(text)
    for line in sigs[:-1].split("\n"):
        dash, _, rest = line.partition(" ")
        name, _, raw = rest.partition(" ")
        if dash != DASH or not name or not raw:
            raise BadNote(f"not a signature line: {line[:60]!r}")
        if name != verifier.name:
            continue
        try:
            data = base64.b64decode(raw, validate=True)
        except binascii.Error:
            raise BadNote("a signature is not valid base64") from None
        if len(data) != 68 or struct.unpack(">I", data[:4])[0] != verifier.id:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(verifier.public).verify(
                data[4:], text.encode("utf-8"))
        except InvalidSignature:
            raise BadNote(f"the signature of {name} does not verify: the note was "
                          "changed, or signed by another key") from None
        return text
    raise BadNote(f"the note has no signature by {verifier.name}")


def load_signer(path: Path, from_setting: str, name: str) -> Signer:
    """The node's signing key: from the setting (Go's text form), or a 0600 file in the
    data directory, made on first use with `name`."""
    if from_setting:
        return Signer.parse(from_setting)
    if path.exists():
        if path.stat().st_mode & 0o077:
            raise BadSigningKey(f"{path} must be readable by its owner only (chmod 600)")
        return Signer.parse(path.read_text(encoding="ascii"))
    signer = Signer.generate(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(str(signer) + "\n")
    try:
        os.link(tmp, path)  # whole, or not at all: another process may be first
    except FileExistsError:
        return load_signer(path, from_setting, name)
    finally:
        tmp.unlink()
    return signer
