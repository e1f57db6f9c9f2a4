"""What goes out about support access over the API: one shape per grant."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from doorvoer.support.models import Grant, GrantState


class GrantOut(BaseModel):
    """A support access request and, once answered, the grant. Times are UTC."""

    model_config = ConfigDict(title="Grant")

    id: str
    staff: str = Field(description="The support user's e-mail")
    reason: str
    ticket: str
    requested_scopes: list[str]
    scopes: list[str] = Field(description="What was granted (empty until approved)")
    state: GrantState = Field(description="pending, active, refused, expired or revoked")
    requested_at: datetime
    expires_at: datetime = Field(
        description="Pending: when the request lapses; otherwise when access ends or ended")
    answered_at: datetime | None
    answered_by: str | None
    first_used_at: datetime | None
    ended_at: datetime | None

    @classmethod
    def of(cls, g: Grant, state: GrantState) -> GrantOut:
        return cls(id=g.id, staff=g.staff_email, reason=g.reason, ticket=g.ticket,
                   requested_scopes=g.requested_list, scopes=g.scope_list, state=state,
                   requested_at=g.requested_at, expires_at=g.expires_at,
                   answered_at=g.answered_at, answered_by=g.answered_by,
                   first_used_at=g.first_used_at, ended_at=g.ended_at)


class ApproveIn(BaseModel):
    """Approve a request: the scopes (of those asked for), for how long, and a fresh
    two-factor code of the admin who made the token."""

    scopes: list[str] = Field(min_length=1)
    hours: int = Field(ge=1, le=168)
    code: str = Field(min_length=6, max_length=8, description="A current TOTP code")
