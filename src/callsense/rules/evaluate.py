"""Evaluate a rule set on a result: pure, no I/O, never raises on a valid result.

``evaluate(result, ruleset)`` gives the rule hits; ``evaluate_outcomes`` also says, for every rule,
whether it passed or was not applicable (N/A: a condition it depends on could not be measured),
which scorecards need.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from callsense.analysis.common import call_events, clip
from callsense.analysis.metrics import compute_metrics
from callsense.result.model import CallAnalysis
from callsense.result.qa import Evidence, RuleHit
from callsense.rules import expr as _expr
from callsense.rules import model as m
from callsense.rules.context import Context, Outcome, Scoped, resolve_scope, scope_evidence

log = logging.getLogger("callsense")

PARTY_ROLES = ("agent", "customer")
ROLE_NOT_ESTABLISHED = "role not established"


@dataclass(frozen=True)
class RuleOutcome:
    rule_id: str
    status: Literal["hit", "pass", "na"]
    hit: RuleHit | None = None
    reason: str | None = None  # why N/A


def build_context(result: CallAnalysis, history: Sequence[m.CallSummary] | None = None,
                  outliers: Mapping[str, m.OutlierScore] | None = None) -> Context:
    metrics = result.metrics if result.metrics is not None else compute_metrics(result)
    dur = metrics.duration_ms
    segs = tuple(sorted(result.segments, key=lambda s: (s.start_ms, s.end_ms, s.id)))
    return Context(
        result=result,
        metrics=metrics,
        segments=segs,
        spans={s.id: clip(s.start_ms, s.end_ms, dur) for s in segs},
        index={s.id: i for i, s in enumerate(segs)},
        events=call_events(result),
        history=tuple(history or ()),
        outliers=dict(outliers or {}),
    )


def evaluate(result: CallAnalysis, ruleset: m.Ruleset, *, history: Sequence[m.CallSummary] | None = None,
             outliers: Mapping[str, m.OutlierScore] | None = None) -> tuple[RuleHit, ...]:
    """The hits of ``ruleset`` on ``result``, in rule order, each with evidence."""
    return tuple(o.hit for o in evaluate_outcomes(result, ruleset, history=history, outliers=outliers)
                 if o.hit is not None)


def evaluate_outcomes(result: CallAnalysis, ruleset: m.Ruleset, *,
                      history: Sequence[m.CallSummary] | None = None, strict: bool = False,
                      outliers: Mapping[str, m.OutlierScore] | None = None) -> tuple[RuleOutcome, ...]:
    """Hit / pass / N/A for every enabled rule. ``strict`` lets an internal error propagate (tests);
    otherwise it is logged and the rule counts as N/A, so one bad rule never loses the analysis.
    ``outliers``: the segments' stored outlier scores, for ``outlier`` conditions (store/history.py)."""
    ctx = build_context(result, history, outliers)
    out = []
    for rule in ruleset.rules:
        if not rule.enabled:
            continue
        try:
            out.append(evaluate_rule(ctx, rule, ruleset))
        except Exception as e:  # a bug in a condition must not lose the call's analysis
            if strict:
                raise
            log.warning("rule %s failed on call %s: %s", rule.id, result.call_id, e, exc_info=True)
            out.append(RuleOutcome(rule.id, "na", reason=f"internal error: {e}"))
    return tuple(out)


def _order(rule: m.Rule) -> list[int]:
    """Conditions in an order where an around-window's anchor comes first (the loader rejects cycles)."""
    done: list[int] = []
    pending = sorted(rule.conditions)
    while pending:
        for n in pending:
            w = rule.conditions[n].window
            if w is None or w.around is None or w.around in done:
                done.append(n)
                pending.remove(n)
                break
        else:  # unreachable for a loaded rule set: keep going rather than loop
            done += pending
            break
    return done


