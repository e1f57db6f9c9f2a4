"""What sign-in and account changes refuse; each message says what to do."""

from __future__ import annotations

from doorvoer.errors import UserError


class WrongPassword(UserError):
    """The current password given to confirm a change is not right."""


class LinkGone(UserError):
    """The link was used already, revoked, replaced, or it expired."""


class Throttled(UserError):
    """Too many failed attempts for this name or from this address, within the window."""

    def __init__(self) -> None:
        super().__init__("too many failed attempts for this name or from this address: "
                         "wait and try again")
