"""DuckDB databases are reused between transforms: nothing of one transform reaches the next.

Each transform gets a new connection to a pooled, locked database (see
`sandbox.py`). These tests run transform A and then B on the same thread, so
that B gets the database A used, and prove that B sees nothing of A.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from doorvoer.transforms import (
    Limits,
    ReadSpec,
    TransformSpec,
    WriteSpec,
    csvread,
    run_transform,
    sandbox,
)

from .helpers import Sink, Source, failure, rows, stream, transform

SECRET = "NL91ABNA0417164300"
A_DATA = f"naam,iban\nJan,{SECRET}\nPiet,{SECRET}\n".encode()
B_DATA = b"x\n1\n"

# everything a connection can see of the catalog, of the shared database and its own
CATALOG = """SELECT
    (SELECT count(*) FROM duckdb_tables()) AS tables,
    (SELECT list(view_name ORDER BY view_name) FROM duckdb_views() WHERE NOT internal) AS views,
    (SELECT list(column_name ORDER BY column_name)
       FROM duckdb_columns() WHERE NOT internal) AS columns,
    (SELECT count(*) FROM duckdb_sequences()) AS sequences,
    (SELECT count(*) FROM duckdb_types() WHERE NOT internal) AS types,
    (SELECT count(*) FROM duckdb_functions() WHERE NOT internal) AS functions,
    (SELECT count(*) FROM duckdb_indexes()) AS indexes,
    (SELECT count(*) FROM duckdb_prepared_statements()) AS prepared,
    (SELECT list(database_name ORDER BY database_name) FROM duckdb_databases()) AS databases,
    getvariable('x') AS variable"""


@pytest.fixture(autouse=True)
def empty_pool() -> Iterator[None]:
    """Each test starts without idle databases: the first transform makes the one reused."""
    sandbox.close_idle()
    yield
    sandbox.close_idle()


def test_b_cannot_see_the_input_of_a_on_the_same_database() -> None:
    assert rows(A_DATA, "SELECT count(*) AS n FROM input") == [{"n": 2}]
    assert sandbox.idle_databases() == 1  # the database B gets next

    # B without an input of its own: there is no table input at all
    error = failure(b"", "SELECT * FROM input")
    assert str(error) == "sql: the input is empty: it has no columns, so there is no table input"
    assert failure(b"", "SELECT * FROM temp.main.input").category == "sql"
    assert sandbox.idle_databases() == 1

    # B with an input: only its own columns and rows are there
    assert rows(B_DATA, "SELECT * FROM input") == [{"x": "1"}]
    assert str(failure(B_DATA, "SELECT iban FROM input")) == (
        'sql: unknown column "iban" (the input has no such column)')
    [catalog] = rows(B_DATA, CATALOG + " FROM input")
    assert catalog == {
        "tables": 1,  # input: a small input is a temporary table (a large one a view)
        "views": None,
        "columns": ["x"],
        "sequences": 0,
        "types": 0,
        "functions": 0,
        "indexes": 0,
        "prepared": 0,
        "databases": ["memory", "system", "temp"],
        "variable": None,
    }
    assert sandbox.idle_databases() == 1


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TABLE kept AS SELECT * FROM input",
        "CREATE TEMP TABLE kept AS SELECT * FROM input",
        "CREATE VIEW kept AS SELECT * FROM input",
        "CREATE MACRO kept() AS TABLE SELECT * FROM input",
        "CREATE SEQUENCE kept",
        "CREATE TYPE kept AS ENUM ('a')",
        "SET VARIABLE x = (SELECT max(iban) FROM input)",
        "PREPARE kept AS SELECT * FROM input",
        "ATTACH ':memory:' AS kept",
        "SELECT 1; CREATE TABLE kept AS SELECT * FROM input",
        "WITH t AS (SELECT * FROM input) SELECT * FROM t; CREATE VIEW kept AS SELECT 1",
    ],
)
def test_a_cannot_leave_anything_behind_for_b(sql: str) -> None:
    assert failure(A_DATA, sql).category == "sql"
    assert sandbox.idle_databases() == 1
    [catalog] = rows(b"", CATALOG)
    assert catalog["views"] is None
    assert catalog["columns"] is None
    assert (catalog["tables"], catalog["functions"], catalog["variable"]) == (0, 0, None)
    assert catalog["databases"] == ["memory", "system", "temp"]


def test_b_sees_nothing_of_a_that_failed_halfway() -> None:
    # (under csvread.FIRST_BYTES: a table, so that B gets A's database)
    data = b"iban\n" + b"".join(b"%s%d\n" % (SECRET.encode(), i) for i in range(30_000))
    assert failure(data, "SELECT iban::INTEGER FROM input").category == "sql"
    assert failure(data, "SELECT count(*) FROM input a, input b").category == "sql"
    assert sandbox.idle_databases() == 1
    [catalog] = rows(B_DATA, CATALOG + " FROM input")
    assert catalog["columns"] == ["x"]


def _settings(limits: Limits) -> dict[str, object]:
    [got] = rows(
        B_DATA,
        """SELECT current_setting('memory_limit') AS memory_limit,
                  current_setting('threads') AS threads,
                  current_setting('lock_configuration') AS locked,
                  current_setting('enable_external_access') AS external,
                  current_setting('python_enable_replacements') AS replacements,
                  current_setting('temp_directory') AS temp_directory,
                  current_setting('max_temp_directory_size') AS temp_size,
                  current_setting('enable_progress_bar') AS progress_bar
           FROM input""",
        limits=limits,
    )
    return got


def _duckdb_memory_limit(megabytes: int) -> str:
    con = duckdb.connect(":memory:", config={"memory_limit": f"{megabytes}MB"})
    try:
        row = con.execute("SELECT current_setting('memory_limit')").fetchone()
    finally:
        con.close()
    assert row is not None
    return str(row[0])


def test_a_reused_database_keeps_the_sandbox_settings_and_its_limits() -> None:
    small, large = Limits(memory_limit_mb=64), Limits(memory_limit_mb=128, threads=2)
    for limits in (small, large, small, large, small):
        got = _settings(limits)
        assert got == {
            "memory_limit": _duckdb_memory_limit(limits.memory_limit_mb),
            "threads": limits.threads,
            "locked": True,
            "external": False,
            "replacements": False,
            "temp_directory": "",
            "temp_size": "0 bytes",
            "progress_bar": False,
        }
    assert sandbox.idle_databases() == 2  # one per (memory limit, threads)


def test_limits_still_apply_on_a_reused_database() -> None:
    limits = Limits(memory_limit_mb=64, time_limit_s=0.5)
    assert rows(B_DATA, limits=limits) == [{"x": "1"}]
    error = failure(
        B_DATA,
        "SELECT x, count(*) AS c FROM range(20000000) t(x) GROUP BY x ORDER BY x",
        limits=limits,
    )
    assert str(error) == "limit: memory limit of 64 MB exceeded"
    started = time.monotonic()
    error = failure(
        B_DATA,
        "SELECT sum(hash(a.range + b.range)) AS s FROM range(100000) a, range(100000) b",
        limits=limits,
    )
    assert str(error) == "limit: query interrupted after the time limit of 0.5 s"
    assert time.monotonic() - started < 10
    assert sandbox.idle_databases() == 1
    # the interrupt of the last transform does not reach the next one
    for _ in range(3):
        assert rows(B_DATA, "SELECT count(*) AS n FROM range(1000000)", limits=limits) == [
            {"n": 1_000_000}
        ]


def test_a_database_is_not_reused_after_an_unexpected_failure() -> None:
    class Broken:
        def read(self, size: int) -> bytes:
            raise ConnectionError("vault read failed")

    assert rows(B_DATA) == [{"x": "1"}]
    assert sandbox.idle_databases() == 1
    with pytest.raises(ConnectionError):
        run_transform(
            ReadSpec(format="csv"),
            TransformSpec(sql="SELECT * FROM input"),
            WriteSpec(format="csv"),
            stream(Broken()),
            stream(Sink()),
        )
    assert sandbox.idle_databases() == 0


def test_a_database_is_retired_after_max_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "MAX_USES", 3)
    for expected_idle in (1, 1, 0, 1, 1, 0):
        assert rows(B_DATA) == [{"x": "1"}]
        assert sandbox.idle_databases() == expected_idle


def test_a_database_that_read_a_large_input_is_retired() -> None:
    # A large input streams through a pipe in the database's directory; DuckDB keeps
    # 20 MiB and more after such a scan, so that database is closed, not pooled.
    large = b"n,text\n" + b"".join(b"%d,regel %d\n" % (i, i) for i in range(200_000))
    assert len(large) > csvread.FIRST_BYTES
    assert rows(B_DATA) == [{"x": "1"}]
    assert sandbox.idle_databases() == 1
    result, _ = transform(large, "SELECT count(*) AS n FROM input")
    assert result.rows_in == 200_000
    assert sandbox.idle_databases() == 0
    assert rows(B_DATA) == [{"x": "1"}]
    assert sandbox.idle_databases() == 1


def test_a_database_that_read_a_large_json_input_is_retired() -> None:
    small = b'[{"n": 1}]'
    large = b"\n".join(b'{"n": %d, "text": "regel %d"}' % (i, i) for i in range(60_000))
    assert rows(small, read={"format": "json"}) == [{"n": 1}]
    assert sandbox.idle_databases() == 1  # a small input: the database is reused
    result, _ = transform(large, "SELECT count(*) AS n FROM input", read={"format": "jsonl"})
    assert result.rows_in == 60_000
    assert sandbox.idle_databases() == 0


def test_directories_of_databases_whose_process_is_gone_are_removed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(sandbox, "_swept", threading.Event())
    dead = tmp_path / "doorvoer-duckdb-999999999-abc"  # beyond Linux's largest pid
    mine = tmp_path / f"doorvoer-duckdb-{os.getpid()}-def"
    other = tmp_path / "unrelated-999999999-x"
    for path in (dead, mine, other):
        path.mkdir()
    assert rows(B_DATA) == [{"x": "1"}]  # makes a database, which sweeps first
    assert not dead.exists()
    assert mine.exists() and other.exists()
    sandbox.close_idle()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("doorvoer-duckdb-")] == [
        mine.name]


def test_concurrent_transforms_each_see_their_own_input() -> None:
    failures: list[str] = []

    def work(worker: int) -> None:
        for i in range(15):
            marker = f"w{worker}-{i}"
            data = b"k\n" + f"{marker}\n".encode() * 3
            try:
                _, output = transform(data, "SELECT DISTINCT k FROM input")
            except Exception as exc:
                failures.append(repr(exc))
                continue
            if output != f'{{"k":"{marker}"}}\n'.encode():
                failures.append(f"{marker}: {output!r}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert 1 <= sandbox.idle_databases() <= sandbox.MAX_IDLE


def test_python_objects_stay_out_of_reach_on_a_reused_database() -> None:
    kept = Source(A_DATA)  # noqa: F841 - a local a replacement scan could find
    for _ in range(2):
        assert str(failure(B_DATA, "SELECT * FROM kept")) == (
            "sql: unknown table (the only table is input)"
        )
