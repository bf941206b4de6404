"""violations and datasets: storage findings (S1-S7, D2, D5) and delivered datasets (D2)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

import agent.store.tables

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('violation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.String(length=32), nullable=True),
    sa.Column('rule', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('path', sa.String(length=4096), nullable=False),
    sa.Column('zone', sa.String(length=16), nullable=True),
    sa.Column('fingerprint', sa.String(length=128), nullable=False),
    sa.Column('detected_at', agent.store.tables.UTCDateTime(), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('action_outcome', sa.String(length=16), nullable=False),
    sa.Column('action_note', sa.String(length=1000), nullable=False),
    sa.Column('summary', sa.String(length=1000), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.Column('resolved_at', agent.store.tables.UTCDateTime(), nullable=True),
    sa.Column('resolved_by', sa.String(length=64), nullable=True),
    sa.Column('resolution_note', sa.String(length=1000), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('violation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_violation_project_id'), ['project_id'], unique=False)

    op.create_table('dataset',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('path', sa.String(length=4096), nullable=False),
    sa.Column('source', sa.String(length=128), nullable=False),
    sa.Column('variables', sa.Text(), nullable=False),
    sa.Column('columns', sa.Text(), nullable=False),
    sa.Column('added_by', sa.String(length=64), nullable=False),
    sa.Column('added_at', agent.store.tables.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('dataset', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dataset_project_id'), ['project_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('dataset', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dataset_project_id'))
    op.drop_table('dataset')
    with op.batch_alter_table('violation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_violation_project_id'))
    op.drop_table('violation')
