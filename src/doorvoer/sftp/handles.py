"""Open files of an SFTP session: uploads into the vault, downloads out of it."""

from __future__ import annotations

from dataclasses import dataclass, field

from doorvoer.transfers.service import Pickup, Upload
from doorvoer.vault.reader import WindowReader


class WriteRefused(Exception):
    """A write the upload cannot take; the upload will not count as complete."""


@dataclass
class UploadHandle:
    """Writes may arrive out of order (pipelining clients): buffer them, bounded, and
    pass bytes to the vault strictly in order, exactly as the client sent them."""

    upload: Upload
    folder: str
    name: str
    max_bytes: int
    buffer_limit: int
    next_offset: int = 0
    pending: dict[int, bytes] = field(default_factory=dict)
    pending_bytes: int = 0
    refused: str | None = None
    expected_size: int | None = None
    client_closed: bool = False

    def write(self, offset: int, data: bytes) -> None:
        if self.refused:
            raise WriteRefused(self.refused)
        end = offset + len(data)
        if end > self.max_bytes:
            self._refuse(f"the file is larger than the limit of {self.max_bytes} bytes")
        if offset < self.next_offset:
            # A resend of bytes already passed on: it must not change them, and we can
            # no longer compare (they are encrypted), so take only what is new.
            if end <= self.next_offset:
                return
            data = data[self.next_offset - offset :]
            offset = self.next_offset
        if offset > self.next_offset:
            if offset in self.pending:
                if len(self.pending[offset]) >= len(data):
                    return
                self.pending_bytes -= len(self.pending[offset])
            if self.pending_bytes + len(data) > self.buffer_limit:
                self._refuse("writes arrived too far out of order")
            self.pending[offset] = data
            self.pending_bytes += len(data)
            return
        self.upload.writer.write(data)
        self.next_offset = end
        self._drain()

    def _drain(self) -> None:
        while self.pending:
            first = min(self.pending)
            if first > self.next_offset:
                return
            data = self.pending.pop(first)
            self.pending_bytes -= len(data)
            end = first + len(data)
            if end > self.next_offset:
                self.upload.writer.write(data[self.next_offset - first :])
                self.next_offset = end

    def _refuse(self, reason: str) -> None:
        self.refused = reason
        raise WriteRefused(reason)

    @property
    def size(self) -> int:
        return self.next_offset

    def incomplete_reason(self) -> str | None:
        """None when the client's bytes cover 0..end with no gap and no refused write."""
        if self.refused:
            return f"a write was refused: {self.refused}"
        if not self.client_closed:
            return "the connection ended before the client closed the file"
        if self.pending:
            return "the upload has gaps: not every byte arrived"
        if self.expected_size is not None and self.expected_size != self.next_offset:
            return "the file is shorter than the size the client announced"
        return None


@dataclass
class DownloadHandle:
    pickup: Pickup
    reader: WindowReader
    served: list[tuple[int, int]] = field(default_factory=list)  # merged [start, end)
    client_closed: bool = False
    eof_seen: bool = False  # the client asked past the end and was told EOF

    def note_served(self, start: int, end: int) -> None:
        if end <= start:
            return
        spans = [*self.served, (start, end)]
        spans.sort()
        merged: list[tuple[int, int]] = []
        for s, e in spans:
            if merged and s <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], e))
            else:
                merged.append((s, e))
        self.served = merged

    @property
    def complete(self) -> bool:
        """Every byte was served, and the client closed the file or read up to EOF
        (lftp reads to EOF and then drops the connection without a CLOSE)."""
        size = self.pickup.size
        covered = size == 0 or (
            bool(self.served) and self.served[0][0] == 0 and self.served[0][1] >= size)
        return covered and (self.client_closed or self.eof_seen)
