"""approvals, legal holds and registered copies: the project end's legal facts (D1, L2-L5)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

import agent.store.tables

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('approval',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('reference', sa.String(length=200), nullable=False),
    sa.Column('valid_until', sa.Date(), nullable=True),
    sa.Column('retention_until', sa.Date(), nullable=True),
    sa.Column('clinical_trial', sa.Boolean(), nullable=False),
    sa.Column('final_report', sa.Date(), nullable=True),
    sa.Column('recorded_by', sa.String(length=64), nullable=False),
    sa.Column('recorded_at', agent.store.tables.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('approval', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_approval_project_id'), ['project_id'], unique=False)

    op.create_table('legal_hold',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('reference', sa.String(length=200), nullable=False),
    sa.Column('note', sa.String(length=1000), nullable=False),
    sa.Column('placed_by', sa.String(length=64), nullable=False),
    sa.Column('placed_at', agent.store.tables.UTCDateTime(), nullable=False),
    sa.Column('released_by', sa.String(length=64), nullable=True),
    sa.Column('released_at', agent.store.tables.UTCDateTime(), nullable=True),
    sa.Column('release_note', sa.String(length=1000), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('legal_hold', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_legal_hold_project_id'), ['project_id'],
                              unique=False)

    op.create_table('registered_copy',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('location', sa.String(length=4096), nullable=False),
    sa.Column('note', sa.String(length=1000), nullable=False),
    sa.Column('registered_by', sa.String(length=64), nullable=False),
    sa.Column('registered_at', agent.store.tables.UTCDateTime(), nullable=False),
    sa.Column('disposed_confirmed_by', sa.String(length=64), nullable=True),
    sa.Column('disposed_confirmed_at', agent.store.tables.UTCDateTime(), nullable=True),
    sa.Column('disposal_note', sa.String(length=1000), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('registered_copy', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_registered_copy_project_id'), ['project_id'],
                              unique=False)


def downgrade() -> None:
    for table in ('registered_copy', 'legal_hold', 'approval'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f'ix_{table}_project_id'))
        op.drop_table(table)
