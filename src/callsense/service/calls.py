"""Reading, writing and deleting analysed calls for the service: the store for queries, the call folders
for files.

Every analysed call has a row in the store (search, filters, aggregates; the one truth of whether the
call exists) and a folder ``calls/outputs_<call-id>/`` (result.json, the processed audio unless
``keep_audio`` is off, embeddings.npy, the UI's report.html) recorded on that row.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from callsense.result.qa import severity_rank
from callsense.service.errors import NotFoundError

log = logging.getLogger("callsense")
_DECODE_LOCK = threading.Lock()  # batch calls' recordings decoded for playback, one at a time

MAX_SCAN = 10_000  # calls considered by one list/search request (pages are cut from these)


def call_summary(result: Any) -> dict[str, Any]:
    """The row of the call list: facts a supervisor scans, from a CallAnalysis."""
    meta = result.metadata or {}
    customer = None
    if result.emotion is not None:
        for r in result.emotion.roles:
            if r.role == "customer":
                customer = r.dominant
    hits = result.rule_hits
    worst = max((h.severity for h in hits), key=severity_rank, default=None)
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
        # an invalid call: why it was left not scored (the discard view, ``GET /v1/calls?invalid=true``)
        "not_scored_reason": result.score.reason if result.score and not result.score.scored else None,
        "rule_hits": len(hits),
        "max_severity": worst,
        "languages": sorted({s.language for s in result.segments if s.language}),
    }


class CallRepository:
    """The service's calls: the store is the one truth of which calls exist; a call's folder only
    holds its files (result.json, processed audio, embeddings, report) and is recorded on the call's
    row (``output_dir``), so that deleting or purging the call — from this process or from
    ``callsense purge`` — removes it too. See docs/privacy.md for the whole map."""

    def __init__(self, service: Any):
        self.service = service
        self.root: Path = service.settings.calls_dir

    # ---- files -----------------------------------------------------------------------------------
    def folders(self, call_id: str) -> list[Path]:
        """Every folder under ``calls/`` that belongs to ``call_id`` (compared literally: ids are not patterns)."""
        from callsense.pipeline.outputs import folder_name

        base = folder_name(call_id)
        try:
            entries = list(self.root.iterdir())
        except FileNotFoundError:
            return []
        return [p for p in entries if p.name == base or (p.name.startswith(base + "-") and p.name[len(base) + 1:].isdigit())]

    def folder(self, call_id: str) -> Path | None:
        """The stored call's folder (None when the call is unknown or has none)."""
        row = self._row(call_id)
        return Path(row.output_dir) if row is not None and row.output_dir else None

    def _row(self, call_id: str) -> Any:
        from sqlalchemy import select

        from callsense.store.models import Call

        with self.store.session() as s:
            return s.execute(select(Call.output_dir, Call.audio_deleted).where(Call.call_id == call_id)).first()

    def _file(self, call_id: str, name: str, missing: str, hint: str) -> Path:
        row = self._row(call_id)
        if row is None:
            raise NotFoundError(f"no call with id {call_id!r}", hint="list calls with GET /v1/calls")
        path = Path(row.output_dir) / name if row.output_dir else None
        if path is None or not path.is_file():
            raise NotFoundError(f"call {call_id} has no {missing}", hint=hint)
        return path

    def audio_path(self, call_id: str) -> Path:
        """The call's processed audio; for a call stored by ``callsense batch`` (no folder) its recording
        decoded once into the UI temp folder (``<call id>_recording.wav``: removed with the call, swept
        when an hour old), provided it is still the analysed recording (its SHA-256)."""
        from callsense.pipeline.outputs import AUDIO_FILE

        try:
            return self._file(call_id, AUDIO_FILE, "stored audio",
                              "the audio was not kept or was deleted after analysis (privacy settings)")
        except NotFoundError:
            decoded = self._decoded_recording(call_id)
            if decoded is None:
                raise
            return decoded

    def _decoded_recording(self, call_id: str) -> Path | None:
        from sqlalchemy import select

        from callsense.errors import AudioNotFoundError
        from callsense.report.clips import decode_recording
        from callsense.store.models import Call

        with self.store.session() as s:
            row = s.execute(select(Call.output_dir, Call.audio_path, Call.source_path, Call.content_sha256,
                                   Call.audio_deleted).where(Call.call_id == call_id)).first()
        # a call with a folder but no audio in it was analysed with the audio not kept: never go around that
        if row is None or row.output_dir or row.audio_deleted or not row.content_sha256:
            return None
        recordings = [Path(x) for x in (row.audio_path, row.source_path) if x]
        if not recordings:
            return None
        dest = self.service.settings.ui_temp_dir / f"{call_id}_recording.wav"
        with _DECODE_LOCK:  # one decode per call at a time: a player's range requests come in parallel
            if dest.is_file():
                dest.touch()  # in use: the hourly sweep leaves it
                return dest
            result = self.get(call_id)
            channel_map = result.separation.channel_map if result.source.channels > 2 else None
            try:
                return decode_recording(call_id, recordings, row.content_sha256, dest, channel_map=channel_map)
            except AudioNotFoundError as e:
                log.info("call %s: no audio to serve: %s", call_id, e)
                return None

    def embeddings_path(self, call_id: str) -> Path:
        from callsense.pipeline.outputs import EMBEDDINGS_FILE

        return self._file(call_id, EMBEDDINGS_FILE, "embeddings", "analyse with embeddings enabled")

    # ---- records ---------------------------------------------------------------------------------
    @property
    def store(self) -> Any:
        return self.service.store

    def validate_metadata(self, metadata: dict[str, Any]) -> None:
        """Refuse bad metadata (422) before any work is done or anything is written."""
        from callsense.store.metadata import normalize_metadata

        normalize_metadata(metadata, source="metadata")

    def persist(self, run: Any, *, fingerprint: str | None = None,
                alert_targets: Sequence[Any] = (), sent_alerts: Sequence[Any] = ()) -> tuple[Path, Any]:
        """Write the call's folder and its row; returns the folder and the result as stored.

        With ``redact`` the result is redacted before anything is written; without ``keep_audio`` no
        audio is written at all. Folders of the result this one replaces (the same recording analysed
        before) are removed once the new row is in; if storing fails, the new folder is removed (a
        refused call leaves nothing). ``fingerprint`` is the analyzer's (the one the batch runner compares
        with, so a batch never re-analyses what the service stored). The alerting hits are queued for
        ``alert_targets`` with the row (the outbox: the service's courier sends them); ``sent_alerts``
        (a live call's, tried when they fired) are recorded there and retried where they failed."""
        import dataclasses

        from callsense.pipeline.outputs import write_call_folder
        from callsense.store import save_result
        from callsense.store.privacy import remove_folders

        settings = self.service.settings
        if settings.redact:
            from callsense.store.privacy import redact_result

            run = dataclasses.replace(run, result=redact_result(run.result))
        result = run.result
        old = self._replaced_folders(result)
        folder = write_call_folder(run, self.root, audio=settings.keep_audio)
        try:
            save_result(self.store, result, embeddings=run.embeddings, fingerprint=fingerprint,
                        redact=bool(settings.redact),
                        audio_path=None, output_dir=str(folder.resolve()), alert_targets=alert_targets,
                        sent_alerts=sent_alerts)
        except BaseException:
            remove_folders([folder])
            raise
        remove_folders(p for p in old if p.resolve() != folder.resolve())
        return folder, result

    def _replaced_folders(self, result: Any) -> list[Path]:
        """Folders of stored results that storing ``result`` replaces (same recording or same id)."""
        from sqlalchemy import or_, select

        from callsense.store.models import Call

        with self.store.session() as s:
            rows = s.execute(select(Call.call_id, Call.output_dir).where(or_(
                Call.content_sha256 == result.source.sha256, Call.call_id == result.call_id))).all()
        out = [Path(d) for _, d in rows if d]
        for call_id in {result.call_id, *(c for c, _ in rows)}:
            out.extend(self.folders(call_id))
        return out

    def get(self, call_id: str) -> Any:
        from callsense.store import CallNotFoundError, get_result

        try:
            return get_result(self.store, call_id)
        except CallNotFoundError:
            raise NotFoundError(f"no call with id {call_id!r}", hint="list calls with GET /v1/calls") from None

    def delete(self, call_id: str) -> None:
        """Delete the call everywhere: row (and jobs) first — from then on every route answers 404 —
        then its folder(s), cached UI downloads, and nothing else."""
        from callsense.store import CallNotFoundError
        from callsense.store.privacy import delete_call, remove_folders

        try:
            delete_call(self.store, call_id)
        except CallNotFoundError:
            raise NotFoundError(f"no call with id {call_id!r}", hint="list calls with GET /v1/calls") from None
        remove_folders(self.folders(call_id))  # folders written before rows recorded them
        self.service_forget(call_id)

    def service_forget(self, call_id: str) -> None:
        """Remove copies outside the call folder that carry the call id (the web UI's download cache)."""
        cache = self.service.settings.ui_temp_dir
        if not cache.is_dir() or not call_id:
            return
        for p in cache.rglob("*"):
            if p.is_file() and p.name.startswith(call_id + "_"):
                try:
                    p.unlink()
                except OSError as e:
                    log.warning("could not delete %s: %s", p, e)

    def sweep(self, min_age_s: float = 3600.0) -> int:
        """Remove what no record or live job accounts for, older than ``min_age_s``: call folders of
        deleted calls (a delete interrupted between the row and the files, or ``callsense purge`` run
        elsewhere), half-written ``.partial`` folders, uploads of jobs that no longer exist, and stale UI
        temp files. Returns the number of things removed."""
        import time

        from sqlalchemy import select

        from callsense.store.models import Call, service_jobs
        from callsense.store.privacy import remove_folders

        settings = self.service.settings
        cutoff = time.time() - min_age_s

        def old(p: Path) -> bool:
            try:
                return p.stat().st_mtime < cutoff
            except OSError:
                return False

        with self.store.session() as s:
            known = {str(Path(d).resolve()) for (d,) in s.execute(select(Call.output_dir)
                                                                  .where(Call.output_dir.is_not(None)))}
            live = {str(Path(u).resolve()) for (u,) in s.execute(
                select(service_jobs.c.upload_path).where(service_jobs.c.status.in_(("queued", "running"))))}
        n = 0
        if self.root.is_dir():
            orphans = [p for p in self.root.iterdir() if p.is_dir() and p.name.startswith((".outputs_", "outputs_"))
                       and str(p.resolve()) not in known and old(p)]
            n += remove_folders(orphans)
        for d in (settings.uploads_dir, settings.ui_temp_dir):
            if not d.is_dir():
                continue
            for p in sorted(d.rglob("*"), key=lambda q: -len(q.parts)):
                if str(p.resolve()) in live or not old(p):
                    continue
                try:
                    p.rmdir() if p.is_dir() else p.unlink()
                    n += 1
                except OSError:
                    pass
        if n:
            log.info("sweep: removed %d file(s) no call or job accounts for", n)
        return n

    def _query(self, **kw: Any) -> Any:
        from callsense.store import SearchQuery

        return SearchQuery(**{k: v for k, v in kw.items() if v not in (None, "", {})})

    def list(self, *, filters: dict[str, Any] | None = None, limit: int = 50, offset: int = 0,
             cursor: str | None = None) -> dict[str, Any]:
        """A page of call summaries, newest first, with ``next_cursor`` (pass it as ``cursor`` for the
        next page: a keyset range however deep; "" starts one) and, on an offset page, the total count."""
        import dataclasses

        from callsense.store import search_calls
        from callsense.store.cursor import make_cursor, parse_cursor

        f = {k: v for k, v in (filters or {}).items() if v not in (None, "", [])}
        meta = {k: str(f[k]) for k in ("agent_id", "queue", "category", "team", "customer_id") if k in f}
        q = self._query(
            meta=meta, severity=f.get("severity"), since=_time_arg(f.get("date_from"), "date_from"),
            until=_day_after(f.get("date_to")),
            min_qa_score=_score(f.get("min_score")), max_qa_score=_score(f.get("max_score")),
            role="customer" if f.get("emotion") else None, emotion=f.get("emotion"),
            invalid=bool(f.get("invalid")), outliers=bool(f.get("outliers")), limit=MAX_SCAN)
        calls: dict[str, str] = {}  # call id -> its call-level cursor (after every segment hit of it)

        def take(hits: Any) -> None:
            for h in hits:
                at, call_id, _ = parse_cursor(h.cursor)
                calls.setdefault(call_id, make_cursor(at, call_id))

        total: int | None
        if cursor is None:
            take(search_calls(self.store, q))
            ids, total = list(calls)[offset:offset + limit], len(calls)
        else:  # keyset: read hits page by page until ``limit`` calls (segment hits: several per call)
            after, page = cursor or None, max(4 * limit, 100)
            while len(calls) < limit + 1:
                hits = search_calls(self.store, dataclasses.replace(q, after=after, limit=page))
                take(hits)
                if len(hits) < page:
                    break
                after = hits[-1].cursor
            ids, total, offset = list(calls)[:limit], None, 0
        items = []
        for call_id in ids:
            try:
                items.append(call_summary(self.get(call_id)))
            except NotFoundError:  # deleted meanwhile
                continue
        more = len(calls) > (offset + limit if cursor is None else limit)
        return {"total": total, "offset": offset, "limit": limit, "items": items,
                "next_cursor": calls[ids[-1]] if ids and more else None}

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
               agent_id: str | None = None, outliers: bool = False, min_outlier: float | None = None,
               limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """Segments (or calls, without segment criteria) matching text and tags together; ``outliers`` /
        ``min_outlier``: by the segments' latest stored outlier score, which the items then carry."""
        from callsense.store import search_calls

        q = self._query(text=text, emotion=emotion, role=role, event=event, min_score=min_score, severity=severity,
                        meta={"agent_id": agent_id} if agent_id else None, outliers=outliers,
                        min_outlier=min_outlier, limit=MAX_SCAN)
        hits = search_calls(self.store, q)
        items = [{"call_id": h.call_id, "filename": h.source_name, "segment_id": h.segment_id, "role": h.role,
                  "start_ms": h.start_ms, "end_ms": h.end_ms, "text": h.text, "marked": h.marked(),
                  "spans": [list(x) for x in h.spans],
                  "emotion": h.emotion, "emoji": h.emoji, "emotion_score": h.emotion_score,
                  "agent_id": h.agent_id, "qa_score": h.qa_score, "duration_ms": h.duration_ms,
                  "call_time": h.call_time.isoformat() if h.call_time else None,
                  **({"outlier_score": h.outlier_score, "outlier_flagged": h.outlier_flagged}
                     if h.outlier_score is not None else {})}
                 for h in hits[offset:offset + limit]]
        return {"total": len(hits), "offset": offset, "limit": limit, "items": items}

    def outliers(self, run: int | None = None, *, limit: int = 50, all_rows: bool = False) -> dict[str, Any]:
        """A stored outliers run (default: the latest): its figures and flagged segments, highest score first
        (``all_rows``: every scored segment). No run stored yet: NotFoundError (404)."""
        from callsense.store.clusters import outlier_report

        return outlier_report(self.store, run, top=limit, all_rows=all_rows)

    def stats(self, name: str, **params: Any) -> dict[str, Any]:
        from callsense.service.stats import STATS, compute

        if name not in STATS:
            raise NotFoundError(f"unknown statistic {name!r}", hint=f"valid: {', '.join(STATS)}")
        return compute(name, self.recent_results(), **params)

    def board(self, view: str, *, date_from: str | None = None, date_to: str | None = None,
              **params: Any) -> Any:
        """A dashboard view from the store's aggregates (a :class:`callsense.store.Table`) over the calls of
        ``date_from`` .. ``date_to`` (whole UTC days, both included; the per-day rollups answer them):
        ``heatmap`` (``by``), ``trends``, ``agents``, ``rules``, ``script`` and ``before_after``
        (``agent_id``, ``day``, ``days``; its own dates)."""
        from callsense import store as st

        views = {"heatmap": st.emotion_event_heatmap, "trends": st.daily_trends, "agents": st.agent_scorecards,
                 "rules": st.rule_hit_counts, "script": st.script_effectiveness}
        if view == "before_after":
            return st.agent_before_after(self.store, params.get("agent_id") or "", params.get("day") or "",
                                         days=params.get("days"))
        if view not in views:
            raise NotFoundError(f"unknown dashboard view {view!r}", hint=f"valid: {', '.join([*views, 'before_after'])}")
        since = _day_start(date_from, "date_from")
        until = _day_after(date_to)
        extra = {"by": params["by"]} if view == "heatmap" and params.get("by") else {}
        return views[view](self.store, since=since, until=until, **extra)


def _score(score: Any) -> float | None:
    """QA scores are 0-100 (as shown) in the API and in the store alike."""
    return None if score is None else float(score)


def _day_start(day: Any, name: str) -> str | None:
    if not day:
        return None
    from datetime import date

    try:
        return date.fromisoformat(str(day)[:10]).isoformat()
    except ValueError:
        from callsense.errors import UsageError

        raise UsageError(f"{name} must be YYYY-MM-DD, not {day!r}") from None


def _time_arg(value: Any, name: str) -> Any:
    """``value`` unchanged (a day or an ISO 8601 time), once it is known to be one (else a 422 naming ``name``)."""
    if value:
        from callsense.store.metadata import parse_time

        parse_time(value, field=name)
    return value


def _day_after(day: Any) -> str | None:
    if not day:
        return None
    from datetime import date, timedelta

    try:
        return (date.fromisoformat(str(day)[:10]) + timedelta(days=1)).isoformat()
    except ValueError:
        from callsense.errors import UsageError

        raise UsageError(f"date_to must be YYYY-MM-DD, not {day!r}") from None
