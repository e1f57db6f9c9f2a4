"""Where encrypted blobs lie: a local folder. Only ciphertext ever reaches it."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

BLOB_ID = re.compile(r"^[0-9a-f]{32}$")


class DiskFull(OSError):
    """The vault's disk has no room left."""


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def path(self, blob_id: str) -> Path:
        if not BLOB_ID.match(blob_id):
            raise ValueError("not a blob id")
        return self.root / blob_id[:2] / blob_id

    def create(self, blob_id: str) -> BinaryIO:
        path = self.path(blob_id)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            fd = os.open(path, flags, 0o600)
        except FileNotFoundError:  # the first blob of its fan-out folder
            path.parent.mkdir(exist_ok=True, mode=0o700)
            fd = os.open(path, flags, 0o600)
        return os.fdopen(fd, "wb", buffering=256 * 1024)

    def open(self, blob_id: str) -> BinaryIO:
        return self.path(blob_id).open("rb")

    def size(self, blob_id: str) -> int:
        return self.path(blob_id).stat().st_size

    def exists(self, blob_id: str) -> bool:
        return self.path(blob_id).exists()

    def delete(self, blob_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(blob_id).unlink()

    def ids(self) -> Iterator[str]:
        for sub in self.root.iterdir():
            if sub.is_dir():
                for f in sub.iterdir():
                    if BLOB_ID.match(f.name):
                        yield f.name
