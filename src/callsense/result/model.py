"""The per-call result, :class:`CallAnalysis`, as typed frozen dataclasses.

The shipped JSON Schema (``callsense/result/schema/call-analysis-<version>.json``) is generated from
these classes (``python -m callsense.result.schema --write``) and a test keeps the two identical.
All times are integer milliseconds on the call's time line (0 = first sample of the recording).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from callsense.errors import ResultFormatError
from callsense.result.emotion import CallEmotion, SegmentEmotion
from callsense.result.qa import AlertRecord, CallMetrics, QAScore, RuleHit

SCHEMA_VERSION = "1.0"

Role = Literal["agent", "customer", "unknown"]
AsrStatus = Literal["ok", "empty", "too_short", "skipped"]


@dataclass(frozen=True)
class SourceInfo:
    """Facts about the recording as it arrived, before any conversion."""

    name: str  # file name (or "<bytes>", "<array>")
    path: str | None
    sha256: str  # of the original bytes (of the float32 samples for arrays)
    size_bytes: int
    container: str | None  # e.g. "wav", "mp3", "mov,mp4,m4a,3gp,3g2,mj2"
    codec: str | None  # e.g. "pcm_mulaw", "aac"
    sample_rate: int  # original rate
    channels: int  # original channel count
    duration_ms: int
    narrowband: bool  # original rate <= 8 kHz (telephony): upsampled before the models


@dataclass(frozen=True)
class TrackInfo:
    channel: int
    role: Role
    duration_ms: int
    speech_ms: int = 0
    level_dbfs: float | None = None


@dataclass(frozen=True)
class SpeakerInfo:
    """One diarized speaker of a mono call and how its role was decided (docs/diarization.md)."""

    speaker: int  # 0, 1, ... in order of first appearance; Segment.speaker
    role: Role
    confidence: float | None = None  # None where the role stayed unknown
    evidence: tuple[str, ...] = ()  # "agent lexicon: 您好", "voiceprint of agent a17: cosine 0.83", ...
    talk_ms: int = 0
    agent_id: str | None = None  # the enrolled voiceprint it matched


@dataclass(frozen=True)
class SpeakerOverlap:
    """Two diarized speakers at once (the segmentation's overlapped-speech frames): ``speaker`` started
    while ``other`` was already talking. Segments never overlap on mono, so talk-over is kept here."""

    start_ms: int
    end_ms: int
    speaker: int  # the one who started second (the interrupter)
    other: int


@dataclass(frozen=True)
class Separation:
    """How speech was attributed to roles: a stereo channel map, or diarization (+ role inference) on mono."""

    # "channel_map" is what results before issue 14 called "stereo": still valid, read back as "stereo"
    method: Literal["stereo", "mono", "diarization", "diarization+roles", "channel_map"]
    channel_map: tuple[Role, ...]  # role of channel 0, 1, ...
    confidence: float | None = None  # 1.0 for a configured map; a score where inferred
    speakers: tuple[SpeakerInfo, ...] = ()  # diarized speakers (mono)
    role_method: str | None = None  # what decided the roles: lexicon, first_speaker, voiceprint, override
    overlaps: tuple[SpeakerOverlap, ...] = ()  # diarized talk-over (mono), sorted by start


@dataclass(frozen=True)
class TokenTime:
    token: str
    start_ms: int


@dataclass(frozen=True)
class Segment:
    """One speech turn of one channel."""

    id: str  # "s0001": stable within the call, ordered by start time
    channel: int
    role: Role
    start_ms: int
    end_ms: int
    text: str = ""  # with inverse text normalisation when it ran (see text_itn flag)
    text_no_itn: str | None = None
    itn: bool = True
    language: str | None = None
    asr_emotion: str | None = None  # SenseVoice tag, e.g. "ANGRY"
    asr_events: tuple[str, ...] = ()  # SenseVoice event tags other than "Speech"
    raw_tags: str = ""  # e.g. "<|zh|><|ANGRY|><|Speech|><|withitn|>"
    tokens: tuple[TokenTime, ...] = ()
    asr_status: AsrStatus = "skipped"
    emotion: SegmentEmotion | None = None
    level_dbfs: float | None = None
    peak_dbfs: float | None = None
    redactions: tuple[str, ...] = ()
    speaker: int | None = None  # diarized speaker (mono calls), see Separation.speakers

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


@dataclass(frozen=True)
class AudioEvent:
    type: str  # SenseVoice event tag, e.g. "BGM", "Cough"
    start_ms: int
    end_ms: int
    channel: int
    role: Role
    segment_id: str | None = None


@dataclass(frozen=True)
class ModelInfo:
    task: Literal["vad", "asr", "emotion", "diarization"]
    name: str  # catalogue name, e.g. "sensevoice-small"
    runtime: str  # "onnx", "funasr", ...
    path: str | None = None
    version: str | None = None  # file digest or hub revision
    options: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Skipped:
    feature: str  # "asr", "emotion2vec", ...
    reason: str
    hint: str | None = None  # the command that enables it


@dataclass(frozen=True)
class ProcessingLog:
    callsense_version: str
    pipeline_version: str
    started_at: str  # ISO 8601 UTC
    options: dict[str, Any]
    models: tuple[ModelInfo, ...] = ()
    timings_ms: dict[str, float] = dataclasses.field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    skipped: tuple[Skipped, ...] = ()


@dataclass(frozen=True)
class CallAnalysis:
    """Everything callsense knows about one call. ``to_dict()`` gives the JSON of result.json."""

    schema_version: str
    call_id: str
    source: SourceInfo
    separation: Separation
    tracks: tuple[TrackInfo, ...]
    segments: tuple[Segment, ...]
    processing: ProcessingLog
    events: tuple[AudioEvent, ...] = ()
    emotion: CallEmotion | None = None
    metrics: CallMetrics | None = None
    rule_hits: tuple[RuleHit, ...] = ()
    score: QAScore | None = None
    alerts: tuple[AlertRecord, ...] = ()
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def duration_ms(self) -> int:
        return self.source.duration_ms

    def segment(self, segment_id: str) -> Segment:
        for seg in self.segments:
            if seg.id == segment_id:
                return seg
        raise KeyError(segment_id)

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None) -> CallAnalysis:
        """Validate a result.json mapping; :class:`~callsense.errors.ResultFormatError` names what is wrong."""
        version = data.get("schema_version") if isinstance(data, dict) else None
        if version is None:
            raise ResultFormatError("not a callsense result (no schema_version)", source=source)
        if str(version).split(".")[0] != SCHEMA_VERSION.split(".")[0]:
            raise ResultFormatError(
                f"result schema version {version} is not supported (this callsense reads {SCHEMA_VERSION})",
                hint="re-run `callsense analyze` on the recording to produce a current result",
                source=source,
            )
        from pydantic import ValidationError  # deferred: ~0.2 s, and most runs only write results

        sep = data.get("separation")
        if isinstance(sep, dict) and sep.get("method") == "channel_map":  # the name before issue 14
            data = {**data, "separation": {**sep, "method": "stereo"}}
        try:
            return _adapter().validate_python(data)
        except ValidationError as e:
            first = e.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise ResultFormatError(f"invalid result at {loc}: {first['msg']}", source=source) from e


@lru_cache(maxsize=1)
def _adapter() -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(CallAnalysis)


_PLAIN = frozenset({str, int, float, bool, type(None)})
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def to_jsonable(obj: Any) -> Any:
    """Dataclasses -> plain JSON types (tuples become lists, floats stay floats).

    Exact-type fast paths first (storing a call converts ~1,300 values; issue 21's ingest rate):
    the result is the same as the generic checks below would give."""
    t = type(obj)
    if t in _PLAIN:
        return obj
    if t is tuple or t is list:
        return [to_jsonable(v) for v in obj]
    names = _FIELD_NAMES.get(t)
    if names is None and dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        names = _FIELD_NAMES[t] = tuple(f.name for f in dataclasses.fields(obj))
    if names is not None:
        return {n: to_jsonable(getattr(obj, n)) for n in names}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return obj.item()
    return obj
