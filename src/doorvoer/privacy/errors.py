"""What the privacy area refuses."""

from __future__ import annotations

from doorvoer.errors import UserError


class ErasureRefused(UserError):
    """An erasure that cannot be requested, cancelled or run as asked; the message says
    why."""


class BadCertificate(UserError):
    """An erasure certificate that does not verify; the message says why."""
