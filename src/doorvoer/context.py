"""What every service needs at hand: settings, the database and the vault."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine

from doorvoer.audit.notes import Signer, load_signer
from doorvoer.config import Settings
from doorvoer.db import make_engine
from doorvoer.secrets.sealing import Sealer
from doorvoer.unit import Work
from doorvoer.vault.service import Vault, load_master_key
from doorvoer.vault.store import LocalStore

if TYPE_CHECKING:
    from doorvoer.access.policy import Actor

T = TypeVar("T")
VAULT_SPARES = 16  # empty files the vault creates ahead (see vault/store.py)


@dataclass
class Context:
    settings: Settings
    engine: Engine
    vault: Vault
    sealer: Sealer
    node_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    # Called when work appears (an upload completed); the node wakes its workers.
    nudge: Callable[[], None] = lambda: None
    _signer: Signer | None = None

    @property
    def signer(self) -> Signer:
        """The node's audit signing key (loaded on first use: most processes never
        sign)."""
        if self._signer is None:
            s = self.settings
            self._signer = load_signer(s.signing_key_path, s.signing_key,
                                       f"doorvoer/{s.resolved_node_name}")
        return self._signer

    @classmethod
    def open(cls, settings: Settings) -> Context:
        engine = make_engine(settings.resolved_database_url, durable=settings.fsync)
        master = load_master_key(settings.master_key_path, settings.master_key)
        vault = Vault(LocalStore(settings.vault_dir, spares=VAULT_SPARES), master,
                      fsync=settings.fsync)
        return cls(settings=settings, engine=engine, vault=vault, sealer=Sealer(master))

    def unit(self, *, actor: Actor | None = None, source: str | None = None) -> Work:
        """A unit of work that may write (see unit.py): `with ctx.unit() as w: ...`."""
        return Work(self, write=True, actor=actor, source=source)

    def reading(self, *, actor: Actor | None = None, source: str | None = None,
                snapshot: bool = False) -> Work:
        """A unit of work that only reads: on SQLite it never waits for the writer.
        `snapshot`: all its reads see one state of the database (an export), also on
        PostgreSQL (REPEATABLE READ; SQLite's read transactions are snapshots anyway)."""
        return Work(self, write=False, actor=actor, source=source, snapshot=snapshot)

    def run(self, fn: Callable[..., T], *args: Any, write: bool = True) -> T:
        """`fn(w, *args)` in a unit of work of its own (a job's step, a test's)."""
        with (self.unit() if write else self.reading()) as w:
            return fn(w, *args)

    def close(self) -> None:
        self.vault.store.close()
        self.engine.dispose()
