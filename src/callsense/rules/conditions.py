"""One pure function per condition type: ``(ctx, scope, condition) -> Outcome``.

A condition sees the segments of its scope (role, window, minimum characters) and answers
whether it matched, with evidence, and whether it could be evaluated at all (``applicable``:
talk-over on mono audio, emotion without emotion data, a missing metadata field are not).
Nothing here raises on a valid result; missing pieces make a condition not applicable.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from callsense.analysis.common import (
    clip,
    count_chars,
    intersect_total,
    merge,
    overlaps_any,
    score_of,
    segment_scores,
    subtract,
    total,
)
from callsense.labels import EMOTION_NAMES, NEGATIVE_EMOTIONS, NEUTRAL_EMOTIONS, POSITIVE_EMOTIONS
from callsense.result.model import AudioEvent, CallAnalysis, Segment
from callsense.result.qa import CallMetrics, Evidence
from callsense.rules import model as m

MAX_EVIDENCE = 50  # per condition: a supervisor reads a few, the count is in the note
GROUPS = {"positive": POSITIVE_EMOTIONS, "negative": NEGATIVE_EMOTIONS, "neutral": NEUTRAL_EMOTIONS}
_CLAUSE_END = set("，。！？；,.!?;：:\n")
_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)
_SENTENCE = re.compile(r"[。！？!?；;.\n]+")


@dataclass(frozen=True)
class Context:
    result: CallAnalysis
    metrics: CallMetrics
    segments: tuple[Segment, ...]  # sorted by start
    spans: dict[str, tuple[int, int]]  # clipped to the call
    index: dict[str, int]  # segment id -> position in ``segments``
    events: tuple[AudioEvent, ...]
    history: tuple[m.CallSummary, ...] = ()

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
def _seg_ev(ctx: Context, seg: Segment, n: int, *, text: str | None = None, span: tuple[int, int] | None = None,
            note: str | None = None) -> Evidence:
    s, e = ctx.spans[seg.id]
    return Evidence(seg.id, s, e, text=text, span=span, note=note, condition=n, role=seg.role)


def _interval_ev(ctx: Context, start: int, end: int, n: int, *, segment_id: str | None = None,
                 note: str | None = None, role: str | None = None) -> Evidence:
    s, e = clip(start, end, ctx.duration)
    return Evidence(segment_id if segment_id in ctx.index else None, s, e, note=note, condition=n, role=role)


def _cap(evidence: Iterable[Evidence]) -> tuple[Evidence, ...]:
    return tuple(evidence)[:MAX_EVIDENCE]


def _lower(text: str) -> str:
    """Lower case without changing offsets (a few characters lengthen when lowered)."""
    return "".join(ch.lower() if len(ch.lower()) == 1 else ch for ch in text)


def _is_ascii_word(word: str) -> bool:
    return word.isascii() and any(ch.isalnum() for ch in word)


@lru_cache(maxsize=4096)
def _word_pattern(word: str) -> re.Pattern[str]:
    w = re.escape(_lower(word))
    if _is_ascii_word(word):  # English words match whole words only: "sue" is not in "issue"
        return re.compile(rf"(?<![a-z0-9]){w}(?![a-z0-9])")
    return re.compile(w)


@lru_cache(maxsize=1024)
def _regex(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE if ignore_case else 0)


def _norm(text: str) -> str:
    return _PUNCT.sub("", _lower(text))


def _expand(labels: Iterable[str]) -> frozenset[str]:
    out: set[str] = set()
    for lb in labels:
        out |= GROUPS.get(lb, {lb})
    return frozenset(out)


def _emotion_match(scores: Sequence[float], labels: frozenset[str], min_score: float | None) -> bool:
    if min_score is not None:
        return score_of(scores, labels) >= min_score
    return EMOTION_NAMES[max(range(len(scores)), key=lambda i: scores[i])] in labels


def _describe_scores(scores: Sequence[float], labels: frozenset[str]) -> str:
    return f"{'+'.join(sorted(labels))} {score_of(scores, labels):.2f}"


def _range_ok(value: float, above: float | None, below: float | None) -> bool:
    return (above is not None and value > above) or (below is not None and value < below)


def _bounds(above: Any, below: Any, unit: str = "") -> str:
    parts = []
    if above is not None:
        parts.append(f"> {above:g}{unit}")
    if below is not None:
        parts.append(f"< {below:g}{unit}")
    return " or ".join(parts)


# ------------------------------------------------------------------------------------- keywords
def _keyword_matches(c: m.Keywords, text: str) -> list[tuple[str, int, int]]:
    low = _lower(text)
    excluded = [mt.span() for ex in c.exclude for mt in _word_pattern(ex).finditer(low)]
    found = []
    for word in c.words:
        for mt in _word_pattern(word).finditer(low):
            s, e = mt.span()
            if any(xs <= s and e <= xe for xs, xe in excluded):
                continue
            if c.negations and _negated(low, s, c):
                continue
            found.append((word, s, e))
    found.sort(key=lambda x: (x[1], x[2]))
    return found


def _negated(low: str, start: int, c: m.Keywords) -> bool:
    """A negation cue in the same clause just before the word: 6 characters (CJK) or 3 words (English)."""
    before = low[max(0, start - 40):start]
    for i in range(len(before) - 1, -1, -1):
        if before[i] in _CLAUSE_END:
            before = before[i + 1:]
            break
    cjk_tail = before[-c.negation_window:] if c.negation_window else ""
    words_tail = " ".join(re.findall(r"[a-z0-9']+", before)[-3:])
    for cue in c.negations:
        cue_low = _lower(cue)
        if _is_ascii_word(cue_low):
            if re.search(rf"(?<![a-z0-9']){re.escape(cue_low)}(?![a-z0-9'])", words_tail):
                return True
        elif cue_low in cjk_tail:
            return True
    return False


def _in_order(words: Sequence[str], found: list[tuple[str, int, int]]) -> list[tuple[str, int, int]] | None:
    out, pos = [], -1
    for w in words:
        nxt = next((f for f in found if f[0] == w and f[1] > pos), None)
        if nxt is None:
            return None
        out.append(nxt)
        pos = nxt[1]
    return out


def _within(words: Sequence[str], found: list[tuple[str, int, int]], limit: int) -> list[tuple[str, int, int]] | None:
    need = set(words)
    best = None
    for i, first in enumerate(found):
        seen: dict[str, tuple[str, int, int]] = {}
        for f in found[i:]:
            if f[1] - first[1] > limit:
                break
            seen.setdefault(f[0], f)
            if set(seen) == need:
                chosen = sorted(seen.values(), key=lambda x: x[1])
                span = chosen[-1][2] - chosen[0][1]
                if best is None or span < best[0]:
                    best = (span, chosen)
                break
    return best[1] if best else None


def keywords(ctx: Context, sc: Scoped, c: m.Keywords, n: int) -> Outcome:
    per_seg = [(s, _keyword_matches(c, s.text)) for s in sc.segments]
    per_seg = [(s, f) for s, f in per_seg if f]
    if c.match == "none":
        if per_seg:
            return Outcome(False, scope=sc)
        return Outcome(True, (scope_evidence(ctx, sc, n, f"none of {', '.join(c.words)} said"),), scope=sc,
                       applicable=bool(sc.segments) or sc.anchor_missed)
    if c.match == "all" and (c.in_order or c.within is not None):
        hits = []
        for s, found in per_seg:
            chosen = _in_order(c.words, found) if c.in_order else None
            if c.in_order and chosen is None:
                continue
            if c.within is not None:
                chosen = _within(c.words, found, c.within)
                if chosen is not None and c.in_order and [x[0] for x in chosen] != list(c.words):
                    chosen = _in_order(c.words, chosen)
            if chosen:
                hits.append((s, chosen))
        ok = len(hits) >= c.min_count
        return Outcome(ok, _cap(_seg_ev(ctx, s, n, text=s.text[a:b], span=(a, b), note=f"keyword {w!r}")
                                for s, ch in hits for w, a, b in ch) if ok else (), scope=sc)
    words_found = {w for _, f in per_seg for w, _, _ in f}
    if c.match == "all":
        ok = words_found >= set(c.words) and len(per_seg) >= 1
    elif c.at_least is not None:
        ok = len(words_found) >= c.at_least
    else:
        ok = len(per_seg) >= c.min_count
    if c.match == "all" or c.at_least is not None:
        ok = ok and len(per_seg) >= c.min_count
    ev = _cap(_seg_ev(ctx, s, n, text=s.text[a:b], span=(a, b), note=f"keyword {w!r}")
              for s, f in per_seg for w, a, b in f)
    return Outcome(ok, ev if ok else (), scope=sc)


def regex(ctx: Context, sc: Scoped, c: m.Regex, n: int) -> Outcome:
    pat = _regex(c.pattern, c.ignore_case)
    exc = _regex(c.exclude, c.ignore_case) if c.exclude else None
    hits = []
    for s in sc.segments:
        if exc is not None and exc.search(s.text):
            continue
        found = [mt for mt in pat.finditer(s.text) if mt.end() > mt.start()]
        if found:
            hits.append((s, found))
    ok = len(hits) >= c.min_count
    ev = _cap(_seg_ev(ctx, s, n, text=mt.group(0), span=mt.span(), note=f"matches /{c.pattern}/")
              for s, f in hits for mt in f)
    return Outcome(ok, ev if ok else (), scope=sc)


def similarity(ctx: Context, sc: Scoped, c: m.Similarity, n: int) -> Outcome:
    examples = [_norm(x) for x in c.examples]
    hits = []
    for s in sc.segments:
        pieces = [p for p in [s.text, *_SENTENCE.split(s.text)] if _norm(p)]
        best = 0.0
        for piece in pieces:
            for ex in examples:
                if ex:
                    best = max(best, difflib.SequenceMatcher(None, _norm(piece), ex).ratio())
        if best >= c.min_similarity:
            hits.append((s, best))
    ok = len(hits) >= c.min_count
    return Outcome(ok, _cap(_seg_ev(ctx, s, n, text=s.text, note=f"similarity {r:.2f} to the script")
                            for s, r in hits) if ok else (), scope=sc)


def repetition(ctx: Context, sc: Scoped, c: m.Repetition, n: int) -> Outcome:
    seen: dict[str, list[Segment]] = {}  # sentence -> the segment of each time it was said
    for s in sc.segments:
        for sentence in (_norm(p) for p in _SENTENCE.split(s.text)):
            if len(sentence) >= c.min_length:
                seen.setdefault(sentence, []).append(s)
    repeated = {k: v for k, v in seen.items() if len(v) >= c.min_repeats}
    ev = _cap(_seg_ev(ctx, s, n, text=s.text, note=f"said {len(v)} times: {k!r}") for k, v in repeated.items()
              for s in dict.fromkeys(v))
    return Outcome(bool(repeated), ev, scope=sc)


# -------------------------------------------------------------------------------------- emotion
def emotion(ctx: Context, sc: Scoped, c: m.Emotion, n: int) -> Outcome:
    labels = _expand(c.labels)
    rated = [(s, sc_) for s in sc.segments if (sc_ := segment_scores(s)) is not None]
    if len(rated) < c.min_segments or not rated:
        return Outcome(False, applicable=sc.anchor_missed, scope=sc,
                       note=f"{len(rated)} segments with emotion, {c.min_segments} needed")
    matching = [(s, x) for s, x in rated if _emotion_match(x, labels, c.min_score)]
    if c.share_below is not None or c.share_at_least is not None:
        share = len(matching) / len(rated)
        ok = share < c.share_below if c.share_below is not None else share >= c.share_at_least
        if not ok:
            return Outcome(False, scope=sc)
        note = f"{'+'.join(sorted(labels))} in {len(matching)} of {len(rated)} segments ({share:.0%})"
        shown = rated if c.share_below is not None else matching
        return Outcome(True, _cap(_seg_ev(ctx, s, n, note=f"{note}; this one: {_describe_scores(x, labels)}")
                                  for s, x in shown), scope=sc)
    if c.sustained_s is not None:
        need = round(c.sustained_s * 1000)
        runs: list[list[tuple[Segment, Sequence[float]]]] = []
        by_role: dict[str, list[tuple[Segment, Sequence[float]]]] = {}
        for s, x in rated:
            by_role.setdefault(s.role, []).append((s, x))
        for seq in by_role.values():
            run: list[tuple[Segment, Sequence[float]]] = []
            for s, x in [*seq, (None, None)]:
                if s is not None and _emotion_match(x, labels, c.min_score):
                    run.append((s, x))
                    continue
                if run:
                    runs.append(run)
                run = []
        long_runs = [r for r in runs if total(ctx.spans[s.id] for s, _ in r) >= need]
        if len(long_runs) < c.min_count:
            return Outcome(False, scope=sc)
        ev = []
        for r in long_runs:
            secs = total(ctx.spans[s.id] for s, _ in r) / 1000
            ev += [_seg_ev(ctx, s, n, note=f"{_describe_scores(x, labels)}; {secs:.1f} s sustained") for s, x in r]
        return Outcome(True, _cap(ev), scope=sc)
    ok = len(matching) >= c.min_count
    return Outcome(ok, _cap(_seg_ev(ctx, s, n, note=_describe_scores(x, labels)) for s, x in matching) if ok else (),
                   scope=sc)


def emotion_change(ctx: Context, sc: Scoped, c: m.EmotionChange, n: int) -> Outcome:
    before, after = _expand(c.before), _expand(c.after)
    by_role: dict[str, list[tuple[Segment, Sequence[float]]]] = {}
    for s in sc.segments:
        x = segment_scores(s)
        if x is not None:
            by_role.setdefault(s.role, []).append((s, x))
    if sum(len(v) for v in by_role.values()) < 2:
        return Outcome(False, applicable=sc.anchor_missed, scope=sc, note="fewer than 2 segments with emotion")
    ev: list[Evidence] = []
    pad = round(c.context_s * 1000)
    turns = 0
    for seq in by_role.values():
        last_turn_end = -1
        for i, (s, x) in enumerate(seq):
            if not _emotion_match(x, before, c.min_score) or ctx.spans[s.id][0] < last_turn_end:
                continue
            for t, y in seq[i + 1:i + 1 + c.within_segments]:
                if _emotion_match(y, after, c.min_score) and not _emotion_match(y, before, c.min_score):
                    turns += 1
                    at = ctx.spans[t.id][0]
                    last_turn_end = ctx.spans[t.id][1]
                    note = (f"{t.role}: {_describe_scores(x, before)} ({s.id}) -> {_describe_scores(y, after)} "
                            f"({t.id}) at {at / 1000:.1f} s")
                    window = clip(at - pad, at + pad, ctx.duration)
                    ev.append(_interval_ev(ctx, *window, n, note=f"turn: {note}", role=t.role))
                    ev += [_seg_ev(ctx, z, n, note="around the turn") for z in ctx.segments
                           if overlaps_any(*ctx.spans[z.id], [window])]
                    break
    return Outcome(turns > 0, _cap(ev), scope=sc)


# ------------------------------------------------------------------------------ events & timing
def event(ctx: Context, sc: Scoped, c: m.Event, n: int) -> Outcome:
    wanted = set(c.events)
    evs = [e for e in ctx.events if e.type in wanted and (sc.role == "any" or e.role == sc.role)
           and overlaps_any(*clip(e.start_ms, e.end_ms, ctx.duration), sc.ranges)]
    ok = len(evs) >= c.min_count
    note = f"{len(evs)} x {'/'.join(c.events)}"
    if c.min_share is not None:
        covered = intersect_total([clip(e.start_ms, e.end_ms, ctx.duration) for e in evs], sc.ranges)
        span = total(sc.ranges)
        share = covered / span if span else 0.0
        ok = ok and share >= c.min_share
        note += f", {share:.0%} of the window"
    ev = _cap(_interval_ev(ctx, e.start_ms, e.end_ms, n, segment_id=e.segment_id, note=f"{e.type}; {note}",
                           role=e.role) for e in evs)
    return Outcome(ok, ev if ok else (), scope=sc)


def silence(ctx: Context, sc: Scoped, c: m.Silence, n: int) -> Outcome:
    need = round(c.min_s * 1000)
    speech = merge(ctx.spans.values())
    dur = ctx.duration
    if c.kind == "leading":
        gap = (0, speech[0][0] if speech else dur)
        ok = gap[1] - gap[0] >= need and gap[1] > gap[0]
        return Outcome(ok, (_interval_ev(ctx, *gap, n, note=f"{gap[1] / 1000:.1f} s before the first speech"),)
                       if ok else (), scope=sc)
    if c.kind == "trailing":
        gap = (speech[-1][1] if speech else 0, dur)
        ok = gap[1] - gap[0] >= need and gap[1] > gap[0]
        return Outcome(ok, (_interval_ev(ctx, *gap, n, note=f"{(gap[1] - gap[0]) / 1000:.1f} s after the last "
                                         f"speech"),) if ok else (), scope=sc)
    gaps = [(a[1], b[0]) for a, b in itertools.pairwise(speech)]
    if not c.hold_is_silence:
        gaps = subtract(gaps, [(h.start_ms, h.end_ms) for h in ctx.metrics.hold])
    found = [g for g in gaps if g[1] - g[0] >= need and g[1] - g[0] > 0 and overlaps_any(*g, sc.ranges)]
    ok = len(found) >= c.min_count
    ev = []
    for s, e in found:
        before = max((x for x in ctx.segments if ctx.spans[x.id][1] <= s), key=lambda x: ctx.spans[x.id][1],
                     default=None)
        note = f"{(e - s) / 1000:.1f} s of silence" + (f" after {before.id} ({before.role})" if before else "")
        ev.append(_interval_ev(ctx, s, e, n, note=note))
    return Outcome(ok, _cap(ev) if ok else (), scope=sc)


def talk_over(ctx: Context, sc: Scoped, c: m.TalkOver, n: int) -> Outcome:
    if not ctx.metrics.overlap_measurable:
        return Outcome(False, applicable=False, scope=sc, note="talk-over needs stereo with a channel map")
    need = round(c.min_s * 1000)
    found = [o for o in ctx.metrics.overlaps if (sc.role == "any" or o.interrupter == sc.role)
             and o.duration_ms >= need and o.duration_ms > 0 and overlaps_any(o.start_ms, o.end_ms, sc.ranges)]
    ok = len(found) >= c.min_count
    if c.total_min_s is not None:
        ok = ok and total((o.start_ms, o.end_ms) for o in found) >= round(c.total_min_s * 1000)
    ev = _cap(_interval_ev(ctx, o.start_ms, o.end_ms, n, segment_id=o.interrupter_segment_id, role=o.interrupter,
                           note=f"{o.interrupter} ({o.interrupter_segment_id}) talked over {o.interrupted} "
                                f"({o.interrupted_segment_id}) for {o.duration_ms / 1000:.1f} s") for o in found)
    return Outcome(ok, ev if ok else (), scope=sc)


def speech_rate(ctx: Context, sc: Scoped, c: m.SpeechRate, n: int) -> Outcome:
    seg_m = {x.segment_id: x for x in ctx.metrics.segments}
    usable = [s for s in sc.segments if s.id in seg_m and seg_m[s.id].rate_unit == c.unit
              and seg_m[s.id].speech_rate is not None
              and ctx.spans[s.id][1] - ctx.spans[s.id][0] >= round(c.min_segment_s * 1000)]
    if not usable:
        return Outcome(False, applicable=sc.anchor_missed, scope=sc, note=f"no segment measured in {c.unit}")
    unit = "chars/min" if c.unit == "chars_per_min" else "words/min"
    if c.per == "role":
        ev = []
        for role in sorted({s.role for s in usable}):
            mine = [s for s in usable if s.role == role]
            ms = sum(ctx.spans[s.id][1] - ctx.spans[s.id][0] for s in mine)
            rate = sum(seg_m[s.id].units for s in mine) / (ms / 60000)
            if _range_ok(rate, c.above, c.below):
                ev += [_seg_ev(ctx, s, n, note=f"{role} rate {rate:.0f} {unit} ({_bounds(c.above, c.below)})")
                       for s in mine]
        return Outcome(bool(ev), _cap(ev), scope=sc)
    hits = [s for s in usable if _range_ok(seg_m[s.id].speech_rate, c.above, c.below)]
    ok = len(hits) >= c.min_count
    return Outcome(ok, _cap(_seg_ev(ctx, s, n, note=f"{seg_m[s.id].speech_rate:.0f} {unit} "
                                    f"({_bounds(c.above, c.below)})") for s in hits) if ok else (), scope=sc)


def loudness(ctx: Context, sc: Scoped, c: m.Loudness, n: int) -> Outcome:
    seg_m = {x.segment_id: x for x in ctx.metrics.segments}
    leveled = [s for s in sc.segments if s.level_dbfs is not None and s.level_dbfs == s.level_dbfs]
    if not leveled:
        return Outcome(False, applicable=sc.anchor_missed, scope=sc, note="no loudness measured")
    hits = []
    for s in leveled:
        why = []
        if c.above_dbfs is not None and s.level_dbfs > c.above_dbfs:
            why.append(f"{s.level_dbfs:.1f} dBFS > {c.above_dbfs:g}")
        if c.below_dbfs is not None and s.level_dbfs < c.below_dbfs:
            why.append(f"{s.level_dbfs:.1f} dBFS < {c.below_dbfs:g}")
        if c.spike and s.id in seg_m and seg_m[s.id].loudness_spike:
            why.append(f"spike: {s.level_dbfs:.1f} dBFS")
        if why:
            hits.append((s, "; ".join(why)))
    ok = len(hits) >= c.min_count
    return Outcome(ok, _cap(_seg_ev(ctx, s, n, note=w) for s, w in hits) if ok else (), scope=sc)


def talk_ratio(ctx: Context, sc: Scoped, c: m.TalkRatio, n: int) -> Outcome:
    role = sc.role if sc.role in ("agent", "customer") else "agent"
    talk = {r: intersect_total([ctx.spans[s.id] for s in ctx.segments if s.role == r], sc.ranges)
            for r in ("agent", "customer")}
    both = talk["agent"] + talk["customer"]
    if both <= 0:
        return Outcome(False, applicable=False, scope=sc, note="no agent or customer speech")
    ratio = talk[role] / both
    ok = _range_ok(ratio, c.above, c.below)
    start, end = min(r[0] for r in sc.ranges), max(r[1] for r in sc.ranges)
    return Outcome(ok, (_interval_ev(ctx, start, end, n, role=role, note=f"{role} talk ratio {ratio:.2f} "
                                     f"({_bounds(c.above, c.below)})"),) if ok else (), scope=sc)


def duration(ctx: Context, sc: Scoped, c: m.Duration, n: int) -> Outcome:
    secs = ctx.duration / 1000
    ok = _range_ok(secs, c.above_s, c.below_s)
    return Outcome(ok, (_interval_ev(ctx, 0, ctx.duration, n, note=f"call lasts {secs:.1f} s "
                                     f"({_bounds(c.above_s, c.below_s, ' s')})"),) if ok else (), scope=sc)


def text_length(ctx: Context, sc: Scoped, c: m.TextLength, n: int) -> Outcome:
    chars = sum(count_chars(s.text) for s in sc.segments)
    ok = _range_ok(chars, c.above, c.below)
    if not ok:
        return Outcome(False, scope=sc)
    note = f"{chars} characters of speech ({_bounds(c.above, c.below)})"
    ev = [_seg_ev(ctx, s, n, note=note) for s in sc.segments] or [scope_evidence(ctx, sc, n, note)]
    return Outcome(True, _cap(ev), scope=sc)


def segment_count(ctx: Context, sc: Scoped, c: m.SegmentCount, n: int) -> Outcome:
    k = len(sc.segments)
    ok = _range_ok(k, c.above, c.below)
    if not ok:
        return Outcome(False, scope=sc)
    note = f"{k} segments ({_bounds(c.above, c.below)})"
    ev = [_seg_ev(ctx, s, n, note=note) for s in sc.segments] or [scope_evidence(ctx, sc, n, note)]
    return Outcome(True, _cap(ev), scope=sc)


_MISSING = object()


def _lookup(data: Any, dotted: str) -> Any:
    if isinstance(data, dict) and dotted in data:
        return data[dotted]
    cur = data
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


def _num(x: Any) -> float | None:
    if isinstance(x, bool):
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _same(a: Any, b: Any) -> bool:
    if a == b:
        return True
    return not isinstance(a, (dict, list)) and not isinstance(b, (dict, list)) and str(a) == str(b)


def metadata(ctx: Context, sc: Scoped, c: m.Metadata, n: int) -> Outcome:
    value = _lookup(ctx.result.metadata, c.field)
    if c.op in ("exists", "missing"):
        ok = (value is not _MISSING and value is not None) == (c.op == "exists")
    elif value is _MISSING or value is None:
        return Outcome(False, applicable=False, scope=sc, note=f"metadata {c.field!r} missing")
    elif c.op == "eq":
        ok = _same(value, c.value)
    elif c.op == "ne":
        ok = not _same(value, c.value)
    elif c.op in ("in", "not_in"):
        ok = any(_same(value, v) for v in c.value) == (c.op == "in")
    elif c.op == "contains":
        ok = (any(_same(v, c.value) for v in value) if isinstance(value, (list, tuple))
              else str(c.value) in str(value))
    elif c.op == "regex":
        ok = _regex(c.value, True).search(str(value)) is not None
    else:
        a, b = _num(value), _num(c.value)
        if a is None or b is None:
            return Outcome(False, applicable=False, scope=sc, note=f"metadata {c.field!r} is not a number")
        ok = {"gt": a > b, "ge": a >= b, "lt": a < b, "le": a <= b}[c.op]
    shown = "missing" if value is _MISSING else repr(value)
    return Outcome(ok, (_interval_ev(ctx, 0, ctx.duration, n, note=f"metadata {c.field} = {shown} "
                                     f"({c.op} {c.value!r})"),) if ok else (), scope=sc)


def _person(result: CallAnalysis, by: str) -> Any:
    for key in (f"{by}_id", by):
        v = result.metadata.get(key)
        if v not in (None, ""):
            return str(v)
    return None


def history(ctx: Context, sc: Scoped, c: m.History, n: int) -> Outcome:
    who = _person(ctx.result, c.by)
    if who is None:
        return Outcome(False, applicable=False, scope=sc, note=f"no {c.by}_id in metadata")
    earlier = [h for h in ctx.history if (h.agent_id if c.by == "agent" else h.customer_id) == who
               and h.call_id != ctx.result.call_id]
    earlier.sort(key=lambda h: h.started_at, reverse=True)
    recent = earlier[:c.last]
    if len(recent) < c.last:
        return Outcome(False, applicable=False, scope=sc, note=f"{len(recent)} earlier calls, {c.last} needed")
    role = sc.role if sc.role != "any" else "customer"

    def match(h: m.CallSummary) -> bool:
        if c.flag is not None:
            return c.flag in h.flags
        share = h.share(role, c.emotion)
        return share is not None and share >= c.min_share

    matched = [h for h in recent if match(h)]
    ok = len(matched) >= (c.min_count or c.last)
    what = f"flag {c.flag}" if c.flag else f"{role} {c.emotion} >= {c.min_share:g}"
    note = f"{len(matched)} of the {c.by}'s last {c.last} calls with {what}: {', '.join(h.call_id for h in matched)}"
    return Outcome(ok, (_interval_ev(ctx, 0, ctx.duration, n, note=note),) if ok else (), scope=sc)


EVALUATORS: dict[str, Callable[[Context, Scoped, Any, int], Outcome]] = {
    "keywords": keywords,
    "regex": regex,
    "similarity": similarity,
    "repetition": repetition,
    "emotion": emotion,
    "emotion_change": emotion_change,
    "event": event,
    "silence": silence,
    "talk_over": talk_over,
    "speech_rate": speech_rate,
    "loudness": loudness,
    "talk_ratio": talk_ratio,
    "duration": duration,
    "text_length": text_length,
    "segment_count": segment_count,
    "metadata": metadata,
    "history": history,
}
