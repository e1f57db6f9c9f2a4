"""Where encrypted blobs lie: a local folder. Only ciphertext ever reaches it.

Blobs lie flat in the folder: with zero retention only the files in flight are
there, and a flat folder is several times cheaper to create files in than a fan-out
of 256 sub-folders (whose inodes the filesystem spreads over its block groups).
Blobs that an earlier version put in two-letter sub-folders are still found, read,
deleted and swept.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

BLOB_ID = re.compile(r"^[0-9a-f]{32}$")
_FANOUT = re.compile(r"^[0-9a-f]{2}$")


class DiskFull(OSError):
    """The vault's disk has no room left."""


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def path(self, blob_id: str) -> Path:
        if not BLOB_ID.match(blob_id):
            raise ValueError("not a blob id")
        return self.root / blob_id

    def _legacy(self, blob_id: str) -> Path:
        """Where an earlier version kept the blob: a two-letter sub-folder."""
        return self.root / blob_id[:2] / blob_id

    def create(self, blob_id: str) -> BinaryIO:
        """The blob's new file, unbuffered: the vault buffers what it writes."""
        fd = os.open(self.path(blob_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        return os.fdopen(fd, "wb", buffering=0)

    def open(self, blob_id: str) -> BinaryIO:
        try:
            return self.path(blob_id).open("rb")
        except FileNotFoundError:
            return self._legacy(blob_id).open("rb")

    def exists(self, blob_id: str) -> bool:
        return self.path(blob_id).exists() or self._legacy(blob_id).exists()

    def delete(self, blob_id: str) -> None:
        try:
            self.path(blob_id).unlink()
        except FileNotFoundError:
            with contextlib.suppress(FileNotFoundError):
                self._legacy(blob_id).unlink()

    def ids(self) -> Iterator[str]:
        for entry in self.root.iterdir():
            if BLOB_ID.match(entry.name):
                yield entry.name
            elif _FANOUT.match(entry.name) and entry.is_dir():
                for f in entry.iterdir():
                    if BLOB_ID.match(f.name):
                        yield f.name
