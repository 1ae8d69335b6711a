"""The REST endpoints. Handlers are plain functions (run in the thread pool: analyses block) and only
translate HTTP to :class:`~callsense.service.Service` calls and back."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from callsense.api.auth import Principal, require
from callsense.api.forms import form_openapi, receive_form
from callsense.api.problems import MEDIA_TYPE
from callsense.api.schemas import (
    AnalyzeForm,
    AnalyzeOut,
    CallList,
    EmotionForm,
    EmotionOut,
    JobOut,
    MoodOut,
    Problem,
    Readiness,
    RulesOut,
    TranscriptionForm,
)
from callsense.errors import CallsenseError, UsageError
from callsense.service import AnalyzeRequest, Service
from callsense.service.errors import NotFoundError, UploadTooLargeError

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {MEDIA_TYPE: {}}}
    for code in (400, 401, 403, 404, 413, 415, 422, 429, 503)
}

MAX_QUERY_CHARS = 500  # a search text; longer ones are refused (422) naming the limit
MAX_QUERY_WORDS = 32  # full-text engines build one node per word (SQLite: "expression tree is too large")
MAX_RULES_BYTES = 1 << 20  # a rule file
MAX_LABEL_BYTES = 16 << 10  # a reviewer's label and note
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # call and job ids: matched literally, never globbed
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_query(request: Request) -> None:
    """Every query parameter: no control characters (databases refuse NUL; logs should not carry them)."""
    for name, value in request.query_params.multi_items():
        if _CONTROL.search(value) or _CONTROL.search(name):
            raise UsageError(f"query parameter {name!r} contains control characters",
                             hint="send printable text (URL-encode it)")


router = APIRouter(dependencies=[Depends(clean_query)])
Viewer = Annotated[Principal, Depends(require("viewer"))]
Analyst = Annotated[Principal, Depends(require("analyst"))]
Admin = Annotated[Principal, Depends(require("admin"))]


def _svc(request: Request) -> Service:
    return request.app.state.service


def _known_id(value: str, what: str = "call") -> str:
    """``value`` when it can be an id; anything else (``*``, ``..``, NUL ...) cannot name one: 404."""
    if not _ID.match(value):
        raise NotFoundError(f"no {what} with id {value[:80]!r}",
                            hint=f"list {what}s with GET /v1/{what}s")
    return value


def _channels(text: str | None) -> tuple[str, ...] | None:
    if not text:
        return None
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _metadata(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"metadata is not valid JSON: {e.msg} at position {e.pos}",
                         hint='send a JSON object, e.g. {"agent_id": "a17", "queue": "refunds"}') from e
    if not isinstance(data, dict):
        raise UsageError("metadata must be a JSON object", hint='e.g. {"agent_id": "a17"}')
    if "\x00" in json.dumps(data, ensure_ascii=False):
        raise UsageError("metadata contains a NUL character", hint="send printable text")
    return data


def _job_out(job: Any, *, result: dict[str, Any] | None = None) -> dict[str, Any]:
    out = job.to_dict()
    out["links"] = {"self": f"/v1/jobs/{job.id}", "wait": f"/v1/jobs/{job.id}?wait=60"}
    if job.call_id:
        out["links"]["call"] = f"/v1/calls/{job.call_id}"
    out["result"] = result
    return out


def _call_links(call_id: str) -> dict[str, str]:
    base = f"/v1/calls/{call_id}"
    return {"call": base, "audio": f"{base}/audio", "report": f"{base}/report", "embeddings": f"{base}/embeddings"}


# ---- operations ------------------------------------------------------------------------------------
@router.get("/healthz", tags=["operations"])
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", tags=["operations"], response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(request: Request) -> Any:
    """Readiness: 200 once the models are loaded and warm, 503 (with the reason) before or on failure."""
    body = _svc(request).readiness()
    return JSONResponse(body, status_code=200 if body["ready"] else 503,
                        headers=None if body["ready"] else {"Retry-After": "5"})


@router.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
def metrics(request: Request) -> Response:
    """Prometheus metrics: requests, latencies, queue depth, audio seconds processed, model load state."""
    svc = _svc(request)
    svc.metrics.refresh(svc)
    body, content_type = svc.metrics.render()
    return Response(body, media_type=content_type)


@router.get("/v1/me", tags=["operations"])
def me(principal: Viewer) -> dict[str, Any]:
    """Who the key belongs to and its role."""
    return {"name": principal.name, "role": principal.role, "key_id": principal.key_id}


# ---- analysis --------------------------------------------------------------------------------------
@router.post("/v1/analyze", tags=["analysis"], response_model=AnalyzeOut,
             responses={**ERRORS, 202: {"model": AnalyzeOut}},
             openapi_extra=form_openapi(AnalyzeForm, file_description="the recording (WAV, MP3, M4A, FLAC, OGG, AMR, ...)"))
async def analyze(request: Request, _: Analyst) -> Any:
    """Analyse one call. Short recordings are answered with the full result (200); long ones (or
    ``mode=async``) return a job at once (202) — poll or wait on ``GET /v1/jobs/{id}?wait=60``."""
    svc = _svc(request)
    received = await receive_form(request, svc.uploads)
    try:
        form = received.parse(AnalyzeForm)
        upload = received.require_upload()
        req = AnalyzeRequest(language=form.language, channels=_channels(form.channels),
                             granularity=form.granularity,  # type: ignore[arg-type]
                             embeddings=form.embeddings, emotion_model=form.emotion_model or None,
                             run_qa=form.rules, mood=form.mood).validate()
        meta = _metadata(form.metadata)
    except BaseException:
        received.discard()
        raise
    outcome = await run_in_threadpool(svc.analyze, upload, req, meta, mode=form.mode)  # type: ignore[arg-type]
    if outcome.job is not None:
        body = {"status": "queued", "job": _job_out(outcome.job), "links": {"job": f"/v1/jobs/{outcome.job.id}"}}
        return JSONResponse(body, status_code=202, headers={"Location": f"/v1/jobs/{outcome.job.id}"})
    assert outcome.result is not None
    call_id = outcome.result.call_id
    body = {"status": "done", "call_id": call_id, "result": outcome.result.to_dict(), "links": _call_links(call_id)}
    if req.mood:
        body.update(await run_in_threadpool(_customer_mood, svc, outcome.result.metadata, body["links"]))
    return body


def _customer_mood(svc: Service, metadata: dict[str, Any] | None, links: dict[str, str]) -> dict[str, Any]:
    """``{"mood", "alert"}`` of the metadata's ``customer_id`` over their stored calls (and ``links.mood``);
    empty without one. Inline answers and a job's result carry it alike (docs/service.md)."""
    customer = (metadata or {}).get("customer_id")
    if customer in (None, ""):
        return {}
    mood = svc.mood.customer(str(customer))
    links["mood"] = f"/v1/customers/{customer}/mood"
    return {"mood": mood["mood"], "alert": mood["alert"]}


