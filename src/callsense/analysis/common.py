"""Small pure helpers shared by the metrics and the rule engine: intervals, text units, emotions, events."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

from callsense.labels import (
    EMOTION_BY_NAME,
    EMOTION_NAMES,
    NEGATIVE_EMOTIONS,
    POSITIVE_EMOTIONS,
    SENSEVOICE_EMOTION_TO_LABEL,
)
from callsense.result.model import AudioEvent, CallAnalysis, Segment

CJK_LANGUAGES = frozenset({"zh", "yue", "ja", "ko"})
_LATIN_WORD = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)*")


# ------------------------------------------------------------------------------------ intervals
def clip(start: int, end: int, duration_ms: int) -> tuple[int, int]:
    """``[start, end)`` clipped to the call; an inverted interval becomes empty."""
    s = min(max(int(start), 0), max(duration_ms, 0))
    e = min(max(int(end), s), max(duration_ms, 0))
    return s, e


def merge(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Union of half-open intervals, sorted; empty ones dropped, touching ones joined."""
    out: list[tuple[int, int]] = []
    for s, e in sorted(i for i in intervals if i[1] > i[0]):
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def total(intervals: Iterable[tuple[int, int]]) -> int:
    return sum(e - s for s, e in merge(intervals))


def subtract(base: Sequence[tuple[int, int]], cut: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Parts of ``base`` not covered by ``cut`` (both unions of intervals)."""
    cut = merge(cut)
    out = []
    for s, e in merge(base):
        cur = s
        for cs, ce in cut:
            if ce <= cur or cs >= e:
                continue
            if cs > cur:
                out.append((cur, cs))
            cur = max(cur, ce)
        if cur < e:
            out.append((cur, e))
    return out


def intersect_total(a: Sequence[tuple[int, int]], b: Sequence[tuple[int, int]]) -> int:
    """Length of the intersection of two unions of intervals."""
    b = merge(b)
    n = 0
    for s, e in merge(a):
        for bs, be in b:
            lo, hi = max(s, bs), min(e, be)
            if hi > lo:
                n += hi - lo
    return n


def overlaps_any(start: int, end: int, ranges: Sequence[tuple[int, int]]) -> bool:
    """True when ``[start, end)`` shares time with a range; a point (start == end) counts if inside."""
    for s, e in ranges:
        if start == end:
            if s <= start < e or start == s:
                return True
        elif start < e and end > s:
            return True
    return False


# ---------------------------------------------------------------------------------------- text
def is_cjk_char(ch: str) -> bool:
    name = unicodedata.name(ch, "")
    return name.startswith(("CJK", "HIRAGANA", "KATAKANA", "HANGUL")) and ch.isalnum()


def count_chars(text: str) -> int:
    """Characters that carry speech: letters, digits and ideographs (no spaces or punctuation)."""
    return sum(1 for ch in text if ch.isalnum())


def count_words(text: str) -> int:
    return len(_LATIN_WORD.findall(text))


def rate_unit(text: str, language: str | None) -> str | None:
    """``chars_per_min`` for zh/yue/ja/ko, ``words_per_min`` for en; guessed from the text otherwise."""
    if not text.strip():
        return None
    if language in CJK_LANGUAGES:
        return "chars_per_min"
    if language == "en":
        return "words_per_min"
    cjk = sum(1 for ch in text if is_cjk_char(ch))
    return "chars_per_min" if cjk >= count_words(text) and cjk > 0 else (
        "words_per_min" if count_words(text) else None
    )


def speech_units(text: str, unit: str | None) -> int:
    """Characters (each CJK character, each Latin word as one) or words, per ``unit``."""
    if unit == "words_per_min":
        return count_words(text)
    if unit == "chars_per_min":
        cjk = sum(1 for ch in text if is_cjk_char(ch))
        latin = count_words("".join(" " if is_cjk_char(ch) else ch for ch in text))
        return cjk + latin
    return 0


# ------------------------------------------------------------------------------------- emotion
def segment_scores(seg: Segment) -> tuple[float, ...] | None:
    """The segment's 9-class emotion distribution: emotion2vec's, else SenseVoice's tag one-hot."""
    if seg.emotion is not None and len(seg.emotion.scores) == len(EMOTION_NAMES):
        return tuple(float(x) for x in seg.emotion.scores)
    if seg.emotion is not None and seg.emotion.label in EMOTION_BY_NAME:
        return one_hot(seg.emotion.label)
    label = SENSEVOICE_EMOTION_TO_LABEL.get(seg.asr_emotion or "")
    return one_hot(label) if label else None


def mean_distribution(weighted: Iterable[tuple[float, Sequence[float]]]) -> tuple[float, ...] | None:
    """The weighted mean of emotion distributions (``(weight, scores)`` pairs); None when nothing weighs.

    The one definition of "overall emotion" behind role aggregates, call metrics and the report.
    """
    acc = [0.0] * len(EMOTION_NAMES)
    weight = 0.0
    for w, scores in weighted:
        if w <= 0:
            continue
        acc = [a + w * float(x) for a, x in zip(acc, scores)]
        weight += w
    if weight <= 0:
        return None
    return tuple(a / weight for a in acc)


def overall_emotion(segments: Iterable[Segment], role: str | None = None) -> tuple[float, ...] | None:
    """Duration-weighted mean distribution of ``role``'s segments (every segment when None)."""
    return mean_distribution((max(s.end_ms - s.start_ms, 1), x) for s in segments
                             if (role is None or s.role == role) and (x := segment_scores(s)) is not None)


def one_hot(label: str) -> tuple[float, ...]:
    return tuple(1.0 if n == label else 0.0 for n in EMOTION_NAMES)


def score_of(scores: Sequence[float], labels: Iterable[str]) -> float:
    """Summed probability of ``labels``."""
    return float(sum(scores[EMOTION_BY_NAME[lb].index] for lb in labels if lb in EMOTION_BY_NAME))


def valence(scores: Sequence[float]) -> float:
    return score_of(scores, POSITIVE_EMOTIONS) - score_of(scores, NEGATIVE_EMOTIONS)


def dominant(scores: Sequence[float]) -> str:
    best = max(range(len(scores)), key=lambda i: scores[i])
    return EMOTION_NAMES[best]


# -------------------------------------------------------------------------------------- events
def call_events(result: CallAnalysis) -> tuple[AudioEvent, ...]:
    """``result.events`` plus an event for each segment event tag not already listed there.

    The pipeline may list SenseVoice's per-segment event tags as events or leave them on the
    segments; counting them once either way keeps "3 coughs" meaning three.
    """
    events = list(result.events)
    listed = {(ev.type, ev.segment_id) for ev in events if ev.segment_id}
    for seg in result.segments:
        for tag in seg.asr_events:
            if tag == "Speech" or (tag, seg.id) in listed:
                continue
            events.append(AudioEvent(tag, seg.start_ms, seg.end_ms, seg.channel, seg.role, seg.id))
            listed.add((tag, seg.id))
    events.sort(key=lambda ev: (ev.start_ms, ev.end_ms, ev.type))
    return tuple(events)
