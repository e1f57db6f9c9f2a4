"""erasure (P19): scheduled erasures, and the tombstones of erased tenants

Revision ID: 3c7e1f2a8b45
Revises: 9d4f2a6b7c10
Create Date: 2026-12-08 01:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import doorvoer.db

revision: str = '3c7e1f2a8b45'
down_revision: str | None = '9d4f2a6b7c10'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('erasure_requests',
    sa.Column('tenant_id', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.Column('requested_at', doorvoer.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('requested_by', sa.String(length=32), nullable=True),
    sa.Column('due_at', doorvoer.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_erasure_requests_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', name=op.f('pk_erasure_requests'))
    )
    with op.batch_alter_table('erasure_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_erasure_requests_due_at'), ['due_at'], unique=False)
    op.create_table('tenant_tombstones',
    sa.Column('tenant_id', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.Column('created_at', doorvoer.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('requested_at', doorvoer.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('erased_at', doorvoer.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('counts', sa.Text(), nullable=False),
    sa.Column('certificate', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', name=op.f('pk_tenant_tombstones'))
    )


def downgrade() -> None:
    op.drop_table('tenant_tombstones')
    with op.batch_alter_table('erasure_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_erasure_requests_due_at'))
    op.drop_table('erasure_requests')
