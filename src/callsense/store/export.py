"""Exports for BI tools (Metabase, Superset, spreadsheets): calls, segments or rule hits as CSV, JSONL,
one JSON array or Parquet, with the columns listed in :data:`EXPORT_COLUMNS` (documented in docs/store.md).

``what="qc"`` is the seeds' batch QC list: one row per call (``call_id``, ``duration_s``, ``text``,
``start_emotion`` / ``end_emotion`` of the customer, ``risk``, ``invalid``, ``score``, ``hit_ids``) and
one per file the batch could not analyse (``call_id`` null, ``file`` and ``error`` set).

Every text that can carry PII — transcripts, evidence texts, source names and paths, metadata fields
(``customer_id`` included) — is PII-redacted by default (``redact=False`` / ``--no-redact`` to keep them as
stored). Parquet needs pyarrow (``pip install 'callsense[parquet]'``).
"""

from __future__ import annotations

import csv
import json
import sys
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from callsense.errors import MissingExtraError, UsageError
from callsense.labels import NEGATIVE_EMOTIONS
from callsense.store.codec import result_text
from callsense.store.metadata import utc_naive
from callsense.store.models import EMOTION_COLUMNS, META_FIELDS, Call, RuleHitRow, SegmentRow

if TYPE_CHECKING:
    from callsense.store.db import Store
    from callsense.store.privacy import RedactionConfig

ExportFormat = Literal["csv", "jsonl", "json", "parquet"]
ExportWhat = Literal["calls", "segments", "rule_hits", "qc", "corrections"]
FORMATS = ("csv", "jsonl", "json", "parquet")

_CALL_TIME = ("call_time", "started_at", "analyzed_at")
EXPORT_COLUMNS: dict[str, tuple[str, ...]] = {
    "calls": ("call_id", "source_name", "source_path", "content_sha256", "duration_ms", *_CALL_TIME,
              *META_FIELDS, "qa_score", "qa_points", "passed", "auto_failed", "scorecard_id", "segments",
              "agent_speech_ms", "customer_speech_ms", "customer_negative_share", "first_customer_emotion",
              "last_customer_emotion", "rule_hits", "critical_hits", "rule_ids", "transcript", "metadata",
              "fingerprint", "redacted"),
    "segments": ("call_id", "segment_id", "idx", "role", "channel", "start_ms", "end_ms", "duration_ms", "language",
                 "text", "asr_emotion", "asr_events", "emotion_label", "emotion_score", *EMOTION_COLUMNS,
                 "call_time", "agent_id", "queue", "category"),
    "rule_hits": ("call_id", "rule_id", "rule_version", "name", "category", "severity", "score_delta", "alert",
                  "evidence_segments", "evidence_start_ms", "evidence_text", "evidence", "call_time", "agent_id",
                  "queue"),
    "qc": ("call_id", "file", "duration_s", "text", "start_emotion", "end_emotion", "risk", "invalid", "score",
           "passed", "hit_ids", "error"),
    "corrections": ("id", "call_id", "segment_id", "start_ms", "end_ms", "role", "label", "custom", "previous",
                    "reviewer", "at", "note", "text", "agent_id"),
}


def export(store: Store, out: str | Path | IO[str], *, format: ExportFormat = "csv", what: ExportWhat = "calls",
           since: datetime | str | None = None, until: datetime | str | None = None,
           redact: RedactionConfig | bool = True) -> int:
    """Write ``what`` to ``out`` (a path, ``"-"`` for stdout, or a text stream for csv/jsonl); returns rows written."""
    if format not in FORMATS:
        raise UsageError(f"unknown export format {format!r}; choose {', '.join(FORMATS)}")
    if what not in EXPORT_COLUMNS:
        raise UsageError(f"unknown export {what!r}; choose {', '.join(EXPORT_COLUMNS)}")
    red = None
    if redact:
        from callsense.store.privacy import RedactionConfig

        red = redact if isinstance(redact, RedactionConfig) else RedactionConfig()
    rows = _ROWS[what](store, since, until, red)
    columns = EXPORT_COLUMNS[what]
    if format == "parquet":
        return _write_parquet(rows, columns, out)
    if isinstance(out, (str, Path)) and str(out) != "-":
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", encoding="utf-8", newline="") as f:
            return _write_text(rows, columns, f, format)
    return _write_text(rows, columns, sys.stdout if str(out) == "-" else out, format)  # type: ignore[arg-type]


