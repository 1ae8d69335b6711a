"""The scorecard breakdown every adapter shows: one row per item with the points won or lost, the
rules that decided it and the evidence behind it (pure: a result in, rows out)."""

from __future__ import annotations

from dataclasses import dataclass

from callsense.result.model import CallAnalysis
from callsense.result.qa import RuleHit

STATUS_LABEL = {"earned": "得分 earned", "lost": "失分 lost", "na": "不适用 N/A"}


@dataclass(frozen=True)
class BreakdownRow:
    section: str  # the section's name (its id when unnamed)
    item: str  # the item's name (its id when unnamed)
    status: str  # earned / lost / na
    points: float
    potential: float
    rules: tuple[str, ...]  # the rules that decided it
    reason: str  # why: the hit's evidence, "not found: ...", or "not applicable"
    hit: RuleHit | None = None  # the deciding hit, when a rule hit (for its clip and suggestion)

    @property
    def lost(self) -> float:
        return max(self.potential - self.points, 0.0)


def clock(ms: int) -> str:
    s = ms // 1000
    return f"{s // 60:02d}:{s % 60:02d}"


def evidence_text(hit: RuleHit, limit: int = 2) -> str:
    """A short account of a hit's evidence: times, segments, the matched text or what was measured."""
    parts = []
    for e in hit.evidence[:limit]:
        what = f"“{e.text}”" if e.text else (e.note or "")
        where = f"{clock(e.start_ms)}–{clock(e.end_ms)}" + (f" {e.segment_id}" if e.segment_id else "")
        parts.append(f"{where} {what}".strip())
    more = len(hit.evidence) - limit
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def breakdown(result: CallAnalysis) -> tuple[BreakdownRow, ...]:
    """Rows for ``result.score.items`` in scorecard order (empty when the call has no score)."""
    sc = result.score
    if sc is None or not sc.scored:
        return ()
    sections = {s.section_id: s.name or s.section_id for s in sc.sections}
    hits = {h.rule_id: h for h in result.rule_hits}
    rows = []
    for it in sc.items:
        hit = next((hits[r] for r in it.rule_ids if r in hits), None)
        rules = ", ".join(it.rule_ids) or "no rule bound"
        if it.status == "na" and not it.rule_ids:  # a pack whose rules do not feed this scorecard item
            reason = "not applicable (no rule of the rule set is bound to this item)"
        elif it.status == "na":
            reason = f"not applicable ({rules} could not be measured)"
        elif hit is not None:
            reason = f"{hit.rule_id}: {evidence_text(hit)}"
        elif it.status == "lost":
            reason = f"not found: {rules} did not match"
        else:
            reason = f"{rules}: passed"
        rows.append(BreakdownRow(section=sections.get(it.section_id, it.section_id), item=it.name or it.item_id,
                                 status=it.status, points=it.points, potential=it.potential, rules=it.rule_ids,
                                 reason=reason, hit=hit))
    return tuple(rows)


def verdict(result: CallAnalysis) -> str:
    """"86/100 · PASS 合格", "0/100 · FAIL 不合格 (auto-fail)", "NOT SCORED 不计分: <reason>" or ""."""
    sc = result.score
    if sc is None:
        return ""
    if not sc.scored:
        return f"NOT SCORED 不计分 — {sc.reason}"
    text = f"{sc.normalized:.0f}/100 · " + ("PASS 合格" if sc.passed else "FAIL 不合格")
    return text + (" (auto-fail)" if sc.auto_failed else "")
