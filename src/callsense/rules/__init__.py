"""QA rules: a declarative YAML rule language, its evaluator, scorecards and alert webhooks.

    from callsense.rules import apply_qa, load_ruleset

    result = apply_qa(result)                                  # default pack + default scorecard
    result = apply_qa(result, ruleset=load_ruleset("my-rules.yaml"))

Evaluation is pure (no I/O); alerts (``callsense.rules.alerts.send_alerts``) are separate.
The rule language is documented in docs/rules.md, the metrics in docs/metrics.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from callsense.result.model import CallAnalysis

# imported eagerly so that ``callsense.rules.evaluate`` is the function, not the submodule of the same name
from callsense.rules.evaluate import evaluate, evaluate_outcomes
from callsense.rules.loader import (
    Problem,
    RuleFileError,
    default_ruleset,
    default_scorecard,
    load_ruleset,
    load_ruleset_text,
    load_scorecard,
    load_scorecard_text,
)
from callsense.rules.model import CallSummary, EmotionShare, OutlierScore, Rule, Ruleset, Scorecard

__all__ = [
    "CallSummary",
    "EmotionShare",
    "OutlierScore",
    "Problem",
    "Rule",
    "RuleFileError",
    "Ruleset",
    "Scorecard",
    "apply_qa",
    "default_ruleset",
    "default_scorecard",
    "evaluate",
    "evaluate_outcomes",
    "load_ruleset",
    "load_ruleset_text",
    "load_scorecard",
    "load_scorecard_text",
    "summarize",
]


def apply_qa(result: CallAnalysis, *, ruleset: Ruleset | None = None, scorecard: Scorecard | None = None,
             history: Sequence[CallSummary] | None = None,
             outliers: Mapping[str, OutlierScore] | None = None) -> CallAnalysis:
    """A copy of ``result`` with ``metrics``, ``rule_hits`` and ``score`` filled.

    ``ruleset`` / ``scorecard`` default to the shipped default pack and scorecard. ``history``
    holds summaries of earlier calls (see :func:`summarize`) for cross-call conditions, ``outliers``
    the segments' stored outlier scores (by segment id) for ``outlier`` conditions.
    """
    from callsense.analysis.metrics import compute_metrics
    from callsense.rules.scorecard import score_call

    ruleset = ruleset if ruleset is not None else default_ruleset()
    scorecard = scorecard if scorecard is not None else default_scorecard()
    with_metrics = dataclasses.replace(result, metrics=compute_metrics(result))
    outcomes = evaluate_outcomes(with_metrics, ruleset, history=history, outliers=outliers)
    hits = tuple(o.hit for o in outcomes if o.hit is not None)
    return dataclasses.replace(with_metrics, rule_hits=hits, score=score_call(outcomes, scorecard, ruleset))


def summarize(result: CallAnalysis) -> CallSummary:
    """What later calls' ``history`` conditions need to know about ``result``."""
    from callsense.analysis.metrics import compute_metrics
    from callsense.labels import EMOTION_NAMES

    metrics = result.metrics if result.metrics is not None else compute_metrics(result)
    shares = tuple(
        EmotionShare(role=r.role, label=label, share=float(score))
        for r in metrics.roles if r.emotion is not None
        for label, score in zip(EMOTION_NAMES, r.emotion.scores)
    )
    meta = result.metadata

    def ident(key: str) -> str | None:
        v = meta.get(f"{key}_id", meta.get(key))
        return None if v in (None, "") else str(v)

    return CallSummary(
        call_id=result.call_id,
        started_at=str(meta.get("started_at") or result.processing.started_at),
        agent_id=ident("agent"),
        customer_id=ident("customer"),
        flags=tuple(dict.fromkeys(h.rule_id for h in result.rule_hits)),
        emotions=shares,
    )
