"""Protocol-level adjustments to asyncssh's SFTP server session.

asyncssh builds its `SFTPServerHandler` itself, so the only way to change how packets
are parsed is to give it a subclass. We need three things it does not do:

- know whether a file was closed by the client (CLOSE) or by asyncssh tearing down a
  dropped connection: only the first can complete an upload;
- tolerate trailing bytes after a WRITE's data, as OpenSSH does (rclone 1.60 sends
  them on the last write of a file over 32 KiB);
- announce only the extensions we implement.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

from asyncssh import sftp as _sftp

MAX_READ = 255 * 1024
MAX_AUTH_ATTEMPTS = 6
# Keep aes-ctr with non-ETM hmac-sha2: libssh2 1.10 (curl) has no GCM and no ETM.
MAC_ALGS = [
    "hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com",
    "umac-128-etm@openssh.com", "hmac-sha2-256", "hmac-sha2-512",
]

_Base: Any = _sftp.SFTPServerHandler
_UNSUPPORTED = {
    b"statvfs@openssh.com", b"fstatvfs@openssh.com", b"hardlink@openssh.com",
    b"fsync@openssh.com", b"lsetstat@openssh.com", b"copy-data", b"ranges@asyncssh.com",
}


class DoorvoerSFTPHandler(_Base):  # type: ignore[misc]
    _extensions: ClassVar[list[tuple[bytes, bytes]]] = [
        (b"newline", b"\n"),
        (b"posix-rename@openssh.com", b"1"),
        (b"limits@openssh.com", b"1"),
    ]

    async def _process_close(self, packet: Any) -> None:
        handle = packet.get_string()
        file_obj = self._file_handles.pop(handle, None)
        if file_obj is not None:
            if hasattr(file_obj, "client_closed"):
                file_obj.client_closed = True
            result = self._server.close(file_obj)
            if inspect.isawaitable(result):
                await result
            return
        if self._dir_handles.pop(handle, None) is not None:
            return
        raise _sftp.SFTPInvalidHandle("Invalid file handle")

    async def _process_write(self, packet: Any) -> int:
        handle = packet.get_string()
        offset = packet.get_uint64()
        data = packet.get_string()
        # No check_end(): trailing bytes after the data are ignored, as OpenSSH does.
        file_obj = self._file_handles.get(handle)
        if not file_obj:
            raise _sftp.SFTPInvalidHandle("Invalid file handle")
        result = self._server.write(file_obj, offset, data)
        if inspect.isawaitable(result):
            result = await result
        return result  # type: ignore[no-any-return]

    async def _process_limits(self, packet: Any) -> Any:
        packet.check_end()
        return _sftp.SFTPLimits(_sftp.MAX_SFTP_PACKET_LEN, MAX_READ, MAX_READ, 64)

    _packet_handlers: ClassVar[dict[Any, Any]] = {
        **{k: v for k, v in _Base._packet_handlers.items() if k not in _UNSUPPORTED},
        _sftp.FXP_CLOSE: _process_close,  # type: ignore[attr-defined]
        _sftp.FXP_WRITE: _process_write,  # type: ignore[attr-defined]
        b"limits@openssh.com": _process_limits,
    }



_installed = False


def install() -> None:
    """Make asyncssh run our handler for SFTP sessions. Idempotent."""
    global _installed
    if _installed:
        return

    async def _sftp_handler(sftp_server: Any, reader: Any, writer: Any,
                            sftp_version: int) -> None:
        if inspect.isawaitable(sftp_server):
            sftp_server = await sftp_server
        handler = DoorvoerSFTPHandler(sftp_server, reader, writer, sftp_version)
        await handler.run()

    _sftp._sftp_handler = _sftp_handler
    _installed = True