def _write_text(rows: Iterator[dict[str, Any]], columns: tuple[str, ...], f: IO[str], format: str) -> int:
    n = 0
    if format == "json":  # one array, written row by row (a big export is never one string in memory)
        f.write("[")
        for row in rows:
            f.write(("," if n else "") + "\n" + json.dumps({k: _json_cell(row.get(k)) for k in columns},
                                                          ensure_ascii=False))
            n += 1
        f.write("\n]\n")
        return n
    if format == "csv":
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({k: _csv_cell(row.get(k)) for k in columns})
            n += 1
    else:
        for row in rows:
            f.write(json.dumps({k: _json_cell(row.get(k)) for k in columns}, ensure_ascii=False) + "\n")
            n += 1
    return n


def _write_parquet(rows: Iterator[dict[str, Any]], columns: tuple[str, ...], out: Any) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:
        raise MissingExtraError("parquet export needs pyarrow", hint="pip install 'callsense[parquet]'") from e
    if not isinstance(out, (str, Path)) or str(out) == "-":
        raise UsageError("parquet export needs an output file path")
    data = [{k: _parquet_cell(r.get(k)) for k in columns} for r in rows]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(data) if data else pa.table({k: pa.array([], pa.string()) for k in columns})
    pq.write_table(table.select(list(columns)), str(out))
    return len(data)


def _csv_cell(v: Any) -> Any:
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, datetime):
        return v.isoformat() + "Z"
    return "" if v is None else v


def _json_cell(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat() + "Z"
    return v


def _parquet_cell(v: Any) -> Any:
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, ensure_ascii=False)
    return v


def _red(text: str | None, config: RedactionConfig | None) -> str | None:
    if config is None or not text:
        return text
    from callsense.store.privacy import redact_text

    return redact_text(text, config)[0]


def _red_value(value: Any, config: RedactionConfig | None) -> Any:
    if config is None:
        return value
    from callsense.store.privacy import redact_value

    return redact_value(value, config)


def _calls_stmt(since: Any, until: Any) -> Any:
    from sqlalchemy import func, select

    when = func.coalesce(Call.started_at, Call.analyzed_at)
    stmt = select(Call, when.label("call_time")).order_by(when, Call.call_id)
    if since is not None:
        stmt = stmt.where(when >= utc_naive(since))
    if until is not None:
        stmt = stmt.where(when < utc_naive(until))
    return stmt


