"""inspection windows (P6): the windows, the files a window keeps, the inspected process

Revision ID: 9d4f2a6b7c10
Revises: 5b1e0c3d9a71
Create Date: 2026-12-07 21:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import doorvoer.db

revision: str = '9d4f2a6b7c10'
down_revision: str | None = '5b1e0c3d9a71'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('inspection_windows',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('tenant_id', sa.String(length=32), nullable=False),
    sa.Column('process_id', sa.String(length=32), nullable=False),
    sa.Column('process_name', sa.String(length=63), nullable=False),
    sa.Column('grant_id', sa.String(length=32), nullable=False),
    sa.Column('staff_id', sa.String(length=32), nullable=False),
    sa.Column('staff_email', sa.String(length=320), nullable=False),
    sa.Column('opened_at', doorvoer.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('until', doorvoer.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', doorvoer.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_by', sa.String(length=320), nullable=True),
    sa.Column('kept', sa.Integer(), nullable=False),
    sa.Column('views', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_inspection_windows_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inspection_windows'))
    )
    with op.batch_alter_table('inspection_windows', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inspection_windows_grant_id'), ['grant_id'], unique=False)
        batch_op.create_index('ix_inspection_windows_tenant_opened', ['tenant_id', 'opened_at'], unique=False)
    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kept_for', sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f('ix_transfers_kept_for'), ['kept_for'], unique=False)
    with op.batch_alter_table('processes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('inspect_window', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('inspect_until', doorvoer.db.UTCDateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('processes', schema=None) as batch_op:
        batch_op.drop_column('inspect_until')
        batch_op.drop_column('inspect_window')
    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_transfers_kept_for'))
        batch_op.drop_column('kept_for')
    with op.batch_alter_table('inspection_windows', schema=None) as batch_op:
        batch_op.drop_index('ix_inspection_windows_tenant_opened')
        batch_op.drop_index(batch_op.f('ix_inspection_windows_grant_id'))
    op.drop_table('inspection_windows')
