"""Emotion in the result, from engine outputs up to call level. Pure functions, no I/O.

The one path from an engine's output to the result types: ``segment_emotion`` (emotion2vec output →
:class:`SegmentEmotion`), ``sensevoice_emotion`` (SenseVoice's tag → a one-hot one, when emotion2vec
did not run), ``timeline_points`` (its windows → the timeline). Then, per role:

* ``mean_scores``: the 9-class distributions of a role's segments averaged with their durations as
  weights. Segments whose label was forced (``reason``, e.g. ``too_short``) are left out, unless a role
  has nothing else.
* ``dominant``: the top class of that mean.
* ``peaks``: for each non-neutral class (angry, disgusted, fearful, happy, sad, surprised), the
  strongest moment of the role: the timeline window (or, lacking windows, the segment) with the highest
  score for the class, at its start time, when that score reaches ``peak_min``; strongest first.
* ``quarters``: the call split into four equal parts; per part, the overlap-weighted mean of the role's
  timeline windows (or segments), ``None`` where the role did not speak.

Window scores approximate local emotion: emotion2vec's features see the whole segment.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from callsense.analysis.common import mean_distribution, one_hot
from callsense.engines.base import EmotionOutput
from callsense.labels import EMOTION_BY_NAME, EMOTION_NAMES, ROLES, SENSEVOICE_EMOTION_TO_LABEL
from callsense.result.emotion import EmotionPeak, RoleEmotion, SegmentEmotion, TimelinePoint
from callsense.result.model import Segment

PEAK_LABELS: tuple[str, ...] = ("angry", "disgusted", "fearful", "happy", "sad", "surprised")
"""Classes whose strongest moment is worth reporting (neutral, other and unknown are not)."""

_N = len(EMOTION_NAMES)


def _round(scores: Iterable[float]) -> tuple[float, ...]:
    return tuple(round(float(s), 6) for s in scores)


def segment_emotion(output: EmotionOutput, embedding_index: int | None = None) -> SegmentEmotion:
    """A segment's result entry from an engine output (label, Chinese name, emoji, confidence)."""
    best = int(np.argmax(output.scores))
    e = EMOTION_BY_NAME[EMOTION_NAMES[best]]
    return SegmentEmotion(label=e.name, label_zh=e.zh, emoji=e.emoji, confidence=round(float(output.scores[best]), 6),
                          scores=_round(output.scores), source="emotion2vec", embedding_index=embedding_index,
                          flags=tuple(output.flags), reason=output.reason,
                          custom=output.custom if output.reason is None else None)  # type: ignore[arg-type]


def sensevoice_emotion(tag: str | None) -> SegmentEmotion | None:
    """SenseVoice's emotion tag as a one-hot :class:`SegmentEmotion` (None without one)."""
    label = SENSEVOICE_EMOTION_TO_LABEL.get(tag or "")
    if label is None:
        return None
    e = EMOTION_BY_NAME[label]
    return SegmentEmotion(label=label, label_zh=e.zh, emoji=e.emoji, confidence=1.0, scores=one_hot(label),
                          source="sensevoice")


def timeline_points(output: EmotionOutput, *, segment_id: str, role: str = "unknown",
                    channel: int = 0) -> tuple[TimelinePoint, ...]:
    """The engine's windows of one segment as timeline points (already on the call's time line)."""
    return tuple(
        TimelinePoint(start_ms=w.start_ms, end_ms=w.end_ms, segment_id=segment_id, role=role, channel=channel,
                      scores=_round(w.scores), label=EMOTION_NAMES[int(np.argmax(w.scores))])
        for w in output.windows
    )


@dataclass(frozen=True)
class _Piece:
    start_ms: int
    end_ms: int
    scores: np.ndarray
    segment_id: str


def _weighted_mean(pieces: Sequence[tuple[float, np.ndarray]]) -> np.ndarray | None:
    mean = mean_distribution(pieces)
    if mean is None:
        return None
    arr = np.asarray(mean, np.float64)
    return arr / arr.sum()


def role_emotions(segments: Sequence[Segment], *, duration_ms: int, timeline: Sequence[TimelinePoint] = (),
                  peak_min: float = 0.5) -> list[RoleEmotion]:
    """Per-role aggregates (in ``ROLES`` order, roles without emotion left out). See the module doc."""
    by_role: dict[str, list[Segment]] = {}
    for seg in segments:
        if seg.emotion is not None and len(seg.emotion.scores) == _N:
            by_role.setdefault(seg.role, []).append(seg)
    points_by_segment: dict[str, list[TimelinePoint]] = {}
    for p in timeline:
        points_by_segment.setdefault(p.segment_id, []).append(p)
    order = [r for r in ROLES if r in by_role] + sorted(r for r in by_role if r not in ROLES)
    return [_role(role, by_role[role], points_by_segment, duration_ms, peak_min) for role in order]


def _role(role: str, segs: list[Segment], points: dict[str, list[TimelinePoint]], duration_ms: int,
          peak_min: float) -> RoleEmotion:
    scored = [s for s in segs if s.emotion is not None and s.emotion.reason is None] or segs
    mean = _weighted_mean([(max(s.duration_ms, 1), np.asarray(s.emotion.scores, np.float64)) for s in scored])
    assert mean is not None  # every segment weighs at least 1 ms
    pieces = []
    for s in scored:
        pts = points.get(s.id)
        if pts:
            pieces += [_Piece(p.start_ms, p.end_ms, np.asarray(p.scores, np.float64), s.id) for p in pts]
        else:
            pieces.append(_Piece(s.start_ms, s.end_ms, np.asarray(s.emotion.scores, np.float64), s.id))
    return RoleEmotion(
        role=role,
        speech_ms=int(sum(s.duration_ms for s in segs)),
        mean_scores=_round(mean),
        dominant=EMOTION_NAMES[int(np.argmax(mean))],
        peaks=_peaks(pieces, peak_min),
        quarters=_quarters(pieces, duration_ms),
    )


def _peaks(pieces: Sequence[_Piece], peak_min: float) -> tuple[EmotionPeak, ...]:
    peaks = []
    for label in PEAK_LABELS:
        k = EMOTION_NAMES.index(label)
        best = max(pieces, key=lambda p: (p.scores[k], -p.start_ms), default=None)
        if best is not None and best.scores[k] >= peak_min:
            peaks.append(EmotionPeak(label=label, score=round(float(best.scores[k]), 6), time_ms=best.start_ms,
                                     segment_id=best.segment_id))
    return tuple(sorted(peaks, key=lambda p: (-p.score, p.time_ms)))


def quarter_bounds(duration_ms: int) -> list[tuple[int, int]]:
    """The four equal parts of the call, in ms (the last one ends at ``duration_ms``)."""
    cuts = [round(duration_ms * q / 4) for q in range(5)]
    return [(cuts[q], cuts[q + 1]) for q in range(4)]


def _quarters(pieces: Sequence[_Piece], duration_ms: int) -> tuple[tuple[float, ...] | None, ...]:
    out: list[tuple[float, ...] | None] = []
    for q0, q1 in quarter_bounds(max(duration_ms, max((p.end_ms for p in pieces), default=0))):
        inside = [(min(p.end_ms, q1) - max(p.start_ms, q0), p.scores) for p in pieces]
        mean = _weighted_mean([(w, s) for w, s in inside if w > 0])
        out.append(_round(mean) if mean is not None else None)
    return tuple(out)
