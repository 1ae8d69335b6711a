"""Stable call identity: ``call_analyses``, one row per analysis stored for a call.

A re-analysed recording now keeps its call id (the ``calls`` row is updated in place instead of being
replaced under a new id); this table keeps the history of its analyses. Existing calls get one row
each, for the analysis they hold. The QA score keeps its meaning (``calls.score_normalized`` always
held the 0-100 score users see), so no column is converted.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-09
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('call_analyses',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('call_id', sa.String(length=64), nullable=False),
    sa.Column('analyzed_at', sa.DateTime(), nullable=False),
    sa.Column('stored_at', sa.DateTime(), nullable=False),
    sa.Column('fingerprint', sa.String(length=256), nullable=False),
    sa.Column('pipeline_version', sa.String(length=64), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('rule_hits', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['calls.call_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_call_analyses_call_id'), 'call_analyses', ['call_id'], unique=False)
    op.execute(
        "INSERT INTO call_analyses (call_id, analyzed_at, stored_at, fingerprint, pipeline_version, run_id, score,"
        " rule_hits) SELECT c.call_id, c.analyzed_at, c.stored_at, c.fingerprint, c.pipeline_version, c.run_id,"
        " c.score_normalized, (SELECT COUNT(*) FROM rule_hits h WHERE h.call_id = c.call_id) FROM calls c"
    )


def downgrade() -> None:
    op.drop_index(op.f('ix_call_analyses_call_id'), table_name='call_analyses')
    op.drop_table('call_analyses')
