"""The SFTP door's one translation of the services' errors into SFTP status codes."""

from __future__ import annotations

from asyncssh import (
    SFTPError,
    SFTPFailure,
    SFTPFileAlreadyExists,
    SFTPNoSpaceOnFilesystem,
    SFTPNoSuchFile,
    SFTPPermissionDenied,
)

from doorvoer.access.errors import Denied
from doorvoer.errors import NotFound, UserError
from doorvoer.transfers.errors import NameTaken
from doorvoer.vault.errors import DiskFull


class BadPath(ValueError):
    """A path the client sent that names nothing in its tree (it is not found)."""


def sftp_error(exc: Exception) -> SFTPError:
    """What the client is told of a refusal; never more than the refusal's own words."""
    if isinstance(exc, SFTPError):
        return exc
    if isinstance(exc, BadPath):
        return SFTPNoSuchFile(str(exc))
    if isinstance(exc, Denied):
        return SFTPPermissionDenied("permission denied")
    if isinstance(exc, NameTaken):
        return SFTPFileAlreadyExists(str(exc))
    if isinstance(exc, NotFound):
        return SFTPNoSuchFile(str(exc))
    if isinstance(exc, DiskFull):
        return SFTPNoSpaceOnFilesystem("the server's disk is full")
    if isinstance(exc, UserError):
        return SFTPFailure(str(exc))
    if isinstance(exc, OSError):
        return SFTPFailure(exc.strerror or "the server could not store the file")
    raise exc



