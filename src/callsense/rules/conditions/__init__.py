"""The built-in condition types, one class each (schema, checks, evaluation), registered on import.

To add a type, subclass :class:`callsense.rules.model.Condition` and decorate it with
:func:`callsense.rules.model.register_condition`; see docs/architecture.md ("add a rule condition").
"""

from __future__ import annotations

from callsense.rules.conditions.custom import CustomEmotion
from callsense.rules.conditions.emotion import Emotion, EmotionChange
from callsense.rules.conditions.metadata import History, Metadata
from callsense.rules.conditions.outlier import Outlier
from callsense.rules.conditions.text import Keywords, Regex, Repetition, SegmentCount, Similarity, TextLength
from callsense.rules.conditions.timing import (Duration, Event, Loudness, Silence, Speech, SpeechRate, TalkOver,
                                              TalkRatio)
from callsense.rules.model import CONDITIONS, Condition, register_condition

__all__ = [
    "CONDITIONS", "Condition", "CustomEmotion", "Duration", "Emotion", "EmotionChange", "Event", "History", "Keywords", "Loudness",
    "Metadata", "Outlier", "Regex", "Repetition", "SegmentCount", "Silence", "Similarity", "Speech", "SpeechRate", "TalkOver",
    "TalkRatio", "TextLength", "register_condition",
]
