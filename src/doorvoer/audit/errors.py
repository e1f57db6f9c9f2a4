"""What the audit area refuses or finds."""

from __future__ import annotations

from doorvoer.errors import UserError


class BadNote(UserError):
    """A signed note (a checkpoint, a receipt) that cannot be read or does not verify."""


class BadSigningKey(Exception):
    """The node's signing key is missing, malformed or readable by others."""


class ChainBroken(UserError):
    """The audit chain, or a checkpoint of it, does not hold; the message names the
    first bad seq."""
