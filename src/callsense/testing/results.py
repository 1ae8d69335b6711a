"""Build :class:`~callsense.result.CallAnalysis` objects by hand, for tests and examples.

    from callsense.testing.results import make_result, seg, event

    result = make_result(
        [seg("agent", 0, 2000, "您好，请问有什么可以帮您", emotion="happy"),
         seg("customer", 2500, 6000, "我要投诉", emotion="angry", level_dbfs=-12.0)],
        duration_ms=10_000, stereo=True, events=[event("Cough", 3000, 3500, role="agent")],
        metadata={"queue": "vip"},
    )

Segments get ids ``s0001``, ``s0002``... in start-time order and the channel of their role in the
channel map. ``scored(result)`` adds metrics, rule hits and the QA score from the real scorer.
``hypothesis_results()`` is a hypothesis strategy of valid results (needs hypothesis).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from callsense.labels import EMOTION_BY_NAME, EMOTION_NAMES
from callsense.result.emotion import SegmentEmotion
from callsense.result.model import (
    SCHEMA_VERSION,
    AudioEvent,
    CallAnalysis,
    ProcessingLog,
    Segment,
    Separation,
    SourceInfo,
    TrackInfo,
)

SegmentSpec = Segment | Mapping[str, Any] | Sequence[Any]


def emotion(label_or_scores: str | Mapping[str, float] | Sequence[float], confidence: float | None = None
            ) -> SegmentEmotion:
    """A :class:`SegmentEmotion` from a label (``"angry"``, optionally with its confidence, the rest
    spread evenly), a ``(label, confidence)`` pair, a ``{label: score}`` mapping or 9 scores."""
    if (isinstance(label_or_scores, (tuple, list)) and len(label_or_scores) == 2
            and isinstance(label_or_scores[0], str)):
        label_or_scores, confidence = label_or_scores[0], float(label_or_scores[1])
    if isinstance(label_or_scores, str):
        label = label_or_scores
        conf = 1.0 if confidence is None else confidence
        rest = (1.0 - conf) / (len(EMOTION_NAMES) - 1)
        scores = tuple(conf if n == label else rest for n in EMOTION_NAMES)
    elif isinstance(label_or_scores, Mapping):
        scores = tuple(float(label_or_scores.get(n, 0.0)) for n in EMOTION_NAMES)
        s = sum(scores) or 1.0
        scores = tuple(x / s for x in scores)
    else:
        scores = tuple(float(x) for x in label_or_scores)
    best = max(range(len(scores)), key=lambda i: scores[i])
    info = EMOTION_BY_NAME[EMOTION_NAMES[best]]
    return SegmentEmotion(label=info.name, label_zh=info.zh, emoji=info.emoji, confidence=scores[best],
                          scores=scores)


def seg(role: str, start_ms: int, end_ms: int, text: str = "", *, emotion_: Any = None, **fields: Any
        ) -> dict[str, Any]:
    """A segment spec for :func:`make_result`. ``emotion=`` takes what :func:`emotion` takes; other
    keywords are :class:`Segment` fields (``language``, ``asr_emotion``, ``asr_events``, ``level_dbfs``...)."""
    spec = {"role": role, "start_ms": int(start_ms), "end_ms": int(end_ms), "text": text, **fields}
    if emotion_ is not None:
        spec["emotion"] = emotion_
    return spec


def event(type_: str, start_ms: int, end_ms: int, *, role: str = "unknown", channel: int | None = None,
          segment_id: str | None = None) -> AudioEvent:
    return AudioEvent(type=type_, start_ms=int(start_ms), end_ms=int(end_ms),
                      channel=channel if channel is not None else _channel(role, ("agent", "customer")),
                      role=role, segment_id=segment_id)


def make_result(
    segments: Iterable[SegmentSpec] = (),
    *,
    duration_ms: int | None = None,
    stereo: bool = True,
    channel_map: tuple[str, ...] = ("agent", "customer"),
    events: Iterable[AudioEvent] = (),
    metadata: Mapping[str, Any] | None = None,
    call_id: str = "test-call",
    started_at: str = "2026-01-05T09:30:00Z",
    **fields: Any,
) -> CallAnalysis:
    """A valid :class:`CallAnalysis` around ``segments`` (see the module docstring).

    ``duration_ms`` defaults to the end of the last segment or event. ``stereo=False`` gives a
    mono recording (one track, ``separation.method == "mono"``). Extra keywords replace fields of
    the result (``emotion=``, ``metrics=``...).
    """
    cmap = tuple(channel_map) if stereo else ("unknown",)
    built = [_segment(s, cmap, stereo) for s in segments]
    built.sort(key=lambda s: (s.start_ms, s.end_ms))
    built = [dataclasses.replace(s, id=f"s{i + 1:04d}") if not s.id else s for i, s in enumerate(built)]
    events = tuple(events)
    if duration_ms is None:
        duration_ms = max([0, *(s.end_ms for s in built), *(e.end_ms for e in events)])
    tracks = tuple(
        TrackInfo(channel=i, role=role, duration_ms=duration_ms,  # type: ignore[arg-type]
                  speech_ms=sum(s.duration_ms for s in built if s.channel == i))
        for i, role in enumerate(cmap)
    )
    source = SourceInfo(name="test.wav", path=None, sha256="0" * 64, size_bytes=duration_ms * 32,
                        container="wav", codec="pcm_s16le", sample_rate=16000, channels=len(cmap),
                        duration_ms=duration_ms, narrowband=False)
    result = CallAnalysis(
        schema_version=SCHEMA_VERSION,
        call_id=call_id,
        source=source,
        separation=Separation(method="stereo" if stereo else "mono", channel_map=cmap,  # type: ignore[arg-type]
                              confidence=1.0 if stereo else None),
        tracks=tracks,
        segments=tuple(built),
        processing=ProcessingLog(callsense_version="test", pipeline_version="test", started_at=started_at,
                                 options={}),
        events=events,
        metadata=dict(metadata or {}),
    )
    return dataclasses.replace(result, **fields) if fields else result


def scored(result: CallAnalysis, *, ruleset: Any = None, scorecard: Any = None,
           hits: Iterable[Any] | None = None) -> CallAnalysis:
    """``result`` with metrics, rule hits and QA score filled by the real scorer
    (:func:`callsense.rules.apply_qa`; the default pack and scorecard unless given), so a stored fixture
    has a score on the scale users see (0-100). ``hits`` then replaces the rule hits (for tests about how
    hits are stored); the score stays the scorer's."""
    from callsense.rules import apply_qa

    out = apply_qa(result, ruleset=ruleset, scorecard=scorecard)
    return dataclasses.replace(out, rule_hits=tuple(hits)) if hits is not None else out


