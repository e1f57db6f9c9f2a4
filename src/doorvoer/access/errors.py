"""The policy's one refusal."""

from __future__ import annotations


class Denied(Exception):
    """The access policy refused. Doors turn it into their own 'permission denied'.
    `why`, when set, is a sentence the door may show (a staff member without a grant
    is told what to do)."""

    def __init__(self, action: str = "", why: str | None = None) -> None:
        super().__init__(action)
        self.why = why
