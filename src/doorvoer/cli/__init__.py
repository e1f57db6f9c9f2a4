"""The command-line door: `doorvoer …`, one module per group of commands."""

from __future__ import annotations

from contextlib import suppress

from doorvoer.cli import (
    admin,
    audit,
    incidents,
    instructions,
    node,
    privacy,
    subprocessors,
    transfers,
)
from doorvoer.cli.common import app
from doorvoer.cli.transfers import TRANSFER_FIELDS, transfer_rows

__all__ = ["TRANSFER_FIELDS", "admin", "app", "audit", "incidents", "instructions", "main", "node",
           "privacy", "subprocessors", "transfer_rows",
           "transfers"]


def main() -> None:
    with suppress(BrokenPipeError):
        app()


if __name__ == "__main__":
    main()
