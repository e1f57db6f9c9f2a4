"""Why a push failed, in words that never quote content."""

from __future__ import annotations


class PushError(Exception):
    """A push failed; the message names why, never any content."""
