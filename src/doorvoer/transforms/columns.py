"""The columns a transform's SQL writes, read from DuckDB's parse tree without running
it and without any data: an alias, a column's name, `*` (every input column, minus
what it excludes), or the expression's own text. For the data-sharing manifest (P8)."""

from __future__ import annotations

import json
from typing import Any


def _name(sql: str, expr: dict[str, Any], n: int) -> str:
    if expr.get("alias"):
        return str(expr["alias"])
    if expr.get("class") == "COLUMN_REF":
        return str(expr["column_names"][-1])
    if expr.get("class") == "STAR":
        excluded = [e[-1] if isinstance(e, list) else str(e)
                    for e in (expr.get("exclude_list") or [])]
        names = [str(x.get("exclude_name", x)) if isinstance(x, dict) else str(x)
                 for x in excluded]
        return "* (every input column" + (f" except {', '.join(names)})" if names else ")")
    start, length = expr.get("query_location"), expr.get("query_location_length")
    if isinstance(start, int) and isinstance(length, int) and length > 0:
        return sql[start:start + length]
    return f"expression {n}"


def _select_list(node: dict[str, Any]) -> list[dict[str, Any]]:
    while node.get("type") == "SET_OPERATION_NODE":  # a UNION takes its first side's names
        node = node.get("left") or (node.get("children") or [{}])[0]
    return list(node.get("select_list") or [])


def output_columns(sql: str) -> list[str]:
    """The output columns of `sql`, in order; [] when DuckDB cannot parse it."""
    import duckdb

    con = duckdb.connect()
    try:
        raw = con.execute("SELECT json_serialize_sql($1::VARCHAR)", [sql]).fetchall()[0][0]
    finally:
        con.close()
    tree = json.loads(raw)
    if tree.get("error") or not tree.get("statements"):
        return []
    return [_name(sql, e, i + 1)
            for i, e in enumerate(_select_list(tree["statements"][-1]["node"]))]
