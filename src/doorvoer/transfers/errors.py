"""What the transfer state machine refuses. Each says what to do; the doors translate
them (SFTP status codes, HTTP answers), never the other way round."""

from __future__ import annotations

from doorvoer.errors import NotFound, UserError


class NoSuchFile(NotFound):
    """No inbox or outbox file of that name (for this tenant)."""

    def __init__(self, message: str = "no such file") -> None:
        super().__init__(message)


class NoSuchProcess(NotFound):
    """The tenant has no process of that name or folder."""


class Conflict(UserError):
    """The transfer is in a state that does not allow this."""


class NameTaken(Conflict):
    """A file of that name is waiting already."""

    def __init__(self, message: str = "a file of that name is waiting already") -> None:
        super().__init__(message)


class NameRefused(UserError):
    """A name that cannot be uploaded; the message says why."""


class WriteRefused(UserError):
    """A write the upload cannot take; the upload will not count as complete."""
