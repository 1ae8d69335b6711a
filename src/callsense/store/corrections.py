"""Reviewers' corrections of segment emotions (``segment_labels``): the first piece of a review workflow.

A correction names a stored call's segment, the label a reviewer gives it (one of the nine classes, or a
custom label such as ``anxious``), who gave it and when, and the model's label at that moment. Rows are
never updated: the newest row of a segment is its label, older ones are its history. They are deleted with
their call (delete, purge, retention: ``ON DELETE CASCADE``), exported by ``callsense export --what
corrections`` and read as training data by ``callsense adapt train store:corrections``
(:func:`training_rows`: each corrected segment's stored embedding, grouped by call).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from callsense.errors import CallNotFoundError, UsageError
from callsense.labels import EMOTION_NAMES
from callsense.store import vectors

if TYPE_CHECKING:
    from callsense.store.db import Store

log = logging.getLogger("callsense")

MAX_LABEL_CHARS = 64
MAX_NOTE_CHARS = 2000


@dataclass(frozen=True)
class Correction:
    id: int
    call_id: str
    segment_id: str
    label: str
    custom: bool  # not one of the nine classes
    previous: str | None  # the model's label when corrected
    reviewer: str
    at: datetime  # naive UTC
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "call_id": self.call_id, "segment_id": self.segment_id, "label": self.label,
                "custom": self.custom, "previous": self.previous, "reviewer": self.reviewer,
                "at": self.at.isoformat(timespec="milliseconds") + "Z", "note": self.note}


def check_label(label: Any) -> str:
    """A label is 1-64 printable characters without commas or newlines (it becomes a CSV cell and a head's
    class name); the nine classes are matched case-insensitively."""
    if not isinstance(label, str):
        raise UsageError(f"label must be text, not {type(label).__name__}", hint='e.g. {"label": "angry"}')
    text = label.strip()
    if not text or len(text) > MAX_LABEL_CHARS or not text.isprintable() or "," in text:
        raise UsageError(f"label must be 1-{MAX_LABEL_CHARS} printable characters without commas, not {label[:80]!r}",
                         hint=f"one of {', '.join(EMOTION_NAMES)}, or your own label, e.g. anxious")
    return text.lower() if text.lower() in EMOTION_NAMES else text


def _row(r: Any) -> Correction:
    return Correction(id=r.id, call_id=r.call_id, segment_id=r.segment_id, label=r.label, custom=bool(r.custom),
                      previous=r.previous, reviewer=r.reviewer, at=r.at, note=r.note)


def add_correction(store: Store, call_id: str, segment_id: str, label: str, *, reviewer: str,
                   note: str | None = None, at: datetime | None = None) -> Correction:
    """Record a reviewer's label for one segment. Unknown call: :class:`CallNotFoundError`; unknown
    segment: :class:`~callsense.errors.SegmentNotFoundError`; a bad label or note: :class:`UsageError`."""
    from sqlalchemy import select

    from callsense.errors import SegmentNotFoundError
    from callsense.store.models import Call, SegmentLabel, SegmentRow

    label = check_label(label)
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE_CHARS or "\x00" in note):
        raise UsageError(f"note must be text of at most {MAX_NOTE_CHARS} characters")
    reviewer = (reviewer or "").strip()[:128] or "anonymous"
    with store.session() as s:
        if s.execute(select(Call.call_id).where(Call.call_id == call_id)).first() is None:
            raise CallNotFoundError(f"no stored call {call_id!r}")
        seg = s.execute(select(SegmentRow.emotion_label).where(SegmentRow.call_id == call_id,
                                                               SegmentRow.segment_id == segment_id)).first()
        if seg is None:
            raise SegmentNotFoundError(f"call {call_id!r} has no segment {segment_id!r}",
                                       hint=f"segment ids are in GET /v1/calls/{call_id} (segments[].id)")
        row = SegmentLabel(call_id=call_id, segment_id=segment_id, label=label, custom=label not in EMOTION_NAMES,
                           previous=seg.emotion_label, reviewer=reviewer, note=note or None,
                           at=at or datetime.now(timezone.utc).replace(tzinfo=None))
        s.add(row)
        s.flush()
        out = _row(row)
    log.info("segment %s of call %s labelled by a reviewer", segment_id, call_id)
    return out


def list_corrections(store: Store, *, call_id: str | None = None, latest: bool = False) -> list[Correction]:
    """Every correction (oldest first), of one call when ``call_id`` is given; ``latest``: only the newest
    row of each segment (its current label)."""
    from sqlalchemy import select

    from callsense.store.models import SegmentLabel

    stmt = select(SegmentLabel).order_by(SegmentLabel.id)
    if call_id is not None:
        stmt = stmt.where(SegmentLabel.call_id == call_id)
    with store.session() as s:
        rows = [_row(r) for r in s.execute(stmt).scalars()]
    if latest:
        last = {(r.call_id, r.segment_id): r for r in rows}
        rows = sorted(last.values(), key=lambda r: r.id)
    return rows


@dataclass(frozen=True)
class TrainingRow:
    call_id: str
    segment_id: str
    label: str
    embedding: np.ndarray | None  # None: the segment has no stored embedding
    model: str | None  # the emotion model that embedded it
    scores: tuple[float, ...] | None  # the nine classes as stored


def training_rows(store: Store) -> list[TrainingRow]:
    """The current label of every corrected segment with its stored embedding and scores."""
    from sqlalchemy import select

    from callsense.store.models import EMOTION_COLUMNS, EmbeddingRow, SegmentRow

    latest = list_corrections(store, latest=True)
    if not latest:
        return []
    ids = sorted({c.call_id for c in latest})
    with store.session() as s:
        emb = {(r.call_id, r.segment_id): r for r in s.execute(
            select(EmbeddingRow.call_id, EmbeddingRow.segment_id, EmbeddingRow.model, EmbeddingRow.dim,
                   EmbeddingRow.vector).where(EmbeddingRow.call_id.in_(ids), EmbeddingRow.kind == "segment"))}
        probs = [getattr(SegmentRow, c) for c in EMOTION_COLUMNS]
        scores = {(r[0], r[1]): r[2:] for r in s.execute(
            select(SegmentRow.call_id, SegmentRow.segment_id, *probs).where(SegmentRow.call_id.in_(ids)))}
    out = []
    for c in latest:
        e = emb.get((c.call_id, c.segment_id))
        sc = scores.get((c.call_id, c.segment_id))
        out.append(TrainingRow(c.call_id, c.segment_id, c.label,
                               vectors.decode(e.vector, e.dim) if e is not None else None,
                               e.model if e is not None else None,
                               tuple(float(x) for x in sc) if sc is not None and sc[0] is not None else None))
    return out
