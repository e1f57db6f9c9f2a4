"""The DuckDB connection a transform's SQL runs in: it can reach nothing but `input`.

- No files, no network, no extensions: `enable_external_access=false`, no
  extension autoloading or autoinstalling, no Python replacement scans (a query
  cannot read a Python variable by naming it).
- No spilling: `temp_directory=''` and a zero temp budget, because spilled
  blocks would be plaintext on disk. A query that needs more than
  `memory_limit` fails instead.
- No progress bar: DuckDB would print it on stdout during long queries (it is
  off in every connection but a database's first, which no transform gets).
- The configuration is locked when the database is made, before any
  operator's SQL ran, and the SQL must be one SELECT statement (SET, PRAGMA,
  COPY, ATTACH, ... are refused before they reach DuckDB).

Databases are reused, connections are not. Making a DuckDB database costs
about 20 ms of CPU (its catalog, its built-in extensions): more than the whole
rest of the transform of a small file. So a database, once made and locked,
goes back into a small pool, and every transform gets a *new connection* to a
database that no other transform uses meanwhile. Why one transform can never
see another's data:

- `input` is registered on the transform's own connection, as a temporary
  view: temporary objects live in that connection's own `temp` catalog, which
  no other connection sees, and they go, with DuckDB's reference to the Arrow
  data, when the connection is closed at the end of the transform (before the
  database is given to the next one).
- Nothing the operator's SQL does outlives its connection: it is exactly one
  SELECT statement (checked by the parser before it runs), which cannot
  create, alter or fill anything in the shared catalog (no tables, views,
  macros, sequences, types, secrets, ATTACH) nor change a setting (locked);
  prepared statements, variables and session settings belong to the
  connection. A late interrupt from the time limit also hits only that
  connection.
- The memory limit and the thread count are settings of the database, so
  the pool is kept per (memory limit, threads) and a database serves one
  transform at a time: each transform has the same limits as with a database
  of its own. The time limit interrupts the transform's own connection.
- Belt and braces: a database that saw anything but a clean end or a
  TransformError (an invalidated database, a bug) is closed, not reused, and
  every database is retired after `MAX_USES` transforms, which bounds whatever
  DuckDB might keep between queries.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from doorvoer.transforms.errors import TransformError
from doorvoer.transforms.spec import Limits
from doorvoer.transforms.sqlerrors import map_error

# Idle databases kept per (memory limit, threads); each holds ~7 MiB. No more
# databases are made than transforms run at the same time.
MAX_IDLE = 4
MAX_USES = 1000


class _Database:
    """One locked in-memory DuckDB database and how often it served."""

    def __init__(self, limits: Limits) -> None:
        self.root = duckdb.connect(
            ":memory:",
            config={
                "enable_external_access": False,
                "autoload_known_extensions": False,
                "autoinstall_known_extensions": False,
                "allow_community_extensions": False,
                "allow_unsigned_extensions": False,
                "python_enable_replacements": False,
                "temp_directory": "",
                "max_temp_directory_size": "0B",
                "memory_limit": f"{limits.memory_limit_mb}MB",
                "threads": limits.threads,
            },
        )
        try:
            # the first connection of a database has the progress bar on
            self.root.execute("SET enable_progress_bar = false")
            lock(self.root)
        except BaseException:
            self.root.close()
            raise
        self.uses = 0

    def close(self) -> None:
        self.root.close()


_Key = tuple[int, int]
_idle: dict[_Key, list[_Database]] = {}
_idle_lock = threading.Lock()


def _take(key: _Key, limits: Limits) -> _Database:
    with _idle_lock:
        pool = _idle.get(key)
        if pool:
            return pool.pop()
    return _Database(limits)


def _give_back(key: _Key, database: _Database) -> None:
    if database.uses < MAX_USES:
        with _idle_lock:
            pool = _idle.setdefault(key, [])
            if len(pool) < MAX_IDLE:
                pool.append(database)
                return
    database.close()


def idle_databases() -> int:
    """How many databases wait in the pool (for tests and diagnostics)."""
    with _idle_lock:
        return sum(len(pool) for pool in _idle.values())


def close_idle() -> None:
    """Close every database that waits in the pool."""
    with _idle_lock:
        databases = [database for pool in _idle.values() for database in pool]
        _idle.clear()
    for database in databases:
        database.close()


# before the interpreter tears down modules, while DuckDB can still close cleanly
atexit.register(close_idle)


@contextmanager
def connect(limits: Limits) -> Iterator[duckdb.DuckDBPyConnection]:
    """A new connection to a locked database with the sandbox settings, for one transform.

    The connection is closed at the end; its database is reused only when the
    block ended normally or with a TransformError.
    """
    key = (limits.memory_limit_mb, limits.threads)
    database = _take(key, limits)
    database.uses += 1
    reusable = False
    try:
        con = database.root.cursor()
        try:
            yield con
            reusable = True
        except TransformError:
            reusable = True
            raise
        finally:
            con.close()
    finally:
        if reusable:
            _give_back(key, database)
        else:
            database.close()


def lock(con: duckdb.DuckDBPyConnection) -> None:
    """Freeze the settings: the SQL that runs after this cannot change them."""
    row = con.execute("SELECT current_setting('lock_configuration')").fetchone()
    if not (row and row[0] is True):
        con.execute("SET lock_configuration = true")


def check_query(con: duckdb.DuckDBPyConnection, sql: str, limits: Limits) -> None:
    """Refuse anything but a single SELECT (or WITH/VALUES/FROM) statement."""
    statements: list[duckdb.Statement] = []
    failure: duckdb.Error | None = None
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        failure = exc
    if failure is not None:
        raise map_error(failure, sql, limits)
    if len(statements) != 1:
        raise TransformError("sql", "the transform must be exactly one SELECT statement")
    if statements[0].type != duckdb.StatementType.SELECT:
        raise TransformError("sql", "the transform must be a SELECT statement (a query)")
