"""What goes out about the audit log over the API: the entries exactly as the export
writes them (docs/audit.md), checkpoints, and the check."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ActorOut(BaseModel):
    model_config = ConfigDict(title="AuditActor")

    kind: str = Field(description="person, account, staff or system")
    id: str | None
    name: str | None
    role: str | None
    grant: str | None = Field(default=None, description="Staff: the grant relied on")
    instruction: str | None = Field(default=None,
                                    description="Staff: the instruction relied on")


class EntryOut(BaseModel):
    """One entry of the chain; `hash` is the SHA-256 of the entry without it, canonical
    JSON (docs/audit.md). Staff entries alone have `grant` and `instruction`."""

    model_config = ConfigDict(title="AuditEntry")

    seq: int
    time: str = Field(description="RFC 3339, UTC")
    actor: ActorOut
    action: str = Field(description="area:subject:verb")
    object: str | None
    source: str | None
    prev: str
    hash: str


class CheckpointOut(BaseModel):
    model_config = ConfigDict(title="AuditCheckpoint")

    seq: int
    hash: str
    signed_at: str
    note: str = Field(description="The C2SP signed note")


class VerifyOut(BaseModel):
    model_config = ConfigDict(title="AuditVerification")

    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    checked: int = Field(description="Checkpoints that hold")
    first_bad_seq: int | None
    problem: str | None
    verifier_key: str
