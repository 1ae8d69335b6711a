"""Call metrics: talk time, dead air, talk-over, speech rate, loudness, emotion per role and quarter.

``compute_metrics(result)`` is pure: it reads the segments, events and separation of a
:class:`~callsense.result.CallAnalysis` and returns a :class:`~callsense.result.CallMetrics`.
The exact definition of every number is in docs/metrics.md; thresholds are :class:`MetricsOptions`.
Anything that cannot be measured (no speech of a role, mono audio for talk-over, no loudness or
emotion data) is ``None``, never an invented zero. On a diarized mono call talk-over comes from the
diarization's overlapped speech (``separation.overlaps``).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from callsense.analysis.common import (
    call_events,
    clip,
    count_chars,
    count_words,
    dominant,
    mean_distribution,
    merge,
    rate_unit,
    segment_scores,
    speech_units,
    subtract,
    total,
    valence,
)
from callsense.result.model import CallAnalysis, Segment, Separation
from callsense.result.qa import (
    CallMetrics,
    EmotionShares,
    Interval,
    Monologue,
    Overlap,
    RoleMetrics,
    SegmentMetrics,
)

MAIN_ROLES = ("agent", "customer")
DIARIZED = ("diarization", "diarization+roles")


@dataclass(frozen=True)
class MetricsOptions:
    dead_air_min_ms: int = 5000  # a silence of both parties at least this long is a dead-air instance
    hold_events: tuple[str, ...] = ("BGM",)  # event types that mean music / hold
    hold_is_not_dead_air: bool = True  # time under hold music is not counted as dead air
    interruption_min_ms: int = 500  # shorter overlaps are backchannel ("嗯", "ok"), not interruptions
    loudness_floor_dbfs: float = -60.0  # 0 on the 0-100 scale; 0 dBFS is 100
    spike_db: float = 10.0  # a segment this much louder than its role's median level is a spike
    trend_min_change: float = 0.15  # valence change (first vs last quarter) that counts as a trend


DEFAULT_OPTIONS = MetricsOptions()


def compute_metrics(result: CallAnalysis, *, options: MetricsOptions = DEFAULT_OPTIONS) -> CallMetrics:
    """All call metrics of ``result`` (see docs/metrics.md for the definitions)."""
    duration = max(int(result.duration_ms), 0)
    segs = sorted(result.segments, key=lambda s: (s.start_ms, s.end_ms, s.id))
    spans = {s.id: clip(s.start_ms, s.end_ms, duration) for s in segs}

    speech = merge(spans.values())
    talk_ms = total(speech)

    hold = merge(clip(ev.start_ms, ev.end_ms, duration) for ev in call_events(result)
                 if ev.type in options.hold_events)
    hold_ms = total(hold)

    dead_air = _dead_air(segs, spans, speech, hold if options.hold_is_not_dead_air else [], options)
    overlaps, measurable = _overlaps(result, segs, spans, options)
    overlap_of: dict[str, int] = {}
    for ov in overlaps:
        for sid in (ov.interrupter_segment_id, ov.interrupted_segment_id):
            overlap_of[sid] = overlap_of.get(sid, 0) + ov.duration_ms

    seg_metrics = _segment_metrics(segs, spans, overlap_of, options)
    monologues = _monologues(segs, spans)

    roles_present = [r for r in dict.fromkeys(s.role for s in segs) if r not in MAIN_ROLES]
    roles = tuple(
        _role_metrics(role, [s for s in segs if s.role == role], spans, seg_metrics, overlaps, monologues,
                      duration, options)
        for role in (*MAIN_ROLES, *roles_present)
    )
    agent_ms = roles[0].talk_ms
    customer_ms = roles[1].talk_ms

    return CallMetrics(
        duration_ms=duration,
        talk_ms=talk_ms,
        non_talk_ms=max(duration - talk_ms, 0),
        agent_talk_ratio=(agent_ms / (agent_ms + customer_ms)) if agent_ms + customer_ms > 0 else None,
        roles=roles,
        dead_air=dead_air,
        dead_air_threshold_ms=options.dead_air_min_ms,
        dead_air_ms=sum(d.duration_ms for d in dead_air),
        leading_silence_ms=speech[0][0] if speech else None,
        trailing_silence_ms=duration - speech[-1][1] if speech else None,
        overlap_measurable=measurable,
        overlaps=overlaps,
        overlap_ms=total((o.start_ms, o.end_ms) for o in overlaps),
        interruptions=sum(1 for o in overlaps if o.interruption),
        first_agent_speech_ms=_first_start(segs, spans, "agent"),
        first_response_ms=_first_response(segs, spans),
        longest_monologue=max(monologues, key=lambda m: (m.duration_ms, -m.start_ms), default=None),
        hold=tuple(Interval(s, e) for s, e in hold),
        hold_ms=hold_ms,
        hold_share=(hold_ms / duration) if duration else None,
        segments=tuple(seg_metrics[s.id] for s in segs),
    )


# ------------------------------------------------------------------------------------------ parts
def _dead_air(segs: Sequence[Segment], spans: dict[str, tuple[int, int]], speech: list[tuple[int, int]],
              hold: list[tuple[int, int]], options: MetricsOptions) -> tuple[Interval, ...]:
    gaps = [(a[1], b[0]) for a, b in itertools.pairwise(speech)]
    out = []
    for s, e in subtract(gaps, hold):
        if e - s < options.dead_air_min_ms:
            continue
        before = max((x for x in segs if spans[x.id][1] <= s and spans[x.id][1] > spans[x.id][0]),
                     key=lambda x: spans[x.id][1], default=None)
        after = min((x for x in segs if spans[x.id][0] >= e and spans[x.id][1] > spans[x.id][0]),
                    key=lambda x: spans[x.id][0], default=None)
        out.append(Interval(s, e, before.id if before else None, after.id if after else None))
    return tuple(out)


def _overlaps(result: CallAnalysis, segs: Sequence[Segment], spans: dict[str, tuple[int, int]],
              options: MetricsOptions) -> tuple[tuple[Overlap, ...], bool]:
    sep = result.separation
    if sep.method in DIARIZED:
        return _diarized_overlaps(sep, segs, spans, options), len(sep.speakers) >= 2
    measurable = sep.method in ("stereo", "channel_map") and len(set(sep.channel_map)) >= 2
    if not measurable:
        return (), False
    out = []
    for i, a in enumerate(segs):
        a0, a1 = spans[a.id]
        for b in segs[i + 1:]:
            b0, b1 = spans[b.id]
            if b0 >= a1:
                break  # segs are sorted by start: nothing later overlaps a
            if a.channel == b.channel or a.role == b.role:
                continue
            lo, hi = max(a0, b0), min(a1, b1)
            if hi <= lo:
                continue
            # b starts at or after a: b talked over a (a tie goes to the later-listed segment)
            out.append(Overlap(lo, hi, b.role, a.role, b.id, a.id, hi - lo >= options.interruption_min_ms))
    out.sort(key=lambda o: (o.start_ms, o.end_ms))
    return tuple(out), True


def _diarized_overlaps(sep: Separation, segs: Sequence[Segment], spans: dict[str, tuple[int, int]],
                       options: MetricsOptions) -> tuple[Overlap, ...]:
    """Talk-over on a diarized mono call, from the overlapped-speech stretches the diarization kept in
    ``separation.overlaps`` (its segments never overlap: overlapped audio went to the one already talking).
    The interrupted segment is the one under the overlap's start; the interrupter's is its own segment
    nearest the overlap (usually the one that begins as the overlap ends)."""
    role_of = {s.speaker: s.role for s in sep.speakers}
    out = []
    for ov in sep.overlaps:
        mid = (ov.start_ms + ov.end_ms) / 2
        under = _nearest(segs, spans, mid, ov.other) or _nearest(segs, spans, mid, None)
        mine = _nearest(segs, spans, mid, ov.speaker) or under
        if under is None or mine is None:
            continue
        out.append(Overlap(ov.start_ms, ov.end_ms, role_of.get(ov.speaker, "unknown"), role_of.get(ov.other, "unknown"),
                           mine.id, under.id, ov.end_ms - ov.start_ms >= options.interruption_min_ms))
    return tuple(out)


def _nearest(segs: Sequence[Segment], spans: dict[str, tuple[int, int]], ms: float,
             speaker: int | None) -> Segment | None:
    """The segment (of ``speaker``, or of anyone) closest to the instant ``ms``; 0 distance when it covers it."""
    pool = [x for x in segs if speaker is None or x.speaker == speaker]
    return min(pool, key=lambda x: (max(spans[x.id][0] - ms, ms - spans[x.id][1], 0), spans[x.id][0]), default=None)


def _segment_metrics(segs: Sequence[Segment], spans: dict[str, tuple[int, int]], overlap_of: dict[str, int],
                     options: MetricsOptions) -> dict[str, SegmentMetrics]:
    medians: dict[str, float] = {}
    for role in {s.role for s in segs}:
        levels = [s.level_dbfs for s in segs if s.role == role and _finite(s.level_dbfs)]
        if levels:
            medians[role] = statistics.median(levels)
    out = {}
    for s in segs:
        unit = rate_unit(s.text, s.language)
        units = speech_units(s.text, unit)
        dur = spans[s.id][1] - spans[s.id][0]
        rate = (units / (dur / 60000)) if unit and dur > 0 else None
        level = s.level_dbfs if _finite(s.level_dbfs) else None
        spike = level is not None and s.role in medians and level >= medians[s.role] + options.spike_db
        out[s.id] = SegmentMetrics(
            segment_id=s.id, role=s.role, units=units, rate_unit=unit, speech_rate=rate,
            loudness=_scale(level, options), loudness_spike=spike, overlap_ms=overlap_of.get(s.id, 0),
        )
    return out


def _monologues(segs: Sequence[Segment], spans: dict[str, tuple[int, int]]) -> list[Monologue]:
    out: list[Monologue] = []
    run: list[Segment] = []
    for s in [*segs, None]:
        if run and (s is None or s.role != run[0].role):
            start = min(spans[x.id][0] for x in run)
            end = max(spans[x.id][1] for x in run)
            out.append(Monologue(run[0].role, start, end, tuple(x.id for x in run)))
            run = []
        if s is not None:
            run.append(s)
    return out


def _role_metrics(role: str, segs: list[Segment], spans: dict[str, tuple[int, int]],
                  seg_metrics: dict[str, SegmentMetrics], overlaps: Sequence[Overlap],
                  monologues: Sequence[Monologue], duration: int, options: MetricsOptions) -> RoleMetrics:
    talk = total(spans[s.id] for s in segs)
    text = " ".join(s.text for s in segs)
    rates: dict[str, list[int]] = {"chars_per_min": [0, 0], "words_per_min": [0, 0]}
    for s in segs:
        m = seg_metrics[s.id]
        if m.rate_unit:
            rates[m.rate_unit][0] += m.units
            rates[m.rate_unit][1] += spans[s.id][1] - spans[s.id][0]

    leveled = [(s.level_dbfs, spans[s.id][1] - spans[s.id][0]) for s in segs if _finite(s.level_dbfs)]
    level = None
    if leveled:
        weight = sum(max(d, 1) for _, d in leveled)
        power = sum(10 ** (lv / 10) * max(d, 1) for lv, d in leveled) / weight
        level = 10 * math.log10(power) if power > 0 else options.loudness_floor_dbfs
    peaks = [s.peak_dbfs for s in segs if _finite(s.peak_dbfs)]

    emotion = _shares([(s, spans[s.id]) for s in segs], None)
    quarters: tuple[EmotionShares | None, ...] = ()
    if duration > 0:
        q = duration / 4
        quarters = tuple(
            _shares([(s, spans[s.id]) for s in segs], (round(i * q), round((i + 1) * q))) for i in range(4)
        )
    mine = [o for o in overlaps if o.interrupter == role]
    own_monologues = [m for m in monologues if m.role == role]

    return RoleMetrics(
        role=role,
        segments=len(segs),
        talk_ms=talk,
        talk_share=(talk / duration) if duration else None,
        chars=count_chars(text),
        words=count_words(text),
        chars_per_min=_rate(*rates["chars_per_min"]),
        words_per_min=_rate(*rates["words_per_min"]),
        level_dbfs=level,
        loudness=_scale(level, options),
        peak_dbfs=max(peaks) if peaks else None,
        loudness_spikes=tuple(s.id for s in segs if seg_metrics[s.id].loudness_spike),
        emotion=emotion,
        emotion_quarters=quarters,
        emotion_trend=_trend(quarters, options),
        interruptions=sum(1 for o in mine if o.interruption),
        talked_over_ms=total((o.start_ms, o.end_ms) for o in mine),
        longest_monologue=max(own_monologues, key=lambda m: (m.duration_ms, -m.start_ms), default=None),
    )


def _shares(segs: list[tuple[Segment, tuple[int, int]]], window: tuple[int, int] | None) -> EmotionShares | None:
    pieces = []
    for seg, (s, e) in segs:
        scores = segment_scores(seg)
        if scores is None:
            continue
        if window is not None:
            s, e = max(s, window[0]), min(e, window[1])
            if e <= s:
                continue
        pieces.append((max(e - s, 1), scores))  # a zero-length segment still says something
    mean = mean_distribution(pieces)
    if mean is None:
        return None
    return EmotionShares(scores=mean, dominant=dominant(mean), valence=valence(mean))


def _trend(quarters: Sequence[EmotionShares | None], options: MetricsOptions) -> str | None:
    known = [q for q in quarters if q is not None]
    if len(known) < 2:  # one quarter with speech has no direction
        return None
    change = known[-1].valence - known[0].valence
    if change >= options.trend_min_change:
        return "improving"
    if change <= -options.trend_min_change:
        return "worsening"
    return "stable"


def _first_start(segs: Sequence[Segment], spans: dict[str, tuple[int, int]], role: str) -> int | None:
    return min((spans[s.id][0] for s in segs if s.role == role), default=None)


def _first_response(segs: Sequence[Segment], spans: dict[str, tuple[int, int]]) -> int | None:
    first_customer = next((s for s in segs if s.role == "customer"), None)
    if first_customer is None:
        return None
    c0, c1 = spans[first_customer.id]
    reply = next((s for s in segs if s.role == "agent" and spans[s.id][0] > c0), None)
    if reply is None:
        return None
    return max(spans[reply.id][0] - c1, 0)


def _rate(units: int, ms: int) -> float | None:
    return units / (ms / 60000) if ms > 0 else None


def _scale(dbfs: float | None, options: MetricsOptions) -> float | None:
    if dbfs is None:
        return None
    floor = options.loudness_floor_dbfs
    return float(min(max((dbfs - floor) / -floor * 100.0, 0.0), 100.0))


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)
