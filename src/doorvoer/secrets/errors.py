"""What the secrets area refuses (never quoting a secret)."""

from __future__ import annotations

from doorvoer.errors import UserError


class ConnectionRefused(UserError):
    """Connection details that cannot be stored as given; the message says which."""
