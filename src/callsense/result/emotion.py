"""Emotion parts of the result: per-segment emotion, the emotion timeline and per-role aggregates.

Scores are always the 9 emotion2vec+ classes in model order (``callsense.labels.EMOTIONS``) and sum
to 1 (after masking). When emotion2vec was skipped, a segment's emotion comes from SenseVoice's own
tag (``source="sensevoice"``) as a one-hot distribution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

EmotionSource = Literal["emotion2vec", "sensevoice"]


@dataclass(frozen=True)
class CustomEmotion:
    """A custom head's answer for one segment (``--emotion-head NAME``, docs/adapt.md): its own labels."""

    head: str  # the head's name
    label: str  # top label of the head, e.g. "anxious"
    confidence: float
    distribution: dict[str, float]  # label -> probability, the head's labels, sums to 1


@dataclass(frozen=True)
class SegmentEmotion:
    label: str  # english label name, e.g. "angry"
    label_zh: str
    emoji: str
    confidence: float  # score of the top label
    scores: tuple[float, ...]  # 9 classes in model order, sums to 1
    source: EmotionSource = "emotion2vec"
    embedding_index: int | None = None  # row in embeddings.npy
    flags: tuple[str, ...] = ()  # "too_short", "low_level", "clipped"
    reason: str | None = None  # why the label is "unknown", when it is forced
    custom: CustomEmotion | None = None  # a custom head's label and distribution, beside the nine classes


@dataclass(frozen=True)
class TimelinePoint:
    start_ms: int
    end_ms: int
    segment_id: str
    role: str
    channel: int
    scores: tuple[float, ...]
    label: str


@dataclass(frozen=True)
class EmotionPeak:
    label: str
    score: float
    time_ms: int
    segment_id: str


@dataclass(frozen=True)
class RoleEmotion:
    role: str
    speech_ms: int
    mean_scores: tuple[float, ...]  # duration-weighted
    dominant: str
    peaks: tuple[EmotionPeak, ...] = ()
    quarters: tuple[tuple[float, ...] | None, ...] = ()  # 4 distributions, None where no speech


@dataclass(frozen=True)
class CallEmotion:
    model: str | None  # e.g. "emotion2vec-plus-large", None when only SenseVoice tags were used
    labels: tuple[str, ...]
    window_ms: int = 1000
    hop_ms: int = 250
    timeline: tuple[TimelinePoint, ...] = ()
    roles: tuple[RoleEmotion, ...] = ()
    masked: tuple[str, ...] = field(default_factory=tuple)
    weights: dict[str, float] = field(default_factory=dict)  # sensitivity weights applied (docs/adapt.md)
    head: str | None = None  # the custom head each segment's ``custom`` comes from


@dataclass(frozen=True)
class ClipTrimInfo:
    """Silence trimmed off a clip before it was scored (docs/adapt.md, clip preprocessing)."""

    start_ms: int
    end_ms: int
    kept_ms: int


@dataclass(frozen=True)
class ClipEmotion:
    """result.json of ``callsense emotion FILE``: one short clip scored whole (no VAD, no roles).

    Not part of the call schema; ``kind`` tells the two apart.
    """

    kind: Literal["clip-emotion"]
    created_at: str  # ISO 8601 UTC
    source: SourceInfo
    model: ModelInfo
    granularity: Literal["utterance", "frame"]
    duration_ms: int
    level_dbfs: float
    emotion: SegmentEmotion
    labels: tuple[str, ...]
    window_ms: int = 1000
    hop_ms: int = 250
    timeline: tuple[TimelinePoint, ...] = ()
    masked: tuple[str, ...] = ()
    embedding_file: str | None = None  # "embedding.npy" ([D] float32) when written
    timings_ms: dict[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    weights: dict[str, float] = field(default_factory=dict)
    trim: ClipTrimInfo | None = None
    fallback: dict[str, str] | None = None  # {action, suggested_response} when unsure (docs/adapt.md)
    reply_style: str | None = None  # the configured answer style for the label


if TYPE_CHECKING:  # result.model imports this module; these names only annotate ClipEmotion
    from callsense.result.model import ModelInfo, SourceInfo
