"""What goes out about a transfer: one shape for `transfers list --json` and the API.

Metadata only (P3, P4): names, states, times, sizes and counts, never file content."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from doorvoer.transfers.models import State, Transfer


class TransferOut(BaseModel):
    """One file's passage through Doorvoer. Times are RFC 3339 in UTC (`Z`)."""

    model_config = ConfigDict(title="Transfer")

    id: str = Field(description="The transfer's id")
    tenant: str | None = Field(description="The tenant's slug")
    process: str | None = Field(
        description="The process that took the file; null while none matched")
    filename: str = Field(description="The final path inside the inbox: <folder>/<name>")
    state: State = Field(description="Where the transfer is now")
    received_at: datetime | None = Field(description="When the whole file had arrived")
    processed_at: datetime | None = Field(description="When the transform finished")
    input_erased_at: datetime | None = Field(description="When the input was erased")
    delivered_at: datetime | None = Field(description="When every target had the output")
    erased_at: datetime | None = Field(description="When the last blob was erased")
    residence_seconds: float | None = Field(
        description="Seconds from receipt to the last erasure; null until erased")
    bytes_in: int | None
    bytes_out: int | None
    rows_in: int | None
    rows_out: int | None
    error: str | None = Field(description="Why it failed or stopped; never quotes content")

    @classmethod
    def of(cls, t: Transfer, tenant_slug: str | None) -> TransferOut:
        return cls(
            id=t.id, tenant=tenant_slug, process=t.process_name, filename=t.path,
            state=t.state, received_at=t.received_at, processed_at=t.processed_at,
            input_erased_at=t.input_erased_at, delivered_at=t.delivered_at,
            erased_at=t.erased_at, residence_seconds=t.residence_seconds,
            bytes_in=t.bytes_in, bytes_out=t.bytes_out, rows_in=t.rows_in,
            rows_out=t.rows_out, error=t.error,
        )


@dataclass(frozen=True)
class Entry:
    """A file as an SFTP client sees it in its inbox or outbox: name, size, time."""

    name: str
    size: int
    mtime: datetime
