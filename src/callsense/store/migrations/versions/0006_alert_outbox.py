"""The alert outbox: ``pending_alerts``, one row per alerting rule hit and webhook target.

Written in the transaction that stores a result, delivered afterwards with backoff by the batch
runner and the service (:mod:`callsense.store.outbox`); unique on (call, rule, evidence hash, target)
so a re-analysis never sends an alert twice. Deleted with its call.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-12
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pending_alerts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('call_id', sa.String(length=64), nullable=False),
    sa.Column('rule_id', sa.String(length=128), nullable=False),
    sa.Column('evidence_hash', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=64), nullable=False),
    sa.Column('target_name', sa.String(length=255), nullable=False),
    sa.Column('format', sa.String(length=16), nullable=False),
    sa.Column('message_id', sa.String(length=32), nullable=False),
    sa.Column('payload_json', sa.Text(), nullable=False),
    sa.Column('target_json', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=True),
    sa.Column('last_attempt_at', sa.DateTime(), nullable=True),
    sa.Column('delivered_at', sa.DateTime(), nullable=True),
    sa.Column('last_status', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['call_id'], ['calls.call_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('call_id', 'rule_id', 'evidence_hash', 'target', name='uq_pending_alerts_key')
    )
    with op.batch_alter_table('pending_alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pending_alerts_call_id'), ['call_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_pending_alerts_message_id'), ['message_id'], unique=False)
        batch_op.create_index('ix_pending_alerts_due', ['status', 'next_attempt_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('pending_alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_pending_alerts_due')
        batch_op.drop_index(batch_op.f('ix_pending_alerts_message_id'))
        batch_op.drop_index(batch_op.f('ix_pending_alerts_call_id'))
    op.drop_table('pending_alerts')
