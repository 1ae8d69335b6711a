"""A condition on the segments' stored outlier scores (``callsense clusters outliers``): ``outlier``.

The scores live in the store, not in the result: they are read when rules are applied against the store
(``callsense.store.history.apply_store_rules`` — before a call is stored, and by ``callsense rules run
--db``). A call none of whose segments was scored has nothing to measure: the condition is N/A there.
"""

from __future__ import annotations

from dataclasses import dataclass

from callsense.rules.context import Context, Outcome, Scoped, cap, seg_ev
from callsense.rules.model import Condition, Findings, OutlierScore, register_condition


@register_condition("outlier")
@dataclass(frozen=True, kw_only=True)
class Outlier(Condition):
    """Segments whose latest outlier score is over ``above`` and/or that its run flagged."""

    above: float | None = None  # the score (mean cosine distance to the reference, 0-2) is over this
    flagged: bool | None = None  # the run flagged the segment; default: true when ``above`` is not given
    min_count: int = 1

    def check(self, findings: Findings) -> None:
        super().check(findings)
        if self.above is not None:
            findings.need(0 <= self.above <= 2, "above", "above is a cosine distance in [0, 2]")
        findings.need(self.above is not None or self.flagged is not False, "flagged",
                      "flagged: false alone matches nothing unusual; give above, or flagged: true")

    @property
    def wants_flag(self) -> bool:
        return self.flagged if self.flagged is not None else self.above is None

    def evaluate(self, ctx: Context, sc: Scoped, n: int) -> Outcome:
        scored = [(s, ctx.outliers[s.id]) for s in sc.segments if s.id in ctx.outliers]
        if not scored:
            return Outcome(False, applicable=False, scope=sc,
                           note="no stored outlier score for these segments (run `callsense clusters outliers`, "
                                "then apply the rules against the store)")
        hits = [(s, o) for s, o in scored
                if (self.above is None or o.score > self.above) and (not self.wants_flag or o.flagged)]
        if len(hits) < self.min_count:
            return Outcome(False, scope=sc)

        def note(o: OutlierScore) -> str:
            limit = f", threshold {o.threshold:.3f}" if o.threshold is not None else ""
            return f"outlier score {o.score:.3f} (run {o.run_id}{limit}{', flagged' if o.flagged else ''})"

        hits.sort(key=lambda h: -h[1].score)
        return Outcome(True, cap(seg_ev(ctx, s, n, note=note(o)) for s, o in hits), scope=sc)
