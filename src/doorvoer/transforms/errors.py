"""The one error a transform raises for bad data, bad SQL or a limit.

Its message is built only from fixed phrases, numbers and type names: it never
quotes file content (no values, no row text, no column names from a header),
so it can be stored, logged and shown to the tenant as it is (promise P3).
"""

from __future__ import annotations

from typing import Literal

Category = Literal["encoding", "csv", "fixed", "json", "xlsx", "xml", "sql", "limit",
                   "output"]
CATEGORIES: frozenset[str] = frozenset(
    {"encoding", "csv", "fixed", "json", "xlsx", "xml", "sql", "limit", "output"})


class TransformError(Exception):
    """A transform failed; `str()` is a one-line message like `csv: line 7: ...`.

    `line` and `column` locate the problem where that is known: a line of the
    input (1-based, counting the header), a line of the transform's SQL for
    `sql` errors, or a row of the output (1-based, not counting a header) for
    `output` errors.
    """

    def __init__(
        self,
        category: Category,
        detail: str,
        *,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        if category not in CATEGORIES:
            raise ValueError(f"unknown transform error category {category!r}")
        self.category: Category = category
        self.detail = " ".join(detail.split())
        self.line = line
        self.column = column
        super().__init__(f"{category}: {self.detail}")

    def __str__(self) -> str:
        return f"{self.category}: {self.detail}"

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (self.category, self.detail, self.line, self.column))

    def detached(self) -> TransformError:
        """The same error without a traceback or chained exceptions.

        The exceptions a TransformError replaces (DuckDB's, csv's, json's)
        quote file content; raising a fresh copy outside any `except` block
        makes sure none of them travels along as `__context__`.
        """
        return TransformError(self.category, self.detail, line=self.line, column=self.column)


def _rebuild(
    category: Category, detail: str, line: int | None, column: int | None
) -> TransformError:
    return TransformError(category, detail, line=line, column=column)
