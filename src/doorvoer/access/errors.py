"""The policy's one refusal."""

from __future__ import annotations


class Denied(Exception):
    """The access policy refused. Doors turn it into their own 'permission denied'."""
