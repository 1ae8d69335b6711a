"""Initial schema: calls and their parts, batch bookkeeping, the transcript search index.

SQLite gets an FTS5 table with the trigram tokenizer (substring search that works for Chinese
without spaces), kept in step with ``segments`` by triggers; PostgreSQL gets a pg_trgm GIN index
for ILIKE when the extension can be created (else plain ILIKE scans still answer).

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('calls',
    sa.Column('call_id', sa.String(length=64), nullable=False),
    sa.Column('content_sha256', sa.String(length=64), nullable=False),
    sa.Column('fingerprint', sa.String(length=256), nullable=False),
    sa.Column('source_name', sa.String(length=512), nullable=False),
    sa.Column('source_path', sa.Text(), nullable=True),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('container', sa.String(length=128), nullable=True),
    sa.Column('codec', sa.String(length=64), nullable=True),
    sa.Column('sample_rate', sa.Integer(), nullable=False),
    sa.Column('channels', sa.Integer(), nullable=False),
    sa.Column('duration_ms', sa.BigInteger(), nullable=False),
    sa.Column('narrowband', sa.Boolean(), nullable=False),
    sa.Column('separation', sa.String(length=32), nullable=False),
    sa.Column('agent_id', sa.String(length=128), nullable=True),
    sa.Column('team', sa.String(length=128), nullable=True),
    sa.Column('queue', sa.String(length=128), nullable=True),
    sa.Column('category', sa.String(length=128), nullable=True),
    sa.Column('direction', sa.String(length=16), nullable=True),
    sa.Column('customer_id', sa.String(length=128), nullable=True),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('metadata_json', sa.JSON(), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('score_normalized', sa.Float(), nullable=True),
    sa.Column('passed', sa.Boolean(), nullable=True),
    sa.Column('auto_failed', sa.Boolean(), nullable=True),
    sa.Column('scorecard_id', sa.String(length=128), nullable=True),
    sa.Column('pipeline_version', sa.String(length=64), nullable=False),
    sa.Column('callsense_version', sa.String(length=64), nullable=False),
    sa.Column('emotion_model', sa.String(length=128), nullable=True),
    sa.Column('analyzed_at', sa.DateTime(), nullable=False),
    sa.Column('stored_at', sa.DateTime(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('redacted', sa.Boolean(), nullable=False),
    sa.Column('audio_path', sa.Text(), nullable=True),
    sa.Column('audio_deleted', sa.Boolean(), nullable=False),
    sa.Column('result_json', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('call_id'),
    sa.UniqueConstraint('content_sha256')
    )
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_calls_agent_id'), ['agent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_calls_analyzed_at'), ['analyzed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_calls_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_calls_duration_ms'), ['duration_ms'], unique=False)
        batch_op.create_index(batch_op.f('ix_calls_started_at'), ['started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_calls_stored_at'), ['stored_at'], unique=False)

    op.create_table('claims',
    sa.Column('content_sha256', sa.String(length=64), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('claimed_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('content_sha256')
    )
    op.create_table('failures',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('source_key', sa.String(length=1024), nullable=False),
    sa.Column('source_path', sa.Text(), nullable=True),
    sa.Column('content_sha256', sa.String(length=64), nullable=True),
    sa.Column('manifest', sa.Text(), nullable=True),
    sa.Column('row', sa.Integer(), nullable=True),
    sa.Column('metadata_json', sa.JSON(), nullable=False),
    sa.Column('stage', sa.String(length=32), nullable=False),
    sa.Column('error_code', sa.String(length=64), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('fingerprint', sa.String(length=256), nullable=True),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('failed_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source_key')
    )
    with op.batch_alter_table('failures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_failures_content_sha256'), ['content_sha256'], unique=False)
        batch_op.create_index(batch_op.f('ix_failures_failed_at'), ['failed_at'], unique=False)

    op.create_table('processing_runs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('fingerprint', sa.String(length=256), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('workers', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('done', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('audio_ms', sa.BigInteger(), nullable=False),
    sa.Column('wall_s', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('call_meta',
    sa.Column('call_id', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('value', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['call_id'], ['calls.call_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('call_id', 'key')
    )
    with op.batch_alter_table('call_meta', schema=None) as batch_op:
        batch_op.create_index('ix_call_meta_key_value', ['key', 'value'], unique=False)

    op.create_table('embeddings',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('call_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('segment_id', sa.String(length=32), nullable=True),
    sa.Column('role', sa.String(length=16), nullable=True),
    sa.Column('model', sa.String(length=128), nullable=True),
    sa.Column('dim', sa.Integer(), nullable=False),
    sa.Column('vector', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['calls.call_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('embeddings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_embeddings_call_id'), ['call_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_embeddings_kind'), ['kind'], unique=False)

    op.create_table('events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('call_id', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('start_ms', sa.BigInteger(), nullable=False),
    sa.Column('end_ms', sa.BigInteger(), nullable=False),
    sa.Column('channel', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('segment_id', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['call_id'], ['calls.call_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_events_call_id'), ['call_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_events_type'), ['type'], unique=False)

    op.create_table('metrics',
    sa.Column('call_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('value_json', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['calls.call_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('call_id', 'name')
    )
    op.create_table('rule_hits',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('call_id', sa.String(length=64), nullable=False),
    sa.Column('rule_id', sa.String(length=128), nullable=False),
    sa.Column('rule_version', sa.String(length=64), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('category', sa.String(length=128), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('score_delta', sa.Float(), nullable=False),
    sa.Column('alert', sa.Boolean(), nullable=False),
    sa.Column('evidence_json', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['calls.call_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('rule_hits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rule_hits_call_id'), ['call_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_rule_hits_rule_id'), ['rule_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_rule_hits_severity'), ['severity'], unique=False)

    op.create_table('segments',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('call_id', sa.String(length=64), nullable=False),
    sa.Column('segment_id', sa.String(length=32), nullable=False),
    sa.Column('idx', sa.Integer(), nullable=False),
    sa.Column('channel', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('start_ms', sa.BigInteger(), nullable=False),
    sa.Column('end_ms', sa.BigInteger(), nullable=False),
    sa.Column('duration_ms', sa.BigInteger(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=True),
    sa.Column('asr_emotion', sa.String(length=32), nullable=True),
    sa.Column('asr_events', sa.Text(), nullable=False),
    sa.Column('asr_status', sa.String(length=16), nullable=False),
    sa.Column('emotion_label', sa.String(length=16), nullable=True),
    sa.Column('emotion_score', sa.Float(), nullable=True),
    sa.Column('emotion_source', sa.String(length=16), nullable=True),
    sa.Column('p_angry', sa.Float(), nullable=True),
    sa.Column('p_disgusted', sa.Float(), nullable=True),
    sa.Column('p_fearful', sa.Float(), nullable=True),
    sa.Column('p_happy', sa.Float(), nullable=True),
    sa.Column('p_neutral', sa.Float(), nullable=True),
    sa.Column('p_other', sa.Float(), nullable=True),
    sa.Column('p_sad', sa.Float(), nullable=True),
    sa.Column('p_surprised', sa.Float(), nullable=True),
    sa.Column('p_unknown', sa.Float(), nullable=True),
    sa.Column('level_dbfs', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['call_id'], ['calls.call_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('call_id', 'segment_id', name='uq_segments_call_segment')
    )
    with op.batch_alter_table('segments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_segments_call_id'), ['call_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_segments_emotion_label'), ['emotion_label'], unique=False)

    _create_search_index()


def _create_search_index() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute("CREATE VIRTUAL TABLE segments_fts USING fts5(text, tokenize='trigram')")
        op.execute("CREATE TRIGGER segments_fts_ai AFTER INSERT ON segments BEGIN "
                   "INSERT INTO segments_fts(rowid, text) VALUES (new.id, new.text); END")
        op.execute("CREATE TRIGGER segments_fts_ad AFTER DELETE ON segments BEGIN "
                   "DELETE FROM segments_fts WHERE rowid = old.id; END")
        op.execute("CREATE TRIGGER segments_fts_au AFTER UPDATE OF text ON segments BEGIN "
                   "UPDATE segments_fts SET text = new.text WHERE rowid = old.id; END")
    elif bind.dialect.name == "postgresql":
        # pg_trgm is a trusted extension (PostgreSQL >= 13): a database owner may create it. Where it
        # cannot be created, search falls back to ILIKE scans; the savepoint keeps the upgrade going.
        savepoint = bind.begin_nested()
        try:
            op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            savepoint.commit()
        except Exception:  # noqa: BLE001 - any refusal means "no trigram index"
            savepoint.rollback()
            return
        op.execute("CREATE INDEX ix_segments_text_trgm ON segments USING gin (text gin_trgm_ops)")



def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for trigger in ("segments_fts_ai", "segments_fts_ad", "segments_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS segments_fts")
    elif bind.dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_segments_text_trgm")
    with op.batch_alter_table('segments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_segments_emotion_label'))
        batch_op.drop_index(batch_op.f('ix_segments_call_id'))

    op.drop_table('segments')
    with op.batch_alter_table('rule_hits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rule_hits_severity'))
        batch_op.drop_index(batch_op.f('ix_rule_hits_rule_id'))
        batch_op.drop_index(batch_op.f('ix_rule_hits_call_id'))

    op.drop_table('rule_hits')
    op.drop_table('metrics')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_type'))
        batch_op.drop_index(batch_op.f('ix_events_call_id'))

    op.drop_table('events')
    with op.batch_alter_table('embeddings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_embeddings_kind'))
        batch_op.drop_index(batch_op.f('ix_embeddings_call_id'))

    op.drop_table('embeddings')
    with op.batch_alter_table('call_meta', schema=None) as batch_op:
        batch_op.drop_index('ix_call_meta_key_value')

    op.drop_table('call_meta')
    op.drop_table('processing_runs')
    with op.batch_alter_table('failures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_failures_failed_at'))
        batch_op.drop_index(batch_op.f('ix_failures_content_sha256'))

    op.drop_table('failures')
    op.drop_table('claims')
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calls_stored_at'))
        batch_op.drop_index(batch_op.f('ix_calls_started_at'))
        batch_op.drop_index(batch_op.f('ix_calls_duration_ms'))
        batch_op.drop_index(batch_op.f('ix_calls_customer_id'))
        batch_op.drop_index(batch_op.f('ix_calls_analyzed_at'))
        batch_op.drop_index(batch_op.f('ix_calls_agent_id'))

    op.drop_table('calls')
