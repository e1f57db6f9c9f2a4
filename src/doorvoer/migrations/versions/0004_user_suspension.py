"""users: suspended_at (a tenant admin suspends a person and resumes them)

Revision ID: 5b1e0c3d9a71
Revises: cc5dc716c860
Create Date: 2026-12-07 16:10:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import doorvoer.db

revision: str = '5b1e0c3d9a71'
down_revision: str | None = 'cc5dc716c860'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('suspended_at', doorvoer.db.UTCDateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('suspended_at')
