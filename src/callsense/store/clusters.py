"""``callsense clusters``: stored segment embeddings grouped (k-means) and scored against a reference set.

:func:`run_clusters` reads the segment embeddings (``embeddings`` kind ``segment``) of the calls chosen
(role, agent, queue, time range), clusters them (:mod:`callsense.analysis.clusters`) and stores the run
(``analysis_runs``) with each segment's cluster and distance to its centre (``segment_scores``).
:func:`run_outliers` scores segments against a reference set (e.g. ``agent_id=a17``'s calls) and stores
every score with its flag. :func:`cluster_report` and :func:`outlier_report` read a stored run back with
what each cluster holds — size, dominant emotions, agents and the example segments nearest its centre —
joined at read time from the calls, so a deleted call leaves every run with it (no text is copied).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from callsense.errors import InputError, NotFoundError
from callsense.store import vectors
from callsense.store.metadata import utc_naive

if TYPE_CHECKING:
    from callsense.store.db import Store

log = logging.getLogger("callsense")

FILTERS = ("agent_id", "queue", "category", "team", "customer_id")


@dataclass(frozen=True)
class Selection:
    """Which stored segments: a role, call-level metadata filters, a call-time range, a cap."""

    role: str | None = None
    where: dict[str, str] = field(default_factory=dict)  # agent_id, queue, ... = value
    since: str | None = None
    until: str | None = None
    limit: int = 200_000

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "where": dict(self.where), "since": self.since, "until": self.until,
                "limit": self.limit}


def parse_where(items: list[str] | None) -> dict[str, str]:
    """``["agent_id=a17", "queue=refunds"]`` -> a dict; the keys are the call columns of :data:`FILTERS`."""
    from callsense.errors import UsageError

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in FILTERS or not value.strip():
            raise UsageError(f"{item!r} is not FIELD=VALUE with FIELD one of {', '.join(FILTERS)}",
                             hint="e.g. --where agent_id=a17")
        out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class Vectors:
    keys: list[tuple[str, str]]  # (call_id, segment_id)
    x: np.ndarray  # [N, D]
    model: str | None


def load_vectors(store: Store, sel: Selection) -> Vectors:
    """Segment embeddings of the selection, of the most common (model, dimension) among them."""
    from sqlalchemy import func, select

    from callsense.store.models import Call, EmbeddingRow

    when = func.coalesce(Call.started_at, Call.analyzed_at)
    stmt = (select(EmbeddingRow.call_id, EmbeddingRow.segment_id, EmbeddingRow.model, EmbeddingRow.dim,
                   EmbeddingRow.vector)
            .join(Call, Call.call_id == EmbeddingRow.call_id).where(EmbeddingRow.kind == "segment"))
    if sel.role:
        stmt = stmt.where(EmbeddingRow.role == sel.role)
    for key, value in sel.where.items():
        stmt = stmt.where(getattr(Call, key) == value)
    if sel.since:
        stmt = stmt.where(when >= utc_naive(sel.since))
    if sel.until:
        stmt = stmt.where(when < utc_naive(sel.until))
    stmt = stmt.order_by(EmbeddingRow.call_id, EmbeddingRow.id).limit(sel.limit)
    with store.session() as s:
        rows = s.execute(stmt).all()
    if not rows:
        return Vectors([], np.zeros((0, 0), np.float32), None)
    (model, dim), _n = Counter((r.model, r.dim) for r in rows).most_common(1)[0]
    keep = [r for r in rows if (r.model, r.dim) == (model, dim)]
    if len(keep) < len(rows):
        log.warning("clusters: %d segments of another model or dimension left out", len(rows) - len(keep))
    return Vectors([(r.call_id, r.segment_id) for r in keep], vectors.decode_block([r.vector for r in keep], dim),
                   model)


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _save(store: Store, kind: str, params: dict[str, Any], summary: dict[str, Any], keys: list[tuple[str, str]],
          clusters: np.ndarray | None, scores: np.ndarray, flagged: np.ndarray | None) -> int:
    from sqlalchemy import insert

    from callsense.store.models import AnalysisRun, SegmentScore

    with store.session() as s:
        run = AnalysisRun(kind=kind, created_at=_now(), params_json=json.dumps(params, ensure_ascii=False),
                          summary_json=json.dumps(summary, ensure_ascii=False))
        s.add(run)
        s.flush()
        rows = [{"run_id": run.id, "call_id": c, "segment_id": sid,
                 "cluster": None if clusters is None else int(clusters[i]), "score": float(scores[i]),
                 "flagged": bool(flagged[i]) if flagged is not None else False}
                for i, (c, sid) in enumerate(keys)]
        for i in range(0, len(rows), 5000):
            s.execute(insert(SegmentScore), rows[i:i + 5000])
        return int(run.id)


def run_clusters(store: Store, sel: Selection, *, k: int | None = None, k_min: int = 2, k_max: int = 8) -> int:
    """Cluster the selection's segment embeddings and store the run; returns its id."""
    from callsense.analysis.clusters import cluster

    v = load_vectors(store, sel)
    if not v.keys:
        raise InputError("no stored segment embeddings match", hint="analyse calls with embeddings, or widen the "
                                                                    "selection")
    c = cluster(v.x, k=k, k_min=k_min, k_max=k_max)
    summary = {"k": c.k, "silhouette": None if c.silhouette is None else round(c.silhouette, 4),
               "tried": {str(kk): s for kk, s in c.tried.items()}, "segments": len(v.keys), "model": v.model,
               "algorithm": c.algorithm, "criterion": "given" if k is not None else "silhouette (cosine)"}
    run = _save(store, "clusters", {**sel.to_dict(), "k": k, "k_min": k_min, "k_max": k_max}, summary, v.keys,
                c.labels, c.distances, None)
    log.info("clusters run %d: %d segments, k=%d", run, len(v.keys), c.k)
    return run


