"""The rule model: rule sets, rules, scopes, windows, consequences, scorecards, and the base
class and registry of condition types (the types themselves are in ``callsense.rules.conditions``).

These frozen dataclasses are what the evaluator reads. The loader (``callsense.rules.loader``)
builds them from YAML and validates them with pydantic, so every field below is also the name of
a YAML key; docs/rules.md is the reference for users.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, ClassVar, Literal, TypeVar

from pydantic import ConfigDict, InstanceOf

from callsense.result.qa import Suggestion
from callsense.rules import expr as _expr

if TYPE_CHECKING:
    from callsense.rules.context import Context, Outcome, Scoped

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
    not_scored: bool = False  # a hit leaves the call without a score or pass/fail (invalid calls)


# ------------------------------------------------------------------------------------ conditions
@dataclass
class Findings:
    """Where a condition's :meth:`Condition.check` reports problems of meaning.

    ``given`` holds the keys written in the file (a check can tell "absent" from "null"); each
    problem names the key it is about, and the loader turns that into ``file:line:column``.
    """

    given: frozenset[str] = frozenset()
    problems: list[tuple[str | None, str, str | None, int]] = field(default_factory=list)

    def add(self, key: str | None, message: str, hint: str | None = None, *, offset: int = 0) -> None:
        self.problems.append((key or None, message, hint, offset))

    def need(self, ok: bool, key: str | None, message: str, hint: str | None = None) -> None:
        if not ok:
            self.add(key, message, hint)


@dataclass(frozen=True, kw_only=True)
class Condition:
    """Base of every condition type: one class owns a type's YAML schema (its dataclass fields),
    its checks of meaning (:meth:`check`) and its evaluation (:meth:`evaluate`).

    A type is made known once, with :func:`register_condition`; the loader and the evaluator find
    it there. The fields below override the rule's scope for this condition.
    """

    __pydantic_config__ = ConfigDict(extra="forbid", coerce_numbers_to_str=True)  # 12315 unquoted is text
    type: ClassVar[str] = ""  # set by register_condition; the ``type:`` key in YAML
    role: ScopeRole | None = None
    window: Window | None = None
    min_chars: int | None = None

    def check(self, findings: Findings) -> None:
        """Problems of meaning the types cannot express (``min_count >= 1``, a valid regex, ...).
        Subclasses extend it and call ``super().check(findings)``."""
        if getattr(self, "min_count", None) is not None and self.min_count < 1:  # type: ignore[attr-defined]
            findings.add("min_count", "min_count must be at least 1")
        if self.min_chars is not None:
            findings.need(self.min_chars >= 0, "min_chars", "min_chars must be >= 0")

    def evaluate(self, ctx: Context, scope: Scoped, n: int) -> Outcome:
        """Whether the condition matched in ``scope``, with evidence (``n``: its number in the rule)."""
        raise NotImplementedError


CONDITIONS: dict[str, type[Condition]] = {}  # type name -> class; filled by register_condition

_C = TypeVar("_C", bound=type[Condition])


def register_condition(name: str) -> Callable[[_C], _C]:
    """Class decorator: make a :class:`Condition` subclass the condition type ``name``.

    The built-in types register themselves in ``callsense.rules.conditions``; a plug-in does the
    same and its type is then valid in every rule file loaded afterwards.
    """

    def add(cls: _C) -> _C:
        if name in CONDITIONS and CONDITIONS[name] is not cls:
            raise ValueError(f"condition type {name!r} is already registered ({CONDITIONS[name].__qualname__})")
        cls.type = name
        CONDITIONS[name] = cls
        return cls

    return add


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
    conditions: dict[int, InstanceOf[Condition]]  # built by the loader through the registry
    expression: str | None = None  # default: every condition (1 && 2 && ...)
    consequence: Consequence = field(default_factory=Consequence)
    suggestion: Suggestion | None = None  # a suggested reply ({zh: ..., en: ...}), shown with each hit

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
    # sensitivity per emotion class, applied before the main label is chosen (docs/rules.md,
    # "Emotion weights"); an explicit --emotion-weights / service setting wins per class
    emotion_weights: tuple[tuple[str, float], ...] = ()
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


# -------------------------------------------------------------------------------------- outliers
@dataclass(frozen=True)
class OutlierScore:
    """A segment's latest stored outlier score (``callsense clusters outliers``), for ``outlier`` conditions."""

    score: float  # mean cosine distance to the nearest reference segments
    flagged: bool  # over the run's threshold (a quantile of the reference's own scores)
    run_id: int  # the outliers run that scored the segment
    threshold: float | None = None
