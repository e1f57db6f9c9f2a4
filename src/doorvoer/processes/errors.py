"""What a process spec can get wrong; each message names the file, the line and the
field."""

from __future__ import annotations

from doorvoer.errors import UserError


class SpecError(UserError):
    """The spec does not validate, or does not fit the tenant (a connection that is not
    set, a folder another process uses)."""
