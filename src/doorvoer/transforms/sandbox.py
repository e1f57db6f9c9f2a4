"""The DuckDB connection a transform's SQL runs in: it can reach nothing but `input`.

- No files, no network, no extensions: `enable_external_access=false`, no
  extension autoloading or autoinstalling, no Python replacement scans (a query
  cannot read a Python variable by naming it).
- No spilling: `temp_directory=''` and a zero temp budget, because spilled
  blocks would be plaintext on disk. A query that needs more than
  `memory_limit` fails instead.
- No progress bar: DuckDB would print it on stdout during long queries.
- The configuration is locked before the operator's SQL runs, and the SQL
  must be one SELECT statement (SET, PRAGMA, COPY, ATTACH, ... are refused
  before they reach DuckDB).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from doorvoer.transforms.errors import TransformError
from doorvoer.transforms.spec import Limits
from doorvoer.transforms.sqlerrors import map_error


@contextmanager
def connect(limits: Limits) -> Iterator[duckdb.DuckDBPyConnection]:
    """A fresh in-memory DuckDB connection with the sandbox settings."""
    con = duckdb.connect(
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
        con.execute("SET enable_progress_bar = false")  # a connection setting, not a global one
        yield con
    finally:
        con.close()


def lock(con: duckdb.DuckDBPyConnection) -> None:
    """Freeze the settings: the SQL that runs after this cannot change them."""
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
