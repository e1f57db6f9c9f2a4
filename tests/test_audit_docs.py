"""The verifier in docs/audit.md, run as a tenant would run it: against a real export,
a real checkpoint and the node's key, then against tampered copies."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from doorvoer.cli import app

DOC = Path(__file__).resolve().parent.parent / "docs" / "audit.md"


def _script() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 1
    assert len(blocks[0].splitlines()) <= 30
    return blocks[0]


@pytest.fixture
def exported(tmp_path: Path) -> tuple[Path, str, Path]:
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path / "data")]

    def cli(*args: str) -> str:
        r = runner.invoke(app, [*args, *data], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        return r.output

    cli("init")
    cli("tenant", "create", "acme", "--name", "Acmé B.V.")
    cli("audit", "export", "--tenant", "acme")  # an entry of its own
    receipt = tmp_path / "receipt.txt"
    receipt.write_text(cli("audit", "checkpoint", "--tenant", "acme"), encoding="utf-8")
    cli("tenant", "create", "other", "--name", "Other")
    export = tmp_path / "export.jsonl"
    export.write_text(cli("audit", "export", "--tenant", "acme"), encoding="utf-8")
    return export, cli("audit", "key").strip(), receipt


def _run(tmp_path: Path, export: Path, key: str, *receipts: Path
         ) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "verify_audit.py"
    script.write_text(_script(), encoding="utf-8")
    return subprocess.run([sys.executable, str(script), str(export), key,
                           *map(str, receipts)], capture_output=True, text=True,
                          timeout=60, check=False)


def test_the_documented_verifier_accepts_a_real_export(
        exported: tuple[Path, str, Path], tmp_path: Path) -> None:
    export, key, receipt = exported
    done = _run(tmp_path, export, key, receipt)
    assert done.returncode == 0, done.stderr
    assert "2 entries" in done.stdout and "1 receipt(s) hold" in done.stdout


@pytest.mark.parametrize("tamper", ["edit", "drop", "swap", "rewrite"])
def test_the_documented_verifier_catches_tampering(
        exported: tuple[Path, str, Path], tmp_path: Path, tamper: str) -> None:
    export, key, receipt = exported
    entries = [json.loads(line) for line in export.read_text().splitlines()]
    if tamper == "edit":
        entries[0]["object"] = "globex"
    elif tamper == "drop":
        del entries[0]
    elif tamper == "swap":
        entries.reverse()
    else:  # a consistent rewrite: every hash recomputed, but the receipt was signed
        from doorvoer.audit.chain import entry_hash

        prev = "0" * 64
        entries[0]["object"] = "globex"
        for e in entries:
            e["prev"] = prev
            prev = e["hash"] = entry_hash(e)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries))
    done = _run(tmp_path, bad, key, receipt)
    assert done.returncode != 0
    assert "seq 1:" in done.stderr, done.stderr
