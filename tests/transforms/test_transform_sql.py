"""The SQL sandbox, DuckDB's errors as safe messages, and the limits."""

from __future__ import annotations

import os
import time
from pathlib import Path

import duckdb
import pytest

from doorvoer.transforms import Limits, TransformError
from doorvoer.transforms.sandbox import connect, lock

from .helpers import failure, rows, transform

DATA = b"naam,n\nJan,1\nPiet,x\n"


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM glob('/*')",
        "COPY (SELECT * FROM input) TO '/tmp/doorvoer-leak.csv'",
        "ATTACH '/tmp/doorvoer-leak.db' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET memory_limit = '10GB'",
        "SET enable_external_access = true",
        "PRAGMA threads = 8",
        "SELECT 1; SELECT 2",
        "CREATE TABLE t AS SELECT * FROM input",
        "SELECT * FROM Jan",
    ],
)
def test_nothing_outside_input_is_reachable(sql: str) -> None:
    error = failure(DATA, sql)
    assert error.category == "sql"
    assert not Path("/tmp/doorvoer-leak.csv").exists()
    assert not Path("/tmp/doorvoer-leak.db").exists()


def test_the_connection_itself_refuses_files_extensions_and_settings() -> None:
    with connect(Limits()) as con:
        lock(con)
        for sql in (
            "SELECT * FROM read_csv('/etc/passwd')",
            "COPY (SELECT 1) TO '/tmp/doorvoer-leak.csv'",
            "ATTACH '/tmp/doorvoer-leak.db'",
            "INSTALL httpfs",
            "LOAD httpfs",
            "SET memory_limit = '10GB'",
            "SET temp_directory = '/tmp'",
            "SET lock_configuration = false",
        ):
            with pytest.raises(duckdb.Error):
                con.execute(sql)
        settings = (
            "SELECT current_setting('temp_directory'), current_setting('enable_progress_bar')"
        )
        assert con.sql(settings).fetchall() == [("", False)]


def test_python_variables_are_not_tables() -> None:
    secret = duckdb  # noqa: F841 - a local a replacement scan could find
    error = failure(DATA, "SELECT * FROM secret")
    assert str(error) == "sql: unknown table (the only table is input)"


def test_syntax_error_names_line_and_column() -> None:
    error = failure(DATA, "SELECT naam,\n    n\n  FROM input WHERE WHERE n = 1")
    assert str(error) == "sql: syntax error at line 3, column 20"
    assert (error.category, error.line, error.column) == ("sql", 3, 20)


def test_conversion_error() -> None:
    error = failure(DATA, "SELECT naam,\n  n::INTEGER AS n\nFROM input")
    assert str(error) == (
        "sql: conversion error at line 2, column 4: a value could not be converted to INTEGER"
    )
    error = failure(DATA, "SELECT naam::DECIMAL(10,2) AS d FROM input")
    assert str(error).endswith("a value could not be converted to DECIMAL(10,2)")
    error = failure(DATA, "SELECT naam::DATE AS d FROM input")
    assert str(error).endswith("a value could not be converted to DATE")
    error = failure(DATA, "SELECT strptime(naam, '%d-%m-%Y') AS d FROM input")
    assert str(error) == "sql: a value does not match the format given to strptime"


def test_conversion_error_in_a_later_batch() -> None:
    data = b"n\n" + b"".join(b"%d\n" % i for i in range(100_000)) + b"x\n"
    error = failure(data, "SELECT n::INTEGER AS n FROM input")
    assert error.category == "sql"
    assert "converted to INTEGER" in str(error)


def test_unknown_names() -> None:
    # The name is the spec's (its SQL says it); DuckDB's candidates, the input's own
    # column names, are the file's content and stay out.
    error = str(failure(DATA, "SELECT nope FROM input"))
    assert error == 'sql: unknown column "nope" (the input has no such column)'
    assert "naam" not in error
    assert str(failure(DATA, 'SELECT "Order ""Nr""" FROM input')) == (
        'sql: unknown column "Order "Nr"" (the input has no such column)')
    assert str(failure(DATA, "SELECT * FROM orders")) == (
        "sql: unknown table (the only table is input)"
    )
    assert str(failure(DATA, "SELECT frobnicate(naam) FROM input")) == "sql: unknown function"
    assert str(failure(DATA, "SELECT sum(naam) FROM input")).startswith("sql: no function matches")


def test_reading_input_twice_needs_a_materialized_cte() -> None:
    error = failure(DATA, "SELECT a.naam FROM input a, input b")
    assert "more than once" in str(error)
    got = rows(
        DATA,
        "WITH t AS MATERIALIZED (SELECT * FROM input) SELECT count(*) AS c FROM t a, t b",
    )
    assert got == [{"c": 4}]


def test_a_large_limit_reads_the_input_once() -> None:
    # DuckDB's late materialization plans a LIMIT above 50 as a join of `input` with
    # itself; that must not count as reading it twice.
    data = b"naam,n\n" + b"".join(b"p%d,%d\n" % (i, i) for i in range(3000))
    got = rows(data, "SELECT * FROM input ORDER BY n::INTEGER LIMIT 1000")
    assert len(got) == 1000 and got[999] == {"naam": "p999", "n": "999"}
    assert len(rows(data, "SELECT * FROM input LIMIT 2000 OFFSET 5")) == 2000


def test_other_runtime_errors() -> None:
    assert str(
        failure(DATA, "SELECT 2147483647::INTEGER + n::INTEGER AS x FROM input WHERE n = '1'")
    ) == ("sql: a value is out of range (overflow)")
    assert str(failure(DATA, "SELECT 10 // 0 AS x")) == "sql: division by zero"
    assert str(failure(DATA, "SELECT error(naam) FROM input")) == "sql: invalid input"


def test_time_limit_interrupts_a_long_query() -> None:
    started = time.monotonic()
    error = failure(
        DATA,
        "SELECT sum(hash(a.range + b.range)) AS s FROM range(100000) a, range(100000) b",
        limits=Limits(time_limit_s=1.0),
    )
    assert time.monotonic() - started < 10
    assert str(error) == "limit: query interrupted after the time limit of 1 s"
    assert error.category == "limit"


def test_time_limit_while_streaming_the_input() -> None:
    data = b"n\n" + b"".join(b"%d\n" % i for i in range(3_000_000))
    started = time.monotonic()
    error = failure(data, "SELECT n FROM input", limits=Limits(time_limit_s=0.3))
    assert error.category == "limit"
    assert time.monotonic() - started < 10


def test_memory_limit_fails_instead_of_spilling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    error = failure(
        DATA,
        "SELECT x, count(*) AS c FROM range(20000000) t(x) GROUP BY x ORDER BY x",
        limits=Limits(memory_limit_mb=64),
    )
    assert str(error) == "limit: memory limit of 64 MB exceeded"
    assert error.category == "limit"
    assert list(tmp_path.iterdir()) == []
    assert not Path(".tmp").exists()


def test_transform_spec_sql_is_validated() -> None:
    with pytest.raises(ValueError, match="sql"):
        transform(DATA, "   ")


def test_errors_are_plain_exceptions_without_a_chain() -> None:
    error = failure(DATA, "SELECT n::INTEGER FROM input")
    assert isinstance(error, TransformError)
    assert error.__cause__ is None
    assert error.__context__ is None
    assert os.linesep not in str(error)
