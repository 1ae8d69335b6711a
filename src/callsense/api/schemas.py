"""Pydantic schemas of the REST API (what /docs shows). The full call result is the JSON of
``CallAnalysis`` (its JSON Schema ships in ``callsense/result/schema``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from callsense.api.forms import FormModel


class Problem(BaseModel):
    type: str
    title: str
    status: int
    code: str = Field(description="callsense error code, e.g. audio_decode, audio_limit, busy")
    detail: str
    hint: str | None = None
    source: str | None = None
    request_id: str | None = None


class JobOut(BaseModel):
    id: str
    status: Literal["queued", "running", "done", "failed"]
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    filename: str | None = None
    call_id: str | None = None
    error: dict[str, Any] | None = None
    attempts: int = 0
    options: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    links: dict[str, str] = {}
    result: dict[str, Any] | None = None
    mood: dict[str, Any] | None = Field(None, description="with include_result: the customer's mood over their "
                                                          "stored calls (metadata customer_id), as inline answers")
    alert: dict[str, Any] | None = None


class AnalyzeOut(BaseModel):
    status: Literal["done", "queued"]
    call_id: str | None = None
    result: dict[str, Any] | None = Field(None, description="the CallAnalysis JSON (inline analyses)")
    job: JobOut | None = None
    links: dict[str, str] = {}
    mood: dict[str, Any] | None = Field(None, description="the customer's mood over their stored calls "
                                                          "(metadata customer_id; docs/service.md)")
    alert: dict[str, Any] | None = None


class EmotionTimelineOut(BaseModel):
    start_ms: int
    end_ms: int
    label: str
    scores: list[float]


class EmotionOut(BaseModel):
    label: str
    label_zh: str
    emoji: str
    confidence: float
    distribution: dict[str, float] = Field(description="the 9 emotion2vec+ classes, summing to 1")
    ranked: list[str] = Field(description="top three labels: read them when confidence is low")
    timeline: list[EmotionTimelineOut] = []
    embedding: list[float] | None = None
    duration_ms: int
    flags: list[str] = []
    reason: str | None = None
    model: str
    custom: dict[str, Any] | None = Field(None, description="a custom head's label, confidence and distribution "
                                                            "(--emotion-head, docs/adapt.md)")
    weights: dict[str, float] = Field({}, description="sensitivity weights applied before the label was chosen")
    trim: dict[str, int] | None = Field(None, description="silence trimmed before scoring: start_ms, end_ms, kept_ms")
    fallback: dict[str, str] | None = Field(None, description="when unsure: action request_clarification and a "
                                                              "suggested_response")
    reply_style: str | None = Field(None, description="the configured answer style for the label")
    mood: dict[str, Any] | None = Field(None, description="with user_id or session_id: the subject's last answers "
                                                          "(history), volatility and trend (docs/service.md)")
    alert: dict[str, Any] | None = Field(None, description="mood_volatility when the volatility reaches the threshold")


class MoodOut(BaseModel):
    subject: str = Field(description="user:<id>, session:<id> or customer:<id>")
    mood: dict[str, Any] = Field(description="history (oldest first), volatility, trend, valence_slope, window, "
                                             "threshold, alert")
    alert: dict[str, Any] | None = None


class CallList(BaseModel):
    total: int | None  # None on a cursor page (counting every match would cost what the cursor saves)
    offset: int
    limit: int
    items: list[dict[str, Any]]
    next_cursor: str | None = None  # pass as ?cursor= for the next page; None on the last one


class RulesOut(BaseModel):
    version: int
    source: Literal["default", "custom"]
    yaml: str | None = None
    sha256: str | None = None
    updated_at: str | None = None
    rules: list[dict[str, Any]] = []
    valid: bool = True


class Readiness(BaseModel):
    ready: bool
    state: str
    models: dict[str, bool] = {}
    load_seconds: float | None = None
    error: dict[str, Any] | None = None


# ---- upload forms (multipart fields besides ``file``; see callsense.api.forms) ------------------------
class AnalyzeForm(FormModel):
    language: str = Field("auto", description="auto, zh, en, yue, ja, ko")
    channels: str | None = Field(None, description="role per channel, e.g. customer,agent")
    granularity: str = Field("frame", description="utterance or frame (emotion timeline)")
    embeddings: bool = True
    emotion_model: str | None = None
    rules: bool = Field(True, description="apply the active rule set and scorecard")
    metadata: str | None = Field(None, description='JSON object, e.g. {"agent_id": "a17"}')
    mode: str = Field("auto", description="auto: inline up to the sync limit, a job beyond; sync; async")
    mood: bool = Field(True, description="with a customer_id in metadata: add the customer's mood over their "
                                         "stored calls to an inline answer")


class EmotionForm(FormModel):
    granularity: str = Field("utterance", description="utterance, or frame for a timeline")
    embeddings: bool = Field(False, description="return the utterance embedding (as /v1/analyze names it)")
    emotion_model: str | None = None
    embedding: bool = Field(False, description="deprecated: use embeddings", deprecated=True)
    user_id: str | None = Field(None, description="keep this answer in the user's mood history; the answer adds "
                                                  "mood and alert")
    session_id: str | None = Field(None, description="as user_id, for a session (give one of them)")


class TranscriptionForm(FormModel):
    model: str = Field("sensevoice-small", description="ignored: SenseVoice-Small always answers")
    language: str | None = None
    prompt: str | None = Field(None, description="ignored (SenseVoice takes no prompt)")
    response_format: str = "json"
    temperature: float | None = Field(None, description="ignored (non-autoregressive model)")
    timestamp_granularities: list[str] | None = Field(None, alias="timestamp_granularities[]")
