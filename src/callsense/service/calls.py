"""Reading and writing analysed calls for the service: the store for queries, the call folders for files.

Every analysed call has a folder ``calls/outputs_<call-id>/`` (result.json, the processed audio,
embeddings.npy) and a row in the store (search, filters, aggregates).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from callsense.service.errors import NotFoundError

log = logging.getLogger("callsense")

MAX_SCAN = 10_000  # calls considered by one list/search request (pages are cut from these)
SEVERITY_ORDER = {"info": 0, "warning": 1, "critical": 2}


def call_summary(result: Any) -> dict[str, Any]:
    """The row of the call list: facts a supervisor scans, from a CallAnalysis."""
    meta = result.metadata or {}
    customer = None
    if result.emotion is not None:
        for r in result.emotion.roles:
            if r.role == "customer":
                customer = r.dominant
    hits = result.rule_hits
    worst = max((h.severity for h in hits), key=lambda s: SEVERITY_ORDER.get(s, 0), default=None)
    return {
        "call_id": result.call_id,
        "filename": meta.get("filename") or result.source.name,
        "duration_ms": result.duration_ms,
        "analyzed_at": result.processing.started_at,
        "agent_id": meta.get("agent_id"),
        "queue": meta.get("queue"),
        "category": meta.get("category"),
        "segments": len(result.segments),
        "customer_emotion": customer,
        "score": result.score.normalized if result.score else None,
        "passed": result.score.passed if result.score else None,
        "rule_hits": len(hits),
        "max_severity": worst,
        "languages": sorted({s.language for s in result.segments if s.language}),
    }


class CallRepository:
    def __init__(self, service: Any):
        self.service = service
        self.root: Path = service.settings.calls_dir

    # ---- files -----------------------------------------------------------------------------------
    def folder(self, call_id: str) -> Path | None:
        from callsense.pipeline.outputs import folder_name

        if not call_id or "/" in call_id or "\\" in call_id or call_id.startswith("."):
            return None
        candidates = sorted(self.root.glob(folder_name(call_id) + "*"), key=lambda p: p.stat().st_mtime)
        exact = [p for p in candidates if p.name == folder_name(call_id) or
                 p.name.startswith(folder_name(call_id) + "-")]
        return exact[-1] if exact else None

    def audio_path(self, call_id: str) -> Path:
        from callsense.pipeline.outputs import AUDIO_FILE

        folder = self.folder(call_id)
        if folder is None or not (folder / AUDIO_FILE).is_file():
            self.get(call_id)  # 404 for unknown calls
            raise NotFoundError(f"call {call_id} has no stored audio",
                                hint="the audio was deleted after analysis (privacy setting)")
        return folder / AUDIO_FILE

    def embeddings_path(self, call_id: str) -> Path:
        from callsense.pipeline.outputs import EMBEDDINGS_FILE

        folder = self.folder(call_id)
        if folder is None or not (folder / EMBEDDINGS_FILE).is_file():
            self.get(call_id)
            raise NotFoundError(f"call {call_id} has no embeddings", hint="analyse with embeddings enabled")
        return folder / EMBEDDINGS_FILE

    # ---- records ---------------------------------------------------------------------------------
    @property
    def store(self) -> Any:
        return self.service.store

    def save(self, run: Any, folder: Path, *, fingerprint: str | None = None) -> None:
        """Store ``run`` with the analyzer's ``fingerprint`` (the one the batch runner compares with)."""
        from callsense.pipeline.outputs import AUDIO_FILE
        from callsense.store import save_result

        audio = folder / AUDIO_FILE
        save_result(self.store, run.result, embeddings=run.embeddings, fingerprint=fingerprint,
                    audio_path=str(audio) if audio.is_file() else None)

    def get(self, call_id: str) -> Any:
        from callsense.store import CallNotFoundError, get_result

        try:
            return get_result(self.store, call_id)
        except CallNotFoundError:
            folder = self.folder(call_id)  # analysed here but not (or no longer) in the store
            if folder is None:
                raise NotFoundError(f"no call with id {call_id!r}", hint="list calls with GET /v1/calls") from None
        from callsense.result.io import read_result

        return read_result(folder)

    def delete(self, call_id: str) -> None:
        from sqlalchemy import delete

        from callsense.store.models import Call

        self.get(call_id)
        with self.store.session() as s:
            s.execute(delete(Call).where(Call.call_id == call_id))

    def _query(self, **kw: Any) -> Any:
        from callsense.store import SearchQuery

        return SearchQuery(**{k: v for k, v in kw.items() if v not in (None, "", {})})

    def list(self, *, filters: dict[str, Any] | None = None, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """A page of call summaries, newest first, with the total count."""
        from callsense.store import search_calls

        f = {k: v for k, v in (filters or {}).items() if v not in (None, "", [])}
        meta = {k: str(f[k]) for k in ("agent_id", "queue", "category", "team", "customer_id") if k in f}
        q = self._query(
            meta=meta, severity=f.get("severity"), since=f.get("date_from"), until=_day_after(f.get("date_to")),
            min_qa_score=_score(f.get("min_score")), max_qa_score=_score(f.get("max_score")),
            role="customer" if f.get("emotion") else None, emotion=f.get("emotion"), limit=MAX_SCAN)
        ids = list(dict.fromkeys(h.call_id for h in search_calls(self.store, q)))  # segment hits: one per call
        items = []
        for call_id in ids[offset:offset + limit]:
            try:
                items.append(call_summary(self.get(call_id)))
            except NotFoundError:  # deleted meanwhile
                continue
        return {"total": len(ids), "offset": offset, "limit": limit, "items": items}

    def recent_results(self, limit: int = MAX_SCAN) -> list[Any]:
        from callsense.store import list_calls

        out = []
        for rec in list_calls(self.store, limit=limit):
            try:
                out.append(self.get(rec.call_id))
            except NotFoundError:
                continue
        return out

    def search(self, *, text: str | None = None, emotion: str | None = None, role: str | None = None,
               event: str | None = None, min_score: float | None = None, severity: str | None = None,
               agent_id: str | None = None, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """Segments (or calls, without segment criteria) matching text and tags together."""
        from callsense.store import search_calls

        q = self._query(text=text, emotion=emotion, role=role, event=event, min_score=min_score, severity=severity,
                        meta={"agent_id": agent_id} if agent_id else None, limit=MAX_SCAN)
        hits = search_calls(self.store, q)
        items = [{"call_id": h.call_id, "filename": h.source_name, "segment_id": h.segment_id, "role": h.role,
                  "start_ms": h.start_ms, "end_ms": h.end_ms, "text": h.text, "marked": h.marked(),
                  "emotion": h.emotion, "emoji": h.emoji, "emotion_score": h.emotion_score,
                  "agent_id": h.agent_id, "qa_score": h.qa_score, "duration_ms": h.duration_ms,
                  "call_time": h.call_time.isoformat() if h.call_time else None}
                 for h in hits[offset:offset + limit]]
        return {"total": len(hits), "offset": offset, "limit": limit, "items": items}

    def stats(self, name: str, **params: Any) -> dict[str, Any]:
        from callsense.service.stats import STATS, compute

        if name not in STATS:
            raise NotFoundError(f"unknown statistic {name!r}", hint=f"valid: {', '.join(STATS)}")
        return compute(name, self.recent_results(), **params)


def _score(score: Any) -> float | None:
    """QA scores are 0-100 (as shown) in the API and in the store alike."""
    return None if score is None else float(score)


def _day_after(day: Any) -> str | None:
    if not day:
        return None
    from datetime import date, timedelta

    try:
        return (date.fromisoformat(str(day)[:10]) + timedelta(days=1)).isoformat()
    except ValueError:
        from callsense.errors import UsageError

        raise UsageError(f"date_to must be YYYY-MM-DD, not {day!r}") from None
