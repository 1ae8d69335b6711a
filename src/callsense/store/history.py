"""Cross-call history: summaries of an agent's or a customer's earlier stored calls, for the rules'
``history`` conditions (e.g. "the same agent's last 3 calls all show high customer disgust").

:func:`call_history` builds the typed :class:`callsense.rules.model.CallSummary` sequence (newest first)
that ``callsense.rules`` evaluates; :func:`apply_history_rules` re-evaluates a result's rules with that
history just before the result is stored (the batch runner calls it).
"""

from __future__ import annotations

import inspect
import logging
from collections import defaultdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from callsense.labels import EMOTION_NAMES
from callsense.store.metadata import utc_naive
from callsense.store.models import EMOTION_COLUMNS, Call, RuleHitRow, SegmentRow

if TYPE_CHECKING:
    from callsense.result.model import CallAnalysis
    from callsense.store.db import Store

log = logging.getLogger("callsense")


def call_history(store: Store, *, agent_id: str | None = None, customer_id: str | None = None,
                 before: datetime | str | None = None, exclude_call: str | None = None, limit: int = 20) -> list[Any]:
    """Summaries of the ``limit`` most recent stored calls of ``agent_id`` and/or ``customer_id`` (the
    union when both are given), at or before ``before``, newest first."""
    from sqlalchemy import func, or_, select

    from callsense.rules.model import CallSummary, EmotionShare

    if agent_id is None and customer_id is None:
        return []
    when = func.coalesce(Call.started_at, Call.analyzed_at)
    who = [c for c in (Call.agent_id == agent_id if agent_id else None,
                       Call.customer_id == customer_id if customer_id else None) if c is not None]
    stmt = select(Call.call_id, when.label("when"), Call.agent_id, Call.customer_id).where(or_(*who))
    if before is not None:
        stmt = stmt.where(when <= utc_naive(before))
    if exclude_call is not None:
        stmt = stmt.where(Call.call_id != exclude_call)
    stmt = stmt.order_by(when.desc(), Call.stored_at.desc()).limit(limit * (2 if len(who) > 1 else 1))
    with store.session() as s:
        calls = s.execute(stmt).all()
        ids = [c.call_id for c in calls]
        flags: dict[str, set[str]] = defaultdict(set)
        shares: dict[str, list[Any]] = {}
        if ids:
            for cid, rule in s.execute(select(RuleHitRow.call_id, RuleHitRow.rule_id).where(RuleHitRow.call_id.in_(ids))):
                flags[cid].add(rule)
            w = SegmentRow.duration_ms
            q = (select(SegmentRow.call_id, SegmentRow.role, func.sum(w),
                        *[func.sum(getattr(SegmentRow, c) * w) for c in EMOTION_COLUMNS])
                 .where(SegmentRow.call_id.in_(ids), SegmentRow.p_neutral.is_not(None))
                 .group_by(SegmentRow.call_id, SegmentRow.role))
            for cid, role, total, *sums in s.execute(q):
                if total:
                    shares.setdefault(cid, []).extend(
                        EmotionShare(role=role, label=name, share=round(float(v) / float(total), 6))
                        for name, v in zip(EMOTION_NAMES, sums) if v is not None)
    return [CallSummary(call_id=c.call_id, started_at=c.when.isoformat() + "Z", agent_id=c.agent_id,
                        customer_id=c.customer_id, flags=tuple(sorted(flags.get(c.call_id, ()))),
                        emotions=tuple(shares.get(c.call_id, ())))
            for c in calls][:limit * 2]


def apply_history_rules(store: Store, result: CallAnalysis, ruleset: Any, *, limit: int = 20) -> CallAnalysis:
    """Re-run QA on ``result`` with the agent's and customer's stored history when ``ruleset`` has
    history conditions and the rules engine accepts ``history``; otherwise return ``result`` unchanged."""
    if ruleset is None or not _has_history_conditions(ruleset):
        return result
    from callsense import rules

    apply = getattr(rules, "apply_qa", None)
    if apply is None or "history" not in inspect.signature(apply).parameters:
        log.warning("the rules engine does not take call history yet; cross-call rules were not evaluated")
        return result
    meta = result.metadata or {}
    history = call_history(store, agent_id=_s(meta.get("agent_id")), customer_id=_s(meta.get("customer_id")),
                           before=meta.get("started_at") or result.processing.started_at,
                           exclude_call=result.call_id, limit=limit)
    return apply(result, ruleset=ruleset, history=history)


def _s(v: Any) -> str | None:
    return None if v is None or v == "" else str(v)


def _has_history_conditions(ruleset: Any) -> bool:
    for rule in getattr(ruleset, "rules", ()) or ():
        for cond in (getattr(rule, "conditions", {}) or {}).values():
            if getattr(cond, "type", None) == "history":
                return True
    return False
