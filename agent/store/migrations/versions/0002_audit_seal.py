"""audit seal: per-project chains, MACs, chain heads, signed checkpoints

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Events written at 0001 carry no MAC and no project link; no release wrote them (0001 only
existed in development builds), so they are left as they are and ``vokter audit verify``
reports them as unsealed rather than sealing them after the fact, which would bless whatever
was in the database at upgrade time.
"""

import sqlalchemy as sa
from alembic import op

import agent.store.tables

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('project_seq', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('project_prev_hash', sa.String(length=128), nullable=True))
        batch_op.add_column(
            sa.Column('mac', sa.String(length=64), nullable=False, server_default='')
        )
        batch_op.create_unique_constraint(
            'uq_audit_event_project_seq', ['project_id', 'project_seq']
        )
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.alter_column('mac', server_default=None)

    op.create_table('audit_head',
    sa.Column('chain', sa.String(length=32), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('hash', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('chain')
    )
    op.create_table('audit_checkpoint',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('time', agent.store.tables.UTCDateTime(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('head', sa.String(length=128), nullable=False),
    sa.Column('key_id', sa.String(length=32), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('signature', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_checkpoint', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_checkpoint_seq'), ['seq'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('audit_checkpoint', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_checkpoint_seq'))
    op.drop_table('audit_checkpoint')
    op.drop_table('audit_head')
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_constraint('uq_audit_event_project_seq', type_='unique')
        batch_op.drop_column('mac')
        batch_op.drop_column('project_prev_hash')
        batch_op.drop_column('project_seq')
