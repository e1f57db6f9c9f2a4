"""Run one transform: read the input stream, run the SQL, write the output stream.

Nothing is written to disk on the way. A reader hands the input to DuckDB, a
small one as a table, a large one through a pipe (see `csvread.py`, `pipes.py`);
DuckDB streams the result back to the writer as text, a chunk of lines at a
time (see `writers.py`).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import datetime as dt
import json
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO

import _duckdb
import duckdb

from doorvoer.transforms import sandbox
from doorvoer.transforms.clock import Deadline
from doorvoer.transforms.csvread import CsvInput
from doorvoer.transforms.errors import TransformError
from doorvoer.transforms.fixedread import FixedInput
from doorvoer.transforms.jsonread import JsonInput
from doorvoer.transforms.spec import Limits, ReadSpec, TransformSpec, WriteSpec
from doorvoer.transforms.sqlerrors import READS_INPUT_TWICE, map_error
from doorvoer.transforms.writers import SQL_LINE, Writer, make_writer
from doorvoer.transforms.xlsxread import XlsxInput
from doorvoer.transforms.xmlread import XmlInput

if TYPE_CHECKING:
    from duckdb.sqltypes import DuckDBPyType


def _glibc() -> ctypes.CDLL | None:
    """The C library if it has malloc_trim (glibc); elsewhere the C heap is left alone."""
    for name in _libc_names():
        try:
            libc = ctypes.CDLL(name)
            libc.malloc_trim  # noqa: B018 - the lookup fails where there is none
        except (OSError, AttributeError):
            continue
        return libc
    return None


def _libc_names() -> Iterator[str]:
    yield "libc.so.6"  # glibc's own name: find_library runs ldconfig in a child process
    found = ctypes.util.find_library("c")
    if found:
        yield found


_LIBC = _glibc()


def _duckdb_mallctl() -> Callable[..., int] | None:
    """mallctl of DuckDB's own allocator, a jemalloc built into its module (symbols
    prefixed duckdb_je_), if this build has one."""
    try:
        mallctl = ctypes.CDLL(_duckdb.__file__).duckdb_je_mallctl
    except (OSError, AttributeError, TypeError):
        return None
    mallctl.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                        ctypes.c_size_t]
    mallctl.restype = ctypes.c_int
    return mallctl


_DUCKDB_MALLCTL = _duckdb_mallctl()
_ALL_ARENAS = 4096  # jemalloc's MALLCTL_ARENAS_ALL


@dataclass
class TransformResult:
    rows_in: int
    rows_out: int
    columns_out: list[str] = field(default_factory=list)


def release_memory() -> None:
    """Give the memory that finished transforms freed back to the system: DuckDB's
    allocator and glibc's heap keep freed pages for reuse (tens of MiB after a large
    file). For a worker that goes idle; it costs a few milliseconds."""
    if _DUCKDB_MALLCTL is not None:
        _DUCKDB_MALLCTL(f"arena.{_ALL_ARENAS}.purge".encode(), None, None, None, 0)
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def output_extension(write: WriteSpec) -> str:
    return "txt" if write.format == "fixed" else write.format


def render_filename(write: WriteSpec, input_name: str, seq: int | None, today: dt.date) -> str:
    """The output's file name from the spec's template.

    `{stem}` is the input's name without its last suffix, `{name}` the whole
    name, `{ext}` the output format's extension, `{date}` today as YYYY-MM-DD
    and `{seq}` the sequence number (1 when none is given).
    """
    name = PurePosixPath(input_name.replace("\\", "/")).name
    values = {
        "stem": PurePosixPath(name).stem if name else "",
        "name": name,
        "ext": output_extension(write),
        "date": today.isoformat(),
        "seq": str(seq if seq is not None else 1),
    }
    rendered = string.Formatter().vformat(write.filename, (), values)
    rendered = rendered.replace("/", "_").replace("\\", "_").replace("\0", "_")
    if rendered.strip(". ") == "":
        raise TransformError("output", "the file name template gives an empty file name")
    return rendered


def run_transform(
    read: ReadSpec,
    transform: TransformSpec,
    write: WriteSpec,
    source: BinaryIO,
    sink: BinaryIO,
    limits: Limits = Limits(),  # noqa: B008 - Limits is frozen
) -> TransformResult:
    """Transform `source` into `sink`; raise TransformError for bad data, SQL or limits.

    `source` is read to its end (even when the query needs fewer rows, so the
    whole input is validated and counted); `sink` is written and left open.
    Exceptions raised by `source.read` or `sink.write` themselves pass through
    unchanged.
    """
    error: TransformError | None = None
    try:
        return _run(read, transform, write, source, sink, limits)
    except TransformError as exc:
        error = exc.detached()
        # its traceback holds the frames that hold the input that holds it:
        # break the cycle so DuckDB's objects go away now, not at some GC run
        exc.__traceback__ = None
    raise error


def _run(
    read: ReadSpec,
    transform: TransformSpec,
    write: WriteSpec,
    source: BinaryIO,
    sink: BinaryIO,
    limits: Limits,
) -> TransformResult:
    deadline = Deadline(limits.time_limit_s)
    # a connection of its own to a locked database (see sandbox.py): `input`
    # goes with the connection when the block ends
    with sandbox.session(limits) as work:
        con = work.con
        sandbox.check_query(con, transform.sql, limits)
        data: CsvInput | JsonInput | XlsxInput | XmlInput = (
            CsvInput(read, source, deadline) if read.format == "csv"
            else FixedInput(read, source, deadline) if read.format == "fixed"
            else XlsxInput(read, source, deadline) if read.format == "xlsx"
            else XmlInput(read, source, deadline) if read.format == "xml"
            else JsonInput(read, source, deadline)
        )
        try:
            data.attach(con, work.directory)
            work.retire = data.large
            if not data.empty:
                _check_one_scan(con, transform.sql)
            writer = make_writer(write, sink)
            with deadline.interrupting(con.interrupt):
                columns = _execute(con, transform.sql, data, writer, deadline, limits)
            data.drain()
            writer.finish()
            return TransformResult(
                rows_in=data.rows_read, rows_out=writer.rows, columns_out=columns
            )
        finally:
            data.close()


def _check_one_scan(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuse a query that reads `input` more than once: the input streams through once.

    A query that DuckDB cannot plan is left to fail when it runs, with the error
    located in the SQL as the operator wrote it.
    """
    scans = 0
    with contextlib.suppress(duckdb.Error):
        scans = _input_scans(con, sql)
    if scans > 1:
        raise TransformError("sql", READS_INPUT_TWICE)


