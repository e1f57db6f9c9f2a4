"""Models and migrations must agree (like warehouse's db-check)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from doorvoer import migrate
from doorvoer.context import Context
from doorvoer.db import make_engine
from doorvoer.models import metadata


def test_migrations_match_the_models(ctx: Context) -> None:
    with ctx.engine.connect() as conn:
        mc = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(mc, metadata)
    assert diff == []


def test_head_is_the_newest_migration(ctx: Context) -> None:
    """`upgrade` skips Alembic when the database is at HEAD: HEAD must be Alembic's head,
    and the upgraded test database must be there."""
    script = ScriptDirectory.from_config(migrate.alembic_config(ctx.engine))
    assert script.get_heads() == [migrate.HEAD], "set migrate.HEAD to the new head"
    assert migrate.current_revision(ctx.engine) == migrate.HEAD


def test_upgrade_migrates_an_empty_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        assert migrate.current_revision(engine) is None
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.HEAD
        assert inspect(engine).has_table("transfers")
        migrate.upgrade(engine)  # nothing to do
    finally:
        engine.dispose()


def test_serving_does_not_load_alembic(tmp_path: Path) -> None:
    """A node's memory: an up-to-date database is served without importing Alembic."""
    data = tmp_path / "data"
    env = {**os.environ, "DOORVOER_DATA_DIR": str(data)}
    subprocess.run([sys.executable, "-m", "doorvoer", "init"], env=env, check=True,
                   capture_output=True)
    probe = ("import sys\nfrom doorvoer.config import load_settings\n"
             "from doorvoer.context import Context\nfrom doorvoer.migrate import upgrade\n"
             "ctx = Context.open(load_settings())\nupgrade(ctx.engine)\n"
             "print('alembic' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], env=env, check=True,
                          capture_output=True, text=True)
    assert done.stdout.strip() == "False"
