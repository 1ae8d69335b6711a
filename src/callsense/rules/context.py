"""What a condition sees while it is evaluated: the call, its scope, and the outcome it returns.

:class:`Context` is built once per call (``callsense.rules.evaluate.build_context``);
:func:`resolve_scope` narrows it to a condition's role and window; a condition answers with an
:class:`Outcome`. The evidence helpers at the end are shared by the condition types.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from callsense.analysis.common import clip, count_chars, merge, overlaps_any
from callsense.result.model import AudioEvent, CallAnalysis, Segment
from callsense.result.qa import CallMetrics, Evidence
from callsense.rules import model as m

MAX_EVIDENCE = 50  # per condition: a supervisor reads a few, the count is in the note


@dataclass(frozen=True)
class Context:
    result: CallAnalysis
    metrics: CallMetrics
    segments: tuple[Segment, ...]  # sorted by start
    spans: dict[str, tuple[int, int]]  # clipped to the call
    index: dict[str, int]  # segment id -> position in ``segments``
    events: tuple[AudioEvent, ...]
    history: tuple[m.CallSummary, ...] = ()
    outliers: dict[str, m.OutlierScore] = field(default_factory=dict)  # segment id -> its latest stored score

    @property
    def duration(self) -> int:
        return self.metrics.duration_ms


@dataclass(frozen=True)
class Scoped:
    role: str
    segments: tuple[Segment, ...]
    ranges: tuple[tuple[int, int], ...]  # the window's time ranges
    label: str  # "customer, last 30 s" for notes
    anchor_missed: bool = False  # an around-window whose anchor did not match


@dataclass(frozen=True)
class Outcome:
    matched: bool
    evidence: tuple[Evidence, ...] = ()
    applicable: bool = True
    note: str | None = None
    scope: Scoped | None = field(default=None, compare=False)


# ---------------------------------------------------------------------------------- scope/window
def resolve_scope(ctx: Context, role: str, window: m.Window, min_chars: int,
                  anchors: dict[int, Outcome]) -> Scoped:
    base = [s for s in ctx.segments
            if (role == "any" or s.role == role) and (min_chars <= 0 or count_chars(s.text) >= min_chars)]
    dur = ctx.duration
    kind = window.kind
    label = role if role != "any" else "both parties"
    if kind == "call":
        return Scoped(role, tuple(base), ((0, dur),), label)
    if kind in ("first_s", "last_s", "share"):
        if kind == "first_s":
            rng = clip(0, round(window.first_s * 1000), dur)
            text = f"first {window.first_s:g} s"
        elif kind == "last_s":
            rng = clip(dur - round(window.last_s * 1000), dur, dur)
            text = f"last {window.last_s:g} s"
        else:
            a, b = window.share
            rng = clip(round(a * dur), round(b * dur), dur)
            text = f"{a:.0%}-{b:.0%} of the call"
        segs = tuple(s for s in base if overlaps_any(*ctx.spans[s.id], [rng]))
        return Scoped(role, segs, (rng,), f"{label}, {text}")
    if kind in ("first_segments", "last_segments"):
        n = window.first_segments if kind == "first_segments" else window.last_segments
        segs = tuple(base[:n]) if kind == "first_segments" else (tuple(base[-n:]) if n else ())
        text = f"{'first' if kind == 'first_segments' else 'last'} {n} segments"
        return Scoped(role, segs, tuple(merge(ctx.spans[s.id] for s in segs)), f"{label}, {text}")
    # around another condition's evidence
    anchor = anchors.get(window.around)
    if anchor is None or not anchor.matched:
        return Scoped(role, (), (), f"{label}, around condition {window.around}", anchor_missed=True)
    times = [clip(e.start_ms, e.end_ms, dur) for e in anchor.evidence]
    if window.seconds is not None:
        pad = round(window.seconds * 1000)
        ranges = tuple(merge(clip(s - pad, e + pad, dur) for s, e in times))
        segs = tuple(s for s in base if overlaps_any(*ctx.spans[s.id], ranges))
        return Scoped(role, segs, ranges, f"{label}, {window.seconds:g} s around condition {window.around}")
    hit_ids = {e.segment_id for e in anchor.evidence if e.segment_id in ctx.index}
    positions = {ctx.index[i] for i in hit_ids} | {
        i for i, s in enumerate(ctx.segments) if overlaps_any(*ctx.spans[s.id], times) and not hit_ids}
    near = {i + d for i in positions for d in range(-window.segments, window.segments + 1)}
    keep = {ctx.segments[i].id for i in near if 0 <= i < len(ctx.segments)}
    segs = tuple(s for s in base if s.id in keep)
    return Scoped(role, segs, tuple(merge(ctx.spans[s.id] for s in segs)),
                  f"{label}, {window.segments} segments around condition {window.around}")


def scope_evidence(ctx: Context, scoped: Scoped, n: int, note: str) -> Evidence:
    """Evidence for something found absent: the stretch of the call that was searched."""
    if scoped.ranges:
        start, end = min(r[0] for r in scoped.ranges), max(r[1] for r in scoped.ranges)
    else:
        start, end = 0, ctx.duration
    return Evidence(None, start, end, note=f"{note} ({scoped.label})", condition=n,
                    role=scoped.role if scoped.role != "any" else None)


# -------------------------------------------------------------------------------------- helpers
def seg_ev(ctx: Context, seg: Segment, n: int, *, text: str | None = None, span: tuple[int, int] | None = None,
           note: str | None = None) -> Evidence:
    """Evidence that is one segment (``span``: the matched characters in its text)."""
    s, e = ctx.spans[seg.id]
    return Evidence(seg.id, s, e, text=text, span=span, note=note, condition=n, role=seg.role)


def interval_ev(ctx: Context, start: int, end: int, n: int, *, segment_id: str | None = None,
                note: str | None = None, role: str | None = None) -> Evidence:
    """Evidence that is a stretch of the call (a silence, an overlap, the whole call)."""
    s, e = clip(start, end, ctx.duration)
    return Evidence(segment_id if segment_id in ctx.index else None, s, e, note=note, condition=n, role=role)


def cap(evidence: Iterable[Evidence]) -> tuple[Evidence, ...]:
    return tuple(evidence)[:MAX_EVIDENCE]


def lower(text: str) -> str:
    """Lower case without changing offsets (a few characters lengthen when lowered)."""
    return "".join(ch.lower() if len(ch.lower()) == 1 else ch for ch in text)


@lru_cache(maxsize=1024)
def compiled(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE if ignore_case else 0)


def out_of_range(value: float, above: float | None, below: float | None) -> bool:
    return (above is not None and value > above) or (below is not None and value < below)


def bounds(above: Any, below: Any, unit: str = "") -> str:
    parts = []
    if above is not None:
        parts.append(f"> {above:g}{unit}")
    if below is not None:
        parts.append(f"< {below:g}{unit}")
    return " or ".join(parts)
