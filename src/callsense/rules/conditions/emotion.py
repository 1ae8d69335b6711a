"""Conditions on emotion: a label or score per segment, and a turn from one emotion to another."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from callsense.analysis.common import clip, overlaps_any, score_of, segment_scores, total
from callsense.labels import EMOTION_NAMES, NEGATIVE_EMOTIONS, NEUTRAL_EMOTIONS, POSITIVE_EMOTIONS
from callsense.result.model import Segment
from callsense.result.qa import Evidence
from callsense.rules.conditions.checks import check_emotions
from callsense.rules.context import Context, Outcome, Scoped, cap, interval_ev, seg_ev
from callsense.rules.model import Condition, Findings, register_condition

GROUPS = {"positive": POSITIVE_EMOTIONS, "negative": NEGATIVE_EMOTIONS, "neutral": NEUTRAL_EMOTIONS}


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


@register_condition("emotion")
@dataclass(frozen=True, kw_only=True)
class Emotion(Condition):
    """An emotion label or score per segment; counted, sustained, or as a share of segments."""

    labels: tuple[str, ...]  # emotion names, or the groups positive / negative / neutral
    min_score: float | None = None  # summed score of labels; None: the top label is one of them
    sustained_s: float | None = None  # matching speech in one run of the role's segments
    share_below: float | None = None  # share of segments matching is below this
    share_at_least: float | None = None
    min_segments: int = 1  # fewer segments with emotion in scope: the condition is N/A
    min_count: int = 1

    def check(self, findings: Findings) -> None:
        super().check(findings)
        need = findings.need
        check_emotions(findings, "labels", self.labels)
        if self.min_score is not None:
            need(0 <= self.min_score <= 1, "min_score", "min_score must be in [0, 1]")
        modes = [k for k in ("sustained_s", "share_below", "share_at_least") if getattr(self, k) is not None]
        need(len(modes) <= 1, modes[-1] if modes else None, f"use one of {', '.join(modes)}, not several")
        for k in ("share_below", "share_at_least"):
            if getattr(self, k) is not None:
                need(0 <= getattr(self, k) <= 1, k, f"{k} must be in [0, 1]")

    def evaluate(self, ctx: Context, sc: Scoped, n: int) -> Outcome:
        labels = _expand(self.labels)
        rated = [(s, sc_) for s in sc.segments if (sc_ := segment_scores(s)) is not None]
        if len(rated) < self.min_segments or not rated:
            return Outcome(False, applicable=sc.anchor_missed, scope=sc,
                           note=f"{len(rated)} segments with emotion, {self.min_segments} needed")
        matching = [(s, x) for s, x in rated if _emotion_match(x, labels, self.min_score)]
        if self.share_below is not None or self.share_at_least is not None:
            share = len(matching) / len(rated)
            ok = share < self.share_below if self.share_below is not None else share >= self.share_at_least
            if not ok:
                return Outcome(False, scope=sc)
            note = f"{'+'.join(sorted(labels))} in {len(matching)} of {len(rated)} segments ({share:.0%})"
            shown = rated if self.share_below is not None else matching
            return Outcome(True, cap(seg_ev(ctx, s, n, note=f"{note}; this one: {_describe_scores(x, labels)}")
                                      for s, x in shown), scope=sc)
        if self.sustained_s is not None:
            need = round(self.sustained_s * 1000)
            runs: list[list[tuple[Segment, Sequence[float]]]] = []
            by_role: dict[str, list[tuple[Segment, Sequence[float]]]] = {}
            for s, x in rated:
                by_role.setdefault(s.role, []).append((s, x))
            for seq in by_role.values():
                run: list[tuple[Segment, Sequence[float]]] = []
                for s, x in [*seq, (None, None)]:
                    if s is not None and _emotion_match(x, labels, self.min_score):
                        run.append((s, x))
                        continue
                    if run:
                        runs.append(run)
                    run = []
            long_runs = [r for r in runs if total(ctx.spans[s.id] for s, _ in r) >= need]
            if len(long_runs) < self.min_count:
                return Outcome(False, scope=sc)
            ev = []
            for r in long_runs:
                secs = total(ctx.spans[s.id] for s, _ in r) / 1000
                ev += [seg_ev(ctx, s, n, note=f"{_describe_scores(x, labels)}; {secs:.1f} s sustained") for s, x in r]
            return Outcome(True, cap(ev), scope=sc)
        ok = len(matching) >= self.min_count
        return Outcome(ok, cap(seg_ev(ctx, s, n, note=_describe_scores(x, labels)) for s, x in matching) if ok else (),
                       scope=sc)


@register_condition("emotion_change")
@dataclass(frozen=True, kw_only=True)
class EmotionChange(Condition):
    """A turn from one emotion (group) to another within a role's next segments."""

    before: tuple[str, ...]  # labels or groups before the turn
    after: tuple[str, ...]
    min_score: float | None = None
    within_segments: int = 2  # the "after" segment is one of the next N segments of the role
    context_s: float = 15.0  # evidence: this much time on each side of the turn

    def check(self, findings: Findings) -> None:
        super().check(findings)
        need = findings.need
        check_emotions(findings, "before", self.before)
        check_emotions(findings, "after", self.after)
        if self.min_score is not None:
            need(0 <= self.min_score <= 1, "min_score", "min_score must be in [0, 1]")
        need(self.within_segments >= 1, "within_segments", "within_segments must be at least 1")

    def evaluate(self, ctx: Context, sc: Scoped, n: int) -> Outcome:
        before, after = _expand(self.before), _expand(self.after)
        by_role: dict[str, list[tuple[Segment, Sequence[float]]]] = {}
        for s in sc.segments:
            x = segment_scores(s)
            if x is not None:
                by_role.setdefault(s.role, []).append((s, x))
        if sum(len(v) for v in by_role.values()) < 2:
            return Outcome(False, applicable=sc.anchor_missed, scope=sc, note="fewer than 2 segments with emotion")
        ev: list[Evidence] = []
        pad = round(self.context_s * 1000)
        turns = 0
        for seq in by_role.values():
            last_turn_end = -1
            for i, (s, x) in enumerate(seq):
                if not _emotion_match(x, before, self.min_score) or ctx.spans[s.id][0] < last_turn_end:
                    continue
                for t, y in seq[i + 1:i + 1 + self.within_segments]:
                    if _emotion_match(y, after, self.min_score) and not _emotion_match(y, before, self.min_score):
                        turns += 1
                        at = ctx.spans[t.id][0]
                        last_turn_end = ctx.spans[t.id][1]
                        note = (f"{t.role}: {_describe_scores(x, before)} ({s.id}) -> {_describe_scores(y, after)} "
                                f"({t.id}) at {at / 1000:.1f} s")
                        window = clip(at - pad, at + pad, ctx.duration)
                        ev.append(interval_ev(ctx, *window, n, note=f"turn: {note}", role=t.role))
                        ev += [seg_ev(ctx, z, n, note="around the turn") for z in ctx.segments
                               if overlaps_any(*ctx.spans[z.id], [window])]
                        break
        return Outcome(turns > 0, cap(ev), scope=sc)
