"""The rule model: rule sets, rules, scopes, windows, conditions, consequences, scorecards.

These frozen dataclasses are what the evaluator reads. The loader (``callsense.rules.loader``)
builds them from YAML and validates them with pydantic, so every field below is also the name of
a YAML key; docs/rules.md is the reference for users.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from callsense.rules import expr as _expr

ScopeRole = Literal["agent", "customer", "unknown", "any"]
Severity = Literal["info", "warning", "critical"]
_STRICT = ConfigDict(extra="forbid")


@dataclass(frozen=True, kw_only=True)
class Window:
    """Which part of the call a condition looks at. No field set: the whole call.

    Exactly one of: ``first_s``, ``last_s``, ``first_segments``, ``last_segments``, ``share``
    (``[from, to]`` as fractions of the call) or ``around`` (a condition number, with ``segments``
    or ``seconds`` on each side of that condition's evidence).
    """

    __pydantic_config__ = _STRICT
    first_s: float | None = None
    last_s: float | None = None
    first_segments: int | None = None
    last_segments: int | None = None
    share: tuple[float, float] | None = None
    around: int | None = None
    segments: int | None = None
    seconds: float | None = None

    @property
    def kind(self) -> str:
        for name in ("first_s", "last_s", "first_segments", "last_segments", "share", "around"):
            if getattr(self, name) is not None:
                return name
        return "call"


WHOLE_CALL = Window()


@dataclass(frozen=True, kw_only=True)
class Scope:
    __pydantic_config__ = _STRICT
    role: ScopeRole = "any"
    window: Window = WHOLE_CALL
    min_chars: int = 0  # ignore segments with fewer speech characters than this


@dataclass(frozen=True, kw_only=True)
class Consequence:
    __pydantic_config__ = _STRICT
    severity: Severity = "warning"  # critical fails the call on a scorecard with auto_fail_on_critical
    score_delta: float = 0.0  # used by scorecard items in "deduct" mode
    alert: bool = False  # send to the alert targets (critical hits are always sent)
    item: str | None = None  # "section.item" of the scorecard this rule decides


# ------------------------------------------------------------------------------------ conditions
@dataclass(frozen=True, kw_only=True)
class _Base:
    """Fields every condition has: overrides of the rule's scope."""

    __pydantic_config__ = _STRICT
    role: ScopeRole | None = None
    window: Window | None = None
    min_chars: int | None = None


@dataclass(frozen=True, kw_only=True)
class Keywords(_Base):
    type: Literal["keywords"] = "keywords"
    words: tuple[str, ...]
    match: Literal["any", "all", "none"] = "any"
    at_least: int | None = None  # at least N different words (instead of match)
    in_order: bool = False  # with match: all, in this order within one segment
    within: int | None = None  # with match: all, every word within this many characters in one segment
    exclude: tuple[str, ...] = ()  # phrases that hide a match inside them ("没问题")
    negations: tuple[str, ...] = ()  # cues that cancel a following word ("不是", "not")
    negation_window: int = 6  # characters before the word searched for a cue (stops at punctuation)
    min_count: int = 1  # segments with a match


@dataclass(frozen=True, kw_only=True)
class Regex(_Base):
    type: Literal["regex"] = "regex"
    pattern: str
    exclude: str | None = None  # a segment matching this is skipped
    ignore_case: bool = True
    min_count: int = 1


@dataclass(frozen=True, kw_only=True)
class Similarity(_Base):
    type: Literal["similarity"] = "similarity"
    examples: tuple[str, ...]
    min_similarity: float = 0.8  # difflib ratio of normalised text, 0-1
    min_count: int = 1


@dataclass(frozen=True, kw_only=True)
class Repetition(_Base):
    type: Literal["repetition"] = "repetition"
    min_repeats: int = 3  # the same sentence said this many times
    min_length: int = 4  # sentences shorter than this (characters) are ignored ("嗯", "好的")


@dataclass(frozen=True, kw_only=True)
class Emotion(_Base):
    type: Literal["emotion"] = "emotion"
    labels: tuple[str, ...]  # emotion names, or the groups positive / negative / neutral
    min_score: float | None = None  # summed score of labels; None: the top label is one of them
    sustained_s: float | None = None  # matching speech in one run of the role's segments
    share_below: float | None = None  # share of segments matching is below this
    share_at_least: float | None = None
    min_segments: int = 1  # fewer segments with emotion in scope: the condition is N/A
    min_count: int = 1


@dataclass(frozen=True, kw_only=True)
class EmotionChange(_Base):
    type: Literal["emotion_change"] = "emotion_change"
    before: tuple[str, ...]  # labels or groups before the turn
    after: tuple[str, ...]
    min_score: float | None = None
    within_segments: int = 2  # the "after" segment is one of the next N segments of the role
    context_s: float = 15.0  # evidence: this much time on each side of the turn


@dataclass(frozen=True, kw_only=True)
class Event(_Base):
    type: Literal["event"] = "event"
    events: tuple[str, ...]  # SenseVoice event tags: BGM, Cough, Sneeze, Laughter, Cry, ...
    min_count: int = 1
    min_share: float | None = None  # share of the window covered by these events


@dataclass(frozen=True, kw_only=True)
class Silence(_Base):
    type: Literal["silence"] = "silence"
    kind: Literal["dead_air", "leading", "trailing"] = "dead_air"
    min_s: float
    min_count: int = 1
    hold_is_silence: bool = False  # count time under hold music as silence


@dataclass(frozen=True, kw_only=True)
class TalkOver(_Base):
    type: Literal["talk_over"] = "talk_over"
    min_s: float = 1.0  # each overlap at least this long (role = who started talking over)
    min_count: int = 1
    total_min_s: float | None = None


@dataclass(frozen=True, kw_only=True)
class SpeechRate(_Base):
    type: Literal["speech_rate"] = "speech_rate"
    unit: Literal["chars_per_min", "words_per_min"] = "chars_per_min"
    above: float | None = None
    below: float | None = None
    per: Literal["segment", "role"] = "segment"
    min_segment_s: float = 2.0  # shorter segments give unstable rates and are skipped
    min_count: int = 1


@dataclass(frozen=True, kw_only=True)
class Loudness(_Base):
    type: Literal["loudness"] = "loudness"
    above_dbfs: float | None = None
    below_dbfs: float | None = None
    spike: bool = False  # segments marked as spikes by the metrics
    min_count: int = 1


@dataclass(frozen=True, kw_only=True)
class TalkRatio(_Base):
    type: Literal["talk_ratio"] = "talk_ratio"
    above: float | None = None  # role's share of agent + customer talk time, 0-1
    below: float | None = None


@dataclass(frozen=True, kw_only=True)
class Duration(_Base):
    type: Literal["duration"] = "duration"
    above_s: float | None = None
    below_s: float | None = None


@dataclass(frozen=True, kw_only=True)
class TextLength(_Base):
    type: Literal["text_length"] = "text_length"
    above: int | None = None  # speech characters in scope
    below: int | None = None


@dataclass(frozen=True, kw_only=True)
class SegmentCount(_Base):
    type: Literal["segment_count"] = "segment_count"
    above: int | None = None
    below: int | None = None


MetadataOp = Literal["eq", "ne", "in", "not_in", "contains", "regex", "gt", "ge", "lt", "le", "exists", "missing"]


@dataclass(frozen=True, kw_only=True)
class Metadata(_Base):
    type: Literal["metadata"] = "metadata"
    field: str  # key in result.metadata; dots reach into nested mappings ("custom.vip")
    op: MetadataOp = "eq"
    value: Any = None


@dataclass(frozen=True, kw_only=True)
class History(_Base):
    type: Literal["history"] = "history"
    by: Literal["agent", "customer"] = "agent"  # earlier calls of the same agent / customer
    last: int = 3  # how many earlier calls are looked at
    min_count: int | None = None  # of those, how many must match (default: all ``last``)
    flag: str | None = None  # a rule id that hit in the earlier call
    emotion: str | None = None  # or: this emotion's share for ``role`` (default customer)...
    min_share: float = 0.3  # ...at least this


Condition = Annotated[
    Keywords | Regex | Similarity | Repetition | Emotion | EmotionChange | Event | Silence | TalkOver | SpeechRate | Loudness | TalkRatio | Duration | TextLength | SegmentCount | Metadata | History,
    Field(discriminator="type"),
]
CONDITION_TYPES: dict[str, type] = {
    c.__dataclass_fields__["type"].default: c  # type: ignore[attr-defined]
    for c in (Keywords, Regex, Similarity, Repetition, Emotion, EmotionChange, Event, Silence, TalkOver, SpeechRate,
              Loudness, TalkRatio, Duration, TextLength, SegmentCount, Metadata, History)
}


# ----------------------------------------------------------------------------------------- rules
@dataclass(frozen=True, kw_only=True)
class Rule:
    __pydantic_config__ = _STRICT
    id: str
    version: str = "1"
    name: str
    category: str = "general"
    description: str = ""
    enabled: bool = True
    scope: Scope = field(default_factory=Scope)
    conditions: dict[int, Condition]
    expression: str | None = None  # default: every condition (1 && 2 && ...)
    consequence: Consequence = field(default_factory=Consequence)

    @cached_property
    def tree(self) -> _expr.Expr:
        if self.expression is None or not str(self.expression).strip():
            return _expr.And(tuple(_expr.Ref(n) for n in sorted(self.conditions)))
        return _expr.parse(self.expression)


@dataclass(frozen=True, kw_only=True)
class AlertTarget:
    """A webhook. ``secret`` signs DingTalk and Feishu requests where the robot requires it."""

    __pydantic_config__ = _STRICT
    url: str
    format: Literal["generic", "wecom", "dingtalk", "feishu", "slack"] = "generic"
    name: str | None = None
    secret: str | None = None
    timeout_s: float = 5.0  # per attempt
    retries: int = 2  # attempts after the first
    backoff_s: float = 0.5  # wait before retry n: backoff_s * 2**(n-1)
    min_severity: Severity = "critical"  # hits below this are sent only when their rule says alert: true


@dataclass(frozen=True, kw_only=True)
class RulesetInfo:
    __pydantic_config__ = _STRICT
    id: str = "custom"
    version: str = "1"
    name: str = ""
    description: str = ""


@dataclass(frozen=True, kw_only=True)
class Ruleset:
    __pydantic_config__ = _STRICT
    ruleset: RulesetInfo = field(default_factory=RulesetInfo)
    rules: tuple[Rule, ...] = ()
    alerts: tuple[AlertTarget, ...] = ()
    source: str | None = None

    @property
    def id(self) -> str:
        return self.ruleset.id

    @property
    def version(self) -> str:
        return self.ruleset.version

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


# ------------------------------------------------------------------------------------ scorecards
@dataclass(frozen=True, kw_only=True)
class ScorecardItem:
    """``mode``: ``fail_if_hit`` (points unless a bound rule hits), ``pass_if_hit`` (points only if
    one hits, e.g. a greeting check) or ``deduct`` (points plus the hits' score_delta, floored at 0)."""

    __pydantic_config__ = _STRICT
    id: str
    name: str = ""
    points: float = 10.0
    rules: tuple[str, ...] = ()
    mode: Literal["fail_if_hit", "pass_if_hit", "deduct"] = "fail_if_hit"
    critical: bool = False  # losing this item fails the call


@dataclass(frozen=True, kw_only=True)
class ScorecardSection:
    __pydantic_config__ = _STRICT
    id: str
    name: str = ""
    weight: float = 1.0
    items: tuple[ScorecardItem, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ScorecardInfo:
    __pydantic_config__ = _STRICT
    id: str
    version: str = "1"
    name: str = ""
    description: str = ""
    pass_score: float = 80.0  # normalised, 0-100
    auto_fail_on_critical: bool = True  # any critical hit fails the call
    sections: tuple[ScorecardSection, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Scorecard:
    __pydantic_config__ = _STRICT
    scorecard: ScorecardInfo
    source: str | None = None

    @property
    def id(self) -> str:
        return self.scorecard.id

    @property
    def version(self) -> str:
        return self.scorecard.version


# --------------------------------------------------------------------------------------- history
@dataclass(frozen=True)
class EmotionShare:
    role: str
    label: str
    share: float  # duration-weighted mean score of the label over the role's speech


@dataclass(frozen=True)
class CallSummary:
    """What a cross-call (``history``) condition needs to know about an earlier call."""

    call_id: str
    started_at: str  # ISO 8601; history is ordered by it
    agent_id: str | None = None
    customer_id: str | None = None
    flags: tuple[str, ...] = ()  # ids of the rules that hit
    emotions: tuple[EmotionShare, ...] = ()

    def share(self, role: str, label: str) -> float | None:
        return next((e.share for e in self.emotions if e.role == role and e.label == label), None)
