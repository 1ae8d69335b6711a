"""Conditions on what was said: keywords, regular expressions, similarity, repetition, text length, segment count."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from callsense.analysis.common import count_chars
from callsense.result.model import Segment
from callsense.rules.conditions.checks import check_regex
from callsense.rules.context import (
    Context,
    Outcome,
    Scoped,
    bounds,
    cap,
    compiled,
    lower,
    out_of_range,
    scope_evidence,
    seg_ev,
)
from callsense.rules.model import Condition, Findings, register_condition

_CLAUSE_END = set("，。！？；,.!?;：:\n")
_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)
_SENTENCE = re.compile(r"[。！？!?；;.\n]+")


def _is_ascii_word(word: str) -> bool:
    return word.isascii() and any(ch.isalnum() for ch in word)


@lru_cache(maxsize=4096)

@lru_cache(maxsize=4096)
def _word_pattern(word: str) -> re.Pattern[str]:
    w = re.escape(lower(word))
    if _is_ascii_word(word):  # English words match whole words only: "sue" is not in "issue"
        return re.compile(rf"(?<![a-z0-9]){w}(?![a-z0-9])")
    return re.compile(w)


@lru_cache(maxsize=1024)

def _norm(text: str) -> str:
    return _PUNCT.sub("", lower(text))


def _keyword_matches(c: Keywords, text: str) -> list[tuple[str, int, int]]:
    low = lower(text)
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


def _negated(low: str, start: int, c: Keywords) -> bool:
    """A negation cue in the same clause just before the word: 6 characters (CJK) or 3 words (English)."""
    before = low[max(0, start - 40):start]
    for i in range(len(before) - 1, -1, -1):
        if before[i] in _CLAUSE_END:
            before = before[i + 1:]
            break
    cjk_tail = before[-c.negation_window:] if c.negation_window else ""
    words_tail = " ".join(re.findall(r"[a-z0-9']+", before)[-3:])
    for cue in c.negations:
        cue_low = lower(cue)
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


@register_condition("keywords")
@dataclass(frozen=True, kw_only=True)
class Keywords(Condition):
    """Words said (any / all / at least N / none), optionally in order or within a distance;
    exclusion phrases and negation cues."""

    words: tuple[str, ...]
    match: Literal["any", "all", "none"] = "any"
    at_least: int | None = None  # at least N different words (instead of match)
    in_order: bool = False  # with match: all, in this order within one segment
    within: int | None = None  # with match: all, every word within this many characters in one segment
    exclude: tuple[str, ...] = ()  # phrases that hide a match inside them ("没问题")
    negations: tuple[str, ...] = ()  # cues that cancel a following word ("不是", "not")
    negation_window: int = 6  # characters before the word searched for a cue (stops at punctuation)
    min_count: int = 1  # segments with a match

    def check(self, findings: Findings) -> None:
        super().check(findings)
        need = findings.need
        need(bool(self.words) and all(w.strip() for w in self.words), "words",
             "keywords need a non-empty list of words")
        if self.at_least is not None:
            need(1 <= self.at_least <= len(self.words), "at_least",
                 f"at_least must be between 1 and the number of words ({len(self.words)})")
            need(self.match == "any", "match", "use either at_least or match, not both")
        need(not (self.in_order or self.within is not None) or self.match == "all", "match",
             "in_order and within need match: all")
        need(self.negation_window >= 0, "negation_window", "negation_window must be >= 0")

    def evaluate(self, ctx: Context, sc: Scoped, n: int) -> Outcome:
        per_seg = [(s, _keyword_matches(self, s.text)) for s in sc.segments]
        per_seg = [(s, f) for s, f in per_seg if f]
        if self.match == "none":
            if per_seg:
                return Outcome(False, scope=sc)
            return Outcome(True, (scope_evidence(ctx, sc, n, f"none of {', '.join(self.words)} said"),), scope=sc,
                           applicable=bool(sc.segments) or sc.anchor_missed)
        if self.match == "all" and (self.in_order or self.within is not None):
            hits = []
            for s, found in per_seg:
                chosen = _in_order(self.words, found) if self.in_order else None
                if self.in_order and chosen is None:
                    continue
                if self.within is not None:
                    chosen = _within(self.words, found, self.within)
                    if chosen is not None and self.in_order and [x[0] for x in chosen] != list(self.words):
                        chosen = _in_order(self.words, chosen)
                if chosen:
                    hits.append((s, chosen))
            ok = len(hits) >= self.min_count
            return Outcome(ok, cap(seg_ev(ctx, s, n, text=s.text[a:b], span=(a, b), note=f"keyword {w!r}")
                                    for s, ch in hits for w, a, b in ch) if ok else (), scope=sc)
        words_found = {w for _, f in per_seg for w, _, _ in f}
        if self.match == "all":
            ok = words_found >= set(self.words) and len(per_seg) >= 1
        elif self.at_least is not None:
            ok = len(words_found) >= self.at_least
        else:
            ok = len(per_seg) >= self.min_count
        if self.match == "all" or self.at_least is not None:
            ok = ok and len(per_seg) >= self.min_count
        ev = cap(seg_ev(ctx, s, n, text=s.text[a:b], span=(a, b), note=f"keyword {w!r}")
                  for s, f in per_seg for w, a, b in f)
        return Outcome(ok, ev if ok else (), scope=sc)


@register_condition("regex")
@dataclass(frozen=True, kw_only=True)
class Regex(Condition):
    """A regular expression over each segment's text, with an exclusion pattern."""

    pattern: str
    exclude: str | None = None  # a segment matching this is skipped
    ignore_case: bool = True
    min_count: int = 1

    def check(self, findings: Findings) -> None:
        super().check(findings)
        for key in ("pattern", "exclude"):
            check_regex(findings, key, getattr(self, key),
                        "Python regex syntax; escape ( ) [ ] . * + ? with a backslash")

    def evaluate(self, ctx: Context, sc: Scoped, n: int) -> Outcome:
        pat = compiled(self.pattern, self.ignore_case)
        exc = compiled(self.exclude, self.ignore_case) if self.exclude else None
        hits = []
        for s in sc.segments:
            if exc is not None and exc.search(s.text):
                continue
            found = [mt for mt in pat.finditer(s.text) if mt.end() > mt.start()]
            if found:
                hits.append((s, found))
        ok = len(hits) >= self.min_count
        ev = cap(seg_ev(ctx, s, n, text=mt.group(0), span=mt.span(), note=f"matches /{self.pattern}/")
                  for s, f in hits for mt in f)
        return Outcome(ok, ev if ok else (), scope=sc)


