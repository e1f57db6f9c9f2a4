"""Transforms: a file in, the operator's DuckDB SQL over it, a file out, all streamed.

    result = run_transform(read, transform, write, source, sink, Limits())

Plaintext never touches disk: the input streams from `source` through a
reader into DuckDB and the result streams through a writer into `sink`. Every
failure of the data, the SQL or a limit is a TransformError whose message
quotes no file content.

The engine (DuckDB: some 60 MiB once it has run a query) is imported on first
use, so that a process that only validates specs, such as the node's doors,
never loads it. pyarrow is not used at all: its libraries alone cost a worker
process 50 MiB (the readers parse in Python and hand DuckDB text through a
pipe, see pipes.py; the writers have DuckDB render the text, see writers.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from doorvoer.transforms.errors import TransformError
from doorvoer.transforms.spec import Limits, ReadSpec, TransformSpec, WriteSpec

if TYPE_CHECKING:
    from doorvoer.transforms.engine import (
        TransformResult,
        output_extension,
        release_memory,
        render_filename,
        run_transform,
    )

_ENGINE = frozenset({"TransformResult", "output_extension", "release_memory",
                     "render_filename", "run_transform"})


def __getattr__(name: str) -> object:
    if name in _ENGINE:
        from doorvoer.transforms import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Limits",
    "ReadSpec",
    "TransformError",
    "TransformResult",
    "TransformSpec",
    "WriteSpec",
    "output_extension",
    "release_memory",
    "render_filename",
    "run_transform",
]
