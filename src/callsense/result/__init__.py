"""The per-call result (:class:`CallAnalysis`), its JSON Schema and result.json I/O."""

from callsense.result.emotion import CallEmotion, EmotionPeak, RoleEmotion, SegmentEmotion, TimelinePoint
from callsense.result.io import dump_result, read_result, result_from_dict
from callsense.result.model import (
    SCHEMA_VERSION,
    AudioEvent,
    CallAnalysis,
    ModelInfo,
    ProcessingLog,
    Segment,
    Separation,
    Skipped,
    SourceInfo,
    TokenTime,
    TrackInfo,
)
from callsense.result.qa import AlertRecord, CallMetrics, Evidence, QAScore, RuleHit

__all__ = [
    "SCHEMA_VERSION",
    "AlertRecord",
    "AudioEvent",
    "CallAnalysis",
    "CallEmotion",
    "CallMetrics",
    "EmotionPeak",
    "Evidence",
    "ModelInfo",
    "ProcessingLog",
    "QAScore",
    "RoleEmotion",
    "RuleHit",
    "Segment",
    "SegmentEmotion",
    "Separation",
    "Skipped",
    "SourceInfo",
    "TimelinePoint",
    "TokenTime",
    "TrackInfo",
    "dump_result",
    "read_result",
    "result_from_dict",
]
