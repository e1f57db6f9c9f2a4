"""The virtual SFTP tree of one account: `/`, `/inbox/<folder>/`, `/outbox/<folder>/`.

Paths arrive as bytes from the client. They are resolved against `/` as text: `..`
stops at the root, and nothing outside the tree exists."""

from __future__ import annotations

import re
from dataclasses import dataclass

ROOTS = ("inbox", "outbox")
# One path component a client may name: no control characters, no separators.
_BAD = re.compile(r"[\x00-\x1f\x7f\\]")
MAX_NAME = 255


class BadPath(ValueError):
    pass


@dataclass(frozen=True)
class Location:
    parts: tuple[str, ...]

    @property
    def depth(self) -> int:
        return len(self.parts)

    @property
    def box(self) -> str | None:
        return self.parts[0] if self.parts else None

    @property
    def folder(self) -> str | None:
        return self.parts[1] if len(self.parts) > 1 else None

    @property
    def name(self) -> str | None:
        return self.parts[2] if len(self.parts) > 2 else None

    def text(self) -> str:
        return "/" + "/".join(self.parts)


def resolve(raw: bytes) -> Location:
    try:
        path = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadPath("path is not valid UTF-8") from None
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        if _BAD.search(part) or len(part.encode()) > MAX_NAME:
            raise BadPath("invalid file name")
        parts.append(part)
    return Location(tuple(parts))
