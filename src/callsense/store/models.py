"""SQLAlchemy 2 ORM of the store: one row per call and its parts, plus batch and service bookkeeping.

Every table mirrors a part of :class:`callsense.result.CallAnalysis`, except the bookkeeping (batch
runs, claims, failures, and ``service_jobs``, the web service's job queue). The full result JSON is
kept on the call row too (``result_json``), so :func:`callsense.store.get_result` returns exactly what
was analysed; the other tables exist to be queried (search, filters, aggregates, exports).

Times are integer milliseconds on the call's time line; wall-clock datetimes are stored as naive UTC
(the same on SQLite and PostgreSQL). The schema is created and upgraded by Alembic migrations
(``callsense/store/migrations``), never by ``metadata.create_all``; a test keeps the two in step.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from callsense.labels import EMOTION_NAMES

# Columns with the probability of each emotion2vec+ class ("p_angry", ...), in model order, so that
# "angry >= 0.6" is a plain indexed comparison and a heatmap is a plain AVG.
EMOTION_COLUMNS: tuple[str, ...] = tuple(f"p_{name}" for name in EMOTION_NAMES)

META_FIELDS: tuple[str, ...] = ("agent_id", "team", "queue", "category", "direction", "customer_id")
"""Metadata keys with their own indexed column on ``calls`` (plus ``started_at``)."""


class Base(DeclarativeBase):
    pass


class Call(Base):
    __tablename__ = "calls"

    call_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    content_sha256: Mapped[str] = mapped_column(String(64), unique=True)  # one stored result per recording
    fingerprint: Mapped[str] = mapped_column(String(256))  # pipeline + models + rules versions
    source_name: Mapped[str] = mapped_column(String(512))
    source_path: Mapped[str | None] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    container: Mapped[str | None] = mapped_column(String(128))
    codec: Mapped[str | None] = mapped_column(String(64))
    sample_rate: Mapped[int] = mapped_column(Integer)
    channels: Mapped[int] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    narrowband: Mapped[bool] = mapped_column(Boolean)
    separation: Mapped[str] = mapped_column(String(32))
    # metadata with its own column
    agent_id: Mapped[str | None] = mapped_column(String(128), index=True)
    team: Mapped[str | None] = mapped_column(String(128))
    queue: Mapped[str | None] = mapped_column(String(128))
    category: Mapped[str | None] = mapped_column(String(128))
    direction: Mapped[str | None] = mapped_column(String(16))
    customer_id: Mapped[str | None] = mapped_column(String(128), index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(), index=True)
    # The call time (started_at, else analyzed_at), stored so that ordering, date filters and keyset
    # pages are index range scans instead of a coalesce() over every row. Written by save_result.
    sort_at: Mapped[datetime | None] = mapped_column(DateTime())
    metadata_json: Mapped[dict] = mapped_column(JSON, default=dict)
    # QA
    score: Mapped[float | None] = mapped_column(Float)
    score_normalized: Mapped[float | None] = mapped_column(Float)
    passed: Mapped[bool | None] = mapped_column(Boolean)
    auto_failed: Mapped[bool | None] = mapped_column(Boolean)
    scorecard_id: Mapped[str | None] = mapped_column(String(128))
    # provenance
    pipeline_version: Mapped[str] = mapped_column(String(64))
    callsense_version: Mapped[str] = mapped_column(String(64))
    emotion_model: Mapped[str | None] = mapped_column(String(128))
    analyzed_at: Mapped[datetime] = mapped_column(DateTime(), index=True)
    stored_at: Mapped[datetime] = mapped_column(DateTime(), index=True)
    run_id: Mapped[int | None] = mapped_column(Integer)
    redacted: Mapped[bool] = mapped_column(Boolean, default=False)
    audio_path: Mapped[str | None] = mapped_column(Text)  # the copy kept by --copy-audio
    audio_deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    output_dir: Mapped[str | None] = mapped_column(Text)  # the call's folder (service), removed with the record
    result_json: Mapped[str] = mapped_column(Text)  # "" since revision 0006: the result is in result_z
    result_z: Mapped[bytes | None] = mapped_column(LargeBinary)  # compressed (callsense.store.codec)

    segments: Mapped[list[SegmentRow]] = relationship(
        back_populates="call", cascade="all, delete-orphan", passive_deletes=True, order_by="SegmentRow.idx"
    )

    __table_args__ = (
        # newest first with a stable tie-break: the order of every listing and search
        # (DESC, ASC as the queries order; an all-ASC index cannot serve a mixed-direction ORDER BY)
        Index("ix_calls_sort_at", sort_at.desc(), "call_id"),
        Index("ix_calls_agent_sort_at", "agent_id", "sort_at"),
    )


class CallAnalysisRow(Base):
    """One analysis stored for a call: a recording keeps its call id across re-analyses (batch ``--force``,
    a new pipeline, an upload of the same audio), and this table keeps the history of those runs.
    Deleted with the call."""

    __tablename__ = "call_analyses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.call_id", ondelete="CASCADE"), index=True)
    analyzed_at: Mapped[datetime] = mapped_column(DateTime())
    stored_at: Mapped[datetime] = mapped_column(DateTime())
    fingerprint: Mapped[str] = mapped_column(String(256))
    pipeline_version: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[int | None] = mapped_column(Integer)  # the batch run (processing_runs.id), if any
    score: Mapped[float | None] = mapped_column(Float)  # QA score 0-100 of that analysis
    rule_hits: Mapped[int] = mapped_column(Integer, default=0)


class CallMeta(Base):
    """The metadata key/values of a call as text, for ``--meta key=value`` filters on any field — every
    field but those with a column of their own on ``calls`` (:data:`META_FIELDS`, filtered there;
    since revision 0011 no second copy of them here). ``metadata_json`` on the call has them all."""

    __tablename__ = "call_meta"

    call_id: Mapped[str] = mapped_column(ForeignKey("calls.call_id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str | None] = mapped_column(Text)

    # WITHOUT ROWID on SQLite (revision 0011): the table is its primary key, not the key twice
    __table_args__ = (Index("ix_call_meta_key_value", "key", "value"), {"sqlite_with_rowid": False})


class SegmentRow(Base):
    """A speech turn. Looked up by call through ``uq_segments_call_segment (call_id, segment_id)`` (a
    separate ``call_id`` index, dropped in revision 0011, held the same keys again). On SQLite the
    texts are indexed by the FTS5 tables ``segments_fts`` (trigrams: terms of 3+ characters) and
    ``segments_chars`` (one token per character: terms of 1-2), both kept in step by triggers."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.call_id", ondelete="CASCADE"))
    segment_id: Mapped[str] = mapped_column(String(32))
    idx: Mapped[int] = mapped_column(Integer)
    channel: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int] = mapped_column(BigInteger)
    duration_ms: Mapped[int] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str | None] = mapped_column(String(16))
    asr_emotion: Mapped[str | None] = mapped_column(String(32))
    asr_events: Mapped[str] = mapped_column(Text, default="")  # " BGM Cough " (space-delimited, for LIKE)
    asr_status: Mapped[str] = mapped_column(String(16))
    emotion_label: Mapped[str | None] = mapped_column(String(16), index=True)
    emotion_score: Mapped[float | None] = mapped_column(Float)
    emotion_source: Mapped[str | None] = mapped_column(String(16))
    p_angry: Mapped[float | None] = mapped_column(Float)
    p_disgusted: Mapped[float | None] = mapped_column(Float)
    p_fearful: Mapped[float | None] = mapped_column(Float)
    p_happy: Mapped[float | None] = mapped_column(Float)
    p_neutral: Mapped[float | None] = mapped_column(Float)
    p_other: Mapped[float | None] = mapped_column(Float)
    p_sad: Mapped[float | None] = mapped_column(Float)
    p_surprised: Mapped[float | None] = mapped_column(Float)
    p_unknown: Mapped[float | None] = mapped_column(Float)
    level_dbfs: Mapped[float | None] = mapped_column(Float)

    call: Mapped[Call] = relationship(back_populates="segments")

    __table_args__ = (
        UniqueConstraint("call_id", "segment_id", name="uq_segments_call_segment"),
        Index("ix_segments_p_angry", "p_angry"),
    )


