"""DuckDB's errors, turned into messages that quote no data.

DuckDB's messages quote values ("Could not convert string 'abc' ..."), column
names and the offending line of SQL. Only three things are taken from them:
the kind of error (the "Conversion Error:" prefix or the exception class), a
type name checked against a fixed list, and the position of the caret under
the quoted SQL line, which is turned into a line and column of the spec's SQL.
Everything else in the message below is a fixed phrase.
"""

from __future__ import annotations

import re

import duckdb

from doorvoer.transforms.errors import TransformError
from doorvoer.transforms.spec import Limits

_KIND = re.compile(r"^([A-Za-z ]+?) Error: ")
_LOCATION = re.compile(r"^LINE (\d+): (.*)\n( *)\^", re.MULTILINE)
_TO_TYPE = re.compile(r" to ([A-Z][A-Z0-9_ ]*(?:\(\d+, ?\d+\))?)")
_DESTINATION = re.compile(r"destination type ([A-Z][A-Z0-9_ ]*(?:\(\d+, ?\d+\))?)")
_CAST = re.compile(r"^Unimplemented type for cast \(([A-Z][A-Z0-9_ ]*) -> ([A-Z][A-Z0-9_ ]*)\)")
_DECIMAL = re.compile(r"^DECIMAL\(\d+, ?\d+\)$")

# Internal (physical) type names in DuckDB's messages, and what SQL calls them.
_TYPE_NAMES = {
    "INT8": "TINYINT",
    "INT16": "SMALLINT",
    "INT32": "INTEGER",
    "INT64": "BIGINT",
    "INT128": "HUGEINT",
    "UINT8": "UTINYINT",
    "UINT16": "USMALLINT",
    "UINT32": "UINTEGER",
    "UINT64": "UBIGINT",
    "UINT128": "UHUGEINT",
    "BOOL": "BOOLEAN",
}
_SQL_TYPES = frozenset(
    {
        "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
        "UINTEGER", "UBIGINT", "UHUGEINT", "BOOLEAN", "FLOAT", "DOUBLE", "DATE", "TIME",
        "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS",
        "TIME WITH TIME ZONE", "INTERVAL", "UUID", "VARCHAR", "BLOB", "BIT", "JSON", "BIGNUM",
        "DECIMAL",
    }
)  # fmt: skip

_CLASS_KINDS: list[tuple[type[BaseException], str]] = [
    (duckdb.InterruptException, "INTERRUPT"),
    (duckdb.OutOfMemoryException, "Out of Memory"),
    (duckdb.ParserException, "Parser"),
    (duckdb.ConversionException, "Conversion"),
    (duckdb.BinderException, "Binder"),
    (duckdb.CatalogException, "Catalog"),
    (duckdb.PermissionException, "Permission"),
    (duckdb.OutOfRangeException, "Out of Range"),
    (duckdb.InvalidInputException, "Invalid Input"),
    (duckdb.NotImplementedException, "Not implemented"),
]


def map_error(
    exc: BaseException,
    sql: str,
    limits: Limits,
    *,
    input_empty: bool = False,
    sql_line: int = 1,
) -> TransformError:
    """The TransformError for a DuckDB error.

    `sql_line` is the line where `sql` starts in the statement that ran (the
    writer's statement around it has a line of its own before it).
    """
    message = str(exc)
    kind = _kind(exc, message)
    line, column = _location(message, sql, sql_line)
    where = f" at line {line}, column {column}" if line is not None else ""

    def sql_error(detail: str) -> TransformError:
        return TransformError("sql", detail, line=line, column=column)

    first_line = message.split("\n", 1)[0]
    body = first_line[len(kind) + len(" Error: ") :] if kind else first_line

    if kind.upper() == "INTERRUPT":
        return TransformError(
            "limit", f"query interrupted after the time limit of {limits.time_limit_s:g} s"
        )
    if kind == "Out of Memory":
        return TransformError("limit", f"memory limit of {limits.memory_limit_mb} MB exceeded")
    if kind == "Parser":
        return sql_error(f"syntax error{where}")
    if kind == "Conversion":
        return sql_error(f"conversion error{where}: {_conversion(body)}")
    if kind == "Binder":
        return sql_error(_binder(body, sql) + where)
    if kind == "Catalog":
        if body.startswith("Table with name") and input_empty:
            return sql_error("the input is empty: it has no columns, so there is no table input")
        return sql_error(_catalog(body) + where)
    if kind == "Permission":
        return sql_error("files, extensions and settings are out of reach of a transform")
    if kind == "Out of Range":
        return sql_error(f"a value is out of range (overflow){where}")
    if kind == "Invalid Input":
        return sql_error(_invalid_input(body) + where)
    if kind == "Not implemented":
        return sql_error(f"DuckDB does not support this{where}")
    return sql_error(f"the query failed ({_known_kind(kind)} error){where}")


