"""Transforms: a file in, the operator's DuckDB SQL over it, a file out, all streamed.

    result = run_transform(read, transform, write, source, sink, Limits())

Plaintext never touches disk: the input streams from `source` through a
reader into DuckDB and the result streams through a writer into `sink`. Every
failure of the data, the SQL or a limit is a TransformError whose message
quotes no file content.

The engine (DuckDB, pyarrow: some 90 MiB) is imported on first use, so that a
process that only validates specs, such as the node's doors, never loads it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from doorvoer.transforms.errors import TransformError
from doorvoer.transforms.spec import Limits, ReadSpec, TransformSpec, WriteSpec

# Arrow's allocator (mimalloc) reads these when pyarrow is first loaded, which only
# modules below this package import (errors and spec do not). By default it commits
# its arenas eagerly and gives freed pages back only after a delay: a 256 MiB CSV
# streamed through the reader kept ~45 MiB more resident than with these (measured:
# transform peak 206 -> 158 MiB, ~15% more CPU for a large file, none for a small
# one). Set in the environment to override.
for _option, _value in (("MIMALLOC_ARENA_EAGER_COMMIT", "0"), ("MIMALLOC_PURGE_DELAY", "0")):
    os.environ.setdefault(_option, _value)

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
