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
    def _store_fn(self, name: str) -> Any:
        import callsense.store as store_pkg

        return getattr(store_pkg, name, None)

    def save(self, run: Any, folder: Path) -> None:
        save = self._store_fn("save_result")
        if save is None:
            return
        from callsense.pipeline.outputs import AUDIO_FILE

        save(self.service.store, run.result, embeddings=run.embeddings, audio_path=str(folder / AUDIO_FILE))

    def get(self, call_id: str) -> Any:
        get = self._store_fn("get_result")
        if get is not None:
            result = get(self.service.store, call_id)
            if result is not None:
                return result
        folder = self.folder(call_id)
        if folder is None:
            raise NotFoundError(f"no call with id {call_id!r}", hint="list calls with GET /v1/calls")
        from callsense.result.io import read_result

        return read_result(folder)

    def delete(self, call_id: str) -> None:
        self.get(call_id)
        delete = self._store_fn("delete_call")
        if delete is not None:
            delete(self.service.store, call_id)

    def list(self, *, filters: dict[str, Any] | None = None, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """A page of call summaries, newest first, with the total count."""
        filters = {k: v for k, v in (filters or {}).items() if v not in (None, "", [])}
        rows = [call_summary(r) for r in self._all_results()]
        rows = [r for r in rows if _matches(r, filters)]
        rows.sort(key=lambda r: r["analyzed_at"] or "", reverse=True)
        return {"total": len(rows), "offset": offset, "limit": limit, "items": rows[offset:offset + limit]}

    def _all_results(self) -> list[Any]:
        from callsense.errors import CallsenseError
        from callsense.result.io import read_result

        out = []
        for folder in sorted(self.root.glob("outputs_*")):
            try:
                out.append(read_result(folder))
            except CallsenseError as e:
                log.warning("skipping unreadable call folder %s: %s", folder.name, e)
        return out

    def search(self, *, text: str | None = None, emotion: str | None = None, role: str | None = None,
               event: str | None = None, min_score: float | None = None, limit: int = 50,
               offset: int = 0) -> dict[str, Any]:
        """Segments matching text / emotion / role / event, with their call."""
        hits = []
        for result in self._all_results():
            for s in result.segments:
                if text and text.lower() not in (s.text or "").lower():
                    continue
                if role and s.role != role:
                    continue
                if event and event not in s.asr_events:
                    continue
                label = s.emotion.label if s.emotion else None
                if emotion and label != emotion:
                    continue
                if min_score is not None and emotion and s.emotion and max(s.emotion.scores) < min_score:
                    continue
                hits.append({"call_id": result.call_id, "segment_id": s.id, "role": s.role, "start_ms": s.start_ms,
                             "end_ms": s.end_ms, "text": s.text, "language": s.language, "emotion": label,
                             "emotion_score": s.emotion.confidence if s.emotion else None,
                             "events": list(s.asr_events)})
        return {"total": len(hits), "offset": offset, "limit": limit, "items": hits[offset:offset + limit]}

    def stats(self, name: str, **params: Any) -> dict[str, Any]:
        from callsense.service.stats import STATS, compute

        if name not in STATS:
            raise NotFoundError(f"unknown statistic {name!r}", hint=f"valid: {', '.join(STATS)}")
        return compute(name, self._all_results(), **params)


def _matches(row: dict[str, Any], f: dict[str, Any]) -> bool:
    for key in ("agent_id", "queue", "category"):
        if key in f and row.get(key) != f[key]:
            return False
    if "emotion" in f and row.get("customer_emotion") != f["emotion"]:
        return False
    if "severity" in f and (row.get("max_severity") is None or
                            SEVERITY_ORDER.get(row["max_severity"], 0) < SEVERITY_ORDER.get(f["severity"], 0)):
        return False
    if "min_score" in f and (row.get("score") is None or row["score"] < float(f["min_score"])):
        return False
    if "max_score" in f and (row.get("score") is None or row["score"] > float(f["max_score"])):
        return False
    if "date_from" in f and (row.get("analyzed_at") or "") < str(f["date_from"]):
        return False
    if "date_to" in f and (row.get("analyzed_at") or "")[:len(str(f["date_to"]))] > str(f["date_to"]):
        return False
    return not ("text" in f and str(f["text"]).lower() not in (row.get("filename") or "").lower())
