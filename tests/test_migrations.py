"""Models and migrations must agree (like warehouse's db-check)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from doorvoer.context import Context
from doorvoer.models import metadata


def test_migrations_match_the_models(ctx: Context) -> None:
    with ctx.engine.connect() as conn:
        mc = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(mc, metadata)
    assert diff == []
