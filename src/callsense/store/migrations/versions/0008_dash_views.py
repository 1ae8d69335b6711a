"""SQL views for BI tools (Metabase and the like), issue 13 item 5: ``calls_v``, ``segments_v``,
``hits_v``, ``agent_day_v``. Plain views over the tables (always current; nothing to refresh), with
times in seconds, the call day as 'YYYY-MM-DD' (UTC) and the metadata columns repeated on every row so
that a BI question needs no join. Columns are documented in docs/store.md.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-12
"""

from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

VIEWS = ("agent_day_v", "hits_v", "segments_v", "calls_v")  # drop order (agent_day_v reads calls_v)
NEGATIVE = "('angry', 'disgusted', 'fearful', 'sad')"  # callsense.labels.NEGATIVE_EMOTIONS
EMOTIONS = ("angry", "disgusted", "fearful", "happy", "neutral", "other", "sad", "surprised", "unknown")


def _day(dialect: str, col: str) -> str:
    return f"substr({col}, 1, 10)" if dialect == "sqlite" else f"to_char({col}, 'YYYY-MM-DD')"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    true = "1" if dialect == "sqlite" else "true"
    op.execute(f"""
CREATE VIEW calls_v AS
SELECT c.call_id, c.source_name AS file, c.sort_at AS call_time, {_day(dialect, 'c.sort_at')} AS call_day,
       c.started_at, c.analyzed_at, c.duration_ms / 1000.0 AS duration_s,
       c.agent_id, c.team, c.queue, c.category, c.direction, c.customer_id,
       c.score_normalized AS score, c.passed, c.auto_failed,
       CASE WHEN c.scorecard_id IS NOT NULL AND c.score_normalized IS NULL THEN {true} ELSE NOT {true} END
         AS invalid,
       c.emotion_model, c.pipeline_version,
       (SELECT count(*) FROM rule_hits h WHERE h.call_id = c.call_id) AS rule_hits,
       (SELECT count(*) FROM rule_hits h WHERE h.call_id = c.call_id AND h.severity = 'critical') AS critical_hits,
       (SELECT sum(s.duration_ms) FROM segments s WHERE s.call_id = c.call_id AND s.role = 'agent') / 1000.0
         AS agent_speech_s,
       (SELECT sum(s.duration_ms) FROM segments s WHERE s.call_id = c.call_id AND s.role = 'customer') / 1000.0
         AS customer_speech_s,
       (SELECT sum(s.duration_ms) FROM segments s WHERE s.call_id = c.call_id AND s.role = 'customer'
          AND s.emotion_label IS NOT NULL) / 1000.0 AS customer_emotion_s,
       (SELECT sum(s.duration_ms) FROM segments s WHERE s.call_id = c.call_id AND s.role = 'customer'
          AND s.emotion_label IN {NEGATIVE}) / 1000.0 AS customer_negative_s,
       (SELECT sum(CASE WHEN s.emotion_label IN {NEGATIVE} THEN s.duration_ms ELSE 0 END) * 1.0
               / nullif(sum(s.duration_ms), 0)
          FROM segments s WHERE s.call_id = c.call_id AND s.role = 'customer' AND s.emotion_label IS NOT NULL)
         AS customer_negative_share
FROM calls c""")
    p = ", ".join(f"s.p_{e}" for e in EMOTIONS)
    op.execute(f"""
CREATE VIEW segments_v AS
SELECT s.call_id, s.segment_id, s.idx, s.role, s.channel, s.start_ms / 1000.0 AS start_s,
       s.end_ms / 1000.0 AS end_s, s.duration_ms / 1000.0 AS duration_s, s.text, s.language,
       s.emotion_label AS emotion, s.emotion_score, {p}, trim(s.asr_events) AS events, s.level_dbfs,
       c.sort_at AS call_time, {_day(dialect, 'c.sort_at')} AS call_day, c.agent_id, c.team, c.queue, c.category
FROM segments s JOIN calls c ON c.call_id = s.call_id""")
    op.execute(f"""
CREATE VIEW hits_v AS
SELECT h.call_id, h.rule_id, h.name, h.category AS rule_category, h.severity, h.score_delta, h.alert,
       c.sort_at AS call_time, {_day(dialect, 'c.sort_at')} AS call_day, c.agent_id, c.team, c.queue,
       c.category
FROM rule_hits h JOIN calls c ON c.call_id = h.call_id""")
    op.execute("""
CREATE VIEW agent_day_v AS
SELECT call_day AS day, agent_id, count(*) AS calls, sum(duration_s) / 3600.0 AS audio_h,
       avg(score) AS avg_score, avg(CASE WHEN passed IS NULL THEN NULL WHEN passed THEN 1.0 ELSE 0.0 END)
         AS pass_rate,
       sum(rule_hits) AS rule_hits, sum(critical_hits) AS critical_hits,
       sum(agent_speech_s) AS agent_speech_s, sum(customer_speech_s) AS customer_speech_s,
       coalesce(sum(customer_negative_s), 0) / nullif(sum(customer_emotion_s), 0) AS customer_negative_share
FROM calls_v GROUP BY call_day, agent_id""")


def downgrade() -> None:
    for name in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