def _call_rows(store: Store, since: Any, until: Any, red: RedactionConfig | None) -> Iterator[dict[str, Any]]:
    from sqlalchemy import select

    with store.session() as s:
        calls = s.execute(_calls_stmt(since, until)).all()
        ids = [c.call_id for c, _ in calls]
        segs: dict[str, list[Any]] = defaultdict(list)
        hits: dict[str, list[Any]] = defaultdict(list)
        for chunk in _chunks(ids, 500):
            for r in s.execute(select(SegmentRow.call_id, SegmentRow.role, SegmentRow.duration_ms, SegmentRow.text,
                                      SegmentRow.emotion_label).where(SegmentRow.call_id.in_(chunk))
                               .order_by(SegmentRow.call_id, SegmentRow.idx)):
                segs[r.call_id].append(r)
            for r in s.execute(select(RuleHitRow.call_id, RuleHitRow.rule_id, RuleHitRow.severity)
                               .where(RuleHitRow.call_id.in_(chunk))):
                hits[r.call_id].append(r)
    for c, when in calls:
        ss = segs.get(c.call_id, [])
        cust = [x for x in ss if x.role == "customer"]
        cust_emo = [x for x in cust if x.emotion_label]
        emo_ms = sum(x.duration_ms for x in cust_emo)
        neg_ms = sum(x.duration_ms for x in cust_emo if x.emotion_label in NEGATIVE_EMOTIONS)
        hh = hits.get(c.call_id, [])
        score = json.loads(result_text(c.result_json, c.result_z)).get("score") or {}
        yield {
            "call_id": c.call_id, "source_name": _red(c.source_name, red), "source_path": _red(c.source_path, red),
            "content_sha256": c.content_sha256, "duration_ms": c.duration_ms, "call_time": when,
            "started_at": c.started_at, "analyzed_at": c.analyzed_at,
            **{k: _red_value(getattr(c, k), red) for k in META_FIELDS},
            "qa_score": c.score_normalized, "qa_points": score.get("score"), "passed": c.passed,
            "auto_failed": c.auto_failed, "scorecard_id": c.scorecard_id, "segments": len(ss),
            "agent_speech_ms": sum(x.duration_ms for x in ss if x.role == "agent"),
            "customer_speech_ms": sum(x.duration_ms for x in cust),
            "customer_negative_share": round(neg_ms / emo_ms, 4) if emo_ms else None,
            "first_customer_emotion": cust_emo[0].emotion_label if cust_emo else None,
            "last_customer_emotion": cust_emo[-1].emotion_label if cust_emo else None,
            "rule_hits": len(hh), "critical_hits": sum(1 for h in hh if h.severity == "critical"),
            "rule_ids": ",".join(sorted({h.rule_id for h in hh})),
            "transcript": _red("\n".join(f"{x.role}: {x.text}" for x in ss if x.text), red),
            "metadata": json.dumps(_red_value(c.metadata_json or {}, red), ensure_ascii=False),
            "fingerprint": c.fingerprint,
            "redacted": bool(c.redacted or red is not None),
        }


def _segment_rows(store: Store, since: Any, until: Any, red: RedactionConfig | None) -> Iterator[dict[str, Any]]:
    from sqlalchemy import func, select

    when = func.coalesce(Call.started_at, Call.analyzed_at)
    stmt = (select(SegmentRow, when.label("call_time"), Call.agent_id, Call.queue, Call.category)
            .join(Call, Call.call_id == SegmentRow.call_id).order_by(when, Call.call_id, SegmentRow.idx))
    if since is not None:
        stmt = stmt.where(when >= utc_naive(since))
    if until is not None:
        stmt = stmt.where(when < utc_naive(until))
    with store.session() as s:
        rows = s.execute(stmt).all()
    for seg, call_time, agent_id, queue, category in rows:
        row = {c: getattr(seg, c) for c in EXPORT_COLUMNS["segments"] if hasattr(SegmentRow, c)}
        row.update(text=_red(seg.text, red), asr_events=seg.asr_events.strip().replace(" ", ","),
                   call_time=call_time, agent_id=_red(agent_id, red), queue=_red(queue, red),
                   category=_red(category, red))
        yield row


def _hit_rows(store: Store, since: Any, until: Any, red: RedactionConfig | None) -> Iterator[dict[str, Any]]:
    from sqlalchemy import func, select

    when = func.coalesce(Call.started_at, Call.analyzed_at)
    stmt = (select(RuleHitRow, when.label("call_time"), Call.agent_id, Call.queue)
            .join(Call, Call.call_id == RuleHitRow.call_id).order_by(when, Call.call_id, RuleHitRow.id))
    if since is not None:
        stmt = stmt.where(when >= utc_naive(since))
    if until is not None:
        stmt = stmt.where(when < utc_naive(until))
    with store.session() as s:
        rows = s.execute(stmt).all()
    for hit, call_time, agent_id, queue in rows:
        evidence = json.loads(hit.evidence_json or "[]")
        for ev in evidence:
            if ev.get("text"):
                ev["text"] = _red(ev["text"], red)
        yield {
            "call_id": hit.call_id, "rule_id": hit.rule_id, "rule_version": hit.rule_version, "name": hit.name,
            "category": hit.category, "severity": hit.severity, "score_delta": hit.score_delta, "alert": hit.alert,
            "evidence_segments": ",".join(ev["segment_id"] for ev in evidence if ev.get("segment_id")),
            "evidence_start_ms": evidence[0]["start_ms"] if evidence else None,
            "evidence_text": " | ".join(ev["text"] for ev in evidence if ev.get("text")),
            "evidence": json.dumps(evidence, ensure_ascii=False), "call_time": call_time,
            "agent_id": _red(agent_id, red), "queue": _red(queue, red),
        }


