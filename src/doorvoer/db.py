"""The database engine, the declarative base, SQLite's writer lock and the fast
statements of the hot paths. Transactions are units of work (`unit.py`); migrations
live in migrations/."""

from __future__ import annotations

import collections
import fcntl
import logging
import os
import threading
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, MetaData, create_engine, event, text
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

log = logging.getLogger("doorvoer.db")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


def make_engine(url: str, durable: bool = False) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # LIFO: the hot connection is reused, its page cache warm (FIFO cycled through
        # the pool, and each connection re-read the pages the others had changed)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                               pool_use_lifo=True)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            # Erased vault keys must not linger in free pages.
            cur.execute("PRAGMA secure_delete=ON")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # Writers take the write lock up front and queue up, instead of failing with
            # "database is locked" when a read transaction tries to upgrade; readers
            # start deferred and never wait for a writer (WAL).
            write = conn.get_execution_options().get(WRITE_OPTION)
            # On the driver's connection: SQLAlchemy's execution machinery would cost
            # more than the statement, and every transaction begins here.
            conn.connection.driver_connection.execute(
                "BEGIN IMMEDIATE" if write else "BEGIN")

        # pysqlite's own transaction handling must be off for BEGIN IMMEDIATE to work.
        @event.listens_for(engine, "connect")
        def _no_autobegin(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


WRITE_OPTION = "doorvoer_write"


class _WriterLock:
    """SQLite has one writer at a time. The node's threads and processes (the SFTP and
    HTTPS doors, the transform worker processes, a CLI command run beside `serve`) queue
    for it here, in order: a thread lock within the process, and an flock on a file
    beside the database across processes. Without it they would queue in SQLite's busy
    handler, which polls with growing sleeps (tens of milliseconds under load)."""

    def __init__(self, path: Path | None) -> None:
        self._local = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        if path is not None:
            self._fd = os.open(f"{path}.writer-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                               0o600)

    def __enter__(self) -> None:
        self._local.acquire()
        self._depth += 1
        if self._depth == 1 and self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except BaseException:
                self._depth -= 1
                self._local.release()
                raise

    def try_enter(self) -> bool:
        """Take the lock if nobody holds it; never waits."""
        if not self._local.acquire(blocking=False):
            return False
        self._depth += 1
        if self._depth == 1 and self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self._depth -= 1
                self._local.release()
                return False
        return True

    def __exit__(self, *exc: object) -> None:
        if self._depth == 1 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._depth -= 1
        self._local.release()

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, _WriterLock] = weakref.WeakKeyDictionary()
_WRITERS_GUARD = threading.Lock()


def writer_lock(engine: Engine) -> _WriterLock | None:
    if not is_sqlite(engine):
        return None
    with _WRITERS_GUARD:
        lock = _SQLITE_WRITERS.get(engine)
        if lock is None:
            db = engine.url.database
            path = Path(db) if db and db != ":memory:" else None
            lock = _SQLITE_WRITERS[engine] = _WriterLock(path)
        return lock


@contextmanager
def unless_waiting(engine: Engine) -> Iterator[bool]:
    """On SQLite: take the writer lock if it is free at once, and say whether it was.
    Whoever holds it may run short database work (writes included: the lock is
    re-entrant) without ever waiting for another writer, so an event loop can do such
    work itself instead of handing it to a thread. Elsewhere (PostgreSQL, whose
    statements travel over the network) it is never taken."""
    lock = writer_lock(engine)
    if lock is None or not lock.try_enter():
        yield False
        return
    try:
        yield True
    finally:
        lock.__exit__()


class FastWrite:
    """An INSERT or UPDATE of the hottest transactions (an upload's OPEN and CLOSE). On
    SQLite it runs on the driver's own cursor, where SQLAlchemy's execution machinery
    costs more than SQLite's statement (about 55 of 70 microseconds here). SQLAlchemy
    still compiles it, once per set of keys, and its bind processors convert the values,
    so the row is the one `Connection.execute` would write; a statement that needs more
    (Python-side defaults, say) and every other database go through `Connection.execute`.
    """

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._plans: dict[tuple[str, ...], tuple[str, list[tuple[str, Any]]] | None] = {}

    def _plan(self, conn: Connection, keys: tuple[str, ...]
              ) -> tuple[str, list[tuple[str, Any]]] | None:
        if keys not in self._plans:
            compiled: Any = self.statement.compile(dialect=conn.dialect, column_keys=list(keys))
            plain = not (compiled.insert_prefetch or compiled.update_prefetch
                         or compiled.postfetch or compiled.returning)
            processors = compiled._bind_processors  # what SQLAlchemy applies itself
            self._plans[keys] = (compiled.string, [
                (name, processors.get(name)) for name in compiled.positiontup
            ]) if plain and compiled.positiontup is not None else None
        return self._plans[keys]

    def __call__(self, conn: Connection, *rows: dict[str, Any]) -> None:
        """Run it for each row (all with the same keys), in `conn`'s transaction."""
        if not rows:
            return
        plan = self._plan(conn, tuple(rows[0])) if conn.dialect.name == "sqlite" else None
        if plan is None:
            conn.execute(self.statement, list(rows))
            return
        sql, binds = plan
        values = [[row[name] if convert is None else convert(row[name])
                   for name, convert in binds] for row in rows]
        conn.connection.driver_connection.executemany(sql, values)  # type: ignore[union-attr]


class FastRead:
    """A SELECT of the hottest requests (the STAT a client sends before each upload, an
    upload's name at its CLOSE), run as FastWrite runs its statements: on SQLite on the
    driver's own cursor, where SQLAlchemy's connection, transaction and result machinery
    cost several times the statement (270 against 36 microseconds for the STAT's lookup
    on session 7's machine). SQLAlchemy still compiles it, and its bind and result
    processors convert the values, so the row holds what `Connection.execute` would
    give; a statement that needs more (expanding IN lists, say) and every other database
    go through `Connection.execute`. Rows have the result's column names as attributes.
    """

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._plan_of: dict[str, _ReadPlan | None] = {}

    def _plan(self, dialect: Any) -> _ReadPlan | None:
        if dialect.name not in self._plan_of:
            self._plan_of[dialect.name] = _ReadPlan.of(self.statement, dialect)
        return self._plan_of[dialect.name]

    def first(self, db: Engine | Connection, params: dict[str, Any]) -> Any:
        """The first row, or None. On an Engine, outside any transaction: a lone SELECT
        in SQLite's autocommit mode sees one consistent state of the database; on a
        Connection, in its transaction."""
        plan = self._plan(db.dialect) if db.dialect.name == "sqlite" else None
        if plan is None:
            if isinstance(db, Engine):
                with db.connect() as conn:
                    return conn.execute(self.statement, params).first()
            return db.execute(self.statement, params).first()
        if isinstance(db, Connection):
            return plan.first(db.connection.driver_connection, params)
        raw = db.raw_connection()
        try:
            return plan.first(raw.driver_connection, params)
        finally:
            raw.close()


class _ReadPlan:
    """FastRead's statement compiled for SQLite: its SQL, how to fill in its positional
    parameters (given, or the statement's own constants) and how to convert its row."""

    def __init__(self, sql: str, binds: list[tuple[str, Any, Any]],
                 columns: list[Any], row: Any) -> None:
        self.sql, self.binds, self.columns, self.row = sql, binds, columns, row

    @classmethod
    def of(cls, statement: Any, dialect: Any) -> _ReadPlan | None:
        compiled: Any = statement.compile(dialect=dialect)
        if (compiled.positiontup is None or compiled.post_compile_params
                or compiled.literal_execute_params):
            return None
        processors = compiled._bind_processors  # what SQLAlchemy applies itself
        binds = [(name, compiled.binds[name], processors.get(name))
                 for name in compiled.positiontup]
        columns = [column.type._cached_result_processor(dialect, None)
                   for column in compiled._result_columns]
        names = [column.keyname for column in compiled._result_columns]
        if len(set(names)) != len(names):
            return None  # two columns of one name: left to SQLAlchemy's Row
        return cls(compiled.string, binds, columns, collections.namedtuple("Row", names))

    def first(self, driver: Any, params: dict[str, Any]) -> Any:
        values = []
        for name, bind, convert in self.binds:
            if name in params:
                value = params[name]
            elif bind.required:
                raise InvalidRequestError(f"A value is required for bind parameter {name!r}")
            else:
                value = bind.effective_value
            values.append(value if convert is None else convert(value))
        found = driver.execute(self.sql, values).fetchone()
        if found is None:
            return None
        return self.row(*(value if convert is None else convert(value)
                          for convert, value in zip(self.columns, found, strict=True)))


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def checkpoint(engine: Engine) -> None:
    """Fold the SQLite WAL into the main file so erased key bytes leave the log too."""
    lock = writer_lock(engine)
    if lock is not None:
        with lock:  # no writer of the node is half-way
            raw = engine.raw_connection()  # outside any transaction, which would block it
            try:
                raw.driver_connection.execute(  # type: ignore[union-attr]
                    "PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                raw.close()


def scrub(engine: Engine) -> None:
    """After an erasure: no copy of a deleted row left in the database's files. SQLite
    zeroes deleted content (secure_delete) but its write-ahead log still holds older
    pages until it is folded in; PostgreSQL keeps dead rows until a VACUUM."""
    if is_sqlite(engine):
        checkpoint(engine)
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in Base.metadata.sorted_tables:
            conn.execute(text(f'VACUUM "{table.name}"'))


def ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
