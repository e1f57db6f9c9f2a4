"""Transforms: a file in, the operator's DuckDB SQL over it, a file out, all streamed.

    result = run_transform(read, transform, write, source, sink, Limits())

Plaintext never touches disk: the input streams from `source` through a
reader into DuckDB and the result streams through a writer into `sink`. Every
failure of the data, the SQL or a limit is a TransformError whose message
quotes no file content.
"""

from doorvoer.transforms.engine import (
    TransformResult,
    output_extension,
    render_filename,
    run_transform,
)
from doorvoer.transforms.errors import TransformError
from doorvoer.transforms.spec import Limits, ReadSpec, TransformSpec, WriteSpec

__all__ = [
    "Limits",
    "ReadSpec",
    "TransformError",
    "TransformResult",
    "TransformSpec",
    "WriteSpec",
    "output_extension",
    "render_filename",
    "run_transform",
]