def _chunks(items: list[str], n: int) -> Iterator[list[str]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _qc_rows(store: Store, since: Any, until: Any, red: RedactionConfig | None) -> Iterator[dict[str, Any]]:
    """The seeds' QC list: ``risk`` is a risk-category hit (the default pack's high-risk complaint), ``invalid``
    a call the scorecard left not scored (``call.invalid``); failed files follow with their reason."""
    from sqlalchemy import select

    from callsense.store.models import Failure

    with store.session() as s:
        risky = {r for (r,) in s.execute(select(RuleHitRow.call_id).where(RuleHitRow.category == "risk"))}
        failures = s.execute(select(Failure.source_path, Failure.source_key, Failure.error_code, Failure.message)
                             .order_by(Failure.id)).all() if since is None and until is None else []
    for row in _call_rows(store, since, until, red):
        hit_ids = [h for h in (row["rule_ids"] or "").split(",") if h]
        yield {
            "call_id": row["call_id"], "file": row["source_name"],
            "duration_s": round(row["duration_ms"] / 1000, 3) if row["duration_ms"] is not None else None,
            "text": row["transcript"] or "", "start_emotion": row["first_customer_emotion"],
            "end_emotion": row["last_customer_emotion"], "risk": row["call_id"] in risky,
            "invalid": row["scorecard_id"] is not None and row["qa_score"] is None,
            "score": row["qa_score"], "passed": row["passed"], "hit_ids": hit_ids, "error": None,
        }
    for f in failures:
        yield {"call_id": None, "file": _red(f.source_path or f.source_key, red), "invalid": None, "risk": None,
               "hit_ids": [], "error": f"{f.error_code}: {f.message}"}


def _correction_rows(store: Store, since: Any, until: Any, red: RedactionConfig | None) -> Iterator[dict[str, Any]]:
    """Reviewers' corrections (store/corrections.py), oldest first, by the time they were given; the
    segment's text and the note are redacted like every text."""
    from sqlalchemy import select

    from callsense.store.models import SegmentLabel

    L = SegmentLabel
    stmt = (select(L.id, L.call_id, L.segment_id, L.label, L.custom, L.previous, L.reviewer, L.at, L.note,
                   SegmentRow.start_ms, SegmentRow.end_ms, SegmentRow.role, SegmentRow.text, Call.agent_id)
            .join(SegmentRow, (SegmentRow.call_id == L.call_id) & (SegmentRow.segment_id == L.segment_id))
            .join(Call, Call.call_id == L.call_id).order_by(L.id))
    if since is not None:
        stmt = stmt.where(L.at >= utc_naive(since))
    if until is not None:
        stmt = stmt.where(L.at < utc_naive(until))
    with store.session() as s:
        rows = s.execute(stmt).all()
    for r in rows:
        yield {**r._asdict(), "custom": bool(r.custom), "text": _red(r.text, red), "note": _red(r.note, red),
               "agent_id": _red(r.agent_id, red)}


_ROWS = {"calls": _call_rows, "segments": _segment_rows, "rule_hits": _hit_rows, "qc": _qc_rows,
         "corrections": _correction_rows}

__all__ = ["EXPORT_COLUMNS", "FORMATS", "export"]