def run_outliers(store: Store, sel: Selection, reference: Selection, *, neighbours: int = 5,
                 quantile: float = 0.95) -> int:
    """Score the selection's segments against the reference selection's and store the run; returns its id."""
    from callsense.analysis.clusters import outlier_scores

    v = load_vectors(store, sel)
    ref = load_vectors(store, reference)
    if not v.keys:
        raise InputError("no stored segment embeddings match the selection")
    if ref.keys and ref.x.shape[1] != v.x.shape[1]:
        raise InputError(f"the reference's embeddings have dimension {ref.x.shape[1]}, the selection's "
                         f"{v.x.shape[1]}: another emotion model")
    o = outlier_scores(v.x, [c for c, _ in v.keys], ref.x, [c for c, _ in ref.keys], k=neighbours,
                       quantile=quantile)
    summary = {"threshold": round(o.threshold, 4), "reference_segments": o.reference_size,
               "segments": len(v.keys), "flagged": int(o.flagged.sum()), "model": v.model}
    params = {**sel.to_dict(), "reference": reference.to_dict(), "neighbours": neighbours, "quantile": quantile}
    run = _save(store, "outliers", params, summary, v.keys, None, o.scores, o.flagged)
    log.info("outliers run %d: %d segments, %d flagged", run, len(v.keys), int(o.flagged.sum()))
    return run


def _run(store: Store, run_id: int | None, kind: str) -> Any:
    from sqlalchemy import select

    from callsense.store.models import AnalysisRun

    with store.session() as s:
        stmt = select(AnalysisRun).where(AnalysisRun.kind == kind)
        stmt = stmt.where(AnalysisRun.id == run_id) if run_id is not None else stmt.order_by(AnalysisRun.id.desc())
        run = s.execute(stmt.limit(1)).scalar()
    if run is None:
        raise NotFoundError(f"no {kind} run" + (f" {run_id}" if run_id is not None else " stored yet"),
                            hint=f"run `callsense clusters {'run' if kind == 'clusters' else 'outliers'}` first")
    return run


def _segments(store: Store, run_id: int, *, cluster: int | None = None, flagged: bool | None = None) -> list[Any]:
    from sqlalchemy import select

    from callsense.store.models import Call, SegmentRow, SegmentScore

    S = SegmentScore
    stmt = (select(S.call_id, S.segment_id, S.cluster, S.score, S.flagged, SegmentRow.role, SegmentRow.start_ms,
                   SegmentRow.end_ms, SegmentRow.text, SegmentRow.emotion_label, Call.agent_id)
            .join(SegmentRow, (SegmentRow.call_id == S.call_id) & (SegmentRow.segment_id == S.segment_id))
            .join(Call, Call.call_id == S.call_id).where(S.run_id == run_id))
    if cluster is not None:
        stmt = stmt.where(S.cluster == cluster)
    if flagged is not None:
        stmt = stmt.where(S.flagged == flagged)
    with store.session() as s:
        return list(s.execute(stmt.order_by(S.score.desc() if flagged is not None else S.score)).all())


def _seg(r: Any) -> dict[str, Any]:
    return {"call_id": r.call_id, "segment_id": r.segment_id, "role": r.role, "start_ms": r.start_ms,
            "end_ms": r.end_ms, "emotion": r.emotion_label, "agent_id": r.agent_id, "text": r.text,
            "score": round(float(r.score), 4)}