class SegmentGram(Base):
    """PostgreSQL: the distinct 2-character grams of each segment's case-folded text, plus its last
    character: the index that serves 1- and 2-character terms (退款, 投诉, 好), which pg_trgm cannot.
    A 2-character term is one key lookup; a 1-character term is a key-range scan (grams that start
    with it). Written by save_result; removed with the segment (ON DELETE CASCADE). Empty on SQLite
    since revision 0011 (the ``segments_chars`` FTS5 index serves those terms in a fraction of the disk)."""

    __tablename__ = "segment_grams"

    gram: Mapped[str] = mapped_column(String(8), primary_key=True)
    segment_pk: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True,
                                            index=True)

    __table_args__ = {"sqlite_with_rowid": False}  # noqa: RUF012 - SQLAlchemy's form; the key is the row: no second copy of it


class EventRow(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.call_id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(32), index=True)
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int] = mapped_column(BigInteger)
    channel: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    segment_id: Mapped[str | None] = mapped_column(String(32))


class MetricRow(Base):
    """One call metric; ``value`` is set when the metric is a number, ``value_json`` always."""

    __tablename__ = "metrics"

    call_id: Mapped[str] = mapped_column(ForeignKey("calls.call_id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[float | None] = mapped_column(Float)
    value_json: Mapped[str] = mapped_column(Text)

    __table_args__ = {"sqlite_with_rowid": False}  # noqa: RUF012 - revision 0011: the table is its key, not the key twice


class RuleHitRow(Base):
    __tablename__ = "rule_hits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.call_id", ondelete="CASCADE"), index=True)
    rule_id: Mapped[str] = mapped_column(String(128))
    rule_version: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(128))
    severity: Mapped[str] = mapped_column(String(16))
    score_delta: Mapped[float] = mapped_column(Float, default=0.0)
    alert: Mapped[bool] = mapped_column(Boolean, default=False)
    evidence_json: Mapped[str] = mapped_column(Text, default="[]")

    # "calls with a hit of rule X / of severity Y" are index range scans yielding call ids
    __table_args__ = (
        Index("ix_rule_hits_rule_call", "rule_id", "call_id"),
        Index("ix_rule_hits_severity_call", "severity", "call_id"),
    )


