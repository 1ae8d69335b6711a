"""The two engine interfaces the pipeline composes, and their typed inputs and outputs.

An engine gets speech segments as 16 kHz float32 arrays that carry their position on the call's time
line, and returns one output per segment, in order. Engines batch internally as they see fit.
Implementations live one per runtime (``engines/sensevoice/onnx.py``, ...) and are created through
``callsense.engines.registry``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from callsense.errors import UsageError
from callsense.labels import EMOTION_NAMES, LANGUAGES
from callsense.result.model import ModelInfo, TokenTime

GRANULARITIES = ("utterance", "frame")  # emotion per segment, or also a timeline of windows


@dataclass(frozen=True)
class SegmentAudio:
    id: str
    samples: np.ndarray  # float32, mono, 16 kHz
    start_ms: int  # position of samples[0] on the call's time line
    channel: int = 0
    role: str = "unknown"


@dataclass(frozen=True)
class AsrOptions:
    language: str = "auto"  # one of callsense.labels.LANGUAGES
    use_itn: bool = True
    both_itn: bool = False  # also decode without ITN (a second pass on the onnx runtime)
    ban_emo_unk: bool = False

    def __post_init__(self) -> None:  # the one check of the language, wherever the options come from
        if self.language not in LANGUAGES:
            raise UsageError(f"unknown language {self.language!r}; valid: {', '.join(LANGUAGES)}")


@dataclass(frozen=True)
class Transcription:
    text: str  # without tags, with ITN when use_itn
    language: str | None  # "zh", "en", ... ("nospeech" mapped to None)
    emotion: str | None  # SenseVoice tag, e.g. "ANGRY"
    events: tuple[str, ...]  # event tags as emitted, e.g. ("Speech",) or ("BGM",)
    raw_tags: str  # "<|zh|><|NEUTRAL|><|Speech|><|withitn|>"
    tokens: tuple[TokenTime, ...] = ()  # on the call time line
    text_no_itn: str | None = None
    itn: bool = True
    status: Literal["ok", "empty", "too_short"] = "ok"


@dataclass(frozen=True)
class EmotionOptions:
    granularity: Literal["utterance", "frame"] = "frame"
    window_ms: int = 1000
    hop_ms: int = 250
    masked: tuple[str, ...] = ()  # labels the user disables; the rest is renormalised
    min_duration_ms: int = 500
    min_level_dbfs: float = -50.0
    embeddings: bool = True
    weights: tuple[tuple[str, float], ...] = ()  # sensitivity per class, applied before the label is chosen

    def __post_init__(self) -> None:  # the one check of these options, wherever they come from
        bad_w = [f"{k}={v}" for k, v in self.weights if k not in EMOTION_NAMES or not (0 < float(v) < 100)]
        if bad_w:
            raise UsageError(f"emotion weights: {', '.join(bad_w)} not valid; labels are {', '.join(EMOTION_NAMES)} "
                             "and weights must be > 0 (1 = unchanged), e.g. angry=1.3,neutral=0.8")
        if self.granularity not in GRANULARITIES:
            raise UsageError(f"granularity must be {' or '.join(GRANULARITIES)}, not {self.granularity!r}")
        bad = [m for m in self.masked if m not in EMOTION_NAMES]
        if bad:
            raise UsageError(f"mask: unknown emotion {', '.join(bad)}; valid: {', '.join(EMOTION_NAMES)}")
        if self.window_ms <= 0 or self.hop_ms <= 0:
            raise UsageError(f"timeline window and hop must be > 0 ms, not {self.window_ms} / {self.hop_ms}")


@dataclass(frozen=True)
class EmotionWindow:
    start_ms: int  # call time line
    end_ms: int
    scores: tuple[float, ...]


@dataclass(frozen=True)
class EmotionOutput:
    scores: tuple[float, ...]  # 9 classes, model order, sums to 1
    embedding: np.ndarray | None  # [D] utterance embedding
    windows: tuple[EmotionWindow, ...] = ()  # the timeline (frame granularity)
    flags: tuple[str, ...] = ()
    reason: str | None = None
    custom: object | None = None  # a custom head's answer (callsense.result.emotion.CustomEmotion)


@runtime_checkable
class AsrEngine(Protocol):
    """Segment audio in; text, language, tags and timestamps out."""

    @property
    def info(self) -> ModelInfo: ...

    def transcribe(self, segments: Sequence[SegmentAudio], options: AsrOptions) -> list[Transcription]: ...

    # Optional: ``prepare(options: AsrOptions) -> None`` loads whatever ``transcribe`` with these options
    # would load lazily; the pipeline calls it when it loads engines ahead of use (in the background).


@runtime_checkable
class EmotionEngine(Protocol):
    """Segment audio in; a 9-class distribution, an embedding and a timeline out."""

    @property
    def info(self) -> ModelInfo: ...

    def score(self, segments: Sequence[SegmentAudio], options: EmotionOptions) -> list[EmotionOutput]: ...
