"""The DuckDB connection a transform's SQL runs in: it can reach nothing but `input`.

- No files, no network, no extensions: `enable_external_access=false`, no
  extension autoloading or autoinstalling, no Python replacement scans (a query
  cannot read a Python variable by naming it). The one exception is the
  database's own private directory (mode 0700, made with the database, removed
  with it), its only `allowed_directories` entry: the named pipe through which
  a transform's input streams in lives there (see pipes.py). It never holds a
  regular file.
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
  DuckDB might keep between queries. A database that read a large input
  through a pipe is closed too (`Workspace.retire`): DuckDB kept some 20 MiB
  after such a scan, and making a database (20 ms) is little next to the
  transform of a large input.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from doorvoer.transforms.errors import TransformError
from doorvoer.transforms.spec import Limits
from doorvoer.transforms.sqlerrors import map_error

# Idle databases kept per (memory limit, threads); each holds ~7 MiB. No more
# databases are made than transforms run at the same time.
MAX_IDLE = 4
MAX_USES = 1000


class _Database:
    """One locked in-memory DuckDB database, its private directory, how often it served."""

    def __init__(self, limits: Limits) -> None:
        _sweep_once()
        self.directory = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-")
        try:
            self.root = _connect(limits, self.directory)
        except BaseException:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise
        self.uses = 0

    def close(self) -> None:
        self.root.close()
        shutil.rmtree(self.directory, ignore_errors=True)


_PREFIX = "doorvoer-duckdb-"
_swept = threading.Event()


def _sweep_once() -> None:
    """Remove the directories of databases whose process is gone (a worker process ends
    with os._exit, or is killed, and its databases' directories stay). They only ever
    held pipes, and those are removed after each transform: this is tidying up."""
    if _swept.is_set():
        return
    _swept.set()
    for path in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*-*"):
        pid = path.name[len(_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's
    return True


def _connect(limits: Limits, directory: str) -> duckdb.DuckDBPyConnection:
    """A new in-memory database with the sandbox settings, locked.

    DuckDB takes `allowed_directories` only while external access is on, so the
    directory is allowed first, then external access turned off, then the
    configuration locked: all before any operator's SQL runs.
    """
    root = duckdb.connect(
        ":memory:",
        config={
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
        root.execute("SET allowed_directories = $1", [[directory.rstrip(os.sep) + os.sep]])
        root.execute("SET enable_external_access = false")
        # DuckDB would move a cast of an input column (`n::INTEGER`) into its CSV
        # reader, whose error then names the reader's internal column and not the
        # place in the SQL. Late materialization turns `SELECT * FROM input LIMIT n`
        # (n > 50) into a join of `input` with itself: two reads of an input that
        # streams through once, so a valid query would be refused.
        root.execute("SET disabled_optimizers = 'type_pushdown,late_materialization'")
        # the first connection of a database has the progress bar on
        root.execute("SET enable_progress_bar = false")
        lock(root)
    except BaseException:
        root.close()
        raise
    return root


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
    """A new connection to a locked database with the sandbox settings, for one transform."""
    with session(limits) as work:
        yield work.con


@dataclass
class Workspace:
    """What one transform gets: a connection, its database's private directory, and
    `retire`: set it to have the database closed afterwards rather than reused (a
    database that read a large input through a pipe keeps 20 MiB and more)."""

    con: duckdb.DuckDBPyConnection
    directory: str
    retire: bool = False


@contextmanager
def session(limits: Limits) -> Iterator[Workspace]:
    """A new connection to a locked database, and the database's private directory.

    The connection is closed at the end; its database is reused only when the
    block ended normally or with a TransformError, and was not retired. Whatever
    the transform left in the directory is removed.
    """
    key = (limits.memory_limit_mb, limits.threads)
    database = _take(key, limits)
    database.uses += 1
    reusable = False
    work: Workspace | None = None
    try:
        work = Workspace(database.root.cursor(), database.directory)
        try:
            yield work
            reusable = True
        except TransformError:
            reusable = True
            raise
        finally:
            work.con.close()
            reusable = _emptied(database.directory) and reusable and not work.retire
    finally:
        if reusable:
            _give_back(key, database)
        else:
            database.close()


def _emptied(directory: str) -> bool:
    """Remove what a transform left in a database's directory; False if that failed."""
    try:
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
    except OSError:
        return False
    return True


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
