"""Where encrypted blobs lie: a local folder. Only ciphertext ever reaches it.

Blobs lie flat in the folder: with zero retention only the files in flight are
there, and a flat folder is several times cheaper to create files in than a fan-out
of 256 sub-folders (whose inodes the filesystem spreads over its block groups).
Blobs that an earlier version put in two-letter sub-folders are still found, read,
deleted and swept.

Creating a file is the slowest step of a small upload's OPEN (0.1 to 0.4 ms of kernel
time on the virtual disk we measured on), so a store may keep a few empty files
created ahead by a thread of its own (`spare-…`, never a blob id): a new blob takes
one and renames it, and the thread makes more when half of them are gone. They hold
nothing; `close` removes them, and the start-up sweep removes those of a process
that died.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger("doorvoer.vault")
BLOB_ID = re.compile(r"^[0-9a-f]{32}$")
SPARE = "spare-"
_FANOUT = re.compile(r"^[0-9a-f]{2}$")


class LocalStore:
    def __init__(self, root: Path, spares: int = 0) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._spares_wanted = spares
        self._spares: list[tuple[Path, int]] = []
        self._lock = threading.Lock()
        self._want = threading.Event()
        self._stop = False
        self._maker: threading.Thread | None = None

    # -- new blobs

    def create_new(self) -> tuple[str, BinaryIO]:
        """A new blob's id and its empty file, open for writing (unbuffered)."""
        blob_id = uuid.uuid4().hex
        spare = self._take_spare()
        if spare is not None:
            path, fd = spare
            try:
                os.rename(path, self.path(blob_id))
                return blob_id, os.fdopen(fd, "wb", buffering=0)
            except OSError:  # swept away meanwhile: make one now
                os.close(fd)
        return blob_id, self.create(blob_id)

    def _take_spare(self) -> tuple[Path, int] | None:
        if not self._spares_wanted:
            return None
        with self._lock:
            if self._maker is None and not self._stop:
                self._maker = threading.Thread(target=self._make_spares, daemon=True,
                                               name="vault-spares")
                self._maker.start()
            spare = self._spares.pop() if self._spares else None
            low = len(self._spares) <= self._spares_wanted // 2
        if low:  # the thread makes several in a row: one wake-up per half of them
            self._want.set()
        return spare

    def _make_spares(self) -> None:
        while True:
            self._want.wait()
            self._want.clear()
            while not self._stop and len(self._spares) < self._spares_wanted:
                path = self.root / f"{SPARE}{uuid.uuid4().hex}"
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except OSError as exc:  # a full disk, say: new blobs make their own
                    log.warning("no spare vault file", extra={"errno": exc.errno})
                    break
                with self._lock:
                    if self._stop:
                        os.close(fd)
                        path.unlink(missing_ok=True)
                        return
                    self._spares.append((path, fd))
            if self._stop:
                return

    def close(self) -> None:
        """Stop making spares and remove those made."""
        with self._lock:
            self._stop = True
            spares, self._spares = self._spares, []
        self._want.set()
        if self._maker is not None:
            self._maker.join(5)
        for path, fd in spares:
            os.close(fd)
            path.unlink(missing_ok=True)

    def spare_bytes(self) -> int:
        """What the spare files hold (nothing, unless something is wrong)."""
        return sum(entry.stat().st_size for entry in self.root.glob(f"{SPARE}*"))

    def sweep_spares(self) -> int:
        """Remove the spare files of processes that are gone (at start-up)."""
        gone = 0
        for entry in self.root.glob(f"{SPARE}*"):
            entry.unlink(missing_ok=True)
            gone += 1
        return gone

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
