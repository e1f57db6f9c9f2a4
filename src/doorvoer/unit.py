"""The unit of work: one per request, SFTP operation or job step (docs/architecture.md).

A door (the portal, the API, the SFTP server, the CLI, a worker's loop) opens one with
`ctx.unit()` and passes it down. Every service function that changes data does so
inside it and never commits on its own: the unit commits when the door's block ends
without an error, and rolls back otherwise. The audit entry of a change is written in
the same unit, so a change that commits always has its entry.

The database transaction begins when a service first touches the database (`conn`,
`session`, `execute`), so a service may do slow work first (create a blob file, hash a
password) without holding SQLite's single writer. Work that must wait for the commit
(deleting blob files, waking workers) is registered with `after_commit`; it runs after
the commit and after the writer lock is released, and never when the unit rolls back.
Undo for what was done outside the database (a prepared blob file) is registered with
`on_rollback`. Mail is queued with `notify`; the door sends `outgoing` after the commit
(a mail that cannot be sent never undoes a change).

The hot paths use Core statements on `conn`; the rest the ORM on `session`, bound to the
same connection and transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, Result, RootTransaction
from sqlalchemy.orm import Session

from doorvoer.db import WRITE_OPTION, writer_lock

if TYPE_CHECKING:
    from doorvoer.access.policy import Actor
    from doorvoer.config import Settings
    from doorvoer.context import Context
    from doorvoer.vault.service import Vault

log = logging.getLogger("doorvoer.unit")


class Work:
    """One unit of work. Use it as a context manager, once."""

    def __init__(self, ctx: Context, *, write: bool = True, actor: Actor | None = None,
                 source: str | None = None, snapshot: bool = False) -> None:
        self.ctx = ctx
        self.write = write
        self.snapshot = snapshot  # every read sees one state (SQLite's read transactions do)
        self.actor = actor  # who acts, as the door knows them
        self.source = source  # from where: an address, or None
        self.outgoing: list[EmailMessage] = []
        self._inside = self._used = False
        self._stack: ExitStack | None = None
        self._conn: Connection | None = None
        self._trans: RootTransaction | None = None
        self._session: Session | None = None
        self._before: dict[str, Callable[[], None]] = {}
        self._after: list[Callable[[], None]] = []
        self._undo: list[Callable[[], None]] = []
        self.state: dict[str, Any] = {}  # what an area keeps for this unit (its audit entries)

    # ------------------------------------------------------------ what services use
    @property
    def settings(self) -> Settings:
        return self.ctx.settings

    @property
    def vault(self) -> Vault:
        return self.ctx.vault

    @property
    def conn(self) -> Connection:
        """The transaction's connection (begun on first use), for Core statements. ORM
        changes made so far are flushed first, so the statement sees them."""
        session = self._session
        if session is not None and (session.new or session.dirty or session.deleted):
            session.flush()
        if self._conn is None:
            return self._begin()
        return self._conn

    @property
    def session(self) -> Session:
        """An ORM session on the same connection and transaction (made on first use)."""
        if self._session is None:
            conn = self._conn if self._conn is not None else self._begin()
            self._session = Session(bind=conn, expire_on_commit=False,
                                    join_transaction_mode="rollback_only")
        return self._session

    @property
    def open_session(self) -> Session | None:
        """The ORM session if one was made (to keep its identity map true)."""
        return self._session

    @property
    def reader(self) -> Engine | Connection:
        """Where a single read goes (`FastRead.first`): the transaction once it has
        begun (it must see this unit's own writes), else the engine, whose lone SELECT
        sees one consistent state without beginning anything."""
        return self._conn if self._conn is not None else self.ctx.engine

    @property
    def begun(self) -> bool:
        return self._conn is not None

    def execute(self, statement: Any, params: Any = None) -> Result[Any]:
        """A Core statement in the transaction (after flushing the ORM's changes)."""
        return self.conn.execute(statement, params)

    def changed(self, statement: Any, params: Any = None) -> int:
        """A Core UPDATE or DELETE in the transaction; returns how many rows it changed."""
        return int(self.conn.execute(statement, params).rowcount)

    def before_commit(self, key: str, job: Callable[[], None]) -> None:
        """Run `job` in the transaction just before it commits (once per key): the last
        writes of a unit, such as its audit entries. An error there rolls back all."""
        self._before.setdefault(key, job)

    def after_commit(self, job: Callable[[], None]) -> None:
        self._after.append(job)

    def on_rollback(self, job: Callable[[], None]) -> None:
        self._undo.append(job)

    def notify(self, *messages: EmailMessage | None) -> None:
        """Queue mail; the door sends it once the unit has committed."""
        self.outgoing.extend(m for m in messages if m is not None)

    # ------------------------------------------------------------ the door's side
    def __enter__(self) -> Work:
        if self._used:
            raise RuntimeError("a unit of work is used once")
        self._inside = self._used = True
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        committed = False
        try:
            ok = exc_type is None
            if ok:
                self._before_commit()
            self._inside = False
            committed = self._end(ok)
        finally:
            self._inside = False
            _run(self._after if committed else self._undo)
            if not committed:
                self.outgoing.clear()
            self._after, self._undo = [], []

    def _before_commit(self) -> None:
        """The before-commit jobs, in the transaction (one may begin it); on an error the
        transaction rolls back and the error goes to the door."""
        try:
            while self._before:
                key = next(iter(self._before))
                self._before.pop(key)()
        except BaseException:
            self._inside = False
            self._end(False)
            raise

    def _begin(self) -> Connection:
        if not self._inside:
            raise RuntimeError("the unit of work is used outside its block")
        engine = self.ctx.engine
        stack = ExitStack()
        try:
            lock = writer_lock(engine) if self.write else None
            if lock is not None:
                stack.enter_context(lock)
            conn = stack.enter_context(engine.connect())
            if self.write:
                conn.execution_options(**{WRITE_OPTION: True})
            elif self.snapshot and engine.dialect.name == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            self._trans = conn.begin()
        except BaseException:
            stack.close()
            raise
        self._stack, self._conn = stack, conn
        return conn

    def _end(self, ok: bool) -> bool:
        """Commit (or roll back) and release the connection and lock. True when a
        commit happened or nothing was begun on a successful block."""
        if self._conn is None or self._trans is None or self._stack is None:
            return ok
        try:
            if ok:
                if self._session is not None:
                    self._session.flush()
                self._trans.commit()
            else:
                self._trans.rollback()
            return ok
        except BaseException:
            if self._trans.is_active:
                self._trans.rollback()
            raise
        finally:
            if self._session is not None:
                self._session.close()
            self._stack.close()  # the connection back to the pool, the writer lock free
            self._conn = self._trans = self._stack = None


def _run(jobs: Iterable[Callable[[], None]]) -> None:
    for job in jobs:
        try:
            job()
        except Exception:
            # What is left (a blob file without its key, say) is unreadable residue that
            # the start-up sweep removes; the outcome of the unit stands.
            log.exception("after-commit job failed")
