"""What exists in one account's tree: `/`, `/inbox/<folder>/`, `/outbox/<folder>/` and
the files in them, with the attributes a client sees. Folders are the tenant's process
folders (cached briefly: every request asks); files are the waiting uploads and the
outputs waiting for pickup."""

from __future__ import annotations

import time
from typing import NoReturn

import asyncssh
from asyncssh import SFTPAttrs, SFTPNoSuchFile, SFTPPermissionDenied

from doorvoer.processes.service import inbox_folders, outbox_folders
from doorvoer.sftp.paths import ROOTS, Location
from doorvoer.transfers import inbox, outbox
from doorvoer.transfers.schemas import Entry
from doorvoer.unit import Work

FOLDER_CACHE_S = 2.0
DIR_MODE = 0o40750
INBOX_FILE_MODE = 0o100200  # write-only drop box
OUTBOX_FILE_MODE = 0o100400


def deny(reason: str = "permission denied") -> NoReturn:
    raise SFTPPermissionDenied(reason)


def dir_attrs() -> SFTPAttrs:
    now = int(time.time())
    return SFTPAttrs(type=asyncssh.FILEXFER_TYPE_DIRECTORY, permissions=DIR_MODE,
                     size=0, uid=0, gid=0, mtime=now, atime=now)


def file_attrs(entry: Entry, mode: int) -> SFTPAttrs:
    ts = int(entry.mtime.timestamp())
    return SFTPAttrs(type=asyncssh.FILEXFER_TYPE_REGULAR, permissions=mode, size=entry.size,
                     uid=0, gid=0, mtime=ts, atime=ts)


def open_file_attrs(mode: int, size: int) -> SFTPAttrs:
    """An open file's attributes (fstat): its size so far, the time now."""
    now = int(time.time())
    return SFTPAttrs(type=asyncssh.FILEXFER_TYPE_REGULAR, permissions=mode, size=size,
                     uid=0, gid=0, mtime=now, atime=now)


class Tree:
    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self._cache: dict[str, tuple[float, set[str]]] = {}

    def folders(self, w: Work, box: str) -> set[str]:
        now = time.monotonic()
        cached = self._cache.get(box)
        if cached is not None and now - cached[0] < FOLDER_CACHE_S:
            return cached[1]
        tenant = self.tenant_id
        folders = inbox_folders(w, tenant) if box == "inbox" else outbox_folders(w, tenant)
        self._cache[box] = (now, folders)
        return folders

    def is_dir(self, w: Work, loc: Location) -> bool:
        if loc.depth == 0:
            return True
        if loc.box not in ROOTS:
            return False
        if loc.depth == 1:
            return True
        assert loc.box is not None
        return loc.depth == 2 and loc.folder in self.folders(w, loc.box)

    def place(self, w: Work, loc: Location) -> tuple[str, str, str] | None:
        """(box, folder, name) when `loc` is a file's place in an existing folder."""
        if loc.depth != 3 or not self.is_dir(w, Location(loc.parts[:2])):
            return None
        assert loc.box is not None
        assert loc.folder is not None
        assert loc.name is not None
        return loc.box, loc.folder, loc.name

    def entry(self, w: Work, loc: Location) -> Entry | None:
        place = self.place(w, loc)
        if place is None:
            return None
        box, folder, name = place
        if box == "inbox":
            return inbox.inbox_entry(w, self.tenant_id, folder, name)
        return outbox.outbox_entry(w, self.tenant_id, folder, name)

    def attrs(self, w: Work, loc: Location) -> SFTPAttrs:
        if self.is_dir(w, loc):
            return dir_attrs()
        entry = self.entry(w, loc)
        if entry is None:
            raise SFTPNoSuchFile("no such file")
        return file_attrs(entry, INBOX_FILE_MODE if loc.box == "inbox" else OUTBOX_FILE_MODE)

    def inbox_target(self, w: Work, loc: Location) -> tuple[str, str]:
        """Where a file may be written: only /inbox/<process folder>/<name>."""
        if loc.box != "inbox" or loc.depth != 3:
            deny("files are accepted only in /inbox/<process folder>/")
        assert loc.folder is not None
        assert loc.name is not None
        if loc.folder not in self.folders(w, "inbox"):
            raise SFTPNoSuchFile("no such folder: the inbox has a folder per process")
        return loc.folder, loc.name

    def listing(self, w: Work, loc: Location) -> list[tuple[str, SFTPAttrs]]:
        """The entries of a folder (SFTPNoSuchFile, SFTPNotADirectory otherwise)."""
        if not self.is_dir(w, loc):
            if self.entry(w, loc) is not None:
                raise asyncssh.SFTPNotADirectory("not a directory")
            raise SFTPNoSuchFile("no such folder")
        names = [(".", dir_attrs()), ("..", dir_attrs())]
        if loc.depth == 0:
            return names + [(box, dir_attrs()) for box in ROOTS]
        assert loc.box is not None
        if loc.depth == 1:
            return names + [(f, dir_attrs()) for f in sorted(self.folders(w, loc.box))]
        assert loc.folder is not None
        if loc.box == "inbox":
            entries = inbox.inbox_entries(w, self.tenant_id, loc.folder)
            mode = INBOX_FILE_MODE
        else:
            entries, mode = outbox.outbox_entries(w, self.tenant_id, loc.folder), OUTBOX_FILE_MODE
        return names + [(e.name, file_attrs(e, mode)) for e in entries]
