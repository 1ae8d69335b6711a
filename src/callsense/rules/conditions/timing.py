"""Acoustic and timing conditions: events, silence, talk-over, speech rate, loudness, talk ratio, duration."""

from __future__ import annotations

import difflib
import itertools
from dataclasses import dataclass
from typing import Literal

from callsense.analysis.common import clip, intersect_total, merge, overlaps_any, subtract, total
from callsense.labels import SENSEVOICE_EVENTS, TONE_EVENTS
from callsense.rules.context import Context, Outcome, Scoped, bounds, cap, interval_ev, out_of_range, seg_ev
from callsense.rules.model import Condition, Findings, register_condition

EVENT_TAGS = (*(e for e in SENSEVOICE_EVENTS if e != "Speech"), *TONE_EVENTS)


@register_condition("event")
@dataclass(frozen=True, kw_only=True)
class Event(Condition):
    """SenseVoice audio events (music, laughter, ...) present, or above a share of the window."""

    events: tuple[str, ...]  # SenseVoice event tags (BGM, Cough, ...) or tones (Ringback, BusyTone, DialTone, DTMF)
    min_count: int = 1
    min_share: float | None = None  # share of the window covered by these events

    def check(self, findings: Findings) -> None:
        super().check(findings)
        need = findings.need
        need(bool(self.events), "events", "event needs a non-empty list of event tags")
        for v in self.events:
            if v not in EVENT_TAGS:
                close = (difflib.get_close_matches(v, EVENT_TAGS, n=1)
                         or [t for t in EVENT_TAGS if t.lower() == v.lower()])
                findings.add("events", f"unknown event {v!r} (expected one of: {', '.join(EVENT_TAGS)})",
                             f"did you mean {close[0]!r}?" if close else None)
        if self.min_share is not None:
            need(0 <= self.min_share <= 1, "min_share", "min_share must be in [0, 1]")

    def evaluate(self, ctx: Context, sc: Scoped, n: int) -> Outcome:
        wanted = set(self.events)
        evs = [e for e in ctx.events if e.type in wanted and (sc.role == "any" or e.role == sc.role)
               and overlaps_any(*clip(e.start_ms, e.end_ms, ctx.duration), sc.ranges)]
        ok = len(evs) >= self.min_count
        note = f"{len(evs)} x {'/'.join(self.events)}"
        if self.min_share is not None:
            covered = intersect_total([clip(e.start_ms, e.end_ms, ctx.duration) for e in evs], sc.ranges)
            span = total(sc.ranges)
            share = covered / span if span else 0.0
            ok = ok and share >= self.min_share
            note += f", {share:.0%} of the window"
        ev = cap(interval_ev(ctx, e.start_ms, e.end_ms, n, segment_id=e.segment_id, note=f"{e.type}; {note}",
                               role=e.role) for e in evs)
        return Outcome(ok, ev if ok else (), scope=sc)


@register_condition("silence")
@dataclass(frozen=True, kw_only=True)
class Silence(Condition):
    """Dead air between speech, or silence before the first / after the last speech."""

    kind: Literal["dead_air", "leading", "trailing"] = "dead_air"
    min_s: float
    min_count: int = 1
    hold_is_silence: bool = False  # count time under hold music as silence

    def check(self, findings: Findings) -> None:
        super().check(findings)
        need = findings.need
        need(self.min_s >= 0, "min_s", "min_s must be >= 0")

    def evaluate(self, ctx: Context, sc: Scoped, n: int) -> Outcome:
        need = round(self.min_s * 1000)
        speech = merge(ctx.spans.values())
        dur = ctx.duration
        if self.kind == "leading":
            gap = (0, speech[0][0] if speech else dur)
            ok = gap[1] - gap[0] >= need and gap[1] > gap[0]
            return Outcome(ok, (interval_ev(ctx, *gap, n, note=f"{gap[1] / 1000:.1f} s before the first speech"),)
                           if ok else (), scope=sc)
        if self.kind == "trailing":
            gap = (speech[-1][1] if speech else 0, dur)
            ok = gap[1] - gap[0] >= need and gap[1] > gap[0]
            return Outcome(ok, (interval_ev(ctx, *gap, n, note=f"{(gap[1] - gap[0]) / 1000:.1f} s after the last "
                                             f"speech"),) if ok else (), scope=sc)
        gaps = [(a[1], b[0]) for a, b in itertools.pairwise(speech)]
        if not self.hold_is_silence:
            gaps = subtract(gaps, [(h.start_ms, h.end_ms) for h in ctx.metrics.hold])
        found = [g for g in gaps if g[1] - g[0] >= need and g[1] - g[0] > 0 and overlaps_any(*g, sc.ranges)]
        ok = len(found) >= self.min_count
        ev = []
        for s, e in found:
            before = max((x for x in ctx.segments if ctx.spans[x.id][1] <= s), key=lambda x: ctx.spans[x.id][1],
                         default=None)
            note = f"{(e - s) / 1000:.1f} s of silence" + (f" after {before.id} ({before.role})" if before else "")
            ev.append(interval_ev(ctx, s, e, n, note=note))
        return Outcome(ok, cap(ev) if ok else (), scope=sc)