_SCANS: dict[str, int] = {}
MAX_REMEMBERED_QUERIES = 256


def _input_scans(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    """How many times the plan of `sql` reads `input`; a process runs the same few
    queries again and again, so the answer is remembered."""
    known = _SCANS.get(sql)
    if known is not None:
        return known
    row = con.execute("EXPLAIN (FORMAT json) " + sql).fetchone()
    scans = _count_scans(json.loads(row[1])) if row else 0
    if len(_SCANS) >= MAX_REMEMBERED_QUERIES:
        _SCANS.clear()
    _SCANS[sql] = scans
    return scans


def _scans_input(node: dict[str, object]) -> bool:
    """A plan node that reads `input`: the pipe of a large input, the table of a small one
    (which could be read twice, but a query should not work only while inputs are small)."""
    if node.get("name") == "READ_CSV":
        return True
    extra = node.get("extra_info")
    return (node.get("name") == "SEQ_SCAN" and isinstance(extra, dict)
            and extra.get("Table") == '"temp".main."input"')


def _count_scans(node: object) -> int:
    if isinstance(node, list):
        return sum(_count_scans(child) for child in node)
    if not isinstance(node, dict):
        return 0
    own = 1 if _scans_input(node) else 0
    return own + sum(_count_scans(child) for child in node.get("children", []))


def _execute(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    data: CsvInput | JsonInput | XlsxInput | XmlInput,
    writer: Writer,
    deadline: Deadline,
    limits: Limits,
) -> list[str]:
    """Run the query and write its result; return the result's column names.

    The operator's SQL is bound first, for the result's names and types (its errors
    located in the SQL as given); then the writer's statement around it runs, and its
    rows, a line of text each, are fetched a chunk at a time.
    """
    failure: duckdb.Error | None = None
    columns: tuple[list[str], list[DuckDBPyType]] | None = None
    try:
        relation = con.sql(sql)  # binds, runs nothing
        columns = (relation.columns, relation.types)
    except duckdb.Error as exc:
        failure = exc
    if columns is None:
        raise _query_failure(failure, sql, data, deadline, limits)
    names, types = columns
    writer.begin(names, types)
    statement: str | None = writer.statement(sql)
    try:
        while True:
            lines, failure = _fetched(con, statement, writer.chunk_rows)
            statement = None
            if failure is not None:
                raise _query_failure(failure, sql, data, deadline, limits, sql_line=SQL_LINE)
            if not lines:
                break
            deadline.check()
            writer.write(lines)
    finally:
        # the query is over (also when writing failed) before the input closes
        con.close()
    return names


def _fetched(
    con: duckdb.DuckDBPyConnection, statement: str | None, size: int
) -> tuple[list[tuple[Any, ...]], duckdb.Error | None]:
    """Run `statement`, if given, then the next `size` rows of the result; or DuckDB's
    error, returned to be raised outside a handler (its message quotes values)."""
    try:
        if statement is not None:
            con.execute(statement)
        return con.fetchmany(size), None
    except duckdb.Error as exc:
        return [], exc


def _query_failure(
    failure: BaseException | None,
    sql: str,
    data: CsvInput | JsonInput | XlsxInput | XmlInput,
    deadline: Deadline,
    limits: Limits,
    *,
    sql_line: int = 1,
) -> BaseException:
    """What to raise for a failed query: the input's own failure comes first.

    `sql_line` is the line of the statement that ran where `sql` starts."""
    data.abandon()  # the reading thread is done with what it found
    if data.failure is not None:
        return data.failure
    if failure is None:
        return TransformError("sql", "the query failed")
    error = map_error(failure, sql, limits, input_empty=data.empty, sql_line=sql_line)
    if error.category == "limit" or not deadline.expired:
        return error
    return deadline.error()