class EmbeddingRow(Base):
    """An L2-normalised embedding: one per segment (``kind="segment"``) and pooled ones per call
    (``kind="call"``, and ``"call:agent"`` / ``"call:customer"`` per role).

    ``vector`` is 645-level codes of the rotated vector for dimensions that are multiples of 64
    (``7 * ceil(dim / 6)`` bytes, 1,197 for 1024-d; revision 0011), 12-bit codes with a scale for other
    even dimensions and the rows of revisions 0008-0010, float16 for odd ones and the rows of
    0005-0007, float32 before — cosine within 1e-3 of float32; :func:`callsense.store.vectors.decode`
    reads all of them."""

    __tablename__ = "embeddings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.call_id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    segment_id: Mapped[str | None] = mapped_column(String(32))
    role: Mapped[str | None] = mapped_column(String(16))
    model: Mapped[str | None] = mapped_column(String(128))
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (Index("ix_embeddings_kind_dim", "kind", "dim"),)


# ---------------------------------------------------------------- rollups
# Per-day sums maintained from the call rows, so that a dashboard over 90 days reads ~90 x agents
# rows instead of every segment. A day is "dirty" (``rollup_dirty``) when a call of that day is
# inserted or deleted (triggers, so every deletion path counts, raw SQL included); the aggregate
# functions recompute dirty days before they read (callsense.store.rollups). ``day`` is the UTC date
# of ``sort_at`` as 'YYYY-MM-DD'.


class EmbeddingLog(Base):
    """One row per call stored, re-stored or deleted (triggers on ``calls``, revision 0006): the
    in-process similarity index (callsense.store.ann) applies the rows after its position."""

    __tablename__ = "embedding_log"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
                                     autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(64))

    __table_args__ = ({"sqlite_autoincrement": True},)


class RollupDirty(Base):
    """An append-only log of days to recompute (no unique key: concurrent writers never wait on it)."""

    __tablename__ = "rollup_dirty"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    day: Mapped[str] = mapped_column(String(10))


