"""Storing and reading results: :func:`save_result` (one transaction), :func:`get_result`, :func:`list_calls`.

A stored call is keyed by the content hash of its recording: saving a result for a recording that is
already stored replaces the old result (``--force``, a new pipeline version, an upload of the same
audio), in the same transaction, so there is always exactly one result per recording and never a
half-written one. The call keeps its id across re-analyses (:func:`keep_identity`), and every analysis
stored for it is listed by :func:`call_analyses`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from callsense.errors import LIST_CALLS_HINT, CallNotFoundError
from callsense.labels import EMOTION_NAMES
from callsense.store import rollups
from callsense.store.codec import compress, result_text
from callsense.store.metadata import KNOWN_FIELDS, normalize_metadata, utc_naive
from callsense.store.models import (
    EMOTION_COLUMNS,
    META_FIELDS,
    Call,
    CallAnalysisRow,
    CallMeta,
    Claim,
    EmbeddingRow,
    EventRow,
    Failure,
    MetricRow,
    RuleHitRow,
    SegmentRow,
)

if TYPE_CHECKING:
    from callsense.result.model import CallAnalysis
    from callsense.rules.model import AlertTarget
    from callsense.store.db import Store
    from callsense.store.privacy import RedactionConfig

log = logging.getLogger("callsense")


_CALL_CHILDREN = (CallMeta, SegmentRow, EventRow, MetricRow, RuleHitRow, EmbeddingRow)
"""Tables holding parts of one analysis: replaced on re-analysis (``call_analyses`` is kept)."""


def result_fingerprint(result: CallAnalysis) -> str:
    """A stand-in fingerprint for results that no :class:`~callsense.pipeline.Analyzer` produced
    (hand-built or imported ones), from the result's provenance. Analyses store
    ``Analyzer.fingerprint`` (:func:`callsense.pipeline.fingerprint.analysis_fingerprint`), the one
    batch and service share."""
    proc = result.processing
    parts = [proc.pipeline_version] + [f"{m.task}:{m.name}:{m.runtime}:{m.version}" for m in proc.models]
    if result.score is not None:
        parts.append(f"scorecard:{result.score.scorecard_id}:{result.score.scorecard_version}")
    return "pipeline-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def save_result(
    store: Store,
    result: CallAnalysis,
    *,
    embeddings: np.ndarray | None = None,
    fingerprint: str | None = None,
    content_sha256: str | None = None,
    run_id: int | None = None,
    audio_path: str | None = None,
    redact: RedactionConfig | bool = False,
    source_key: str | None = None,
    output_dir: str | None = None,
    alert_targets: Sequence[AlertTarget] = (),
    sent_alerts: Sequence[Any] = (),
) -> str:
    """Store ``result`` (and its segment embeddings, row i = ``segment.emotion.embedding_index`` i)
    atomically; returns the call id.

    Replaces any stored result of the same recording (same ``content_sha256``, default
    ``result.source.sha256``) or the same call id; clears the recording's failure record (and
    ``source_key``'s) and its batch claim, all in the same transaction. A recording already stored keeps
    its call id (the one returned, whatever ``result.call_id`` says: use :func:`keep_identity` first
    to have it in the result you show or write), and the analysis is added to its
    :func:`call_analyses`.

    The result's alerting hits are queued for ``alert_targets`` in the same transaction
    (:mod:`callsense.store.outbox`: delivered afterwards, never twice for the same call, rule and
    evidence); ``sent_alerts`` (:class:`callsense.rules.alerts.SentAlert`, a live call's alerts) are
    recorded as they went, and what failed of them is queued for its retries.
    """
    from sqlalchemy import delete, insert, or_, select, update

    from callsense.store.outbox import enqueue

    if redact:
        from callsense.store.privacy import RedactionConfig, redact_result

        result = redact_result(result, redact if isinstance(redact, RedactionConfig) else RedactionConfig())
    sha = content_sha256 or result.source.sha256
    meta = normalize_metadata(result.metadata, source=result.source.path or result.source.name)
    fp = fingerprint or result_fingerprint(result)
    now = datetime.now(timezone.utc).replace(tzinfo=None)

    with store.session() as s:
        conn = s.connection()  # Core statements: the ORM's bulk path costs more than the database (issue 21)
        if store.dialect == "postgresql":
            # Two servers storing the same recording at once would both find it absent and both insert it
            # (a unique violation for one) or both rewrite its rows: one save of a recording at a time.
            # SQLite needs no lock: its transactions begin IMMEDIATE (one writer).
            from sqlalchemy import text

            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _save_lock_key(sha)})
            # and none while the rollups recompute a day (store/rollups.py: its exclusive lock)
            conn.execute(text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": rollups.REFRESH_LOCK_KEY})
        stored_id = conn.execute(select(Call.call_id).where(Call.content_sha256 == sha)).scalar()
        if stored_id is not None and stored_id != result.call_id:
            result = _with_call_id(result, stored_id)  # the recording keeps its identity
        call_row = _call_row(result, sha, fp, meta, now, run_id=run_id, audio_path=audio_path,
                             redacted=bool(redact))
        call_row["output_dir"] = output_dir
        cid = result.call_id
        segment_rows = [_segment_row(cid, i, seg) for i, seg in enumerate(result.segments)]
        embedding_rows = _embedding_rows(result, embeddings)
        calls = Call.__table__
        # Another recording stored under this id (ids are time + hash prefix: practically never) goes.
        conn.execute(delete(calls).where(calls.c.call_id == cid, calls.c.content_sha256 != sha))
        if stored_id is None:
            conn.execute(insert(calls).values(**call_row))
        else:  # update in place: the call's history of analyses hangs off this row
            for table in _CALL_CHILDREN:
                conn.execute(delete(table.__table__).where(table.__table__.c.call_id == stored_id))
            conn.execute(update(calls).where(calls.c.call_id == stored_id).values(**call_row))
        conn.execute(insert(CallAnalysisRow.__table__).values(
            call_id=cid, analyzed_at=call_row["analyzed_at"], stored_at=now, fingerprint=fp[:256],
            pipeline_version=call_row["pipeline_version"], run_id=run_id, score=call_row["score_normalized"],
            rule_hits=len(result.rule_hits)))
        # fields with a column of their own (META_FIELDS) are filtered there: no second row (revision 0011)
        _insert_many(conn, CallMeta, [{"call_id": cid, "key": k, "value": _meta_text(v)} for k, v in meta.items()
                                      if k not in META_FIELDS])
        if segment_rows:
            _insert_segments(conn, cid, segment_rows, store.dialect)
        _insert_many(conn, EventRow, [
            {"call_id": cid, "type": ev.type, "start_ms": ev.start_ms, "end_ms": ev.end_ms,
             "channel": ev.channel, "role": ev.role, "segment_id": ev.segment_id} for ev in result.events])
        _insert_many(conn, MetricRow, [
            {"call_id": cid, "name": k[:128], "value": _number(v),
             "value_json": json.dumps(_jsonable(v), ensure_ascii=False)}
            for k, v in _metric_items(result.metrics)])
        hit_rows = [
            {"call_id": cid, "rule_id": h.rule_id, "rule_version": h.rule_version, "name": h.name,
             "category": h.category, "severity": h.severity, "score_delta": float(h.score_delta),
             "alert": bool(h.alert), "evidence_json": json.dumps(_jsonable(h.evidence), ensure_ascii=False)}
            for h in result.rule_hits]
        _insert_many(conn, RuleHitRow, hit_rows)
        if stored_id is None:  # a replace marks its day dirty (a trigger): the next read recomputes it
            rollups.add_call(conn, call_row, segment_rows, hit_rows)
        _insert_many(conn, EmbeddingRow, [dict(r, call_id=cid) for r in embedding_rows])
        keys = [k for k in (source_key, result.source.path) if k]
        failures, claims = Failure.__table__, Claim.__table__
        conn.execute(delete(failures).where(or_(failures.c.content_sha256 == sha, failures.c.source_key.in_(keys))))
        conn.execute(delete(claims).where(claims.c.content_sha256 == sha))
        enqueue(s, result, alert_targets, now, sent=sent_alerts)
    log.debug("stored call %s (%d segments%s)", result.call_id, len(segment_rows),
              ", re-analysed" if stored_id is not None else "")
    return result.call_id


def _save_lock_key(sha: str) -> int:
    """The PostgreSQL advisory-lock key of a recording: 63 bits of its hash (a signed bigint)."""
    return int(hashlib.sha256(("save:" + sha).encode()).hexdigest()[:15], 16)


def _insert_many(conn: Any, model: Any, rows: list[dict[str, Any]]) -> None:
    """``rows`` into ``model``'s table in one statement: an executemany on SQLite (Core: no ORM
    bookkeeping per row), one ``INSERT ... SELECT FROM unnest(arrays)`` on PostgreSQL (an executemany
    there is one statement per row on the server: 28,000 per 60 calls, most of the ingest time)."""
    if not rows:
        return
    from sqlalchemy import insert

    table = model.__table__
    if conn.dialect.name == "postgresql" and len(rows) > 1:
        names = list(rows[0])
        if all(c.name in rows[0] for c in table.columns if c.default is not None and not c.primary_key):
            casts = ", ".join(f"%s::{_pg_array_type(table.c[n])}" for n in names)
            sql = (f"INSERT INTO {table.name} ({', '.join(names)}) SELECT * FROM unnest({casts})")
            # binary parameters: a vector travels as its bytes, not as hex text to parse (the driver's
            # cursor, in this transaction; its errors are wrapped as SQLAlchemy would wrap them)
            dbapi_error = conn.dialect.loaded_dbapi.Error
            try:
                with conn.connection.dbapi_connection.cursor() as cur:
                    cur.execute(sql, tuple([r[n] for r in rows] for n in names), binary=True)
            except dbapi_error as e:
                from sqlalchemy.exc import DBAPIError

                raise DBAPIError.instance(sql, None, e, dbapi_error, dialect=conn.dialect) from e
            return
    conn.execute(insert(table), rows)


def _pg_array_type(column: Any) -> str:
    from sqlalchemy import BigInteger, Boolean, Float, Integer, LargeBinary

    t = column.type
    for kind, name in ((BigInteger, "bigint"), (Integer, "integer"), (Boolean, "boolean"),
                       (Float, "double precision"), (LargeBinary, "bytea")):
        if isinstance(t, kind):
            return f"{name}[]"
    return "text[]"


def _insert_segments(conn: Any, call_id: str, segment_rows: list[dict[str, Any]], dialect: str) -> None:
    """Segments, and on PostgreSQL their short-term grams (callsense.store.grams), which need the new
    row ids: read back by the call's index (one executemany, then one index range — cheaper than
    RETURNING per row). SQLite indexes the texts by triggers (``segments_fts``, ``segments_chars``)."""
    from sqlalchemy import select

    from callsense.store.grams import grams
    from callsense.store.models import SegmentGram

    _insert_many(conn, SegmentRow, segment_rows)
    if dialect == "sqlite":
        return
    seg = SegmentRow.__table__
    ids = dict(conn.execute(select(seg.c.idx, seg.c.id).where(seg.c.call_id == call_id)).all())
    gram_rows = [{"gram": g, "segment_pk": ids[row["idx"]]} for row in segment_rows for g in grams(row["text"])]
    _insert_many(conn, SegmentGram, gram_rows)


def get_result(store: Store, call_id: str) -> CallAnalysis:
    """The stored result of ``call_id``, exactly as analysed (redacted if it was stored redacted), with
    the deliveries of its alerts (queued, delivered or failed: the outbox) in ``alerts``."""
    from sqlalchemy import select

    from callsense.result.io import result_from_dict
    from callsense.store.outbox import with_outbox_records

    with store.session() as s:
        row = s.execute(select(Call.result_json, Call.result_z).where(Call.call_id == call_id)).first()
        if row is None:
            raise CallNotFoundError(f"no stored call {call_id!r}")
        # alerts are delivered after storing (the outbox): their records join the result here
        return with_outbox_records(s, result_from_dict(json.loads(result_text(*row)), source=f"store:{call_id}"))


def keep_identity(store: Store, result: CallAnalysis, *, source_name: str | None = None) -> CallAnalysis:
    """``result`` as the store will know it: with the call id of the stored call of the same recording
    (same content hash), if there is one, so a re-analysis — by batch, API or UI — keeps the call's id;
    and with ``source_name`` (the client's file name of an upload) instead of the name the file had
    where it was analysed. Call it before writing or showing the result; :func:`save_result` keeps
    the stored id either way."""
    from sqlalchemy import select

    with store.session() as s:
        stored_id = s.execute(select(Call.call_id).where(Call.content_sha256 == result.source.sha256)).scalar()
    if stored_id is not None and stored_id != result.call_id:
        result = _with_call_id(result, stored_id)
    if source_name and source_name != result.source.name:
        import dataclasses

        result = dataclasses.replace(result, source=dataclasses.replace(result.source, name=source_name))
    return result


@dataclass(frozen=True)
class AnalysisRecord:
    """One analysis stored for a call (see :func:`call_analyses`)."""

    call_id: str
    analyzed_at: datetime
    stored_at: datetime
    fingerprint: str
    pipeline_version: str
    run_id: int | None
    score: float | None  # QA score 0-100
    rule_hits: int


def call_analyses(store: Store, call_id: str) -> list[AnalysisRecord]:
    """Every analysis stored for ``call_id``, oldest first (the last one is the stored result)."""
    from sqlalchemy import select

    with store.session() as s:
        if s.execute(select(Call.call_id).where(Call.call_id == call_id)).first() is None:
            raise CallNotFoundError(f"no stored call {call_id!r}")
        rows = s.execute(select(CallAnalysisRow).where(CallAnalysisRow.call_id == call_id)
                         .order_by(CallAnalysisRow.stored_at, CallAnalysisRow.id)).scalars()
        return [AnalysisRecord(r.call_id, r.analyzed_at, r.stored_at, r.fingerprint, r.pipeline_version, r.run_id,
                               r.score, r.rule_hits) for r in rows]


def _with_call_id(result: CallAnalysis, call_id: str) -> CallAnalysis:
    import dataclasses

    return dataclasses.replace(result, call_id=call_id)


def get_embeddings(store: Store, call_id: str) -> dict[str, np.ndarray]:
    """The stored embeddings of a call: ``{"call": v, "call:customer": v, "s0001": v, ...}``."""
    from sqlalchemy import select

    from callsense.store.vectors import decode

    with store.session() as s:
        rows = s.execute(select(EmbeddingRow.kind, EmbeddingRow.segment_id, EmbeddingRow.vector, EmbeddingRow.dim)
                         .where(EmbeddingRow.call_id == call_id)).all()
    return {(seg if kind == "segment" else kind): decode(vec, dim) for kind, seg, vec, dim in rows}


@dataclass(frozen=True)
class CallRecord:
    """One stored call, as listed (no segments)."""

    call_id: str
    source_name: str
    source_path: str | None
    content_sha256: str
    duration_ms: int
    analyzed_at: datetime
    stored_at: datetime
    started_at: datetime | None
    agent_id: str | None
    customer_id: str | None
    team: str | None
    queue: str | None
    category: str | None
    direction: str | None
    score: float | None
    passed: bool | None
    fingerprint: str
    metadata: dict[str, Any] = field(default_factory=dict)
    cursor: str = ""  # pass as list_calls(after=...) for the page after this record


def list_calls(store: Store, *, agent_id: str | None = None, customer_id: str | None = None,
               since: datetime | str | None = None, until: datetime | str | None = None,
               limit: int = 100, offset: int = 0, after: str | None = None) -> list[CallRecord]:
    """Stored calls, newest first (by ``started_at`` when known, else the analysis time).

    Pages: pass the last record's ``cursor`` as ``after`` for the next page (an index range scan,
    however deep); ``offset`` still works but costs the rows it skips."""
    from sqlalchemy import select

    from callsense.store.cursor import after_condition

    cols = [c for c in Call.__table__.columns if c.name not in ("result_json", "result_z")]  # never the result
    q = select(*cols).order_by(Call.sort_at.desc(), Call.call_id).limit(limit).offset(offset)
    if agent_id:
        q = q.where(Call.agent_id == agent_id)
    if customer_id:
        q = q.where(Call.customer_id == customer_id)
    if since is not None:
        q = q.where(Call.sort_at >= utc_naive(since))
    if until is not None:
        q = q.where(Call.sort_at < utc_naive(until))
    if after:
        q = q.where(after_condition(after, Call.sort_at, Call.call_id))
    with store.session() as s:
        return [_record(c) for c in s.execute(q)]


def count_calls(store: Store) -> int:
    from sqlalchemy import func, select

    with store.session() as s:
        return int(s.execute(select(func.count()).select_from(Call)).scalar_one())


# ---------------------------------------------------------------- row builders


def _record(c: Any) -> CallRecord:
    from callsense.store.cursor import make_cursor

    return CallRecord(
        call_id=c.call_id, source_name=c.source_name, source_path=c.source_path, content_sha256=c.content_sha256,
        duration_ms=c.duration_ms, analyzed_at=c.analyzed_at, stored_at=c.stored_at, started_at=c.started_at,
        agent_id=c.agent_id, customer_id=c.customer_id, team=c.team, queue=c.queue, category=c.category,
        direction=c.direction, score=c.score_normalized, passed=c.passed, fingerprint=c.fingerprint,
        metadata=dict(c.metadata_json or {}), cursor=make_cursor(c.sort_at, c.call_id),
    )


def _call_row(result: CallAnalysis, sha: str, fp: str, meta: dict[str, Any], now: datetime, *,
              run_id: int | None, audio_path: str | None, redacted: bool) -> dict[str, Any]:
    src, proc, score = result.source, result.processing, result.score
    try:
        analyzed_at = utc_naive(proc.started_at) or now
    except Exception:  # noqa: BLE001 - a malformed timestamp in the log must not lose the result
        analyzed_at = now
    stored = result if meta == result.metadata else _with_metadata(result, meta)
    row: dict[str, Any] = {
        "call_id": result.call_id, "content_sha256": sha, "fingerprint": fp[:256],
        "source_name": src.name[:512], "source_path": src.path, "size_bytes": src.size_bytes,
        "container": src.container, "codec": src.codec, "sample_rate": src.sample_rate, "channels": src.channels,
        "duration_ms": src.duration_ms, "narrowband": src.narrowband, "separation": result.separation.method,
        "started_at": utc_naive(meta.get("started_at")), "metadata_json": meta,
        "sort_at": utc_naive(meta.get("started_at")) or analyzed_at,
        "score": score.score if score else None, "score_normalized": score.normalized if score else None,
        "passed": score.passed if score else None, "auto_failed": score.auto_failed if score else None,
        "scorecard_id": score.scorecard_id if score else None,
        "pipeline_version": proc.pipeline_version, "callsense_version": proc.callsense_version,
        "emotion_model": result.emotion.model if result.emotion else None,
        "analyzed_at": analyzed_at, "stored_at": now, "run_id": run_id, "redacted": redacted,
        "audio_path": audio_path, "audio_deleted": False,
        # compressed, behind a codec marker (callsense.store.codec); result_json stays empty
        "result_json": "", "result_z": compress(json.dumps(stored.to_dict(), ensure_ascii=False)),
    }
    for name in META_FIELDS:
        row[name] = meta.get(name)
    return row


def _with_metadata(result: CallAnalysis, meta: dict[str, Any]) -> CallAnalysis:
    import dataclasses

    return dataclasses.replace(result, metadata=meta)


def _segment_row(call_id: str, idx: int, seg: Any) -> dict[str, Any]:
    emo = seg.emotion
    row: dict[str, Any] = {
        "call_id": call_id, "segment_id": seg.id, "idx": idx, "channel": seg.channel, "role": seg.role,
        "start_ms": seg.start_ms, "end_ms": seg.end_ms, "duration_ms": seg.end_ms - seg.start_ms,
        "text": seg.text or "", "language": seg.language, "asr_emotion": seg.asr_emotion,
        "asr_events": (" " + " ".join(seg.asr_events) + " ") if seg.asr_events else "",
        "asr_status": seg.asr_status, "level_dbfs": seg.level_dbfs,
        "emotion_label": emo.label if emo else None, "emotion_score": float(emo.confidence) if emo else None,
        "emotion_source": emo.source if emo else None,
    }
    scores = tuple(emo.scores) if emo else ()
    for col, i in zip(EMOTION_COLUMNS, range(len(EMOTION_NAMES))):
        row[col] = float(scores[i]) if len(scores) == len(EMOTION_NAMES) else None
    return row


def _embedding_rows(result: CallAnalysis, embeddings: np.ndarray | None) -> list[dict[str, Any]]:
    """Segment rows plus pooled call rows (all, and per role): the mean of the L2-normalised
    segment vectors, normalised again, so cosine between calls compares their typical segment.
    Normalised and encoded as one matrix (a loop per vector cost more than the insert)."""
    from callsense.store.vectors import encode_rows

    if embeddings is None:
        return []
    emb = np.asarray(embeddings, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] == 0:
        return []
    model = result.emotion.model if result.emotion else None
    picked: list[tuple[Any, int]] = []
    for seg in result.segments:
        i = seg.emotion.embedding_index if seg.emotion else None
        if i is not None and 0 <= i < emb.shape[0]:
            picked.append((seg, i))
    if not picked:
        return []
    units = _units(emb[[i for _, i in picked]])
    roles = [seg.role for seg, _ in picked]
    pools: list[tuple[str, str | None, np.ndarray]] = [("call", None, units.mean(axis=0))]
    pools += [(f"call:{role}", role, units[[r == role for r in roles]].mean(axis=0)) for role in sorted(set(roles))]
    pooled = _units(np.stack([v for _, _, v in pools]))
    dim = int(emb.shape[1])
    vectors = encode_rows(np.concatenate([units, pooled]))
    rows = [{"kind": "segment", "segment_id": seg.id, "role": seg.role, "model": model, "dim": dim,
             "vector": vec} for (seg, _), vec in zip(picked, vectors)]
    rows += [{"kind": kind, "segment_id": None, "role": role, "model": model, "dim": dim, "vector": vec}
             for (kind, role, _), vec in zip(pools, vectors[len(picked):])]
    return rows


def _units(m: np.ndarray) -> np.ndarray:
    """Each row L2-normalised (a zero row stays zero)."""
    m = np.asarray(m, dtype=np.float32)
    n = np.linalg.norm(m, axis=1, keepdims=True)
    return np.divide(m, n, out=np.zeros_like(m), where=n > 0).astype(np.float32)


_SKIPPED_METRICS = frozenset({"segments"})  # per-segment metrics stay in result_json


def _metric_items(metrics: Any) -> list[tuple[str, Any]]:
    """Call metrics as (name, value) rows: top-level fields, ``<role>.<field>`` for per-role ones, and
    lists (dead-air instances, overlaps...) as JSON under their own name."""
    import dataclasses

    if metrics is None:
        return []
    items: list[tuple[str, Any]] = []
    values = getattr(metrics, "values", None)
    if isinstance(values, dict):  # a plain name -> value mapping
        return [(str(k), v) for k, v in values.items()]
    for f in dataclasses.fields(metrics):
        if f.name in _SKIPPED_METRICS:
            continue
        v = getattr(metrics, f.name)
        if f.name == "roles":
            for role in v:
                for rf in dataclasses.fields(role):
                    if rf.name != "role":
                        items.append((f"{role.role}.{rf.name}", getattr(role, rf.name)))
        else:
            items.append((f.name, v))
    return items


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        return float(v) if np.isfinite(v) else None
    if hasattr(v, "item"):
        return _number(v.item())
    return None


def _jsonable(v: Any) -> Any:
    from callsense.result.model import to_jsonable

    return to_jsonable(v)


def _meta_text(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


__all__ = [
    "KNOWN_FIELDS",
    "LIST_CALLS_HINT",
    "AnalysisRecord",
    "CallNotFoundError",
    "CallRecord",
    "call_analyses",
    "count_calls",
    "get_embeddings",
    "get_result",
    "keep_identity",
    "list_calls",
    "result_fingerprint",
    "save_result",
]
