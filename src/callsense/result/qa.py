"""QA parts of the result: call metrics, rule hits with evidence, scorecard score, alerts.

Filled by ``callsense.analysis`` (metrics) and ``callsense.rules`` (hits, score, alerts).
Every metric is defined exactly in docs/metrics.md; every time is integer milliseconds on the
call's time line. A value is ``None`` where it cannot be measured (no speech of that role, mono
audio for overlaps, no loudness or emotion data), never a made-up zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")  # mildest first


def severity_rank(severity: str | None) -> int:
    """0 for info ... 2 for critical; an unknown or missing severity ranks as info."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0  # type: ignore[arg-type]
RateUnit = Literal["chars_per_min", "words_per_min"]
Trend = Literal["improving", "worsening", "stable"]


# --------------------------------------------------------------------------------------- metrics
@dataclass(frozen=True)
class Interval:
    """A stretch of the call, e.g. one dead-air instance or a hold."""

    start_ms: int
    end_ms: int
    before_segment_id: str | None = None  # the last speech before it
    after_segment_id: str | None = None  # the first speech after it

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


@dataclass(frozen=True)
class Overlap:
    """Both parties speaking at once (stereo, or diarized mono). ``interrupter`` started while the other spoke."""

    start_ms: int
    end_ms: int
    interrupter: str  # role that started talking second
    interrupted: str
    interrupter_segment_id: str
    interrupted_segment_id: str
    interruption: bool  # at least ``MetricsOptions.interruption_min_ms`` long

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


@dataclass(frozen=True)
class Monologue:
    role: str
    start_ms: int
    end_ms: int
    segment_ids: tuple[str, ...]

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


@dataclass(frozen=True)
class SegmentMetrics:
    segment_id: str
    role: str
    units: int  # characters (zh/yue/ja/ko) or words (en) of the text
    rate_unit: RateUnit | None  # None when the segment has no text
    speech_rate: float | None  # units per minute of segment duration
    loudness: float | None  # level_dbfs on the 0-100 scale
    loudness_spike: bool = False
    overlap_ms: int = 0  # time this segment overlaps the other party


@dataclass(frozen=True)
class EmotionShares:
    """A duration-weighted distribution over the 9 emotion classes (``callsense.labels.EMOTIONS``)."""

    scores: tuple[float, ...]
    dominant: str
    valence: float  # P(positive) - P(negative), in [-1, 1]


@dataclass(frozen=True)
class RoleMetrics:
    role: str
    segments: int
    talk_ms: int  # union of the role's segments
    talk_share: float | None  # talk_ms / duration
    chars: int  # non-space, non-punctuation characters of the role's text
    words: int
    chars_per_min: float | None  # over the role's zh/yue/ja/ko segments
    words_per_min: float | None  # over the role's en segments
    level_dbfs: float | None  # energy mean of segment levels, duration-weighted
    loudness: float | None  # level_dbfs on the 0-100 scale
    peak_dbfs: float | None
    loudness_spikes: tuple[str, ...] = ()  # segment ids
    emotion: EmotionShares | None = None
    emotion_quarters: tuple[EmotionShares | None, ...] = ()  # 4, None where the role is silent
    emotion_trend: Trend | None = None
    interruptions: int = 0  # times this role talked over the other (>= interruption_min_ms)
    talked_over_ms: int = 0  # total overlap this role started
    longest_monologue: Monologue | None = None


@dataclass(frozen=True)
class CallMetrics:
    duration_ms: int
    talk_ms: int  # union of all segments
    non_talk_ms: int  # duration - talk_ms
    agent_talk_ratio: float | None  # agent talk / (agent + customer talk)
    roles: tuple[RoleMetrics, ...] = ()
    dead_air: tuple[Interval, ...] = ()
    dead_air_threshold_ms: int = 0
    dead_air_ms: int = 0
    leading_silence_ms: int | None = None  # start of call -> first speech
    trailing_silence_ms: int | None = None  # last speech -> end of recording
    overlap_measurable: bool = False  # stereo with two roles, or mono diarized into two or more speakers
    overlaps: tuple[Overlap, ...] = ()
    overlap_ms: int = 0  # union of overlapping time
    interruptions: int = 0
    first_agent_speech_ms: int | None = None
    first_response_ms: int | None = None  # customer's first turn end -> agent's next turn start
    longest_monologue: Monologue | None = None
    hold: tuple[Interval, ...] = ()  # music/hold events, merged
    hold_ms: int = 0
    hold_share: float | None = None
    segments: tuple[SegmentMetrics, ...] = ()

    def role(self, role: str) -> RoleMetrics | None:
        for r in self.roles:
            if r.role == role:
                return r
        return None


