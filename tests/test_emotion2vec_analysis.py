"""Call-level emotion per role (callsense.analysis.emotion): pure functions over segments and timeline."""

from __future__ import annotations

import numpy as np
import pytest

from callsense.analysis.emotion import quarter_bounds, role_emotions, segment_emotion, timeline_points
from callsense.engines.base import EmotionOutput, EmotionWindow
from callsense.labels import EMOTION_NAMES
from callsense.result.emotion import SegmentEmotion
from callsense.result.model import Segment


def onehot(label: str, p: float = 1.0) -> tuple[float, ...]:
    rest = (1 - p) / 8
    return tuple(p if n == label else rest for n in EMOTION_NAMES)


def em(scores, reason=None) -> SegmentEmotion:
    best = EMOTION_NAMES[int(np.argmax(scores))]
    return SegmentEmotion(label=best, label_zh="", emoji="", confidence=max(scores), scores=tuple(scores),
                          reason=reason)


def segment(sid, role, start, end, scores, reason=None) -> Segment:
    return Segment(id=sid, channel=0 if role == "agent" else 1, role=role, start_ms=start, end_ms=end,
                   emotion=em(scores, reason))


def test_duration_weighted_mean_dominant_and_forced_segments_left_out():
    segs = [
        segment("s1", "customer", 0, 1000, onehot("angry")),
        segment("s2", "customer", 2000, 5000, onehot("neutral")),
        segment("s3", "customer", 6000, 6300, onehot("unknown"), reason="too_short"),
        segment("s4", "agent", 1000, 2000, onehot("happy")),
    ]
    roles = {r.role: r for r in role_emotions(segs, duration_ms=8000)}
    assert list(roles) == ["agent", "customer"]
    c = roles["customer"]
    assert c.speech_ms == 4300
    assert c.mean_scores[EMOTION_NAMES.index("angry")] == pytest.approx(1000 / 4000)
    assert c.mean_scores[EMOTION_NAMES.index("neutral")] == pytest.approx(3000 / 4000)
    assert c.mean_scores[EMOTION_NAMES.index("unknown")] == 0.0
    assert c.dominant == "neutral" and roles["agent"].dominant == "happy"
    assert sum(c.mean_scores) == pytest.approx(1.0)


def test_a_role_with_only_forced_segments_still_gets_an_entry():
    roles = role_emotions([segment("s1", "agent", 0, 300, onehot("unknown"), reason="too_short")], duration_ms=1000)
    assert roles[0].dominant == "unknown"


def test_peaks_come_from_the_timeline_with_their_time():
    seg = segment("s1", "customer", 10_000, 14_000, onehot("neutral", 0.6))
    out = EmotionOutput(scores=seg.emotion.scores, embedding=None, windows=(
        EmotionWindow(10_000, 11_000, onehot("neutral", 0.9)),
        EmotionWindow(11_000, 12_000, onehot("angry", 0.95)),
        EmotionWindow(12_000, 13_000, onehot("angry", 0.7)),
        EmotionWindow(13_000, 14_000, onehot("sad", 0.4)),
    ))
    points = timeline_points(out, segment_id="s1", role="customer", channel=1)
    assert [p.label for p in points] == ["neutral", "angry", "angry", "sad"]
    (role,) = role_emotions([seg], duration_ms=20_000, timeline=points)
    assert [(p.label, p.time_ms, p.segment_id) for p in role.peaks] == [("angry", 11_000, "s1")]
    assert role.peaks[0].score == pytest.approx(0.95)
    (lower,) = role_emotions([seg], duration_ms=20_000, timeline=points, peak_min=0.3)
    assert [p.label for p in lower.peaks] == ["angry", "sad"]  # strongest first; neutral never a peak


def test_quarters_follow_the_call_and_are_none_where_the_role_is_silent():
    segs = [segment("s1", "customer", 0, 2000, onehot("angry")), segment("s2", "customer", 6000, 8000, onehot("happy"))]
    (role,) = role_emotions(segs, duration_ms=8000)
    assert quarter_bounds(8000) == [(0, 2000), (2000, 4000), (4000, 6000), (6000, 8000)]
    q = role.quarters
    assert q[1] is None and q[2] is None
    assert q[0][EMOTION_NAMES.index("angry")] == pytest.approx(1.0)
    assert q[3][EMOTION_NAMES.index("happy")] == pytest.approx(1.0)


def test_segment_emotion_carries_label_names_emoji_flags_and_index():
    out = EmotionOutput(scores=onehot("sad", 0.8), embedding=np.zeros(4, np.float32), flags=("low_level",))
    e = segment_emotion(out, embedding_index=3)
    assert (e.label, e.label_zh, e.emoji, e.embedding_index, e.flags) == ("sad", "悲伤", "😢", 3, ("low_level",))
    assert e.confidence == pytest.approx(0.8) and e.source == "emotion2vec"
