"""A year of calls: every interactive query on an index, compact embeddings, per-day rollups.

* ``calls.sort_at`` (the call time, ``coalesce(started_at, analyzed_at)``) with ``(sort_at, call_id)``
  and ``(agent_id, sort_at)`` indexes: ordering, date filters and keyset pages become range scans.
* ``rule_hits (rule_id, call_id)`` and ``(severity, call_id)`` replace the single-column indexes: a
  rule or severity filter reads call ids from the index (no per-call EXISTS).
* ``segments.p_angry`` index; ``embeddings (kind, dim)`` replaces ``(kind)`` (new vectors are float16;
  the float32 rows stored before stay as they are and are still read).
* ``segment_grams``: 2-character grams of each segment (terms of 1–2 characters), filled here for
  the segments already stored.
* ``rollup_*`` tables, the ``rollup_dirty`` log and triggers on ``calls`` marking the days to
  recompute; every stored day starts dirty (recomputed by the first dashboard that reads it).
* SQLite: ANALYZE, so the planner knows how selective each index is.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-10
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_ROLLUP_COLUMNS = ("sort_at", "agent_id", "team", "queue", "category", "direction", "customer_id",
                   "score_normalized", "duration_ms")


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sort_at', sa.DateTime(), nullable=True))
    op.execute("UPDATE calls SET sort_at = coalesce(started_at, analyzed_at)")
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.create_index('ix_calls_sort_at', [sa.text('sort_at DESC'), 'call_id'], unique=False)
        batch_op.create_index('ix_calls_agent_sort_at', ['agent_id', 'sort_at'], unique=False)

    with op.batch_alter_table('rule_hits', schema=None) as batch_op:
        batch_op.drop_index('ix_rule_hits_rule_id')
        batch_op.drop_index('ix_rule_hits_severity')
        batch_op.create_index('ix_rule_hits_rule_call', ['rule_id', 'call_id'], unique=False)
        batch_op.create_index('ix_rule_hits_severity_call', ['severity', 'call_id'], unique=False)

    with op.batch_alter_table('segments', schema=None) as batch_op:
        batch_op.create_index('ix_segments_p_angry', ['p_angry'], unique=False)

    with op.batch_alter_table('embeddings', schema=None) as batch_op:
        batch_op.drop_index('ix_embeddings_kind')
        batch_op.create_index('ix_embeddings_kind_dim', ['kind', 'dim'], unique=False)

    op.create_table('segment_grams',
    sa.Column('gram', sa.String(length=8), nullable=False),
    sa.Column('segment_pk', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['segment_pk'], ['segments.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('gram', 'segment_pk'),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('segment_grams', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_segment_grams_segment_pk'), ['segment_pk'], unique=False)
    _fill_grams(bind)

    op.create_table('rollup_dirty',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('rollup_agent_day',
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('agent_id', sa.String(length=128), nullable=False),
    sa.Column('calls', sa.Integer(), nullable=False),
    sa.Column('audio_ms', sa.BigInteger(), nullable=False),
    sa.Column('score_sum', sa.Float(), nullable=False),
    sa.Column('score_n', sa.Integer(), nullable=False),
    sa.Column('critical_hits', sa.Integer(), nullable=False),
    sa.Column('agent_ms', sa.BigInteger(), nullable=False),
    sa.Column('customer_ms', sa.BigInteger(), nullable=False),
    sa.Column('customer_neg_ms', sa.BigInteger(), nullable=False),
    sa.Column('customer_emo_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'agent_id')
    )
    op.create_table('rollup_emotion_day',
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('field', sa.String(length=32), nullable=False),
    sa.Column('value', sa.String(length=128), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('segments', sa.Integer(), nullable=False),
    sa.Column('speech_ms', sa.BigInteger(), nullable=False),
    *[sa.Column(f'w_{n}', sa.Float(), nullable=False) for n in
      ("angry", "disgusted", "fearful", "happy", "neutral", "other", "sad", "surprised", "unknown")],
    sa.PrimaryKeyConstraint('day', 'field', 'value', 'role')
    )
    op.create_table('rollup_rule_day',
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('rule_id', sa.String(length=128), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('category', sa.String(length=128), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('hits', sa.Integer(), nullable=False),
    sa.Column('calls', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'rule_id')
    )
    _create_dirty_triggers(dialect)
    day = "substr(sort_at, 1, 10)" if dialect == "sqlite" else "to_char(sort_at, 'YYYY-MM-DD')"
    op.execute(f"INSERT INTO rollup_dirty (day) SELECT DISTINCT {day} FROM calls WHERE sort_at IS NOT NULL")
    if dialect == "sqlite":
        op.execute("ANALYZE")


def _fill_grams(bind) -> None:
    """Grams of the segments already stored, in blocks (a big store need not fit in memory)."""
    from callsense.store.grams import grams

    last = 0
    while True:
        rows = bind.execute(sa.text("SELECT id, text FROM segments WHERE id > :last ORDER BY id LIMIT 5000"),
                            {"last": last}).all()
        if not rows:
            return
        values = [{"g": g, "s": sid} for sid, text in rows for g in grams(text)]
        if values:
            bind.execute(sa.text("INSERT INTO segment_grams (gram, segment_pk) VALUES (:g, :s)"), values)
        last = rows[-1][0]


def _create_dirty_triggers(dialect: str) -> None:
    cols = ", ".join(_ROLLUP_COLUMNS)
    if dialect == "sqlite":
        mark = "INSERT INTO rollup_dirty (day) SELECT substr({0}.sort_at, 1, 10) WHERE {0}.sort_at IS NOT NULL;"
        op.execute(f"CREATE TRIGGER calls_rollup_ai AFTER INSERT ON calls BEGIN {mark.format('new')} END")
        op.execute(f"CREATE TRIGGER calls_rollup_ad AFTER DELETE ON calls BEGIN {mark.format('old')} END")
        op.execute(f"CREATE TRIGGER calls_rollup_au AFTER UPDATE OF {cols} ON calls BEGIN "
                   f"{mark.format('old')} {mark.format('new')} END")
    else:
        op.execute("""
