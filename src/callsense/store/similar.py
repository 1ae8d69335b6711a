"""Similarity between stored calls or segments: cosine over the stored emotion2vec embeddings.

``similar(store, "CALL")`` compares the call's pooled embedding (the mean of its L2-normalised segment
vectors; per role with ``role="customer"``) with every other call's; ``similar(store, "CALL", "s0003")``
compares one segment with every stored segment — the seeds' "customers with similar emotional
expression". The search is exact, in numpy, streamed in blocks of float16 vectors (callsense.store.vectors)
so memory stays bounded. It reads every vector of the kind: its time grows linearly with the store
(measured in bench/RESULTS.md — roughly 1 s per million 1024-d segment vectors read on SQLite, more
on PostgreSQL; no approximate index yet). Vectors of another model (another dimension) are never
compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from callsense.errors import UsageError
from callsense.store.repo import CallNotFoundError

if TYPE_CHECKING:
    from callsense.store.db import Store

BLOCK_ROWS = 20_000


@dataclass(frozen=True)
class SimilarHit:
    call_id: str
    segment_id: str | None  # None when comparing calls
    score: float  # cosine similarity in [-1, 1]
    role: str | None
    source_name: str
    text: str | None = None  # the segment text, when comparing segments


def similar(store: Store, call_id: str, segment_id: str | None = None, *, k: int = 10, role: str | None = None,
            include_same_call: bool = False) -> list[SimilarHit]:
    """The ``k`` calls (or, with ``segment_id``, segments) closest to the given one, best first.

    ``role`` picks the per-role call embedding (``"customer"``: how the customer sounded) or, for
    segments, restricts candidates to that role.
    """
    from sqlalchemy import select

    from callsense.store.models import Call, EmbeddingRow, SegmentRow
    from callsense.store.vectors import decode, decode_block

    if k < 1:
        raise UsageError("k must be at least 1")
    kind = "segment" if segment_id else (f"call:{role}" if role else "call")
    with store.session() as s:
        if s.get(Call, call_id) is None:
            raise CallNotFoundError(f"no stored call {call_id!r}")
        q = select(EmbeddingRow.vector, EmbeddingRow.dim).where(EmbeddingRow.call_id == call_id,
                                                                EmbeddingRow.kind == kind)
        if segment_id:
            q = q.where(EmbeddingRow.segment_id == segment_id)
        row = s.execute(q).first()
        if row is None:
            what = f"segment {segment_id} of call {call_id}" if segment_id else f"call {call_id}"
            raise UsageError(f"{what} has no stored embedding" + (f" for role {role}" if role and not segment_id else ""),
                             hint="embeddings are stored when the emotion2vec model ran on the call")
        query = decode(row.vector, row.dim)
        cand = select(EmbeddingRow.call_id, EmbeddingRow.segment_id, EmbeddingRow.role, EmbeddingRow.vector
                      ).where(EmbeddingRow.kind == kind, EmbeddingRow.dim == row.dim)
        if not include_same_call:
            cand = cand.where(EmbeddingRow.call_id != call_id)
        if segment_id and role:
            cand = cand.where(EmbeddingRow.role == role)
        best: list[tuple[float, str, str | None, str | None]] = []
        for block in s.execute(cand.execution_options(yield_per=BLOCK_ROWS)).partitions(BLOCK_ROWS):
            mat = decode_block([r.vector for r in block], row.dim)
            scores = _cosine(mat, query)
            top = np.argsort(-scores)[: k + 1]
            best += [(float(scores[i]), block[i].call_id, block[i].segment_id, block[i].role) for i in top
                     if not (block[i].call_id == call_id and block[i].segment_id == segment_id)]
            best = sorted(best, key=lambda t: -t[0])[:k]
        names = dict(s.execute(select(Call.call_id, Call.source_name)
                                .where(Call.call_id.in_({b[1] for b in best}))).all())
        texts: dict[tuple[str, str], str] = {}
        if segment_id and best:
            rows = s.execute(select(SegmentRow.call_id, SegmentRow.segment_id, SegmentRow.text)
                             .where(SegmentRow.call_id.in_({b[1] for b in best}))).all()
            texts = {(r.call_id, r.segment_id): r.text for r in rows}
    return [SimilarHit(call_id=c, segment_id=sid, score=round(score, 6), role=r, source_name=names.get(c, ""),
                       text=texts.get((c, sid)) if sid else None) for score, c, sid, r in best]


def _cosine(mat: np.ndarray, v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(mat, axis=1) * (np.linalg.norm(v) or 1.0)
    norms[norms == 0] = 1.0
    return (mat @ v) / norms
