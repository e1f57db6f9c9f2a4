"""The README's first command: `doorvoer demo --once` tells the whole story over real
SFTP and ends with nothing left behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def test_demo_once_ends_with_nothing_left() -> None:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    result = subprocess.run([sys.executable, "-m", "doorvoer.cli", "demo", "--once"],
                            capture_output=True, text=True, timeout=180, env=env,
                            check=False, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "ERASED" in out
    proof = {
        "encrypted blobs in the vault folder": None,
        "bytes in the vault's spare files": None,
        "data keys in the database": None,
        "plaintext of the input anywhere in the data dir": None,
    }
    for line in out.splitlines():
        for check in proof:
            if check in line:
                proof[check] = re.findall(r"\d+", line.rsplit("│", 2)[-2])[-1]
    assert proof == dict.fromkeys(proof, "0"), out[-3000:]


def test_free_ports_are_the_wanted_ones_when_free_and_never_the_same() -> None:
    import socket

    from doorvoer.app import free_ports

    # Asked for at once, the OS's picks are all different (picked one by one, with
    # each socket closed before the next bind, the same port can come back twice).
    picked = free_ports("127.0.0.1", 0, 0, 0, 0)
    assert len(set(picked)) == 4
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        busy = taken.getsockname()[1]
        taken.listen()
        free = picked[0]
        # a wanted port that is free is the one given; a taken one is replaced
        first, second = free_ports("127.0.0.1", free, busy)
        assert first == free
        assert second not in (busy, free)
        # two wishes for the same port: the second gets another
        again = free_ports("127.0.0.1", free, free)
        assert again[0] == free and again[1] != free
