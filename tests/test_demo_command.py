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
