"""Mood history in the store: voice-assistant users' last emotion answers, and a customer's calls.

- A user's (or session's) answers are rows of ``mood_entries`` (subject ``user:<id>`` / ``session:<id>``):
  :func:`record` adds one and deletes that subject's rows beyond the newest ``keep`` in the same
  transaction; :func:`delete_subject` removes a subject's rows (``DELETE /v1/users/{id}/mood``);
  ``privacy.purge`` removes rows older than its age like call records.
- A customer's mood is **derived** from the stored calls with that ``customer_id`` (no copy is made):
  per call, the pooled customer embedding (``embeddings`` kind ``call:customer``, else ``call``) and the
  customer's distribution (the speech-time-weighted mean of their segments' nine probabilities). A
  deleted or purged call leaves the customer's history with it.

The arithmetic (volatility, trend, alert) is :mod:`callsense.analysis.mood`.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from callsense.analysis.mood import MoodPoint
from callsense.errors import UsageError
from callsense.labels import EMOTION_NAMES
from callsense.store import vectors

if TYPE_CHECKING:
    from callsense.store.db import Store

log = logging.getLogger("callsense")

SUBJECT_KINDS = ("user", "session")
MAX_ID_CHARS = 128


def subject_key(kind: str, value: str) -> str:
    """``user:<id>`` — the id checked: 1-128 printable characters."""
    if kind not in SUBJECT_KINDS:
        raise UsageError(f"a mood subject is a user or a session, not {kind!r}")
    value = str(value).strip()
    if not value or len(value) > MAX_ID_CHARS or not value.isprintable():
        raise UsageError(f"{kind}_id must be 1-{MAX_ID_CHARS} printable characters",
                         hint=f"send an opaque id, e.g. {kind}_id=u-1842")
    return f"{kind}:{value}"


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def record(store: Store, subject: str, *, label: str, confidence: float, distribution: list[float],
           embedding: np.ndarray, model: str | None, keep: int, at: datetime | None = None) -> None:
    """Add one answer to ``subject``'s history and keep only its newest ``keep`` rows."""
    from sqlalchemy import delete, select

    from callsense.store.models import MoodEntry

    v = np.asarray(embedding, np.float32)
    v = v / max(float(np.linalg.norm(v)), 1e-12)
    with store.session() as s:
        s.add(MoodEntry(subject=subject, at=at or _now(), label=label, confidence=float(confidence),
                        distribution_json=json.dumps([round(float(x), 6) for x in distribution]), model=model,
                        dim=int(v.shape[0]), vector=vectors.encode(v)))
        s.flush()
        cut = s.execute(select(MoodEntry.id).where(MoodEntry.subject == subject)
                        .order_by(MoodEntry.id.desc()).offset(keep).limit(1)).scalar()
        if cut is not None:
            s.execute(delete(MoodEntry).where(MoodEntry.subject == subject, MoodEntry.id <= cut))


def history(store: Store, subject: str, limit: int) -> list[MoodPoint]:
    """``subject``'s newest ``limit`` answers, oldest first."""
    from sqlalchemy import select

    from callsense.store.models import MoodEntry

    with store.session() as s:
        rows = s.execute(select(MoodEntry).where(MoodEntry.subject == subject)
                         .order_by(MoodEntry.id.desc()).limit(limit)).scalars().all()
    return [MoodPoint(at=r.at, label=r.label, confidence=r.confidence,
                      distribution=tuple(json.loads(r.distribution_json)),
                      embedding=vectors.decode(r.vector, r.dim)) for r in reversed(rows)]


def delete_subject(store: Store, subject: str) -> int:
    """Delete every answer of ``subject``; returns how many rows went."""
    from sqlalchemy import delete

    from callsense.store.models import MoodEntry

    with store.session() as s:
        n = s.execute(delete(MoodEntry).where(MoodEntry.subject == subject)).rowcount or 0
    log.info("deleted %d mood entries", n)
    return n


def delete_older_than(session: Any, cutoff: datetime) -> int:
    """Rows older than ``cutoff`` (naive UTC), in the caller's transaction (``privacy.purge``)."""
    from sqlalchemy import delete

    from callsense.store.models import MoodEntry

    return session.execute(delete(MoodEntry).where(MoodEntry.at < cutoff)).rowcount or 0


def customer_history(store: Store, customer_id: str, limit: int) -> list[MoodPoint]:
    """The customer's newest ``limit`` stored calls as mood points, oldest first (calls without
    customer speech with an emotion are skipped)."""
    from sqlalchemy import func, select

    from callsense.store.models import EMOTION_COLUMNS, Call, EmbeddingRow, SegmentRow

    when = func.coalesce(Call.started_at, Call.analyzed_at)
    with store.session() as s:
        calls = s.execute(select(Call.call_id, when).where(Call.customer_id == customer_id)
                          .order_by(when.desc(), Call.call_id.desc()).limit(limit)).all()
        ids = [c for c, _ in calls]
        if not ids:
            return []
        probs = [getattr(SegmentRow, c) for c in EMOTION_COLUMNS]
        seg_rows = s.execute(select(SegmentRow.call_id, SegmentRow.role, SegmentRow.duration_ms, *probs)
                             .where(SegmentRow.call_id.in_(ids), SegmentRow.p_angry.is_not(None))).all()
        emb_rows = s.execute(select(EmbeddingRow.call_id, EmbeddingRow.kind, EmbeddingRow.dim, EmbeddingRow.vector)
                             .where(EmbeddingRow.call_id.in_(ids), EmbeddingRow.kind.in_(("call", "call:customer")))
                             ).all()
    dist: dict[str, dict[str, np.ndarray]] = {}
    for call_id, role, ms, *p in seg_rows:
        per = dist.setdefault(call_id, {})
        acc = per.setdefault(role, np.zeros(len(EMOTION_NAMES)))
        acc += max(int(ms or 0), 1) * np.asarray([x or 0.0 for x in p])
    emb: dict[str, dict[str, np.ndarray]] = {}
    for call_id, kind, dim, vec in emb_rows:
        emb.setdefault(call_id, {})[kind] = vectors.decode(vec, dim)
    points = []
    for call_id, at in reversed(calls):
        per = dist.get(call_id, {})
        acc = per.get("customer")
        if acc is None:
            continue
        d = acc / max(float(acc.sum()), 1e-12)
        k = int(np.argmax(d))
        e = emb.get(call_id, {})
        points.append(MoodPoint(at=at, label=EMOTION_NAMES[k], confidence=float(d[k]),
                                distribution=tuple(float(x) for x in d),
                                embedding=e.get("call:customer", e.get("call")), call_id=call_id))
    return points
