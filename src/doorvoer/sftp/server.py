"""The SFTP door (P1, P15): an asyncssh server whose files are vault streams.

asyncssh's SFTPServer serves the real filesystem for every method not overridden, so
every method is overridden here: what is not allowed explicitly is refused."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn, TypeVar

import asyncssh
from asyncssh import (
    FXF_APPEND,
    FXF_CREAT,
    FXF_EXCL,
    FXF_READ,
    FXF_WRITE,
    SFTPAttrs,
    SFTPFailure,
    SFTPFileAlreadyExists,
    SFTPName,
    SFTPNoSpaceOnFilesystem,
    SFTPNoSuchFile,
    SFTPOpUnsupported,
    SFTPPermissionDenied,
)

from doorvoer.access.policy import Action, Actor, Resource, Role, authorize
from doorvoer.accounts.service import check_password, find_login
from doorvoer.context import Context
from doorvoer.db import transaction, unless_waiting
from doorvoer.errors import Denied
from doorvoer.processes.service import inbox_folders, outbox_folders
from doorvoer.sftp import protocol
from doorvoer.sftp.handles import DownloadHandle, UploadHandle, WriteRefused
from doorvoer.sftp.paths import ROOTS, BadPath, Location, resolve
from doorvoer.transfers import service as transfers
from doorvoer.transfers.models import State
from doorvoer.transfers.service import Conflict, Entry
from doorvoer.vault.reader import WindowReader
from doorvoer.vault.store import DiskFull

log = logging.getLogger("doorvoer.sftp")
T = TypeVar("T")

FOLDER_CACHE_S = 2.0
DIR_MODE = 0o40750
INBOX_FILE_MODE = 0o100200  # write-only drop box
OUTBOX_FILE_MODE = 0o100400


class Login:
    """Who is logged in on a connection: set at authentication, read by the SFTP side."""

    def __init__(self, account_id: str, account_name: str, tenant_id: str,
                 tenant_slug: str) -> None:
        self.account_id = account_id
        self.account_name = account_name
        self.tenant_id = tenant_id
        self.tenant_slug = tenant_slug


class Throttle:
    """Failed logins per user name and per address in a sliding window."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._fails: dict[str, deque[float]] = defaultdict(deque)

    def blocked(self, *keys: str) -> bool:
        now = time.monotonic()
        for key in keys:
            q = self._fails[key]
            while q and q[0] < now - self.window:
                q.popleft()
            if len(q) >= self.limit:
                return True
        return False

    def fail(self, *keys: str) -> None:
        now = time.monotonic()
        for key in keys:
            self._fails[key].append(now)


class SessionCounter:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[str, int] = defaultdict(int)


class DoorvoerSSHServer(asyncssh.SSHServer):
    def __init__(self, ctx: Context, throttle: Throttle, sessions: SessionCounter) -> None:
        self._ctx = ctx
        self._throttle = throttle
        self._sessions = sessions
        self._conn: asyncssh.SSHServerConnection | None = None
        self._peer = "?"
        self._counted: str | None = None
        self._failures = 0

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        peer = conn.get_extra_info("peername")
        self._peer = str(peer[0]) if peer else "?"

    def connection_lost(self, exc: Exception | None) -> None:
        if self._counted is not None:
            self._sessions.open[self._counted] -= 1
            self._counted = None

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def _blocked(self, username: str) -> bool:
        if self._throttle.blocked(f"user:{username}", f"addr:{self._peer}"):
            log.warning("login throttled", extra={"user": username, "peer": self._peer})
            return True
        return False

    def _accept(self, account: Any, tenant: Any) -> bool:
        assert self._conn is not None
        key = account.id
        if self._counted == key:
            return True  # asyncssh asks twice for a key: the query, then the signature
        if self._sessions.open[key] >= self._sessions.limit:
            log.warning("session limit reached", extra={"account": account.name})
            return False
        self._sessions.open[key] += 1
        self._counted = key
        self._conn.set_extra_info(doorvoer_login=Login(account.id, account.name, tenant.id,
                                                       tenant.slug))
        log.info("login", extra={"account": account.name, "tenant": tenant.slug,
                                 "peer": self._peer})
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        if self._blocked(username):
            return False

        def check() -> tuple[Any, Any] | None:
            with transaction(self._ctx.sessions) as s:
                found = find_login(s, username)
                account = found[0] if found else None
                if check_password(s, account, password) and found is not None:
                    return found
                return None

        found = await asyncio.to_thread(check)
        if found is None:
            self._throttle.fail(f"user:{username}", f"addr:{self._peer}")
            self._failures += 1
            if self._failures >= protocol.MAX_AUTH_ATTEMPTS and self._conn is not None:
                self._conn.close()
            return False
        return self._accept(*found)

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        if self._blocked(username):
            return False
        offered = key.export_public_key("openssh").split()[:2]
        with self._ctx.sessions() as s:
            found = find_login(s, username)
            if found is not None:
                account, tenant = found
                for k in account.keys:
                    if k.public_key.encode().split()[:2] == offered:
                        return self._accept(account, tenant)
        # Clients offer several keys in turn: a miss is not a guess at a secret.
        return False


