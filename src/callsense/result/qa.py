"""QA parts of the result: call metrics, rule hits with evidence, scorecard score, alerts.

Filled by ``callsense.analysis`` (metrics) and ``callsense.rules`` (hits, score, alerts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True)
class Evidence:
    segment_id: str | None
    start_ms: int
    end_ms: int
    text: str | None = None  # the matched span, when the condition is textual
    span: tuple[int, int] | None = None  # character offsets of the match in the segment text
    note: str | None = None


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


@dataclass(frozen=True)
class CallMetrics:
    duration_ms: int
    values: dict[str, Any]  # metric name -> value; definitions in docs/metrics.md


@dataclass(frozen=True)
class QAScore:
    scorecard_id: str
    scorecard_version: str
    score: float
    potential: float
    normalized: float
    passed: bool
    auto_failed: bool = False


@dataclass(frozen=True)
class AlertRecord:
    rule_id: str
    target: str
    format: str
    delivered: bool
    attempts: int
    status: int | None = None
    error: str | None = None
