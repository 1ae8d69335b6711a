"""Mood history, reviewer corrections, clusters and outliers (issue 20, items 3, 4 and 7).

* ``mood_entries``: the last N emotion answers per voice-assistant user or session (label,
  distribution, embedding, time) behind ``/v1/emotion``'s ``mood`` (callsense.store.mood).
* ``segment_labels``: reviewers' corrections of a segment's emotion (who, when, the model's label),
  deleted with the call; the training source ``store:corrections``.
* ``analysis_runs`` + ``segment_scores``: ``callsense clusters`` runs and each segment's cluster or
  outlier score (deleted with the call and with the run).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('mood_entries',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('subject', sa.String(length=160), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('label', sa.String(length=32), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('distribution_json', sa.Text(), nullable=False),
    sa.Column('model', sa.String(length=128), nullable=True),
    sa.Column('dim', sa.Integer(), nullable=False),
    sa.Column('vector', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_mood_entries_at', 'mood_entries', ['at'], unique=False)
    op.create_index('ix_mood_entries_subject_id', 'mood_entries', ['subject', 'id'], unique=False)
    op.create_table('segment_labels',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('call_id', sa.String(length=64), nullable=False),
    sa.Column('segment_id', sa.String(length=32), nullable=False),
    sa.Column('label', sa.String(length=64), nullable=False),
    sa.Column('custom', sa.Boolean(), nullable=False),
    sa.Column('previous', sa.String(length=32), nullable=True),
    sa.Column('reviewer', sa.String(length=128), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['calls.call_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_segment_labels_at', 'segment_labels', ['at'], unique=False)
    op.create_index('ix_segment_labels_call_id', 'segment_labels', ['call_id'], unique=False)
    op.create_table('analysis_runs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('params_json', sa.Text(), nullable=False),
    sa.Column('summary_json', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_analysis_runs_kind', 'analysis_runs', ['kind'], unique=False)
    op.create_table('segment_scores',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.String(length=64), nullable=False),
    sa.Column('segment_id', sa.String(length=32), nullable=False),
    sa.Column('cluster', sa.Integer(), nullable=True),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('flagged', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['calls.call_id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['analysis_runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_segment_scores_call_id', 'segment_scores', ['call_id'], unique=False)
    op.create_index('ix_segment_scores_run_cluster', 'segment_scores', ['run_id', 'cluster'], unique=False)
    op.create_index('ix_segment_scores_run_score', 'segment_scores', ['run_id', 'score'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_segment_scores_run_score', table_name='segment_scores')
    op.drop_index('ix_segment_scores_run_cluster', table_name='segment_scores')
    op.drop_index('ix_segment_scores_call_id', table_name='segment_scores')
    op.drop_table('segment_scores')
    op.drop_index('ix_analysis_runs_kind', table_name='analysis_runs')
    op.drop_table('analysis_runs')
    op.drop_index('ix_segment_labels_call_id', table_name='segment_labels')
    op.drop_index('ix_segment_labels_at', table_name='segment_labels')
    op.drop_table('segment_labels')
    op.drop_index('ix_mood_entries_subject_id', table_name='mood_entries')
    op.drop_index('ix_mood_entries_at', table_name='mood_entries')
    op.drop_table('mood_entries')