@register_condition("similarity")
@dataclass(frozen=True, kw_only=True)
class Similarity(Condition):
    """A segment close to one of the example sentences (scripted greeting or closing)."""

    examples: tuple[str, ...]
    min_similarity: float = 0.8  # difflib ratio of normalised text, 0-1
    min_count: int = 1

    def check(self, findings: Findings) -> None:
        super().check(findings)
        need = findings.need
        need(bool(self.examples), "examples", "similarity needs a non-empty list of examples")
        need(0 < self.min_similarity <= 1, "min_similarity", "min_similarity must be in (0, 1]")

    def evaluate(self, ctx: Context, sc: Scoped, n: int) -> Outcome:
        examples = [_norm(x) for x in self.examples]
        hits = []
        for s in sc.segments:
            pieces = [p for p in [s.text, *_SENTENCE.split(s.text)] if _norm(p)]
            best = 0.0
            for piece in pieces:
                for ex in examples:
                    if ex:
                        best = max(best, difflib.SequenceMatcher(None, _norm(piece), ex).ratio())
            if best >= self.min_similarity:
                hits.append((s, best))
        ok = len(hits) >= self.min_count
        return Outcome(ok, cap(seg_ev(ctx, s, n, text=s.text, note=f"similarity {r:.2f} to the script")
                                for s, r in hits) if ok else (), scope=sc)


@register_condition("repetition")
@dataclass(frozen=True, kw_only=True)
class Repetition(Condition):
    """The same sentence said several times."""

    min_repeats: int = 3  # the same sentence said this many times
    min_length: int = 4  # sentences shorter than this (characters) are ignored ("嗯", "好的")

    def check(self, findings: Findings) -> None:
        super().check(findings)
        need = findings.need
        need(self.min_repeats >= 2, "min_repeats", "min_repeats must be at least 2")

    def evaluate(self, ctx: Context, sc: Scoped, n: int) -> Outcome:
        seen: dict[str, list[Segment]] = {}  # sentence -> the segment of each time it was said
        for s in sc.segments:
            for sentence in (_norm(p) for p in _SENTENCE.split(s.text)):
                if len(sentence) >= self.min_length:
                    seen.setdefault(sentence, []).append(s)
        repeated = {k: v for k, v in seen.items() if len(v) >= self.min_repeats}
        ev = cap(seg_ev(ctx, s, n, text=s.text, note=f"said {len(v)} times: {k!r}") for k, v in repeated.items()
                  for s in dict.fromkeys(v))
        return Outcome(bool(repeated), ev, scope=sc)


@register_condition("text_length")
@dataclass(frozen=True, kw_only=True)
class TextLength(Condition):
    """Speech characters in scope above or below a bound."""

    above: int | None = None  # speech characters in scope
    below: int | None = None

    def check(self, findings: Findings) -> None:
        super().check(findings)
        need = findings.need
        need(self.above is not None or self.below is not None, None, f"{self.type} needs 'above' or 'below' (or both)")

    def evaluate(self, ctx: Context, sc: Scoped, n: int) -> Outcome:
        if sc.segments and all(s.asr_status == "skipped" for s in sc.segments):  # --no-asr: no text to count
            return Outcome(False, applicable=False, scope=sc, note="no transcript (ASR skipped)")
        chars = sum(count_chars(s.text) for s in sc.segments)
        ok = out_of_range(chars, self.above, self.below)
        if not ok:
            return Outcome(False, scope=sc)
        note = f"{chars} characters of speech ({bounds(self.above, self.below)})"
        ev = [seg_ev(ctx, s, n, note=note) for s in sc.segments] or [scope_evidence(ctx, sc, n, note)]
        return Outcome(True, cap(ev), scope=sc)


@register_condition("segment_count")
@dataclass(frozen=True, kw_only=True)
class SegmentCount(Condition):
    """Number of segments in scope above or below a bound."""

    above: int | None = None
    below: int | None = None

    def check(self, findings: Findings) -> None:
        super().check(findings)
        need = findings.need
        need(self.above is not None or self.below is not None, None, f"{self.type} needs 'above' or 'below' (or both)")

    def evaluate(self, ctx: Context, sc: Scoped, n: int) -> Outcome:
        k = len(sc.segments)
        ok = out_of_range(k, self.above, self.below)
        if not ok:
            return Outcome(False, scope=sc)
        note = f"{k} segments ({bounds(self.above, self.below)})"
        ev = [seg_ev(ctx, s, n, note=note) for s in sc.segments] or [scope_evidence(ctx, sc, n, note)]
        return Outcome(True, cap(ev), scope=sc)
