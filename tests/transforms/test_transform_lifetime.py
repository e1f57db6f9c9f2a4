"""Nothing of a transform outlives it: no reference cycles, no growing memory."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from doorvoer.transforms.csvread import CsvInput
from doorvoer.transforms.decoding import Utf8Reader
from doorvoer.transforms.jsonread import JsonInput

from .helpers import Source, failure, transform

CSV = b"id,naam,bedrag\n" + b"".join(b'%d,"Klant %d",%d.50\n' % (i, i, i) for i in range(60))
JSONL = b"".join(b'{"id": %d, "naam": "Klant %d"}\n' % (i, i) for i in range(60))
LIFETIME_CLASSES = (CsvInput, JsonInput, Utf8Reader, Source)


def _alive() -> dict[str, int]:
    counts: dict[str, int] = {}
    for obj in gc.get_objects():
        if isinstance(obj, LIFETIME_CLASSES):
            counts[type(obj).__name__] = counts.get(type(obj).__name__, 0) + 1
    return counts


@pytest.fixture
def no_garbage_collector() -> Iterator[None]:
    """Only reference counting frees objects: a cycle would keep them."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_successful_transforms_free_everything_without_the_cycle_collector(
    no_garbage_collector: None,
) -> None:
    before = _alive()
    for i in range(300):
        fmt = ("csv", "json", "jsonl")[i % 3]
        if i % 5 == 4:
            transform(JSONL, read={"format": "jsonl"}, write={"format": fmt})
        else:
            transform(CSV, "SELECT id, upper(naam) AS naam FROM input", write={"format": fmt})
    assert _alive() == before


def test_failed_transforms_leave_nothing_collectable_behind() -> None:
    gc.collect()
    before = _alive()
    for i in range(100):
        if i % 4 == 0:
            failure(CSV + b"1,2\n")  # a ragged row, after the header was read
        elif i % 4 == 1:
            failure(CSV, "SELECT naam::INTEGER FROM input")  # in DuckDB
        elif i % 4 == 2:
            failure(b"a\n\xff\n")  # in the first read of the text
        else:  # while the result is written
            failure("a\n\u0141\n".encode(), write={"format": "csv", "encoding": "cp1252"})
    gc.collect()
    assert _alive() == before
    assert gc.garbage == []


def test_a_large_input_is_freed_as_soon_as_the_transform_ends(no_garbage_collector: None) -> None:
    big = b"n,t\n" + b"".join(b'%d,"x\ny"\n' % i for i in range(100_000))  # many blocks
    before = _alive()
    transform(big, "SELECT count(*) AS c FROM input")
    transform(big, "SELECT * FROM input LIMIT 2")
    assert _alive() == before


RSS_SCRIPT = textwrap.dedent(
    """
    import io, json, sys
    import psutil
    from doorvoer.transforms import ReadSpec, TransformSpec, WriteSpec, run_transform

    data = b"order_id,datum,klant,bedrag,status\\n" + b"".join(
        b'%d,2025-03-%02d,"Klant %d",%d.%02d,paid\\n' % (i, i % 28 + 1, i, i, i % 100)
        for i in range(80))  # ~4 KiB
    read, sql = ReadSpec(format="csv"), TransformSpec(sql="SELECT * FROM input")
    writes = [WriteSpec(format="csv"), WriteSpec(format="json")]

    def run(n):
        for i in range(n):
            run_transform(read, sql, writes[i % 2], io.BytesIO(data), io.BytesIO())

    process = psutil.Process()
    run(50)
    before = process.memory_info().rss
    run(int(sys.argv[1]))
    after = process.memory_info().rss
    print(json.dumps({"before": before / 1048576, "after": after / 1048576}))
    """
)


def test_memory_does_not_grow_with_the_number_of_transforms() -> None:
    # The leak this guards against kept ~2 MiB per transform (600 MiB here).
    done = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT, "300"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    report = json.loads(done.stdout)
    assert report["after"] - report["before"] < 40, report
    assert "leaked" not in done.stderr  # nanobind's report of DuckDB objects alive at exit
