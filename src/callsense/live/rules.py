"""Rules while the call is still on: which rules can be decided on what has been heard so far, and
which of them fired since the last look.

A rule is *live* when its verdict can only go from "no" to "yes" as the call goes on: every condition
is of a type whose match stays true once true (a keyword said, anger heard, a dead-air gap, an
overlap, an event, the history of earlier calls, ...), looks at a part of the call that does not
depend on where it ends (not ``last_s`` / ``last_segments`` / ``share``), and the rule's expression
has no ``!``. The other rules (a greeting that must come, a talk ratio) wait for ``stop``.
Pure: the evaluation is :func:`callsense.rules.evaluate_outcomes` on the call so far.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from callsense.result.model import CallAnalysis
from callsense.result.qa import RuleHit
from callsense.rules import expr as _expr
from callsense.rules import model as m
from callsense.rules.evaluate import evaluate_outcomes

END_RELATIVE_WINDOWS = frozenset({"last_s", "last_segments", "share"})


def _monotonic(cond: m.Condition) -> bool:
    t = cond.type
    if t in ("regex", "similarity", "repetition", "talk_over", "history", "metadata", "emotion_change"):
        return True
    if t == "keywords":
        return getattr(cond, "match", "any") != "none"
    if t == "event":
        return getattr(cond, "min_share", None) is None
    if t == "silence":
        return getattr(cond, "kind", "") == "dead_air"
    if t == "emotion":
        return getattr(cond, "share_below", None) is None and getattr(cond, "share_at_least", None) is None
    if t in ("segment_count", "text_length"):
        return getattr(cond, "below", None) is None
    return False


def _negated(tree: _expr.Expr) -> bool:
    if isinstance(tree, _expr.Not):
        return True
    return any(_negated(t) for t in getattr(tree, "operands", ()))


def is_live(rule: m.Rule) -> bool:
    """Whether ``rule`` can fire before the call ends (and, once fired, would still fire at the end)."""
    windows = [rule.scope.window, *(c.window for c in rule.conditions.values() if c.window is not None)]
    return (rule.enabled and all(_monotonic(c) for c in rule.conditions.values())
            and not any(w.kind in END_RELATIVE_WINDOWS for w in windows) and not _negated(rule.tree))


class LiveRules:
    """The live rules of a rule set; :meth:`check` gives the hits not given before (each fires once)."""

    def __init__(self, ruleset: m.Ruleset, history: Sequence[m.CallSummary] = ()):
        self.ruleset = dataclasses.replace(ruleset, rules=tuple(r for r in ruleset.rules if is_live(r)))
        self.history = tuple(history)
        self.fired: dict[str, RuleHit] = {}

    def check(self, so_far: CallAnalysis) -> list[RuleHit]:
        if not self.ruleset.rules:
            return []
        new = []
        for outcome in evaluate_outcomes(so_far, self.ruleset, history=self.history):
            if outcome.hit is not None and outcome.rule_id not in self.fired:
                self.fired[outcome.rule_id] = outcome.hit
                new.append(outcome.hit)
        return new