@router.get("/v1/jobs/{job_id}", tags=["analysis"], response_model=JobOut, responses=ERRORS)
def get_job(request: Request, job_id: str, _: Viewer,
            wait: Annotated[float, Query(ge=0, le=300, description="seconds to wait for completion")] = 0,
            include_result: bool = False) -> Any:
    """A job's state; ``wait=N`` holds the request until the job ends or N seconds pass. With
    ``include_result`` a finished job carries the result and, as an inline answer does, the metadata
    ``customer_id``'s ``mood`` and ``alert`` (unless the analysis was sent with ``mood=false``)."""
    svc = _svc(request)
    _known_id(job_id, "job")
    job = svc.jobs.wait(job_id, wait) if wait else svc.jobs.get(job_id)
    if job is None:
        raise NotFoundError(f"no job with id {job_id!r}")
    result = None
    if include_result and job.status == "done" and job.call_id:
        result = svc.calls.get(job.call_id).to_dict()
    out = _job_out(job, result=result)
    if result is not None and (job.options or {}).get("mood", True):  # as the inline answer (mood=false: none)
        out.update(_customer_mood(svc, result.get("metadata"), out["links"]))
    return out


@router.get("/v1/jobs", tags=["analysis"])
def list_jobs(request: Request, _: Viewer, status: str | None = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
    return {"items": [_job_out(j) for j in _svc(request).jobs.list(status, limit)]}


_EMOTION_DOC = form_openapi(EmotionForm, file_description="one clip, best 3-10 s of one speaker")


@router.post("/v1/emotion", tags=["analysis"], response_model=EmotionOut, responses=ERRORS,
             openapi_extra=_EMOTION_DOC)
async def emotion(request: Request, _: Analyst) -> Any:
    """Emotion of one clip: label, confidence, distribution, timeline and embedding. Nothing is stored unless
    ``user_id`` (or ``session_id``) is given: then the answer joins that mood history and adds ``mood`` and
    ``alert`` (docs/service.md, "Mood history")."""
    svc = _svc(request)
    received = await receive_form(request, svc.uploads)
    try:
        form = received.parse(EmotionForm)
        upload = received.require_upload()
    except BaseException:
        received.discard()
        raise
    return await run_in_threadpool(svc.emotion, upload, granularity=form.granularity, embedding=form.embeddings or form.embedding,
                                   emotion_model=form.emotion_model or None, user_id=form.user_id,
                                   session_id=form.session_id)


@router.post("/predict_emotion", tags=["analysis"], response_model=EmotionOut, responses=ERRORS,
             openapi_extra=_EMOTION_DOC)
async def predict_emotion(request: Request, principal: Analyst) -> Any:
    """Alias of ``POST /v1/emotion`` under the seeds' name (voice assistants): an audio upload in,
    the emotion JSON out. Same form fields, same answer."""
    return await emotion(request, principal)


# ---- mood history (docs/service.md) ---------------------------------------------------------------
def _mood_subject(kind: str, value: str) -> str:
    from callsense.store.mood import subject_key

    try:
        return subject_key(kind, value)
    except UsageError as e:
        raise NotFoundError(f"no {kind} with id {value[:80]!r}") from e


@router.get("/v1/users/{user_id}/mood", tags=["mood"], response_model=MoodOut, responses=ERRORS)
def get_user_mood(request: Request, user_id: str, _: Viewer) -> Any:
    """The user's mood: their last answers of ``/v1/emotion`` (``user_id``), volatility, trend, alert."""
    return _svc(request).mood.get(_mood_subject("user", user_id))


@router.delete("/v1/users/{user_id}/mood", tags=["mood"], status_code=204, responses=ERRORS)
def delete_user_mood(request: Request, user_id: str, _: Analyst) -> Response:
    """Forget the user's mood history (every stored answer); 204 whether or not there was one."""
    _svc(request).mood.delete(_mood_subject("user", user_id))
    return Response(status_code=204)


@router.get("/v1/sessions/{session_id}/mood", tags=["mood"], response_model=MoodOut, responses=ERRORS)
def get_session_mood(request: Request, session_id: str, _: Viewer) -> Any:
    """As ``/v1/users/{id}/mood``, for answers sent with ``session_id``."""
    return _svc(request).mood.get(_mood_subject("session", session_id))


@router.delete("/v1/sessions/{session_id}/mood", tags=["mood"], status_code=204, responses=ERRORS)
def delete_session_mood(request: Request, session_id: str, _: Analyst) -> Response:
    _svc(request).mood.delete(_mood_subject("session", session_id))
    return Response(status_code=204)


@router.get("/v1/customers/{customer_id}/mood", tags=["mood"], response_model=MoodOut, responses=ERRORS)
def get_customer_mood(request: Request, customer_id: str, _: Viewer) -> Any:
    """The customer's mood over their last stored calls (derived from the calls: deleting a call removes
    it from here)."""
    return _svc(request).mood.customer(_known_id(customer_id, "customer"))


@router.post("/v1/audio/transcriptions", tags=["openai"], responses=ERRORS,
             openapi_extra=form_openapi(TranscriptionForm, file_description="the recording"))
async def transcriptions(request: Request, _: Analyst) -> Any:
    """OpenAI-compatible transcription: existing OpenAI clients transcribe with SenseVoice.
    ``verbose_json`` segments carry callsense's extras: role, channel, language, emotion, events.
    ``model``, ``prompt`` and ``temperature`` are accepted and ignored."""
    from callsense.service import transcripts

    svc = _svc(request)
    received = await receive_form(request, svc.uploads)
    try:
        form = received.parse(TranscriptionForm)
        upload = received.require_upload()
        if form.response_format not in transcripts.FORMATS:
            raise UsageError(f"response_format must be one of {', '.join(transcripts.FORMATS)}, "
                             f"not {form.response_format!r}")
        granularities = set(form.timestamp_granularities or [])
        bad = granularities - {"segment", "word"}
        if bad:
            raise UsageError(f"timestamp_granularities must be segment and/or word, not {', '.join(sorted(bad))}")
    except BaseException:
        received.discard()
        raise
    result = await run_in_threadpool(svc.transcribe, upload, language=(form.language or "auto").lower())
    body = transcripts.render(result, form.response_format, words="word" in granularities)
    if isinstance(body, dict):
        return JSONResponse(body)
    return Response(body, media_type=transcripts.MEDIA_TYPES[form.response_format])


# ---- calls -----------------------------------------------------------------------------------------
@router.get("/v1/calls", tags=["calls"], response_model=CallList)
def list_calls(
    request: Request, _: Viewer,
    agent_id: str | None = None, queue: str | None = None, category: str | None = None,
    emotion: Annotated[str | None, Query(description="customer's dominant emotion")] = None,
    severity: Annotated[str | None, Query(description="at least this rule severity: info, warning, critical")] = None,
    min_score: Annotated[float | None, Query(ge=0, le=100, description="QA score, 0-100")] = None,
    max_score: Annotated[float | None, Query(ge=0, le=100, description="QA score, 0-100")] = None,
    date_from: Annotated[str | None, Query(description="YYYY-MM-DD")] = None,
    date_to: Annotated[str | None, Query(description="YYYY-MM-DD")] = None,
    invalid: Annotated[bool, Query(description="only invalid calls, left not scored (the discard view)")] = False,
    outliers: Annotated[bool, Query(description="only calls with a segment its latest outlier score flagged")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Annotated[int, Query(ge=0)] = 0,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page (keyset; '' starts)")] = None,
) -> Any:
    """Analysed calls, newest first, filtered and paginated (``cursor``: by keyset, however deep)."""
    filters = {"agent_id": agent_id, "queue": queue, "category": category, "emotion": emotion,
               "severity": severity, "min_score": min_score, "max_score": max_score, "date_from": date_from,
               "date_to": date_to, "invalid": invalid, "outliers": outliers}
    return _svc(request).calls.list(filters=filters, limit=limit, offset=offset, cursor=cursor)


@router.get("/v1/calls/{call_id}", tags=["calls"], responses=ERRORS)
def get_call(request: Request, call_id: str, _: Viewer) -> Any:
    """The full result of one call (the JSON of result.json)."""
    return JSONResponse(_svc(request).calls.get(_known_id(call_id)).to_dict())


@router.get("/v1/calls/{call_id}/audio", tags=["calls"], responses=ERRORS)
def get_call_audio(request: Request, call_id: str,
                   token: Annotated[str | None, Query(description="signed link token (web UI players)")] = None
                   ) -> Any:
    """The processed audio (16 kHz WAV, one channel per track); supports Range requests for players."""
    svc = _svc(request)
    _known_id(call_id)
    if not (token and svc.check_audio_token(call_id, token)):
        require("viewer")(request)
    path = svc.calls.audio_path(call_id)
    return FileResponse(path, media_type="audio/wav", filename=f"{call_id}.wav")


@router.get("/v1/calls/{call_id}/clip", tags=["calls"], responses=ERRORS)
def get_call_clip(request: Request, call_id: str,
                  start_ms: Annotated[int, Query(description="clip start, ms on the call's time line")],
                  end_ms: Annotated[int, Query(description="clip end (at most 120 s after start_ms)")],
                  token: Annotated[str | None, Query(description="signed link token (web UI players)")] = None
                  ) -> Any:
    """A review clip (16 kHz WAV) cut on demand from the processed audio: 404 when the call has no audio,
    422 for a range outside the call, reversed, or longer than 120 s."""
    from callsense.report.clips import check_range, cut_clip

    svc = _svc(request)
    _known_id(call_id)
    if not (token and svc.check_audio_token(call_id, token)):
        require("viewer")(request)
    check_range(start_ms, end_ms)  # before touching the audio: a bad range is 422 whatever is stored
    clip = cut_clip(svc.calls.audio_path(call_id), start_ms, end_ms)
    return Response(clip, media_type="audio/wav",
                    headers={"Content-Disposition": f'inline; filename="{call_id}_{start_ms}-{end_ms}.wav"'})


@router.get("/v1/calls/{call_id}/embeddings", tags=["calls"], responses=ERRORS)
def get_call_embeddings(request: Request, call_id: str, _: Viewer) -> Any:
    """embeddings.npy: one row per segment with an emotion2vec embedding."""
    path = _svc(request).calls.embeddings_path(_known_id(call_id))
    return FileResponse(path, media_type="application/octet-stream", filename=f"{call_id}_embeddings.npy")


@router.get("/v1/calls/{call_id}/report", tags=["calls"], response_class=HTMLResponse, responses=ERRORS)
def get_call_report(request: Request, call_id: str, _: Viewer, download: bool = False) -> Any:
    """The self-contained one-page HTML report of the call."""
    from callsense.report import render_html

    svc = _svc(request)
    result = svc.calls.get(_known_id(call_id))
    try:
        audio = svc.calls.audio_path(call_id)  # review clips are embedded when the audio was kept
    except CallsenseError:
        audio = None
    html = render_html(result, audio=audio)
    headers = {"Content-Disposition": f'attachment; filename="{call_id}.html"'} if download else None
    return HTMLResponse(html, headers=headers)


@router.delete("/v1/calls/{call_id}", tags=["calls"], status_code=204, responses=ERRORS)
def delete_call(request: Request, call_id: str, _: Admin) -> Response:
    """Purge a call: its record, audio, embeddings and report (admin)."""
    _svc(request).purge(_known_id(call_id))
    return Response(status_code=204)


@router.post("/v1/calls/{call_id}/segments/{segment_id}/label", tags=["calls"], status_code=201, responses=ERRORS)
async def label_segment(request: Request, call_id: str, segment_id: str, principal: Analyst) -> Any:
    """A reviewer corrects a segment's emotion: body ``{"label": "angry" | "<custom label>", "note": "..."}``.
    Stored with the key's name and the time; the newest label of a segment is its label (docs/adapt.md)."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_LABEL_BYTES:
            raise UploadTooLargeError(f"a label body may be at most {MAX_LABEL_BYTES >> 10} KB")
    try:
        body = json.loads(bytes(raw) or b"null")
    except ValueError as e:
        raise UsageError("the body must be JSON", hint='{"label": "angry"}') from e
    if not isinstance(body, dict) or "label" not in body:
        raise UsageError('the body must be a JSON object with "label"', hint='{"label": "angry"}')
    note = body.get("note")
    return await run_in_threadpool(_svc(request).label_segment, _known_id(call_id), _known_id(segment_id, "segment"),
                                   body["label"], reviewer=principal.name, note=note)


@router.get("/v1/calls/{call_id}/labels", tags=["calls"], responses=ERRORS)
def get_segment_labels(request: Request, call_id: str, _: Viewer) -> Any:
    """Reviewers' corrections of the call's segments, oldest first."""
    return {"items": _svc(request).segment_labels(_known_id(call_id))}


@router.get("/v1/search", tags=["calls"], response_model=CallList)
def search(
    request: Request, _: Viewer,
    q: Annotated[str | None, Query(description="text the segment contains")] = None,
    emotion: str | None = None, role: str | None = None,
    event: Annotated[str | None, Query(description="SenseVoice event tag, e.g. Laughter, BGM, Cough")] = None,
    min_score: Annotated[float | None, Query(ge=0, le=1, description="minimum score of the emotion")] = None,
    severity: Annotated[str | None, Query(description="the call has a rule hit of at least this severity")] = None,
    agent_id: str | None = None,
    outliers: Annotated[bool, Query(description="only segments their latest outlier score flagged")] = False,
    min_outlier: Annotated[float | None, Query(ge=0, le=2, description="latest outlier score at least this")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Annotated[int, Query(ge=0)] = 0,
) -> Any:
    """Segments matching text and tags together (e.g. angry customers saying 退款); calls when only
    call-level filters are given. ``q`` is at most 500 characters and 32 words. ``outliers`` /
    ``min_outlier`` filter by the segments' latest stored outlier score (``callsense clusters outliers``)."""
    if q is not None:
        if len(q.split()) > MAX_QUERY_WORDS:
            raise UsageError(f"q has {len(q.split())} words; the limit is {MAX_QUERY_WORDS}",
                             hint="search for fewer, more specific words")
        if len(q) > MAX_QUERY_CHARS:
            raise UsageError(f"q is {len(q)} characters long; the limit is {MAX_QUERY_CHARS}",
                             hint="search for fewer, more specific words")
    return _svc(request).calls.search(text=q, emotion=emotion, role=role, event=event, min_score=min_score,
                                      severity=severity, agent_id=agent_id, outliers=outliers,
                                      min_outlier=min_outlier, limit=limit, offset=offset)


@router.get("/v1/outliers", tags=["calls"], responses=ERRORS)
def get_outliers(
    request: Request, _: Viewer,
    run: Annotated[int | None, Query(ge=1, description="an outliers run id (default: the latest)")] = None,
    all_rows: Annotated[bool, Query(alias="all", description="every scored segment, not only the flagged")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Any:
    """The segments an outliers run (``callsense clusters outliers``) flagged, highest score first, with the
    run's threshold and reference; 404 before any run is stored."""
    return _svc(request).calls.outliers(run, limit=limit, all_rows=all_rows)


@router.get("/v1/stats/{name}", tags=["calls"], responses=ERRORS)
def stats(request: Request, name: str, _: Viewer, by: str | None = None, role: str | None = None) -> Any:
    """Aggregates: ``emotions`` (heatmap by ``by``, default category), ``agents`` (scorecards),
    ``rules`` (hit counts), ``daily`` (trends)."""
    return _svc(request).calls.stats(name, by=by, role=role)



@router.get("/v1/dashboard/{view}", tags=["calls"], responses=ERRORS)
def dashboard(request: Request, view: str, _: Viewer, by: str | None = None, date_from: str | None = None,
              date_to: str | None = None, agent_id: str | None = None, day: str | None = None,
              days: Annotated[int | None, Query(ge=1, le=3660)] = None,
              format: Annotated[str, Query(pattern="^(json|csv)$")] = "json") -> Any:
    """The dashboard's views from the store (docs/service.md, "The dashboard"): ``heatmap`` (emotions and
    events by ``by``), ``trends``, ``agents``, ``rules``, ``script`` (script effectiveness) over
    ``date_from`` .. ``date_to`` (YYYY-MM-DD, both included), and ``before_after`` (``agent_id``, ``day``,
    ``days``). JSON ``{title, columns, rows}``, or the chart's CSV with ``format=csv``."""
    table = _svc(request).calls.board(view, by=by, date_from=date_from, date_to=date_to, agent_id=agent_id,
                                      day=day, days=days)
    if format == "csv":
        return Response(table.to_csv(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="callsense_{view}.csv"'})
    return {"title": table.title, "columns": list(table.columns), "rows": [list(r) for r in table.rows]}

# ---- rules -----------------------------------------------------------------------------------------
@router.get("/v1/rules", tags=["rules"], response_model=RulesOut)
def get_rules(request: Request, _: Viewer, version: int | None = None) -> Any:
    """The active rule set (or an older ``version``) with its YAML."""
    return _svc(request).rules.get(version).to_dict()


@router.put("/v1/rules", tags=["rules"], response_model=RulesOut, responses=ERRORS)
async def put_rules(request: Request, _: Admin, dry_run: bool = False) -> Any:
    """Validate and replace the rule set (admin). Body: the YAML text (``text/yaml``) or
    ``{"yaml": "..."}``. Each accepted rule set becomes a new version; ``dry_run=true`` only validates."""
    from starlette.concurrency import run_in_threadpool

    svc = _svc(request)
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_RULES_BYTES:
            raise UploadTooLargeError(f"a rule file may be at most {MAX_RULES_BYTES >> 20} MB")
    text: Any = raw.decode("utf-8", errors="replace")
    if (request.headers.get("content-type") or "").startswith("application/json"):
        try:
            text = json.loads(text)["yaml"]
        except (ValueError, KeyError, TypeError) as e:
            raise UsageError('a JSON body must be {"yaml": "<rule file text>"}') from e
        if not isinstance(text, str):
            raise UsageError(f'"yaml" must be the rule file as a string, not {type(text).__name__}',
                             hint='send {"yaml": "ruleset: ..."} or the YAML itself as text/yaml')
    if dry_run:
        ruleset = await run_in_threadpool(svc.rules.validate, text)
        from callsense.service.rulesets import summarize

        current = svc.rules.get()
        return {"version": current.version, "source": "custom" if current.version else "default", "yaml": text,
                "valid": True, **summarize(ruleset)}
    return (await run_in_threadpool(svc.rules.put, text)).to_dict()