@register_condition("talk_over")
@dataclass(frozen=True, kw_only=True)
class TalkOver(Condition):
    """One party talking over the other (stereo with a channel map only)."""

    min_s: float = 1.0  # each overlap at least this long (role = who started talking over)
    min_count: int = 1
    total_min_s: float | None = None

    def check(self, findings: Findings) -> None:
        super().check(findings)
        need = findings.need
        need(self.min_s >= 0, "min_s", "min_s must be >= 0")

    def evaluate(self, ctx: Context, sc: Scoped, n: int) -> Outcome:
        if not ctx.metrics.overlap_measurable:
            return Outcome(False, applicable=False, scope=sc, note="talk-over needs stereo with a channel map")
        need = round(self.min_s * 1000)
        found = [o for o in ctx.metrics.overlaps if (sc.role == "any" or o.interrupter == sc.role)
                 and o.duration_ms >= need and o.duration_ms > 0 and overlaps_any(o.start_ms, o.end_ms, sc.ranges)]
        ok = len(found) >= self.min_count
        if self.total_min_s is not None:
            ok = ok and total((o.start_ms, o.end_ms) for o in found) >= round(self.total_min_s * 1000)
        ev = cap(interval_ev(ctx, o.start_ms, o.end_ms, n, segment_id=o.interrupter_segment_id, role=o.interrupter,
                               note=f"{o.interrupter} ({o.interrupter_segment_id}) talked over {o.interrupted} "
                                    f"({o.interrupted_segment_id}) for {o.duration_ms / 1000:.1f} s") for o in found)
        return Outcome(ok, ev if ok else (), scope=sc)


@register_condition("speech_rate")
@dataclass(frozen=True, kw_only=True)
class SpeechRate(Condition):
    """Speech rate per segment or per role out of range."""

    unit: Literal["chars_per_min", "words_per_min"] = "chars_per_min"
    above: float | None = None
    below: float | None = None
    per: Literal["segment", "role"] = "segment"
    min_segment_s: float = 2.0  # shorter segments give unstable rates and are skipped
    min_count: int = 1

    def check(self, findings: Findings) -> None:
        super().check(findings)
        need = findings.need
        need(self.above is not None or self.below is not None, None, f"{self.type} needs 'above' or 'below' (or both)")

    def evaluate(self, ctx: Context, sc: Scoped, n: int) -> Outcome:
        seg_m = {x.segment_id: x for x in ctx.metrics.segments}
        usable = [s for s in sc.segments if s.id in seg_m and seg_m[s.id].rate_unit == self.unit
                  and seg_m[s.id].speech_rate is not None
                  and ctx.spans[s.id][1] - ctx.spans[s.id][0] >= round(self.min_segment_s * 1000)]
        if not usable:
            return Outcome(False, applicable=sc.anchor_missed, scope=sc, note=f"no segment measured in {self.unit}")
        unit = "chars/min" if self.unit == "chars_per_min" else "words/min"
        if self.per == "role":
            ev = []
            for role in sorted({s.role for s in usable}):
                mine = [s for s in usable if s.role == role]
                ms = sum(ctx.spans[s.id][1] - ctx.spans[s.id][0] for s in mine)
                rate = sum(seg_m[s.id].units for s in mine) / (ms / 60000)
                if out_of_range(rate, self.above, self.below):
                    ev += [seg_ev(ctx, s, n, note=f"{role} rate {rate:.0f} {unit} ({bounds(self.above, self.below)})")
                           for s in mine]
            return Outcome(bool(ev), cap(ev), scope=sc)
        hits = [s for s in usable if out_of_range(seg_m[s.id].speech_rate, self.above, self.below)]
        ok = len(hits) >= self.min_count
        return Outcome(ok, cap(seg_ev(ctx, s, n, note=f"{seg_m[s.id].speech_rate:.0f} {unit} "
                                        f"({bounds(self.above, self.below)})") for s in hits) if ok else (), scope=sc)