# ----------------------------------------------------------------------------------------- rules
@dataclass(frozen=True)
class Evidence:
    segment_id: str | None  # None for call-level evidence (a gap, metadata, a share of the call)
    start_ms: int
    end_ms: int
    text: str | None = None  # the matched span, when the condition is textual
    span: tuple[int, int] | None = None  # character offsets of the match in the segment text
    note: str | None = None  # what was measured, e.g. "angry 0.82 for 12.4 s"
    condition: int | None = None  # number of the condition that produced it
    role: str | None = None


@dataclass(frozen=True)
class Suggestion:
    """A suggested reply for the agent (the seeds' "建议话术"), in Chinese and English."""

    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}  # a misspelt language key in a rule file is an error
    zh: str = ""
    en: str = ""


@dataclass(frozen=True)
class RuleHit:
    rule_id: str
    rule_version: str
    name: str
    category: str
    severity: Severity
    score_delta: float = 0.0
    alert: bool = False
    evidence: tuple[Evidence, ...] = ()
    scorecard_item: str | None = None
    ruleset_id: str | None = None
    ruleset_version: str | None = None
    suggestion: Suggestion | None = None  # the rule's suggested reply, shown with the hit
    not_scored: bool = False  # this hit leaves the call without a score (an invalid call)

    def window(self, max_ms: int = 60_000) -> tuple[int, int] | None:
        """The stretch of the call to play for review: the span of the evidence, or, when that is longer
        than ``max_ms``, the first piece of evidence (cut to ``max_ms``). None without evidence."""
        if not self.evidence:
            return None
        start, end = min(e.start_ms for e in self.evidence), max(e.end_ms for e in self.evidence)
        if end - start > max_ms:
            first = self.evidence[0]
            start, end = first.start_ms, min(first.end_ms, first.start_ms + max_ms)
        return (start, end) if end > start else None


@dataclass(frozen=True)
class ItemScore:
    section_id: str
    item_id: str
    status: Literal["earned", "lost", "na"]
    points: float  # earned
    potential: float  # 0 when N/A
    rule_ids: tuple[str, ...] = ()  # the bound rules that decided it
    name: str = ""  # the scorecard's name of the item, e.g. "Scripted greeting"
    mode: str = ""  # fail_if_hit / pass_if_hit / deduct: how the rules decided it


@dataclass(frozen=True)
class SectionScore:
    section_id: str
    weight: float
    score: float
    potential: float
    normalized: float | None  # 0-100, None when every item is N/A
    name: str = ""


# A call's scorecard result. ``normalized`` is *the* QA score: 0-100, as shown to users and as stored
# (``calls.score_normalized``), filtered (``search --min-qa``, ``/v1/calls?min_score``) and exported
# (``qa_score``). ``score`` / ``potential`` are the raw points behind it (``qa_points``).
# ``status`` "not_scored": an invalid call (no speech, too little, mostly music or tones) gets no score and no
# pass/fail: ``normalized`` and ``passed`` are None, ``reason`` says why, sections and items are empty.
# (A comment, not a docstring: docstrings become the shipped JSON schema's descriptions.)
@dataclass(frozen=True)
class QAScore:
    scorecard_id: str
    scorecard_version: str
    score: float  # raw points earned
    potential: float  # raw points possible
    normalized: float | None  # 0-100, weighted over sections; None when not scored
    passed: bool | None  # None when not scored
    auto_failed: bool = False
    auto_fail_rules: tuple[str, ...] = ()
    sections: tuple[SectionScore, ...] = ()
    items: tuple[ItemScore, ...] = ()
    status: Literal["scored", "not_scored"] = "scored"
    reason: str | None = None  # why not scored, e.g. "call.invalid: 0.0 s of speech (below 3 s)"

    @property
    def scored(self) -> bool:
        return self.status == "scored"

    @property
    def verdict(self) -> str:
        """"pass", "fail" or "not scored", as every adapter shows it."""
        return "not scored" if not self.scored else ("pass" if self.passed else "fail")


@dataclass(frozen=True)
class AlertRecord:
    """One webhook delivery attempt series for one call (all alerting hits in one message)."""

    rule_ids: tuple[str, ...]
    target: str  # target name, or the URL without its query string
    format: str
    delivered: bool
    attempts: int
    status: int | None = None
    error: str | None = None
    sent_at: str | None = None  # ISO 8601 UTC of the last attempt
    elapsed_ms: int = 0