def _channel(role: str, cmap: Sequence[str]) -> int:
    return list(cmap).index(role) if role in cmap else 0


def _segment(spec: SegmentSpec, cmap: Sequence[str], stereo: bool) -> Segment:
    if isinstance(spec, Segment):
        return spec
    if not isinstance(spec, Mapping):
        role, start, end, *rest = spec
        spec = {"role": role, "start_ms": start, "end_ms": end, "text": rest[0] if rest else ""}
    data = dict(spec)
    emo = data.pop("emotion", None)
    if emo is not None and not isinstance(emo, SegmentEmotion):
        emo = emotion(emo)
    data.setdefault("id", "")
    data.setdefault("channel", _channel(data["role"], cmap) if stereo else 0)
    data.setdefault("asr_status", "ok" if data.get("text") else "empty")
    for key in ("asr_events", "tokens", "redactions"):
        if key in data:
            data[key] = tuple(data[key])
    return Segment(emotion=emo, **data)


# ----------------------------------------------------------------------------------- hypothesis
def hypothesis_results(max_segments: int = 12, max_duration_ms: int = 120_000):
    """A hypothesis strategy of valid results: any role mix, overlaps, gaps, missing emotions,
    loudness and text, events, mono or stereo, empty calls, segments touching the call's ends."""
    from hypothesis import strategies as st

    words = st.sampled_from(["您好", "投诉", "没问题", "退款", "我要举报", "谢谢", "hello", "refund",
                             "no problem", "嗯", "，", "。", "12315", "滚", "不是投诉", " ", "sorry"])
    text = st.lists(words, max_size=6).map("".join)
    emo = st.one_of(st.none(), st.sampled_from(EMOTION_NAMES),
                    st.lists(st.floats(0.0, 1.0), min_size=9, max_size=9).filter(lambda x: sum(x) > 0))
    level = st.one_of(st.none(), st.floats(-90.0, 0.0))

    @st.composite
    def build(draw):
        stereo = draw(st.booleans())
        duration = draw(st.integers(0, max_duration_ms))
        n = draw(st.integers(0, max_segments if duration else 0))
        roles = ("agent", "customer") if stereo else ("agent", "customer", "unknown")
        specs = []
        for _ in range(n):
            start = draw(st.integers(0, duration))
            end = draw(st.integers(start, duration))
            specs.append(seg(
                draw(st.sampled_from(roles)), start, end, draw(text), emotion_=draw(emo),
                level_dbfs=draw(level), peak_dbfs=draw(level),
                language=draw(st.sampled_from([None, "zh", "en", "yue"])),
                asr_emotion=draw(st.sampled_from([None, "ANGRY", "HAPPY", "NEUTRAL", "EMO_UNKNOWN"])),
                asr_events=draw(st.lists(st.sampled_from(["Cough", "BGM", "Laughter", "Speech"]), max_size=2)),
            ))
        evs = []
        for _ in range(draw(st.integers(0, 3 if duration else 0))):
            start = draw(st.integers(0, duration))
            evs.append(event(draw(st.sampled_from(["BGM", "Cough", "Sneeze", "Cry"])), start,
                             draw(st.integers(start, duration)), role=draw(st.sampled_from(roles))))
        meta = draw(st.dictionaries(st.sampled_from(["queue", "agent_id", "direction", "vip"]),
                                    st.one_of(st.text(max_size=5), st.integers(), st.booleans(), st.none()),
                                    max_size=3))
        return make_result(specs, duration_ms=duration, stereo=stereo, events=evs, metadata=meta)

    return build()
