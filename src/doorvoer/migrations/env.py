from __future__ import annotations

from alembic import context

from doorvoer.models import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through doorvoer.migrate")
context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=True, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
