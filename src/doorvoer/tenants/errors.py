"""What the tenants area refuses."""

from __future__ import annotations

from doorvoer.errors import NotFound, UserError


class NoSuchTenant(NotFound):
    """No tenant of that slug."""


class TenantRefused(UserError):
    """A tenant that cannot be created or changed as asked; the message says why."""
