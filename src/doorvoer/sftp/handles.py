"""An open download of an SFTP session: an output read out of the vault.

(Uploads are `transfers.inbox.UploadSession`s, which both doors drive.)"""

from __future__ import annotations

from dataclasses import dataclass, field

from doorvoer.transfers.outbox import Pickup
from doorvoer.vault.reader import WindowReader


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
