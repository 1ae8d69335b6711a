"""A condition on a custom head's labels (``--emotion-head NAME``, docs/adapt.md): ``custom_emotion``.

The labels are the head's own (``anxious``, ``urgent`` ...), so they are not checked against the nine
classes; a call analysed without a head has no custom labels and the condition is not applicable there
(never a silent pass: the rule's outcome says N/A, with why).
"""

from __future__ import annotations

from dataclasses import dataclass

from callsense.rules.context import Context, Outcome, Scoped, cap, seg_ev
from callsense.rules.model import Condition, Findings, register_condition


@register_condition("custom_emotion")
@dataclass(frozen=True, kw_only=True)
class CustomEmotion(Condition):
    """Segments whose custom-head label is one of ``labels`` (or whose summed probability reaches ``min_score``)."""

    labels: tuple[str, ...]
    head: str | None = None  # only this head's labels count; None: whichever head the call was analysed with
    min_score: float | None = None
    min_count: int = 1

    def check(self, findings: Findings) -> None:
        super().check(findings)
        findings.need(bool(self.labels), "labels", "give at least one label of the head")
        if self.min_score is not None:
            findings.need(0 <= self.min_score <= 1, "min_score", "min_score must be in [0, 1]")

    def evaluate(self, ctx: Context, sc: Scoped, n: int) -> Outcome:
        rated = [(s, s.emotion.custom) for s in sc.segments
                 if s.emotion is not None and s.emotion.custom is not None
                 and (self.head is None or s.emotion.custom.head == self.head)]
        if not rated:
            return Outcome(False, applicable=False, scope=sc,
                           note="no segment carries a custom head's label (analyse with --emotion-head)")
        wanted = set(self.labels)
        hits = []
        for seg, c in rated:
            score = sum(v for k, v in c.distribution.items() if k in wanted)
            if (score >= self.min_score) if self.min_score is not None else c.label in wanted:
                hits.append((seg, c, score))
        if len(hits) < self.min_count:
            return Outcome(False, scope=sc)
        return Outcome(True, cap(seg_ev(ctx, s, n, note=f"{c.head}: {c.label} {c.confidence:.2f} "
                                                          f"({'+'.join(sorted(wanted))} {score:.2f})")
                                 for s, c, score in hits), scope=sc)
