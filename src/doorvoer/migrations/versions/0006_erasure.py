"""privacy operations: erasure (P19: scheduled erasures, the tombstones of erased
tenants), incidents and breach notices (P18), the sub-processor register with objections
and consents (P17), contact fields by purpose (P9)

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
    op.create_table('incidents',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('became_known_at', doorvoer.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('data_categories', sa.Text(), nullable=False),
    sa.Column('approximate_subjects', sa.Integer(), nullable=False),
    sa.Column('likely_consequences', sa.Text(), nullable=False),
    sa.Column('measures_taken', sa.Text(), nullable=False),
    sa.Column('measures_proposed', sa.Text(), nullable=False),
    sa.Column('contact', sa.String(length=500), nullable=False),
    sa.Column('all_tenants', sa.Boolean(), nullable=False),
    sa.Column('recorded_at', doorvoer.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('recorded_by', sa.String(length=320), nullable=False),
    sa.Column('phase', sa.Integer(), nullable=False),
    sa.Column('alerted_at', doorvoer.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incidents'))
    )
    op.create_table('incident_updates',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('incident_id', sa.String(length=32), nullable=False),
    sa.Column('phase', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('recorded_at', doorvoer.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('recorded_by', sa.String(length=320), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_incident_updates_incident_id_incidents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incident_updates'))
    )
    with op.batch_alter_table('incident_updates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incident_updates_incident_id'), ['incident_id'], unique=False)
    op.create_table('incident_notices',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('incident_id', sa.String(length=32), nullable=False),
    sa.Column('tenant_id', sa.String(length=32), nullable=False),
    sa.Column('phase', sa.Integer(), nullable=False),
    sa.Column('created_at', doorvoer.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', doorvoer.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.String(length=300), nullable=True),
    sa.Column('acknowledged_at', doorvoer.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by', sa.String(length=320), nullable=True),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_incident_notices_incident_id_incidents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_incident_notices_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incident_notices'))
    )
    with op.batch_alter_table('incident_notices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incident_notices_incident_id'), ['incident_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_incident_notices_sent_at'), ['sent_at'], unique=False)
        batch_op.create_index('ix_incident_notices_tenant', ['tenant_id', 'acknowledged_at'], unique=False)
    op.create_table('subprocessors',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=63), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('purpose', sa.Text(), nullable=False),
    sa.Column('data_categories', sa.Text(), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('in_eea', sa.Boolean(), nullable=False),
    sa.Column('safeguard', sa.Text(), nullable=True),
    sa.Column('announced_at', doorvoer.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('effective_at', doorvoer.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('recorded_by', sa.String(length=320), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subprocessors'))
    )
    with op.batch_alter_table('subprocessors', schema=None) as batch_op:
        batch_op.create_index('ix_subprocessors_key_version', ['key', 'version'], unique=True)
    op.create_table('subprocessor_objections',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('tenant_id', sa.String(length=32), nullable=False),
    sa.Column('subprocessor_id', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('made_at', doorvoer.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('made_by', sa.String(length=320), nullable=False),
    sa.ForeignKeyConstraint(['subprocessor_id'], ['subprocessors.id'], name=op.f('fk_subprocessor_objections_subprocessor_id_subprocessors'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_subprocessor_objections_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subprocessor_objections'))
    )
    with op.batch_alter_table('subprocessor_objections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subprocessor_objections_tenant_id'), ['tenant_id'], unique=False)
    op.create_table('subprocessor_consents',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('tenant_id', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=63), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('given_at', doorvoer.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('given_by', sa.String(length=320), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_subprocessor_consents_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subprocessor_consents'))
    )
    with op.batch_alter_table('subprocessor_consents', schema=None) as batch_op:
        batch_op.create_index('ix_subprocessor_consents_tenant_key', ['tenant_id', 'key'], unique=True)
    with op.batch_alter_table('processes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('columns', sa.Text(), nullable=True))
    op.create_table('usage_releases',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('feature', sa.String(length=32), nullable=False),
    sa.Column('value', sa.Integer(), nullable=False),
    sa.Column('epsilon', sa.Float(), nullable=False),
    sa.Column('released_at', doorvoer.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_releases'))
    )
    with op.batch_alter_table('usage_releases', schema=None) as batch_op:
        batch_op.create_index('ix_usage_releases_day_feature', ['day', 'feature'], unique=True)
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('usage_stats', sa.Boolean(), nullable=False,
                                      server_default=sa.true()))
        batch_op.add_column(sa.Column('invoice_email', sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column('breach_email', sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column('breach_webhook', sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('processes', schema=None) as batch_op:
        batch_op.drop_column('columns')
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.drop_column('breach_webhook')
        batch_op.drop_column('breach_email')
        batch_op.drop_column('invoice_email')
        batch_op.drop_column('usage_stats')
    op.drop_table('usage_releases')
    op.drop_table('subprocessor_consents')
    op.drop_table('subprocessor_objections')
    op.drop_table('subprocessors')
    op.drop_table('incident_notices')
    op.drop_table('incident_updates')
    op.drop_table('incidents')
    op.drop_table('tenant_tombstones')
    with op.batch_alter_table('erasure_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_erasure_requests_due_at'))
    op.drop_table('erasure_requests')
