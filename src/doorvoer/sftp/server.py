"""The SFTP door (P1, P15): an asyncssh server whose files are vault streams.

asyncssh's SFTPServer serves the real filesystem for every method not overridden, so
every method is overridden here: what is not allowed explicitly is refused. Each
request is one unit of work (`_run`); what the services refuse is translated in one
place (`sftp/errors.py`)."""

from __future__ import annotations

import asyncio
import logging
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
    SFTPError,
    SFTPFailure,
    SFTPFileAlreadyExists,
    SFTPName,
    SFTPNoSuchFile,
    SFTPOpUnsupported,
)

from doorvoer.access.policy import Action, Resource, authorize
from doorvoer.accounts.signin import Login, sftp_session_started
from doorvoer.context import Context
from doorvoer.db import unless_waiting
from doorvoer.sftp import protocol
from doorvoer.sftp.auth import DoorvoerSSHServer, SessionCounter, in_background
from doorvoer.sftp.errors import sftp_error
from doorvoer.sftp.handles import DownloadHandle
from doorvoer.sftp.paths import Location, resolve
from doorvoer.sftp.tree import (
    INBOX_FILE_MODE,
    OUTBOX_FILE_MODE,
    Tree,
    deny,
    open_file_attrs,
)
from doorvoer.transfers import inbox, outbox
from doorvoer.transfers.inbox import UploadSession
from doorvoer.transfers.models import State
from doorvoer.unit import Work
from doorvoer.vault.reader import WindowReader

log = logging.getLogger("doorvoer.sftp")
T = TypeVar("T")