class RollupAgentDay(Base):
    """Per day and agent ('' for calls without one): what agent scorecards and daily trends sum."""

    __tablename__ = "rollup_agent_day"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    calls: Mapped[int] = mapped_column(Integer)
    audio_ms: Mapped[int] = mapped_column(BigInteger)
    score_sum: Mapped[float] = mapped_column(Float)
    score_n: Mapped[int] = mapped_column(Integer)
    critical_hits: Mapped[int] = mapped_column(Integer)
    agent_ms: Mapped[int] = mapped_column(BigInteger)
    customer_ms: Mapped[int] = mapped_column(BigInteger)
    customer_neg_ms: Mapped[int] = mapped_column(BigInteger)
    customer_emo_ms: Mapped[int] = mapped_column(BigInteger)


class RollupEmotionDay(Base):
    """Per day, grouping field (category, queue, ...), its value ('(none)') and role: segment count,
    speech time and the duration-weighted sum of each emotion probability (the heat map)."""

    __tablename__ = "rollup_emotion_day"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    field: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(128), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)
    segments: Mapped[int] = mapped_column(Integer)
    speech_ms: Mapped[int] = mapped_column(BigInteger)
    w_angry: Mapped[float] = mapped_column(Float)
    w_disgusted: Mapped[float] = mapped_column(Float)
    w_fearful: Mapped[float] = mapped_column(Float)
    w_happy: Mapped[float] = mapped_column(Float)
    w_neutral: Mapped[float] = mapped_column(Float)
    w_other: Mapped[float] = mapped_column(Float)
    w_sad: Mapped[float] = mapped_column(Float)
    w_surprised: Mapped[float] = mapped_column(Float)
    w_unknown: Mapped[float] = mapped_column(Float)


class RollupRuleDay(Base):
    """Per day and rule: hits, calls with a hit, and the rule's name/category/severity (max)."""

    __tablename__ = "rollup_rule_day"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(128))
    severity: Mapped[str] = mapped_column(String(16))
    hits: Mapped[int] = mapped_column(Integer)
    calls: Mapped[int] = mapped_column(Integer)


class ProcessingRun(Base):
    """One ``callsense batch`` invocation (or one process of it)."""

    __tablename__ = "processing_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(256))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    workers: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime())
    status: Mapped[str] = mapped_column(String(16))  # running, finished, stopped, interrupted
    done: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    audio_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    wall_s: Mapped[float] = mapped_column(Float, default=0.0)


class Failure(Base):
    """A file (or manifest row) that could not be analysed, with the reason; one row per source key."""

    __tablename__ = "failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_key: Mapped[str] = mapped_column(String(1024), unique=True)  # path, or "manifest#row"
    source_path: Mapped[str | None] = mapped_column(Text)
    content_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    manifest: Mapped[str | None] = mapped_column(Text)
    row: Mapped[int | None] = mapped_column(Integer)
    metadata_json: Mapped[dict] = mapped_column(JSON, default=dict)
    stage: Mapped[str] = mapped_column(String(32))  # source, analyze, store
    error_code: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str | None] = mapped_column(String(256))
    run_id: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    failed_at: Mapped[datetime] = mapped_column(DateTime(), index=True)


class Claim(Base):
    """A recording being analysed right now: the row that stops two workers (or two batches on the
    same store) from analysing the same content. Deleted in the transaction that stores the result."""

    __tablename__ = "claims"

    content_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))  # "host:pid:token"
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    claimed_at: Mapped[datetime] = mapped_column(DateTime())