@register_condition("loudness")
@dataclass(frozen=True, kw_only=True)
class Loudness(Condition):
    """Segment loudness above / below a level, or a spike."""

    above_dbfs: float | None = None
    below_dbfs: float | None = None
    spike: bool = False  # segments marked as spikes by the metrics
    min_count: int = 1

    def check(self, findings: Findings) -> None:
        super().check(findings)
        need = findings.need
        need(self.spike or self.above_dbfs is not None or self.below_dbfs is not None, None,
             "loudness needs above_dbfs, below_dbfs or spike: true")

    def evaluate(self, ctx: Context, sc: Scoped, n: int) -> Outcome:
        seg_m = {x.segment_id: x for x in ctx.metrics.segments}
        leveled = [s for s in sc.segments if s.level_dbfs is not None and s.level_dbfs == s.level_dbfs]
        if not leveled:
            return Outcome(False, applicable=sc.anchor_missed, scope=sc, note="no loudness measured")
        hits = []
        for s in leveled:
            why = []
            if self.above_dbfs is not None and s.level_dbfs > self.above_dbfs:
                why.append(f"{s.level_dbfs:.1f} dBFS > {self.above_dbfs:g}")
            if self.below_dbfs is not None and s.level_dbfs < self.below_dbfs:
                why.append(f"{s.level_dbfs:.1f} dBFS < {self.below_dbfs:g}")
            if self.spike and s.id in seg_m and seg_m[s.id].loudness_spike:
                why.append(f"spike: {s.level_dbfs:.1f} dBFS")
            if why:
                hits.append((s, "; ".join(why)))
        ok = len(hits) >= self.min_count
        return Outcome(ok, cap(seg_ev(ctx, s, n, note=w) for s, w in hits) if ok else (), scope=sc)


@register_condition("talk_ratio")
@dataclass(frozen=True, kw_only=True)
class TalkRatio(Condition):
    """A role's share of agent + customer talk time out of range."""

    above: float | None = None  # role's share of agent + customer talk time, 0-1
    below: float | None = None

    def check(self, findings: Findings) -> None:
        super().check(findings)
        need = findings.need
        need(self.above is not None or self.below is not None, None, f"{self.type} needs 'above' or 'below' (or both)")
        for k in ("above", "below"):
            if getattr(self, k) is not None:
                need(0 <= getattr(self, k) <= 1, k, f"{k} is a share of talk time, in [0, 1]")

    def evaluate(self, ctx: Context, sc: Scoped, n: int) -> Outcome:
        role = sc.role if sc.role in ("agent", "customer") else "agent"
        talk = {r: intersect_total([ctx.spans[s.id] for s in ctx.segments if s.role == r], sc.ranges)
                for r in ("agent", "customer")}
        both = talk["agent"] + talk["customer"]
        if both <= 0:
            return Outcome(False, applicable=False, scope=sc, note="no agent or customer speech")
        ratio = talk[role] / both
        ok = out_of_range(ratio, self.above, self.below)
        start, end = min(r[0] for r in sc.ranges), max(r[1] for r in sc.ranges)
        return Outcome(ok, (interval_ev(ctx, start, end, n, role=role, note=f"{role} talk ratio {ratio:.2f} "
                                         f"({bounds(self.above, self.below)})"),) if ok else (), scope=sc)


@register_condition("duration")
@dataclass(frozen=True, kw_only=True)
class Duration(Condition):
    """Call duration limits."""

    above_s: float | None = None
    below_s: float | None = None

    def check(self, findings: Findings) -> None:
        super().check(findings)
        need = findings.need
        need(self.above_s is not None or self.below_s is not None, None, "duration needs 'above_s' or 'below_s'")

    def evaluate(self, ctx: Context, sc: Scoped, n: int) -> Outcome:
        secs = ctx.duration / 1000
        ok = out_of_range(secs, self.above_s, self.below_s)
        return Outcome(ok, (interval_ev(ctx, 0, ctx.duration, n, note=f"call lasts {secs:.1f} s "
                                         f"({bounds(self.above_s, self.below_s, ' s')})"),) if ok else (), scope=sc)


@register_condition("speech")
@dataclass(frozen=True, kw_only=True)
class Speech(Condition):
    """Speech time in scope (the union of its segments, in seconds) above or below a bound. No segment
    at all is 0 s: a call with nothing said matches ``below_s``."""

    above_s: float | None = None
    below_s: float | None = None

    def check(self, findings: Findings) -> None:
        super().check(findings)
        findings.need(self.above_s is not None or self.below_s is not None, None, "speech needs 'above_s' or 'below_s'")

    def evaluate(self, ctx: Context, sc: Scoped, n: int) -> Outcome:
        secs = total(merge([ctx.spans[s.id] for s in sc.segments])) / 1000
        ok = out_of_range(secs, self.above_s, self.below_s)
        return Outcome(ok, (interval_ev(ctx, 0, ctx.duration, n, note=f"{secs:.1f} s of speech "
                                         f"({bounds(self.above_s, self.below_s, ' s')})"),) if ok else (), scope=sc)