def _deny(reason: str = "permission denied") -> NoReturn:
    raise SFTPPermissionDenied(reason)


def _dir_attrs() -> SFTPAttrs:
    return SFTPAttrs(type=asyncssh.FILEXFER_TYPE_DIRECTORY, permissions=DIR_MODE,
                     size=0, uid=0, gid=0, mtime=int(time.time()), atime=int(time.time()))


def _file_attrs(entry: Entry, mode: int) -> SFTPAttrs:
    ts = int(entry.mtime.timestamp())
    return SFTPAttrs(type=asyncssh.FILEXFER_TYPE_REGULAR, permissions=mode, size=entry.size,
                     uid=0, gid=0, mtime=ts, atime=ts)


class DoorvoerSFTPServer(asyncssh.SFTPServer):
    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], ctx: Context) -> None:
        super().__init__(chan)
        self._ctx = ctx
        login = chan.get_connection().get_extra_info("doorvoer_login")
        assert isinstance(login, Login)
        self._login = login
        self._actor = Actor(user_id=None, role=Role.ACCOUNT, tenant_id=login.tenant_id)
        self._handles = 0
        self._folder_cache: dict[str, tuple[float, set[str]]] = {}

    # ---------------------------------------------------------------- helpers
    async def _run(self, fn: Callable[..., T], *args: Any, syncs: bool = False) -> T:
        """A short database step of a request. On SQLite with the writer lock free it
        runs at once on the event loop (a few hundred microseconds: two thread hand-offs
        per upload cost more CPU than the step); when a writer holds the lock, on
        PostgreSQL, or when the step fsyncs (`syncs` with the fsync setting on), in a
        thread, so that the loop never waits."""
        if not (syncs and self._ctx.settings.fsync):
            with unless_waiting(self._ctx.engine) as free:
                if free:
                    return fn(*args)
        return await asyncio.to_thread(fn, *args)

    def _allow(self, action: Action) -> None:
        try:
            authorize(self._actor, action, Resource(self._login.tenant_id))
        except Denied:
            _deny()

    def _loc(self, raw: bytes) -> Location:
        try:
            return resolve(raw)
        except BadPath as exc:
            raise SFTPNoSuchFile(str(exc)) from None

    def _folders(self, box: str) -> set[str]:
        """The tenant's process folders, cached briefly: every request asks."""
        now = time.monotonic()
        cached = self._folder_cache.get(box)
        if cached is not None and now - cached[0] < FOLDER_CACHE_S:
            return cached[1]
        with self._ctx.sessions() as s:
            if box == "inbox":
                folders = set(inbox_folders(s, self._login.tenant_id))
            else:
                folders = outbox_folders(s, self._login.tenant_id)
        self._folder_cache[box] = (now, folders)
        return folders

    def _is_dir(self, loc: Location) -> bool:
        if loc.depth == 0:
            return True
        if loc.box not in ROOTS:
            return False
        if loc.depth == 1:
            return True
        assert loc.box is not None
        return loc.depth == 2 and loc.folder in self._folders(loc.box)

    def _entry(self, loc: Location) -> Entry | None:
        if loc.depth != 3 or not self._is_dir(Location(loc.parts[:2])):
            return None
        assert loc.folder is not None
        assert loc.name is not None
        tenant = self._login.tenant_id
        if loc.box == "inbox":
            return transfers.inbox_entry(self._ctx, tenant, loc.folder, loc.name)
        return transfers.outbox_entry(self._ctx, tenant, loc.folder, loc.name)

    def _attrs(self, loc: Location) -> SFTPAttrs:
        if self._is_dir(loc):
            return _dir_attrs()
        entry = self._entry(loc)
        if entry is None:
            raise SFTPNoSuchFile("no such file")
        return _file_attrs(entry, INBOX_FILE_MODE if loc.box == "inbox" else OUTBOX_FILE_MODE)

    def _inbox_target(self, loc: Location) -> tuple[str, str]:
        """Where a file may be written: only /inbox/<process folder>/<name>."""
        if loc.box != "inbox" or loc.depth != 3:
            _deny("files are accepted only in /inbox/<process folder>/")
        assert loc.folder is not None
        assert loc.name is not None
        if loc.folder not in self._folders("inbox"):
            raise SFTPNoSuchFile("no such folder: the inbox has a folder per process")
        return loc.folder, loc.name

    # ---------------------------------------------------------------- listings
    # `ls -l` shows an owner and a group. Files here belong to the tenant, not to a
    # user of the server's own system: asyncssh's default would look uid 0 up in
    # /etc/passwd and /etc/group (two file reads per listed entry) and show "root".
    def format_user(self, uid: int | None) -> str:
        return self._login.tenant_slug

    def format_group(self, gid: int | None) -> str:
        return self._login.tenant_slug

    # ---------------------------------------------------------------- paths
    def realpath(self, path: bytes) -> bytes:
        return self._loc(path).text().encode()

    async def stat(self, path: bytes) -> SFTPAttrs:
        return await self._run(self._stat, path)

    def _stat(self, path: bytes) -> SFTPAttrs:
        return self._attrs(self._loc(path))

    async def lstat(self, path: bytes) -> SFTPAttrs:
        return await self._run(self._lstat, path)

    def _lstat(self, path: bytes) -> SFTPAttrs:
        return self._attrs(self._loc(path))

    async def setstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        return await self._run(self._setstat, path, attrs)

    def _setstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        # rclone sets the mtime of what it just wrote, and uploads again if that fails.
        self._attrs(self._loc(path))

    async def lsetstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        await self.setstat(path, attrs)

    async def scandir(self, path: bytes) -> AsyncIterator[SFTPName]:
        loc = self._loc(path)
        if not self._is_dir(loc):
            if self._entry(loc) is not None:
                raise asyncssh.SFTPNotADirectory("not a directory")
            raise SFTPNoSuchFile("no such folder")
        yield SFTPName(b".", attrs=_dir_attrs())
        yield SFTPName(b"..", attrs=_dir_attrs())
        if loc.depth == 0:
            for box in ROOTS:
                yield SFTPName(box.encode(), attrs=_dir_attrs())
            return
        assert loc.box is not None
        if loc.depth == 1:
            for folder in sorted(self._folders(loc.box)):
                yield SFTPName(folder.encode(), attrs=_dir_attrs())
            return
        assert loc.folder is not None
        tenant = self._login.tenant_id
        if loc.box == "inbox":
            entries = transfers.inbox_entries(self._ctx, tenant, loc.folder)
            mode = INBOX_FILE_MODE
        else:
            entries = transfers.outbox_entries(self._ctx, tenant, loc.folder)
            mode = OUTBOX_FILE_MODE
        for e in entries:
            yield SFTPName(e.name.encode(), attrs=_file_attrs(e, mode))

    def mkdir(self, path: bytes, attrs: SFTPAttrs) -> None:
        if self._is_dir(self._loc(path)):
            raise SFTPFailure("the folder exists")
        _deny("folders are fixed: the inbox and outbox have a folder per process")

    def rmdir(self, path: bytes) -> None:
        _deny("folders are fixed and cannot be removed")

    async def remove(self, path: bytes) -> None:
        return await self._run(self._remove, path)

    def _remove(self, path: bytes) -> None:
        loc = self._loc(path)
        if loc.depth != 3 or not self._is_dir(Location(loc.parts[:2])):
            raise SFTPNoSuchFile("no such file") if not self._is_dir(loc) else _deny()
        assert loc.folder is not None
        assert loc.name is not None
        self._allow(Action.UPLOAD if loc.box == "inbox" else Action.PICKUP)
        try:
            if loc.box == "inbox":
                transfers.remove_upload(self._ctx, self._login.tenant_id, loc.folder, loc.name)
            else:
                transfers.remove_pickup(self._ctx, self._login.tenant_id, loc.folder, loc.name)
        except FileNotFoundError:
            raise SFTPNoSuchFile("no such file") from None
        except Conflict as exc:
            _deny(str(exc))

    async def rename(self, oldpath: bytes, newpath: bytes) -> None:
        return await self._run(self._rename, oldpath, newpath)

    def _rename(self, oldpath: bytes, newpath: bytes) -> None:
        old, new = self._loc(oldpath), self._loc(newpath)
        if old.depth < 3 or new.depth < 3:
            _deny("folders are fixed and cannot be renamed")
        if old.box != "inbox" or new.box != "inbox":
            _deny("only files in the inbox can be renamed, and only within it")
        target = self._inbox_target(new)
        source = self._inbox_target(old)
        self._allow(Action.UPLOAD)
        try:
            transfers.rename_upload(self._ctx, self._login.tenant_id, source, target)
        except FileNotFoundError:
            raise SFTPNoSuchFile("no such file") from None
        except Conflict as exc:
            raise SFTPFileAlreadyExists(str(exc)) if "waiting" in str(exc) else SFTPFailure(
                str(exc)) from None

    async def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        await self.rename(oldpath, newpath)

    def readlink(self, path: bytes) -> bytes:
        _deny("there are no links here")

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        _deny("links are not allowed")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        _deny("links are not allowed")

    def statvfs(self, path: bytes) -> NoReturn:
        raise SFTPOpUnsupported("statvfs is not supported")

    def fstatvfs(self, file_obj: object) -> NoReturn:
        raise SFTPOpUnsupported("statvfs is not supported")

    def lock(self, file_obj: object, offset: int, length: int, flags: int) -> NoReturn:
        raise SFTPOpUnsupported("locking is not supported")

    def unlock(self, file_obj: object, offset: int, length: int) -> NoReturn:
        raise SFTPOpUnsupported("locking is not supported")

    def open56(self, path: bytes, desired_access: int, flags: int,
               attrs: SFTPAttrs) -> NoReturn:
        raise SFTPOpUnsupported("use SFTP version 3")

    # ---------------------------------------------------------------- files
    async def open(self, path: bytes, pflags: int, attrs: SFTPAttrs) -> object:
        return await self._run(self._open, path, pflags, attrs)

    def _open(self, path: bytes, pflags: int, attrs: SFTPAttrs) -> object:
        loc = self._loc(path)
        if self._handles >= self._ctx.settings.max_open_handles:
            raise SFTPFailure("too many open files in this session")
        if pflags & FXF_WRITE:
            if pflags & (FXF_READ | FXF_APPEND):
                _deny("the inbox is a drop box: files can be written once, not read or appended")
            if self._is_dir(loc):
                _deny("that is a folder")
            folder, name = self._inbox_target(loc)
            self._allow(Action.UPLOAD)
            if pflags & FXF_EXCL and self._entry(loc) is not None:
                raise SFTPFileAlreadyExists("a file of that name is waiting already")
            if not pflags & FXF_CREAT:
                _deny("inbox files cannot be reopened: upload the whole file again")
            try:
                upload = transfers.begin_upload(self._ctx, self._login.tenant_id,
                                                self._login.account_id, folder, name)
            except DiskFull:
                raise SFTPNoSpaceOnFilesystem("the server's disk is full") from None
            handle = UploadHandle(
                upload=upload, folder=folder, name=name,
                max_bytes=self._ctx.settings.max_file_bytes,
                buffer_limit=self._ctx.settings.reorder_buffer_bytes,
                expected_size=attrs.size if attrs.size else None,
            )
            self._handles += 1
            return handle
        if pflags & FXF_READ:
            if loc.box == "inbox" and loc.depth == 3:
                _deny("the inbox is a drop box: files cannot be read back")
            if loc.box != "outbox" or loc.depth != 3 or not self._is_dir(Location(loc.parts[:2])):
                raise SFTPNoSuchFile("no such file")
            assert loc.folder is not None
            assert loc.name is not None
            self._allow(Action.PICKUP)
            pickup = transfers.open_pickup(self._ctx, self._login.tenant_id, loc.folder, loc.name)
            if pickup is None:
                raise SFTPNoSuchFile("no such file")
            ctx = self._ctx
            reader = WindowReader(lambda: transfers.open_blob(ctx, pickup.blob_id))
            self._handles += 1
            return DownloadHandle(pickup=pickup, reader=reader)
        raise SFTPOpUnsupported("open needs read or write access")

    def write(self, file_obj: object, offset: int, data: bytes) -> int:
        if not isinstance(file_obj, UploadHandle):
            _deny("this file is open for reading")
        try:
            file_obj.write(offset, data)
        except WriteRefused as exc:
            raise SFTPFailure(str(exc)) from None
        except DiskFull:
            file_obj.refused = "the server's disk is full"
            raise SFTPNoSpaceOnFilesystem("the server's disk is full") from None
        except OSError as exc:
            file_obj.refused = exc.strerror or "the server could not store the file"
            raise SFTPFailure(file_obj.refused) from None
        return len(data)

    def read(self, file_obj: object, offset: int, size: int) -> bytes:
        if not isinstance(file_obj, DownloadHandle):
            _deny("the inbox is a drop box: files cannot be read back")
        size = min(size, protocol.MAX_READ)
        data = file_obj.reader.read(offset, size)
        file_obj.note_served(offset, offset + len(data))
        if not data and offset >= file_obj.pickup.size:
            file_obj.eof_seen = True
        return data

    def fstat(self, file_obj: object) -> SFTPAttrs:
        now = int(time.time())
        if isinstance(file_obj, UploadHandle):
            return SFTPAttrs(type=asyncssh.FILEXFER_TYPE_REGULAR, permissions=INBOX_FILE_MODE,
                             size=file_obj.size, uid=0, gid=0, mtime=now, atime=now)
        if isinstance(file_obj, DownloadHandle):
            return SFTPAttrs(type=asyncssh.FILEXFER_TYPE_REGULAR, permissions=OUTBOX_FILE_MODE,
                             size=file_obj.pickup.size, uid=0, gid=0, mtime=now, atime=now)
        raise SFTPFailure("bad handle")

    def fsetstat(self, file_obj: object, attrs: SFTPAttrs) -> None:
        if isinstance(file_obj, UploadHandle) and attrs.size is not None:
            file_obj.expected_size = attrs.size

    def fsync(self, file_obj: object) -> None:
        return None  # the blob is sealed and synced at close

    async def close(self, file_obj: object) -> None:
        if isinstance(file_obj, UploadHandle):
            self._handles -= 1
            reason = file_obj.incomplete_reason()
            ctx = self._ctx
            if reason is None:
                state = await self._run(transfers.complete_upload, ctx, file_obj.upload,
                                        syncs=True)
            else:
                state = await self._run(transfers.interrupt_upload, ctx, file_obj.upload,
                                        reason)
            log.info("upload closed", extra={"transfer": file_obj.upload.transfer_id,
                                              "state": str(state), "bytes": file_obj.size})
            if state == State.INTERRUPTED and file_obj.client_closed:
                raise SFTPFailure(f"upload not accepted: {reason}")
        elif isinstance(file_obj, DownloadHandle):
            self._handles -= 1
            file_obj.reader.close()
            if file_obj.complete:
                await self._run(transfers.mark_fetched, self._ctx,
                                file_obj.pickup.delivery_id)

    def exit(self) -> None:
        self._handles = 0


async def start_server(ctx: Context, host: str, port: int) -> asyncssh.SSHAcceptor:
    """Listen for SFTP. The caller closes the returned acceptor."""
    protocol.install()
    settings = ctx.settings
    throttle = Throttle(settings.max_failed_logins, settings.failed_login_window_s)
    counter = SessionCounter(settings.max_sessions_per_account)
    host_key = asyncssh.read_private_key(str(settings.host_key_path))
    return await asyncssh.listen(
        host, port,
        server_host_keys=[host_key],
        server_factory=lambda: DoorvoerSSHServer(ctx, throttle, counter),
        sftp_factory=lambda chan: DoorvoerSFTPServer(chan, ctx),
        allow_scp=False,
        agent_forwarding=False,
        x11_forwarding=False,
        login_timeout=60,
        keepalive_interval=30,
        keepalive_count_max=4,
        mac_algs=protocol.MAC_ALGS,
    )