class DoorvoerSFTPServer(asyncssh.SFTPServer):
    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], ctx: Context) -> None:
        super().__init__(chan)
        self._ctx = ctx
        conn = chan.get_connection()
        login = conn.get_extra_info("doorvoer_login")
        assert isinstance(login, Login)
        peer = conn.get_extra_info("peername")
        self._peer = str(peer[0]) if peer else None
        self._login = login
        self._actor = login.actor
        self._handles = 0
        self._tree = Tree(login.tenant_id)
        in_background(ctx, sftp_session_started, login, source=self._peer)

    # ---------------------------------------------------------------- helpers
    async def _run(self, fn: Callable[..., T], *args: Any, write: bool = True,
                   syncs: bool = False) -> T:
        """One request's step, `fn(w, *args)`, in a unit of work of its own. On SQLite
        with the writer lock free it runs at once on the event loop (a few hundred
        microseconds: two thread hand-offs per upload cost more CPU than the step);
        when a writer holds the lock, on PostgreSQL, or when the step fsyncs (`syncs`
        with the fsync setting on), in a thread, so that the loop never waits."""
        ctx = self._ctx

        def step() -> T:
            unit = ctx.unit if write else ctx.reading
            with unit(actor=self._actor, source=self._peer) as w:
                return fn(w, *args)

        try:
            if not (syncs and ctx.settings.fsync):
                with unless_waiting(ctx.engine) as free:
                    if free:
                        return step()
            return await asyncio.to_thread(step)
        except SFTPError:
            raise
        except Exception as exc:  # noqa: BLE001 - translated, or raised again as it is
            raise sftp_error(exc) from None

    def _allow(self, action: Action) -> None:
        authorize(self._actor, action, Resource(self._login.tenant_id))

    def _loc(self, raw: bytes) -> Location:
        try:
            return resolve(raw)
        except Exception as exc:  # noqa: BLE001 - a BadPath: not found
            raise sftp_error(exc) from None

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
        return await self._run(self._stat, path, write=False)

    def _stat(self, w: Work, path: bytes) -> SFTPAttrs:
        return self._tree.attrs(w, self._loc(path))

    async def lstat(self, path: bytes) -> SFTPAttrs:
        return await self.stat(path)

    async def setstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        # rclone sets the mtime of what it just wrote, and uploads again if that fails.
        await self.stat(path)

    async def lsetstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        await self.setstat(path, attrs)

    async def scandir(self, path: bytes) -> AsyncIterator[SFTPName]:
        for name in await self._run(self._scandir, path, write=False):
            yield name

    def _scandir(self, w: Work, path: bytes) -> list[SFTPName]:
        return [SFTPName(name.encode(), attrs=attrs)
                for name, attrs in self._tree.listing(w, self._loc(path))]

    async def mkdir(self, path: bytes, attrs: SFTPAttrs) -> None:
        if await self._run(lambda w: self._tree.is_dir(w, self._loc(path)), write=False):
            raise SFTPFailure("the folder exists")
        deny("folders are fixed: the inbox and outbox have a folder per process")

    def rmdir(self, path: bytes) -> None:
        deny("folders are fixed and cannot be removed")

    async def remove(self, path: bytes) -> None:
        return await self._run(self._remove, path)

    def _remove(self, w: Work, path: bytes) -> None:
        loc = self._loc(path)
        place = self._tree.place(w, loc)
        if place is None:
            raise SFTPNoSuchFile("no such file") if not self._tree.is_dir(w, loc) else deny()
        box, folder, name = place
        self._allow(Action.UPLOAD if box == "inbox" else Action.PICKUP)
        if box == "inbox":
            inbox.remove_upload(w, self._login.tenant_id, folder, name)
        else:
            outbox.remove_pickup(w, self._login.tenant_id, folder, name)

    async def rename(self, oldpath: bytes, newpath: bytes) -> None:
        return await self._run(self._rename, oldpath, newpath)

    def _rename(self, w: Work, oldpath: bytes, newpath: bytes) -> None:
        old, new = self._loc(oldpath), self._loc(newpath)
        if old.depth < 3 or new.depth < 3:
            deny("folders are fixed and cannot be renamed")
        if old.box != "inbox" or new.box != "inbox":
            deny("only files in the inbox can be renamed, and only within it")
        target = self._tree.inbox_target(w, new)
        source = self._tree.inbox_target(w, old)
        self._allow(Action.UPLOAD)
        inbox.rename_upload(w, self._login.tenant_id, source, target)

    async def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        await self.rename(oldpath, newpath)

    def readlink(self, path: bytes) -> bytes:
        deny("there are no links here")

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        deny("links are not allowed")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        deny("links are not allowed")

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
        if self._handles >= self._ctx.settings.max_open_handles:
            raise SFTPFailure("too many open files in this session")
        try:
            handle = await self._run(self._open, path, pflags, attrs,
                                     write=bool(pflags & FXF_WRITE))
        except SFTPError as exc:
            if pflags & FXF_WRITE:
                in_background(self._ctx, inbox.record_refusal, self._login.tenant_id,
                              path.decode("utf-8", "replace"), exc.reason, source=self._peer)
            raise
        self._handles += 1
        return handle

    def _open(self, w: Work, path: bytes, pflags: int, attrs: SFTPAttrs) -> object:
        loc = self._loc(path)
        if pflags & FXF_WRITE:
            if pflags & (FXF_READ | FXF_APPEND):
                deny("the inbox is a drop box: files can be written once, not read or appended")
            if self._tree.is_dir(w, loc):
                deny("that is a folder")
            folder, name = self._tree.inbox_target(w, loc)
            self._allow(Action.UPLOAD)
            if pflags & FXF_EXCL and self._tree.entry(w, loc) is not None:
                raise SFTPFileAlreadyExists("a file of that name is waiting already")
            if not pflags & FXF_CREAT:
                deny("inbox files cannot be reopened: upload the whole file again")
            return UploadSession.begin(w, self._login.tenant_id, self._login.account_id,
                                       folder, name, attrs.size if attrs.size else None)
        if pflags & FXF_READ:
            if loc.box == "inbox" and loc.depth == 3:
                deny("the inbox is a drop box: files cannot be read back")
            place = self._tree.place(w, loc) if loc.box == "outbox" else None
            if place is None:
                raise SFTPNoSuchFile("no such file")
            self._allow(Action.PICKUP)
            pickup = outbox.open_pickup(w, self._login.tenant_id, place[1], place[2])
            if pickup is None:
                raise SFTPNoSuchFile("no such file")
            vault, engine = self._ctx.vault, self._ctx.engine
            return DownloadHandle(pickup, WindowReader(
                lambda: vault.open(engine, pickup.blob_id)))
        raise SFTPOpUnsupported("open needs read or write access")

    def write(self, file_obj: object, offset: int, data: bytes) -> int:
        if not isinstance(file_obj, UploadSession):
            deny("this file is open for reading")
        try:
            file_obj.write(offset, data)
        except Exception as exc:  # noqa: BLE001 - translated
            raise sftp_error(exc) from None
        return len(data)

    def read(self, file_obj: object, offset: int, size: int) -> bytes:
        if not isinstance(file_obj, DownloadHandle):
            deny("the inbox is a drop box: files cannot be read back")
        size = min(size, protocol.MAX_READ)
        data = file_obj.reader.read(offset, size)
        file_obj.note_served(offset, offset + len(data))
        if not data and offset >= file_obj.pickup.size:
            file_obj.eof_seen = True
        return data

    def fstat(self, file_obj: object) -> SFTPAttrs:
        if isinstance(file_obj, UploadSession):
            return open_file_attrs(INBOX_FILE_MODE, file_obj.size)
        if isinstance(file_obj, DownloadHandle):
            return open_file_attrs(OUTBOX_FILE_MODE, file_obj.pickup.size)
        raise SFTPFailure("bad handle")

    def fsetstat(self, file_obj: object, attrs: SFTPAttrs) -> None:
        if isinstance(file_obj, UploadSession) and attrs.size is not None:
            file_obj.expected_size = attrs.size

    def fsync(self, file_obj: object) -> None:
        return None  # the blob is sealed and synced at close

    async def close(self, file_obj: object) -> None:
        if isinstance(file_obj, UploadSession):
            self._handles -= 1
            reason = file_obj.incomplete_reason()
            state = await self._run(file_obj.finish, syncs=reason is None)
            log.info("upload closed", extra={"transfer": file_obj.transfer_id,
                                               "state": str(state), "bytes": file_obj.size})
            if state == State.INTERRUPTED and file_obj.client_closed:
                raise SFTPFailure(f"upload not accepted: {reason}")
        elif isinstance(file_obj, DownloadHandle):
            self._handles -= 1
            file_obj.reader.close()
            if file_obj.complete:
                await self._run(outbox.mark_fetched, file_obj.pickup.delivery_id)

    def exit(self) -> None:
        self._handles = 0


async def start_server(ctx: Context, host: str, port: int) -> asyncssh.SSHAcceptor:
    """Listen for SFTP. The caller closes the returned acceptor."""
    protocol.install()
    settings = ctx.settings
    counter = SessionCounter(settings.max_sessions_per_account)
    host_key = asyncssh.read_private_key(str(settings.host_key_path))
    return await asyncssh.listen(
        host, port,
        server_host_keys=[host_key],
        server_factory=lambda: DoorvoerSSHServer(ctx, counter),
        sftp_factory=lambda chan: DoorvoerSFTPServer(chan, ctx),
        allow_scp=False,
        agent_forwarding=False,
        x11_forwarding=False,
        login_timeout=60,
        keepalive_interval=30,
        keepalive_count_max=4,
        mac_algs=protocol.MAC_ALGS,
    )