# The web service's job queue (callsense.service.jobs), a Core table: jobs are read and written with
# plain UPDATE ... WHERE status = 'queued' (one winner per row), never through ORM sessions. Declared
# on Base.metadata so that the migrations create it and the schema test checks it like the others.
# Times are ISO 8601 text, as the API shows them.
service_jobs = Table(
    "service_jobs", Base.metadata,
    Column("id", String(40), primary_key=True),
    Column("status", String(16), index=True, nullable=False),  # queued, running, done, failed
    Column("created_at", String(40), nullable=False),
    Column("started_at", String(40)),
    Column("finished_at", String(40)),
    Column("filename", Text),
    Column("upload_path", Text, nullable=False),
    Column("options_json", Text, nullable=False),
    Column("metadata_json", Text, nullable=False),
    Column("call_id", String(64)),
    Column("error_json", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("owner", String(255)),  # "host:pid:nonce" of the process running it
    Column("lease_until", Float),  # epoch seconds; the owner's heartbeat renews it (revision 0003)
)


class PendingAlert(Base):
    """The alert outbox (:mod:`callsense.store.outbox`): one row per alerting rule hit of a call and
    webhook target, written in the transaction that stores the result and delivered afterwards by
    whoever runs the store (batch, service). The unique key is what stops a re-analysis from sending
    an alert again for the same call, rule and evidence. Deleted with the call."""

    __tablename__ = "pending_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.call_id", ondelete="CASCADE"), index=True)
    rule_id: Mapped[str] = mapped_column(String(128))
    evidence_hash: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(64))  # hash of the target's format and URL (its identity)
    target_name: Mapped[str] = mapped_column(String(255))  # name, or format:host (never the URL's key)
    format: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[str] = mapped_column(String(32), index=True)  # rows sent together as one message
    payload_json: Mapped[str] = mapped_column(Text)  # the message body before signing
    target_json: Mapped[str | None] = mapped_column(Text)  # URL, secret, timeouts; cleared once final
    status: Mapped[str] = mapped_column(String(16))  # pending, delivered, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime())
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime())
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime())
    last_status: Mapped[int | None] = mapped_column(Integer)  # HTTP status of the last attempt
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("call_id", "rule_id", "evidence_hash", "target", name="uq_pending_alerts_key"),
        Index("ix_pending_alerts_due", "status", "next_attempt_at"),
    )


class MoodEntry(Base):
    """One emotion answer of a voice assistant's user or session (``subject`` = ``user:<id>`` or
    ``session:<id>``), kept for the mood history of ``/v1/emotion`` (callsense.store.mood): the last N per
    subject (older rows are deleted as new ones come), deleted by ``DELETE /v1/users/{id}/mood`` and by
    ``purge`` / retention like call records (revision 0009)."""

    __tablename__ = "mood_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(160))
    at: Mapped[datetime] = mapped_column(DateTime(), index=True)  # naive UTC
    label: Mapped[str] = mapped_column(String(32))
    confidence: Mapped[float] = mapped_column(Float)
    distribution_json: Mapped[str] = mapped_column(Text)  # the nine classes' probabilities, model order
    model: Mapped[str | None] = mapped_column(String(128))
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # L2-normalised, float16 (callsense.store.vectors)

    __table_args__ = (Index("ix_mood_entries_subject_id", "subject", "id"),)


class SegmentLabel(Base):
    """A reviewer's correction of a segment's emotion (one of the nine, or a custom label): who, when,
    and what the model had said. The newest row of a segment is its label; training
    (``adapt train store:corrections``) reads them. Deleted with the call (revision 0009)."""

    __tablename__ = "segment_labels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.call_id", ondelete="CASCADE"), index=True)
    segment_id: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(String(64))
    custom: Mapped[bool] = mapped_column(Boolean, default=False)  # not one of the nine classes
    previous: Mapped[str | None] = mapped_column(String(32))  # the model's label when it was corrected
    reviewer: Mapped[str] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(), index=True)  # naive UTC


class AnalysisRun(Base):
    """One ``callsense clusters`` run (``kind`` ``clusters`` or ``outliers``): its parameters and figures
    (k, silhouette, the outlier threshold) — no segment text, no vector (revision 0009)."""

    __tablename__ = "analysis_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime())
    params_json: Mapped[str] = mapped_column(Text)
    summary_json: Mapped[str] = mapped_column(Text)


class SegmentScore(Base):
    """A segment's cluster (and distance to its centre) or outlier score in one run; deleted with the call
    and with the run (revision 0009)."""

    __tablename__ = "segment_scores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("analysis_runs.id", ondelete="CASCADE"))
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.call_id", ondelete="CASCADE"), index=True)
    segment_id: Mapped[str] = mapped_column(String(32))
    cluster: Mapped[int | None] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)  # distance to the centre, or the outlier score
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        Index("ix_segment_scores_run_cluster", "run_id", "cluster"),
        Index("ix_segment_scores_run_score", "run_id", "score"),
    )
