"""Named constants and label sets, defined once (sample rate, emotion classes, SenseVoice tags).

Everything that describes a model's vocabulary lives here so that engines, rules, the store and the
UI agree on spelling, order, Chinese names and emoji.
"""

from __future__ import annotations

from dataclasses import dataclass

SAMPLE_RATE = 16_000
"""Every model in callsense consumes 16 kHz mono float32 in [-1, 1]."""

ROLES = ("agent", "customer", "unknown")
LANGUAGES = ("auto", "zh", "en", "yue", "ja", "ko")
"""Language codes accepted by ``--language``; ``auto`` lets SenseVoice identify the language."""


@dataclass(frozen=True)
class EmotionLabel:
    index: int
    name: str  # English, lower case, the model's own label
    en: str  # display name
    zh: str  # the seeds' display name (愤怒, not the label file's 生气)
    zh_model: str  # the name in the model's tokens.txt
    emoji: str


EMOTIONS: tuple[EmotionLabel, ...] = (
    EmotionLabel(0, "angry", "Angry", "愤怒", "生气", "😠"),
    EmotionLabel(1, "disgusted", "Disgusted", "厌恶", "厌恶", "🤢"),
    EmotionLabel(2, "fearful", "Fearful", "恐惧", "恐惧", "😨"),
    EmotionLabel(3, "happy", "Happy", "快乐", "开心", "😊"),
    EmotionLabel(4, "neutral", "Neutral", "中性", "中立", "😐"),
    EmotionLabel(5, "other", "Other", "其他", "其他", "🤔"),
    EmotionLabel(6, "sad", "Sad", "悲伤", "难过", "😢"),
    EmotionLabel(7, "surprised", "Surprised", "惊讶", "吃惊", "😲"),
    EmotionLabel(8, "unknown", "Unknown", "未知", "<unk>", "❓"),
)
"""emotion2vec+ classes in model order (index = position in the score vector)."""

EMOTION_NAMES: tuple[str, ...] = tuple(e.name for e in EMOTIONS)
EMOTION_BY_NAME: dict[str, EmotionLabel] = {e.name: e for e in EMOTIONS}

POSITIVE_EMOTIONS = frozenset({"happy"})
NEGATIVE_EMOTIONS = frozenset({"angry", "disgusted", "fearful", "sad"})
NEUTRAL_EMOTIONS = frozenset({"neutral", "other", "surprised", "unknown"})

# SenseVoice emotion tags -> emotion2vec label names (used when emotion2vec is skipped).
SENSEVOICE_EMOTION_TO_LABEL: dict[str, str] = {
    "HAPPY": "happy",
    "SAD": "sad",
    "ANGRY": "angry",
    "NEUTRAL": "neutral",
    "FEARFUL": "fearful",
    "DISGUSTED": "disgusted",
    "SURPRISED": "surprised",
    "EMO_UNKNOWN": "unknown",
}
SENSEVOICE_EMOTIONS: tuple[str, ...] = tuple(SENSEVOICE_EMOTION_TO_LABEL)
SENSEVOICE_EVENTS: tuple[str, ...] = (
    "Speech",
    "BGM",
    "Applause",
    "Laughter",
    "Cry",
    "Sneeze",
    "Breath",
    "Cough",
    "Sing",
    "Speech_Noise",
    "Event_UNK",
    "GBG",
)
"""Audio-event tags. "Speech" means no event; the rest are reported as events."""
TONE_EVENTS: tuple[str, ...] = ("Ringback", "BusyTone", "DialTone", "DTMF")
"""Telephone tones found by ``callsense.analysis.tones`` (SenseVoice has no tag for them)."""

# Display convention (model-formats.md): cough is 😷, not FunASR's 🤧.
TAG_EMOJI: dict[str, str] = {
    "HAPPY": "😊",
    "SAD": "😔",
    "ANGRY": "😡",
    "FEARFUL": "😰",
    "DISGUSTED": "🤢",
    "SURPRISED": "😮",
    "BGM": "🎼",
    "Applause": "👏",
    "Laughter": "😀",
    "Cry": "😭",
    "Sneeze": "🤧",
    "Cough": "😷",
}