def _top(counter: Counter, total: int, n: int = 3) -> list[dict[str, Any]]:
    return [{"value": v, "share": round(c / total, 3)} for v, c in counter.most_common(n) if v is not None]


def cluster_report(store: Store, run_id: int | None = None, *, examples: int = 3,
                   cluster: int | None = None) -> dict[str, Any]:
    """A stored clusters run: per cluster its size, dominant emotions, agents and example segments (the
    nearest to the centre); with ``cluster``, every member of that cluster (nearest first)."""
    run = _run(store, run_id, "clusters")
    rows = _segments(store, run.id, cluster=cluster)
    groups: dict[int, list[Any]] = {}
    for r in rows:
        groups.setdefault(int(r.cluster), []).append(r)
    out = []
    for c in sorted(groups):
        members = groups[c]  # nearest to the centre first (ordered by score)
        item = {"cluster": c, "size": len(members),
                "emotions": _top(Counter(m.emotion_label for m in members), len(members)),
                "agents": _top(Counter(m.agent_id for m in members), len(members)),
                "roles": _top(Counter(m.role for m in members), len(members)),
                "calls": len({m.call_id for m in members}),
                "examples": [_seg(m) for m in members[:examples]]}
        if cluster is not None:
            item["members"] = [_seg(m) for m in members]
        out.append(item)
    return {"run": run.id, "created_at": run.created_at.isoformat() + "Z", "params": json.loads(run.params_json),
            **json.loads(run.summary_json), "segments_now": len(rows), "clusters": out}


def outlier_report(store: Store, run_id: int | None = None, *, top: int = 20, all_rows: bool = False
                   ) -> dict[str, Any]:
    """A stored outliers run: the flagged segments, highest score first (``all_rows``: every segment)."""
    run = _run(store, run_id, "outliers")
    rows = _segments(store, run.id, flagged=None if all_rows else True)
    rows.sort(key=lambda r: -float(r.score))
    return {"run": run.id, "created_at": run.created_at.isoformat() + "Z", "params": json.loads(run.params_json),
            **json.loads(run.summary_json),
            "segments_flagged": [{**_seg(r), "flagged": bool(r.flagged)} for r in rows[:top]]}


def latest_outlier_scores(store: Store, call_id: str) -> dict[str, Any]:
    """Each of ``call_id``'s segments' score in the latest outliers run that scored it, as
    :class:`callsense.rules.model.OutlierScore` by segment id (empty when none was scored)."""
    from sqlalchemy import func, select

    from callsense.rules.model import OutlierScore
    from callsense.store.models import AnalysisRun, SegmentScore

    S, R = SegmentScore, AnalysisRun
    latest = (select(S.segment_id, func.max(S.run_id).label("run_id")).join(R, R.id == S.run_id)
              .where(R.kind == "outliers", S.call_id == call_id).group_by(S.segment_id).subquery())
    stmt = (select(S.segment_id, S.score, S.flagged, S.run_id, R.summary_json)
            .join(latest, (latest.c.segment_id == S.segment_id) & (latest.c.run_id == S.run_id))
            .join(R, R.id == S.run_id).where(S.call_id == call_id))
    out = {}
    with store.session() as s:
        for sid, score, flagged, run, summary in s.execute(stmt):
            threshold = json.loads(summary or "{}").get("threshold")
            out[sid] = OutlierScore(score=float(score), flagged=bool(flagged), run_id=int(run),
                                    threshold=None if threshold is None else float(threshold))
    return out


def latest_scores_subquery() -> Any:
    """``(call_id, segment_id, score, flagged)`` of every segment's latest outlier score, for joins (search)."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import aliased

    from callsense.store.models import AnalysisRun, SegmentScore

    S, R = SegmentScore, AnalysisRun
    latest = (select(S.call_id, S.segment_id, func.max(S.run_id).label("run_id")).join(R, R.id == S.run_id)
              .where(R.kind == "outliers").group_by(S.call_id, S.segment_id).subquery())
    S2 = aliased(SegmentScore)
    return (select(S2.call_id, S2.segment_id, S2.score, S2.flagged)
            .join(latest, (latest.c.call_id == S2.call_id) & (latest.c.segment_id == S2.segment_id)
                  & (latest.c.run_id == S2.run_id)).subquery("outlier_scores"))


def segment_outliers(store: Store, call_id: str) -> dict[str, float]:
    """The latest outlier score of each of ``call_id``'s segments (empty when not scored)."""
    return {sid: o.score for sid, o in latest_outlier_scores(store, call_id).items()}
