"""Bounded memory: the input and output stream, nothing is held whole."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    '''
    import json, resource, sys
    from doorvoer.transforms import ReadSpec, TransformSpec, WriteSpec, run_transform

    class Rows:
        # ~size bytes of CSV, made as it is read: the test itself holds no copy
        def __init__(self, size):
            self.left, self.n, self.buffer = size, 0, b"id;naam;bedrag;opmerking\\n"
        def read(self, size):
            while len(self.buffer) < size and self.left > 0:
                part = b"".join(
                    b'%d;"Klant %d";%d,%02d;"regel een\\nregel ""twee"""\\n'
                    % (i, i, i % 1000, i % 100) for i in range(self.n, self.n + 1000))
                self.n += 1000
                self.left -= len(part)
                self.buffer += part
            data, self.buffer = self.buffer[:size], self.buffer[size:]
            return data

    class Counter:
        bytes = 0
        def write(self, data):
            self.bytes += len(data)

    def peak_mb():
        # VmHWM is this program's own peak; ru_maxrss would also count the
        # parent's (the test process) from before the exec
        try:
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    sql = ("SELECT id::BIGINT AS id, upper(naam) AS naam, "
           "replace(bedrag, ',', '.')::DECIMAL(10,2) AS bedrag, opmerking FROM input "
           "WHERE id::BIGINT % 7 <> 0")
    read = ReadSpec(format="csv", delimiter=";")
    run_transform(read, TransformSpec(sql=sql), WriteSpec(format="json"), Rows(10_000), Counter())
    baseline = peak_mb()
    outputs = {}
    for fmt in ("csv", "json"):
        sink = Counter()
        result = run_transform(read, TransformSpec(sql=sql), WriteSpec(format=fmt),
                               Rows(int(sys.argv[1])), sink)
        outputs[fmt] = [result.rows_in, result.rows_out, sink.bytes]
    print(json.dumps({"baseline": baseline, "peak": peak_mb(), "outputs": outputs}))
    '''
)


def test_fifty_megabytes_stream_through_in_bounded_memory() -> None:
    size = 50 * 1_048_576
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(size)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    report = json.loads(done.stdout)
    rows_in, rows_out, written = report["outputs"]["json"]
    assert rows_in > 900_000
    assert rows_out == rows_in - (rows_in + 6) // 7
    assert written > 40 * 1_048_576
    assert report["outputs"]["csv"][:2] == [rows_in, rows_out]
    assert report["peak"] - report["baseline"] < 200, report
    assert report["peak"] < 300, report  # the whole process, as for a 256 MiB upload
