"""project keyset: each project's keyset, wrapped by the master key, and its tombstone

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

Projects created before this revision get their keyset on first use (agent.crypto.keystore),
so the migration itself makes no keys: it cannot reach the key store, and must not.
"""

import sqlalchemy as sa
from alembic import op

import agent.store.tables

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('project_keyset',
    sa.Column('project_id', sa.String(length=32), nullable=False),
    sa.Column('wrapped', sa.LargeBinary(), nullable=True),
    sa.Column('master_key_id', sa.String(length=16), nullable=False),
    sa.Column('created_at', agent.store.tables.UTCDateTime(), nullable=False),
    sa.Column('destroyed_at', agent.store.tables.UTCDateTime(), nullable=True),
    sa.Column('destroyed_by', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('project_id')
    )
    with op.batch_alter_table('project_keyset', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_project_keyset_master_key_id'), ['master_key_id'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('project_keyset', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_project_keyset_master_key_id'))
    op.drop_table('project_keyset')