def _kind(exc: BaseException, message: str) -> str:
    match = _KIND.match(message)
    if match:
        return match.group(1)
    for cls, kind in _CLASS_KINDS:
        if isinstance(exc, cls):
            return kind
    return ""


def _known_kind(kind: str) -> str:
    known = {
        "Constraint", "Dependency", "Internal", "Fatal", "Transaction", "Serialization",
        "Sequence", "Type Mismatch", "Invalid Type", "Connection", "Syntax", "IO", "HTTP",
        "Mismatch Type",
    }  # fmt: skip
    return kind if kind in known else "unknown"


def _location(message: str, sql: str, sql_line: int = 1) -> tuple[int | None, int | None]:
    """Line and column in `sql` of DuckDB's caret, if the message has one."""
    match = _LOCATION.search(message)
    if not match:
        return None, None
    shown_line = int(match.group(1))
    line = shown_line - sql_line + 1
    shown = match.group(2)
    caret = len(match.group(3)) - len(f"LINE {shown_line}: ")
    lines = sql.splitlines()
    if not 1 <= line <= len(lines):
        return None, None
    source = lines[line - 1]
    if shown.startswith("..."):
        shown, caret = shown[3:], caret - 3
    if shown.endswith("..."):
        shown = shown[:-3]
    start = source.find(shown)
    if start < 0 or caret < 0:
        return line, None
    return line, start + caret + 1


def _type_name(candidate: str | None) -> str | None:
    if candidate is None:
        return None
    name = _TYPE_NAMES.get(candidate.strip(), candidate.strip())
    if name in _SQL_TYPES or _DECIMAL.match(name):
        return name
    return None


def _conversion(body: str) -> str:
    cast = _CAST.match(body)
    if cast:
        source, goal = _type_name(cast.group(1)), _type_name(cast.group(2))
        if source and goal:
            return f"a cast from {source} to {goal} is not supported"
        return "this cast is not supported"
    if body.startswith("Malformed JSON"):
        return "a value is not valid JSON"
    target: str | None
    if body.startswith(("invalid date field format", "Date out of range")):
        target = "DATE"
    elif body.startswith("invalid timestamp field format"):
        target = "TIMESTAMP"
    else:
        destination = _DESTINATION.search(body)
        matches = _TO_TYPE.findall(body)
        candidate = destination.group(1) if destination else (matches[-1] if matches else None)
        target = _type_name(candidate.split(" when ")[0] if candidate else None)
    if target:
        return f"a value could not be converted to {target}"
    return "a value could not be converted"


_REFERENCED = re.compile(r'^Referenced column "(.*)" not found in ')


def _binder(body: str, sql: str) -> str:
    if body.startswith("Referenced column") or ("column" in body and "not found" in body):
        # The name, when it is the spec's own: the SQL says it. DuckDB's candidates
        # are the input's column names, which are the file's content: never shown.
        ref = _REFERENCED.match(body)
        name = ref.group(1) if ref else None
        said = sql.lower()
        if name and len(name) <= 63 and (name.lower() in said
                                         or name.replace('"', '""').lower() in said):
            return f'unknown column "{name}" (the input has no such column)'
        return "unknown column"
    if body.startswith("No function matches"):
        return "no function matches the argument types (add explicit casts)"
    if "must appear in the GROUP BY clause" in body:
        return "a column must appear in the GROUP BY clause or be used in an aggregate function"
    if "Ambiguous reference" in body or "ambiguous" in body:
        return "ambiguous column reference"
    return "the query does not fit the table (binder error)"


READS_INPUT_TWICE = (
    "the query reads input more than once; read it once with "
    "WITH rows AS MATERIALIZED (SELECT * FROM input) and use rows instead"
)


def _catalog(body: str) -> str:
    if body.startswith("Table with name") or body.startswith("Table Function with name"):
        if body.startswith("Table Function"):
            return "unknown table function"
        return "unknown table (the only table is input)"
    if "Function with name" in body:
        return "unknown function"
    if body.startswith("Type with name"):
        return "unknown type"
    return "unknown name (catalog error)"


def _invalid_input(body: str) -> str:
    if body.startswith("Could not parse string") and "format specifier" in body:
        return "a value does not match the format given to strptime"
    if body.startswith("Division by zero"):
        return "division by zero"
    if "has already been consumed" in body:
        return READS_INPUT_TWICE
    if "configuration has been locked" in body:
        return "settings cannot be changed"
    return "invalid input"
