"""What support access refuses; each message says what to do."""

from __future__ import annotations

from doorvoer.errors import NotFound, UserError


class NoSuchGrant(NotFound):
    """No grant of that id for this tenant (or for this staff member)."""

    def __init__(self, message: str = "no such support access request") -> None:
        super().__init__(message)


class GrantRefused(UserError):
    """A request, an answer or a revocation that does not fit the grant's state."""


class InstructionRefused(UserError):
    """An instruction record that is incomplete."""


class MessageRefused(UserError):
    """A support thread message that is empty or too long."""


class InspectionRefused(UserError):
    """Opening, closing or viewing that the window's state or the grant does not allow."""


class NoSuchWindow(NotFound):
    """No inspection window (or kept file) of that id for this tenant and viewer."""

    def __init__(self, message: str = "no such inspection window") -> None:
        super().__init__(message)
