"""The virtual SFTP tree of one account: `/`, `/inbox/<folder>/`, `/outbox/<folder>/`.

Paths arrive as bytes from the client. They are resolved against `/` as text: `..`
stops at the root, and nothing outside the tree exists. Each component must pass the
one name rule (`transfers.inbox.name_problem`); a path with one that does not names
nothing."""

from __future__ import annotations

from dataclasses import dataclass

from doorvoer.sftp.errors import BadPath
from doorvoer.transfers.inbox import name_problem

ROOTS = ("inbox", "outbox")


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
        problem = name_problem(part)
        if problem is not None:  # the same rule as every door's
            raise BadPath(f"invalid file name: {problem}")
        parts.append(part)
    return Location(tuple(parts))

