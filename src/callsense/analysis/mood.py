"""Mood over time: a user's (or a customer's) last emotion answers, their volatility and trend.

- **volatility**: the mean cosine distance ``1 - cos(e[i-1], e[i])`` between the utterance embeddings of
  successive answers in the window, oldest to newest (0: the voice sounds the same each time; 1:
  unrelated; up to 2: opposite). ``None`` with fewer than two answers.
- **trend**: each answer's valence is the expectation of its distribution under :data:`VALENCE`
  (happy +1; angry, disgusted, fearful, sad -1; the rest 0); the least-squares slope of valence over
  the answers' order is ``valence_slope``, and ``trend`` is ``improving`` (slope > +:data:`TREND_EPS`),
  ``worsening`` (< -:data:`TREND_EPS`) or ``stable``; ``None`` with fewer than two answers.
- **alert**: when volatility is at or over the threshold and the window holds at least
  :data:`MIN_ALERT_POINTS` answers (one jump between two answers is not yet a pattern).

Pure functions over :class:`MoodPoint` lists; the store (callsense.store.mood) keeps and reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from callsense.labels import EMOTION_NAMES

VALENCE: dict[str, float] = {"happy": 1.0, "angry": -1.0, "disgusted": -1.0, "fearful": -1.0, "sad": -1.0,
                             "neutral": 0.0, "surprised": 0.0, "other": 0.0, "unknown": 0.0}
TREND_EPS = 0.05  # valence units per answer
MIN_ALERT_POINTS = 3
DEFAULT_HISTORY = 10  # answers kept per user (ServiceSettings.mood_history)
DEFAULT_ALERT = 0.35  # volatility threshold (ServiceSettings.mood_alert); tune it on your own speakers


@dataclass(frozen=True)
class MoodPoint:
    at: datetime  # naive UTC
    label: str
    confidence: float
    distribution: tuple[float, ...]  # the nine classes, model order
    embedding: np.ndarray | None  # L2-normalised utterance (or customer) embedding
    call_id: str | None = None  # a customer's call

    @property
    def valence(self) -> float:
        return float(sum(p * VALENCE[name] for name, p in zip(EMOTION_NAMES, self.distribution)))


@dataclass(frozen=True)
class Mood:
    history: tuple[MoodPoint, ...]  # oldest first
    volatility: float | None
    trend: str | None  # improving, worsening, stable
    valence_slope: float | None
    alert: bool
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "history": [{"at": p.at.isoformat(timespec="milliseconds") + "Z", "label": p.label,
                         "confidence": round(p.confidence, 4), "valence": round(p.valence, 4),
                         "distribution": dict(zip(EMOTION_NAMES, (round(x, 4) for x in p.distribution))),
                         **({"call_id": p.call_id} if p.call_id else {})} for p in self.history],
            "volatility": None if self.volatility is None else round(self.volatility, 4),
            "trend": self.trend, "valence_slope": None if self.valence_slope is None else round(self.valence_slope, 4),
            "window": len(self.history), "threshold": self.threshold, "alert": self.alert,
        }

    def alert_dict(self, subject: str) -> dict[str, Any] | None:
        """The answer's ``alert`` (None when there is none)."""
        if not self.alert:
            return None
        return {"type": "mood_volatility", "subject": subject, "volatility": round(self.volatility or 0.0, 4),
                "threshold": self.threshold,
                "message": f"情绪波动 / mood volatility {self.volatility:.2f} over the last {len(self.history)} "
                           f"answers is at or over {self.threshold:g}"}


def volatility(embeddings: Sequence[np.ndarray]) -> float | None:
    """Mean cosine distance between successive embeddings (``None`` for fewer than two)."""
    vs = [np.asarray(v, np.float64) for v in embeddings if v is not None]
    if len(vs) < 2:
        return None
    m = np.stack(vs)
    m /= np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
    return float(np.mean(1.0 - np.sum(m[1:] * m[:-1], axis=1)))


def valence_slope(values: Sequence[float]) -> float | None:
    if len(values) < 2:
        return None
    x = np.arange(len(values), dtype=np.float64)
    return float(np.polyfit(x, np.asarray(values, np.float64), 1)[0])


def summarize(points: Sequence[MoodPoint], threshold: float = DEFAULT_ALERT) -> Mood:
    """The mood of ``points`` (oldest first)."""
    pts = tuple(points)
    vol = volatility([p.embedding for p in pts if p.embedding is not None])
    slope = valence_slope([p.valence for p in pts])
    trend = None if slope is None else ("improving" if slope > TREND_EPS else
                                        "worsening" if slope < -TREND_EPS else "stable")
    alert = vol is not None and len(pts) >= MIN_ALERT_POINTS and vol >= threshold
    return Mood(pts, vol, trend, slope, alert, threshold)