CREATE FUNCTION callsense_rollup_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.sort_at IS NOT NULL THEN
    INSERT INTO rollup_dirty (day) VALUES (to_char(NEW.sort_at, 'YYYY-MM-DD'));
  END IF;
  IF TG_OP IN ('DELETE', 'UPDATE') AND OLD.sort_at IS NOT NULL THEN
    INSERT INTO rollup_dirty (day) VALUES (to_char(OLD.sort_at, 'YYYY-MM-DD'));
  END IF;
  RETURN NULL;
END $$""")
        op.execute(f"CREATE TRIGGER calls_rollup AFTER INSERT OR DELETE OR UPDATE OF {cols} ON calls "
                   "FOR EACH ROW EXECUTE FUNCTION callsense_rollup_dirty()")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for t in ("calls_rollup_ai", "calls_rollup_ad", "calls_rollup_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {t}")
    else:
        op.execute("DROP TRIGGER IF EXISTS calls_rollup ON calls")
        op.execute("DROP FUNCTION IF EXISTS callsense_rollup_dirty()")
    for t in ("rollup_rule_day", "rollup_emotion_day", "rollup_agent_day", "rollup_dirty", "segment_grams"):
        op.drop_table(t)
    with op.batch_alter_table('embeddings', schema=None) as batch_op:
        batch_op.drop_index('ix_embeddings_kind_dim')
        batch_op.create_index('ix_embeddings_kind', ['kind'], unique=False)
    with op.batch_alter_table('segments', schema=None) as batch_op:
        batch_op.drop_index('ix_segments_p_angry')
    with op.batch_alter_table('rule_hits', schema=None) as batch_op:
        batch_op.drop_index('ix_rule_hits_severity_call')
        batch_op.drop_index('ix_rule_hits_rule_call')
        batch_op.create_index('ix_rule_hits_rule_id', ['rule_id'], unique=False)
        batch_op.create_index('ix_rule_hits_severity', ['severity'], unique=False)
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index('ix_calls_agent_sort_at')
        batch_op.drop_index('ix_calls_sort_at')
        batch_op.drop_column('sort_at')
