"""Cross-call history: summaries of an agent's or a customer's earlier stored calls, for the rules'
``history`` conditions (e.g. "the same agent's last 3 calls all show high customer disgust").

:func:`call_history` selects the calls in SQL and summarises each stored result with the rules' own
:func:`callsense.rules.summarize`, so a stored call means exactly what it would mean in memory.
:func:`apply_store_rules` re-evaluates a result's QA with that history, and with its segments' latest
stored outlier scores (``outlier`` conditions, callsense.store.clusters), just before it is stored (the
batch runner, the service and live calls call it before storing) and in ``callsense rules run --db``; it
does nothing unless the rule set has a ``history`` or ``outlier`` condition.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from callsense.store.metadata import utc_naive
from callsense.store.models import Call

if TYPE_CHECKING:
    from callsense.result.model import CallAnalysis
    from callsense.rules.model import CallSummary
    from callsense.store.db import Store

log = logging.getLogger("callsense")


def call_history(store: Store, *, agent_id: str | None = None, customer_id: str | None = None,
                 before: datetime | str | None = None, exclude_call: str | None = None,
                 limit: int = 20) -> list[CallSummary]:
    """Summaries of the ``limit`` most recent stored calls of ``agent_id`` and of ``customer_id`` (both
    lists, merged, when both are given), with a call time at or before ``before``, newest first."""
    from sqlalchemy import func, select

    from callsense.result.io import result_from_dict
    from callsense.rules import summarize
    from callsense.store.codec import result_text

    when = func.coalesce(Call.started_at, Call.analyzed_at)
    texts: dict[str, tuple[datetime, str]] = {}
    with store.session() as s:
        for column, value in ((Call.agent_id, agent_id), (Call.customer_id, customer_id)):
            if value is None:
                continue
            stmt = select(Call.call_id, when, Call.result_json, Call.result_z).where(column == value)
            if before is not None:
                stmt = stmt.where(when <= utc_naive(before))
            if exclude_call is not None:
                stmt = stmt.where(Call.call_id != exclude_call)
            for call_id, at, text, z in s.execute(stmt.order_by(when.desc(), Call.stored_at.desc()).limit(limit)):
                texts[call_id] = (at, result_text(text, z))
    ordered = sorted(texts.items(), key=lambda kv: kv[1][0], reverse=True)
    return [summarize(result_from_dict(json.loads(text), source=f"store:{cid}")) for cid, (_, text) in ordered]


def apply_store_rules(store: Store, result: CallAnalysis, ruleset: Any, *, limit: int = 20,
                      scorecard: Any = None) -> CallAnalysis:
    """``result`` with QA re-run against what the store knows — the agent's and customer's stored history
    (``history`` conditions) and the segments' latest outlier scores (``outlier`` conditions) — when
    ``ruleset`` has such conditions; otherwise ``result`` unchanged. ``scorecard``: as in ``apply_qa``."""
    if ruleset is None:
        return result
    wants_history, wants_outliers = has_history_conditions(ruleset), has_conditions(ruleset, "outlier")
    if not (wants_history or wants_outliers):
        return result
    from callsense.rules import apply_qa

    history = None
    if wants_history:
        meta = result.metadata or {}
        history = call_history(store, agent_id=_s(meta.get("agent_id")), customer_id=_s(meta.get("customer_id")),
                               before=meta.get("started_at") or result.processing.started_at,
                               exclude_call=result.call_id, limit=limit)
    outliers = None
    if wants_outliers:
        from callsense.store.clusters import latest_outlier_scores

        outliers = latest_outlier_scores(store, result.call_id)
    return apply_qa(result, ruleset=ruleset, scorecard=scorecard, history=history, outliers=outliers)




def has_conditions(ruleset: Any, kind: str) -> bool:
    """Whether some rule of ``ruleset`` has a condition of type ``kind``."""
    return any(getattr(cond, "type", None) == kind
               for rule in getattr(ruleset, "rules", ()) or ()
               for cond in (getattr(rule, "conditions", {}) or {}).values())


def has_history_conditions(ruleset: Any) -> bool:
    return has_conditions(ruleset, "history")


def _s(v: Any) -> str | None:
    return None if v is None or v == "" else str(v)
