"""What every service needs at hand: settings, the database and the vault."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from doorvoer.config import Settings
from doorvoer.db import make_engine, make_sessions
from doorvoer.secrets.sealing import Sealer
from doorvoer.vault.service import Vault, load_master_key
from doorvoer.vault.store import LocalStore

VAULT_SPARES = 16  # empty files the vault creates ahead (see vault/store.py)


@dataclass
class Context:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    vault: Vault
    sealer: Sealer
    node_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    # Called when work appears (an upload completed); the node wakes its workers.
    nudge: Callable[[], None] = lambda: None

    @classmethod
    def open(cls, settings: Settings) -> Context:
        engine = make_engine(settings.resolved_database_url, durable=settings.fsync)
        master = load_master_key(settings.master_key_path, settings.master_key)
        vault = Vault(LocalStore(settings.vault_dir, spares=VAULT_SPARES), master,
                      fsync=settings.fsync)
        return cls(settings=settings, engine=engine, sessions=make_sessions(engine), vault=vault,
                   sealer=Sealer(master))

    def close(self) -> None:
        self.vault.store.close()
        self.engine.dispose()
