"""Scorecards: weighted sections of items bound to rules, with N/A, auto-fail and a 0-100 score.

An item is decided by its bound rules (``item.rules`` plus every rule whose consequence names
the item): ``fail_if_hit`` earns its points unless one of them hit, ``pass_if_hit`` earns them only
if one hit, ``deduct`` earns its points plus the hits' ``score_delta`` (floored at 0). An item
whose bound rules were all N/A (or are not in the rule set) is N/A and leaves the potential.

The normalised score is the weight-averaged section percentage over sections that have any
potential; with nothing applicable it is 100. A critical hit (when ``auto_fail_on_critical``) or
a lost ``critical`` item fails the call: ``auto_failed`` is set, ``normalized`` becomes 0.

A hit of a rule whose consequence says ``not_scored`` (the default pack's ``call.invalid``) leaves
the call *not scored*: no points, no pass/fail, the hit's evidence as the reason.
"""

from __future__ import annotations

from collections.abc import Sequence

from callsense.result.qa import ItemScore, QAScore, SectionScore
from callsense.rules import model as m
from callsense.rules.evaluate import RuleOutcome


def score_call(outcomes: Sequence[RuleOutcome], scorecard: m.Scorecard,
               ruleset: m.Ruleset | None = None) -> QAScore:
    sc = scorecard.scorecard
    invalid = [o.hit for o in outcomes if o.hit is not None and o.hit.not_scored]
    if invalid:
        notes = [e.note for e in invalid[0].evidence if e.note]
        reason = f"{invalid[0].rule_id}: " + ("; ".join(dict.fromkeys(notes)) if notes else invalid[0].name)
        return QAScore(scorecard_id=sc.id, scorecard_version=sc.version, score=0.0, potential=0.0,
                       normalized=None, passed=None, status="not_scored", reason=reason)
    by_rule = {o.rule_id: o for o in outcomes}
    bound_by_item: dict[str, set[str]] = {}
    for rule in (ruleset.rules if ruleset else ()):
        if rule.consequence.item:
            bound_by_item.setdefault(rule.consequence.item, set()).add(rule.id)

    items: list[ItemScore] = []
    sections: list[SectionScore] = []
    auto_fail: list[str] = []
    for section in sc.sections:
        s_score = s_potential = 0.0
        for item in section.items:
            rules = tuple(dict.fromkeys([*item.rules, *sorted(bound_by_item.get(f"{section.id}.{item.id}", ())),
                                         *sorted(bound_by_item.get(item.id, ()))]))
            result = _item(section.id, item, rules, by_rule)
            items.append(result)
            s_score += result.points
            s_potential += result.potential
            if item.critical and result.status == "lost":
                auto_fail.append(f"{section.id}.{item.id}")
        sections.append(SectionScore(section_id=section.id, weight=section.weight, score=s_score,
                                     potential=s_potential, name=section.name,
                                     normalized=(100.0 * s_score / s_potential) if s_potential > 0 else None))

    if sc.auto_fail_on_critical:
        auto_fail += [o.rule_id for o in outcomes if o.hit is not None and o.hit.severity == "critical"]
    weighted = [(s.weight, s.normalized) for s in sections if s.normalized is not None and s.weight > 0]
    weight = sum(w for w, _ in weighted)
    normalized = sum(w * n for w, n in weighted) / weight if weight > 0 else 100.0
    failed = bool(auto_fail)
    if failed:
        normalized = 0.0
    return QAScore(
        scorecard_id=sc.id,
        scorecard_version=sc.version,
        score=sum(i.points for i in items),
        potential=sum(i.potential for i in items),
        normalized=round(normalized, 2),
        passed=not failed and normalized >= sc.pass_score,
        auto_failed=failed,
        auto_fail_rules=tuple(dict.fromkeys(auto_fail)),
        sections=tuple(sections),
        items=tuple(items),
    )


def _item(section_id: str, item: m.ScorecardItem, rules: tuple[str, ...], by_rule: dict[str, RuleOutcome]
          ) -> ItemScore:
    known = [by_rule[r] for r in rules if r in by_rule]
    hits = [o for o in known if o.status == "hit"]
    measured = [o for o in known if o.status != "na"]

    def score(status: str, points: float, potential: float) -> ItemScore:
        return ItemScore(section_id=section_id, item_id=item.id, status=status,  # type: ignore[arg-type]
                         points=points, potential=potential, rule_ids=tuple(o.rule_id for o in (hits or known)),
                         name=item.name, mode=item.mode)

    if item.mode == "pass_if_hit":
        if hits:
            return score("earned", item.points, item.points)
        return score("lost", 0.0, item.points) if measured else score("na", 0.0, 0.0)
    if not measured:
        return score("na", 0.0, 0.0)
    if item.mode == "fail_if_hit":
        return score("lost", 0.0, item.points) if hits else score("earned", item.points, item.points)
    points = item.points + sum(o.hit.score_delta for o in hits if o.hit is not None)
    points = min(max(points, 0.0), item.points)
    return score("earned" if points >= item.points else "lost", points, item.points)