def evaluate_rule(ctx: Context, rule: m.Rule, ruleset: m.Ruleset | None = None) -> RuleOutcome:
    outcomes: dict[int, Outcome] = {}
    for n in _order(rule):
        cond = rule.conditions[n]
        scoped = _resolve(
            ctx,
            cond.role or rule.scope.role,
            cond.window if cond.window is not None else rule.scope.window,
            cond.min_chars if cond.min_chars is not None else rule.scope.min_chars,
            outcomes,
        )
        if scoped.anchor_missed:
            outcomes[n] = Outcome(False, scope=scoped, note="its anchor condition did not match")
        else:
            outcomes[n] = cond.evaluate(ctx, scoped, n)

    values = {n: o.matched for n, o in outcomes.items()}
    tree = rule.tree
    if not _expr.evaluate(tree, values):
        unknown = [n for n, o in outcomes.items() if not o.applicable]
        if unknown and _could_fire(tree, values, unknown):
            reasons = "; ".join(f"condition {n}: {outcomes[n].note or 'not measurable'}" for n in unknown)
            return RuleOutcome(rule.id, "na", reason=reasons)
        return RuleOutcome(rule.id, "pass")

    present, absent = _expr.support(tree, values)
    evidence: list[Evidence] = []
    for n in sorted(present):
        o = outcomes[n]
        evidence += _mark_unestablished(o.evidence) if o.scope and o.scope.label.endswith(_FALLBACK_TAG) else o.evidence
    if not evidence:
        for n in sorted(absent):
            o = outcomes[n]
            evidence.append(scope_evidence(ctx, o.scope, n, "not found") if o.scope else
                            Evidence(None, 0, ctx.duration, note="not found", condition=n))
    if not evidence:
        evidence.append(Evidence(None, 0, ctx.duration, note="whole call"))
    c = rule.consequence
    hit = RuleHit(
        rule_id=rule.id,
        rule_version=rule.version,
        name=rule.name,
        category=rule.category,
        severity=c.severity,
        score_delta=c.score_delta,
        alert=c.alert or c.severity == "critical",
        evidence=_dedupe(evidence),
        scorecard_item=c.item,
        ruleset_id=ruleset.id if ruleset else None,
        ruleset_version=ruleset.version if ruleset else None,
        suggestion=rule.suggestion,
        not_scored=c.not_scored,
    )
    return RuleOutcome(rule.id, "hit", hit=hit)


_FALLBACK_TAG = f"({ROLE_NOT_ESTABLISHED})"


def unestablished_roles(ctx: Context) -> frozenset[str]:
    """Party roles no segment of the call carries while some speech has role ``unknown`` (a mono call
    without diarization, or a diarized speaker whose role could not be inferred)."""
    roles = {s.role for s in ctx.segments}
    if "unknown" not in roles:
        return frozenset()
    return frozenset(r for r in PARTY_ROLES if r not in roles)


def _resolve(ctx: Context, role: str, window: m.Window, min_chars: int, anchors: dict[int, Outcome]) -> Scoped:
    """``resolve_scope``, except that a rule scoped to a party whose role the call never established is
    evaluated on every speaker of unknown role: a customer's complaint on a mono call must not pass
    silently because nobody could say which voice was the customer. Its evidence says so."""
    if role in PARTY_ROLES and role in unestablished_roles(ctx):
        scoped = resolve_scope(ctx, "unknown", window, min_chars, anchors)
        # role stays "unknown": evaluators that filter events or overlaps by role look at those speakers
        return replace(scoped, label=scoped.label.replace("unknown", role, 1) + f" {_FALLBACK_TAG}")
    return resolve_scope(ctx, role, window, min_chars, anchors)


def _mark_unestablished(evidence: Sequence[Evidence]) -> tuple[Evidence, ...]:
    out = []
    for e in evidence:
        note = ROLE_NOT_ESTABLISHED if not e.note else (
            e.note if ROLE_NOT_ESTABLISHED in e.note else f"{e.note}; {ROLE_NOT_ESTABLISHED}")
        out.append(replace(e, note=note))
    return tuple(out)


def _could_fire(tree: _expr.Expr, values: dict[int, bool], unknown: list[int]) -> bool:
    """Whether some values of the unmeasurable conditions would have made the rule fire."""
    if len(unknown) > 10:
        return True
    for combo in itertools.product((False, True), repeat=len(unknown)):
        trial = {**values, **dict(zip(unknown, combo))}
        if _expr.evaluate(tree, trial):
            return True
    return False


def _dedupe(evidence: list[Evidence]) -> tuple[Evidence, ...]:
    seen = set()
    out = []
    for e in sorted(evidence, key=lambda e: (e.start_ms, e.end_ms, e.segment_id or "", e.condition or 0)):
        key = (e.segment_id, e.start_ms, e.end_ms, e.span, e.note)
        if key not in seen:
            seen.add(key)
            out.append(e)
    return tuple(out)
