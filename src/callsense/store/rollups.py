"""Per-day rollups behind the dashboards: kept as calls are stored, exact after deletes.

A new call's counts and sums are added to its day's rows by ``save_result``, in the call's own
transaction (:func:`add_call`, an upsert per row; revision 0012). Triggers on ``calls`` (revision 0005,
0012) append the UTC day of every deleted or re-dated call to ``rollup_dirty`` — whatever deleted it (a
replace in ``save_result``, the API's delete, a purge, raw SQL). :func:`refresh` recomputes those days
from the call, segment and rule-hit rows (each day is an index range on ``calls.sort_at``) and clears
exactly the log rows it read. The aggregate functions call it before reading, so a dashboard costs ~90
rows per agent (or value) for 90 days instead of every segment, and nothing more after calls were
stored (the recompute of each day a batch stored into cost 0.15–0.3 s on PostgreSQL at 1,100 calls a day).

On PostgreSQL a recompute and the saves exclude each other (an advisory lock, exclusive for
:func:`refresh`, shared for ``save_result``): every statement of a recompute then sees the same calls,
and no increment lands on a row between a recompute's delete and its insert. SQLite transactions are
serialised already.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from callsense.labels import EMOTION_NAMES, NEGATIVE_EMOTIONS
from callsense.store.models import (
    EMOTION_COLUMNS,
    META_FIELDS,
    Call,
    RollupAgentDay,
    RollupDirty,
    RollupEmotionDay,
    RollupRuleDay,
    RuleHitRow,
    SegmentRow,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger("callsense")

REFRESH_LOCK_KEY = 0x726F6C6C  # "roll": PostgreSQL advisory lock, one recompute at a time
NONE_VALUE = "(none)"


def add_call(conn: Any, call: dict[str, Any], segments: list[dict[str, Any]], hits: list[dict[str, Any]]) -> None:
    """Add one newly stored call (its ``calls``, ``segments`` and ``rule_hits`` row values, as
    ``save_result`` inserts them) to the rollup rows of its day: what :func:`_recompute_day` would add
    for it. Rows are upserted in key order, so concurrent saves lock shared rows in the same order."""
    when = call.get("sort_at")
    if when is None:
        return
    day = when.date().isoformat()
    agent = {"day": day, "agent_id": call.get("agent_id") or "", "calls": 1, "audio_ms": int(call.get("duration_ms") or 0),
             "score_sum": float(call.get("score_normalized") or 0.0),
             "score_n": int(call.get("score_normalized") is not None),
             "critical_hits": sum(h.get("severity") == "critical" for h in hits),
             "agent_ms": 0, "customer_ms": 0, "customer_neg_ms": 0, "customer_emo_ms": 0}
    by_role: dict[str, list[float]] = defaultdict(lambda: [0.0] * (2 + len(EMOTION_COLUMNS)))
    for seg in segments:
        ms = int(seg.get("duration_ms") or 0)
        if seg.get("role") == "agent":
            agent["agent_ms"] += ms
        elif seg.get("role") == "customer":
            agent["customer_ms"] += ms
            label = seg.get("emotion_label")
            if label is not None:
                agent["customer_emo_ms"] += ms
                agent["customer_neg_ms"] += ms if label in NEGATIVE_EMOTIONS else 0
        if seg.get("p_neutral") is not None:
            sums = by_role[seg.get("role")]
            sums[0] += 1
            sums[1] += ms
            for j, col in enumerate(EMOTION_COLUMNS):
                sums[2 + j] += float(seg.get(col) or 0.0) * ms
    emotion = [{"day": day, "field": f, "value": NONE_VALUE if call.get(f) is None else str(call.get(f)), "role": role,
                "segments": int(a[0]), "speech_ms": int(a[1]), **{f"w_{n}": a[2 + j] for j, n in enumerate(EMOTION_NAMES)}}
               for f in META_FIELDS for role, a in by_role.items()]
    rules: dict[str, dict[str, Any]] = {}
    for h in hits:
        r = rules.setdefault(h["rule_id"], {"day": day, "rule_id": h["rule_id"], "name": h.get("name"),
                                            "category": h.get("category"), "severity": h.get("severity"),
                                            "hits": 0, "calls": 1})
        r["hits"] += 1
        for k in ("name", "category", "severity"):  # max(), as the recompute takes it
            if h.get(k) is not None and (r[k] is None or h[k] > r[k]):
                r[k] = h[k]
    _upsert(conn, RollupAgentDay, [agent], ("day", "agent_id"))
    _upsert(conn, RollupEmotionDay, emotion, ("day", "field", "value", "role"))
    _upsert(conn, RollupRuleDay, list(rules.values()), ("day", "rule_id"), greatest=("name", "category", "severity"))


def _upsert(conn: Any, model: Any, rows: list[dict[str, Any]], key: tuple[str, ...],
            greatest: tuple[str, ...] = ()) -> None:
    """``INSERT ... ON CONFLICT (key) DO UPDATE``: counts and sums added, ``greatest`` columns the larger.
    One statement per table and dialect, compiled once, run for the rows (an executemany)."""
    if not rows:
        return
    dialect = conn.dialect.name
    stmt = _UPSERTS.get((model.__tablename__, dialect))
    if stmt is None:
        from sqlalchemy import func

        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        table = model.__table__
        ins = insert(table)
        new = ins.excluded
        larger = func.greatest if dialect == "postgresql" else func.max  # SQLite's max(a, b): the scalar one
        sets = {c: larger(func.coalesce(table.c[c], new[c]), func.coalesce(new[c], table.c[c])) for c in greatest}
        sets.update({c.name: c + new[c.name] for c in table.columns if c.name not in key and c.name not in greatest})
        stmt = _UPSERTS[(model.__tablename__, dialect)] = ins.on_conflict_do_update(index_elements=list(key), set_=sets)
    conn.execute(stmt, sorted(rows, key=lambda r: tuple(r[k] for k in key)))


_UPSERTS: dict[tuple[str, str], Any] = {}


def refresh(session: Session, dialect: str) -> int:
    """Recompute the dirty days; returns how many days were recomputed."""
    from sqlalchemy import delete, select, text

    dirty = session.execute(select(RollupDirty.id, RollupDirty.day)).all()
    if not dirty:
        return 0
    if dialect == "postgresql":  # SQLite transactions are already serialised (BEGIN IMMEDIATE)
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": REFRESH_LOCK_KEY})
    days = sorted({d for _, d in dirty})
    for day in days:
        _recompute_day(session, day)
    ids = [i for i, _ in dirty]
    for i in range(0, len(ids), 5000):
        session.execute(delete(RollupDirty).where(RollupDirty.id.in_(ids[i:i + 5000])))
    log.debug("rollups: recomputed %d day(s)", len(days))
    return len(days)


def _recompute_day(s: Session, day: str) -> None:
    from sqlalchemy import case, delete, func, insert, select

    start = datetime.combine(date.fromisoformat(day), datetime.min.time())
    in_day = (Call.sort_at >= start, Call.sort_at < start + timedelta(days=1))
    for model in (RollupAgentDay, RollupEmotionDay, RollupRuleDay):
        s.execute(delete(model).where(model.day == day))

    agent = func.coalesce(Call.agent_id, "").label("agent")
    # On PostgreSQL (READ COMMITTED) each statement below sees the calls committed before it began, so a
    # call stored meanwhile can appear in a later statement only: its agent gets a row here too, and its
    # own rollup_dirty row (not read by this refresh) makes the next refresh recompute the day exactly.
    rows: dict[str, dict[str, Any]] = {}

    def row(a: str) -> dict[str, Any]:
        return rows.setdefault(a, {"day": day, "agent_id": a, "calls": 0, "audio_ms": 0, "score_sum": 0.0, "score_n": 0,
                                   "critical_hits": 0, "agent_ms": 0, "customer_ms": 0, "customer_neg_ms": 0,
                                   "customer_emo_ms": 0})

    for a, n, ms, ssum, sn in s.execute(
            select(agent, func.count(), func.sum(Call.duration_ms), func.sum(Call.score_normalized),
                   func.count(Call.score_normalized)).where(*in_day).group_by(agent)):
        row(a).update(calls=int(n), audio_ms=int(ms or 0), score_sum=float(ssum or 0), score_n=int(sn))
    for a, n in s.execute(select(agent, func.count()).join(RuleHitRow, RuleHitRow.call_id == Call.call_id)
                          .where(*in_day, RuleHitRow.severity == "critical").group_by(agent)):
        row(a)["critical_hits"] = int(n)
    neg = case((SegmentRow.emotion_label.in_(sorted(NEGATIVE_EMOTIONS)), SegmentRow.duration_ms), else_=0)
    emo = case((SegmentRow.emotion_label.is_not(None), SegmentRow.duration_ms), else_=0)
    for a, role, total, n_ms, e_ms in s.execute(
            select(agent, SegmentRow.role, func.sum(SegmentRow.duration_ms), func.sum(neg), func.sum(emo))
            .join(SegmentRow, SegmentRow.call_id == Call.call_id).where(*in_day).group_by(agent, SegmentRow.role)):
        if role == "agent":
            row(a)["agent_ms"] = int(total or 0)
        elif role == "customer":
            row(a).update(customer_ms=int(total or 0), customer_neg_ms=int(n_ms or 0), customer_emo_ms=int(e_ms or 0))
    if rows:
        s.execute(insert(RollupAgentDay), list(rows.values()))

    # heat map: per call and role first (one pass over the day's segments), then per field in Python
    w = SegmentRow.duration_ms
    per_call = s.execute(
        select(*[getattr(Call, f) for f in META_FIELDS], SegmentRow.role, func.count(), func.sum(w),
               *[func.sum(getattr(SegmentRow, c) * w) for c in EMOTION_COLUMNS])
        .join(SegmentRow, SegmentRow.call_id == Call.call_id)
        .where(*in_day, SegmentRow.p_neutral.is_not(None)).group_by(Call.call_id, SegmentRow.role)).all()
    acc: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0] * (2 + len(EMOTION_COLUMNS)))
    nf = len(META_FIELDS)
    for r in per_call:
        role, sums = r[nf], [float(x or 0) for x in r[nf + 1:]]
        for i, field in enumerate(META_FIELDS):
            a = acc[(field, NONE_VALUE if r[i] is None else str(r[i]), role)]
            for j, x in enumerate(sums):
                a[j] += x
    if acc:
        s.execute(insert(RollupEmotionDay), [
            {"day": day, "field": f, "value": v, "role": role, "segments": int(a[0]), "speech_ms": int(a[1]),
             **{f"w_{n}": a[2 + j] for j, n in enumerate(EMOTION_NAMES)}}
            for (f, v, role), a in acc.items()])

    rules = s.execute(
        select(RuleHitRow.rule_id, func.max(RuleHitRow.name), func.max(RuleHitRow.category),
               func.max(RuleHitRow.severity), func.count(RuleHitRow.id), func.count(func.distinct(RuleHitRow.call_id)))
        .join(Call, Call.call_id == RuleHitRow.call_id).where(*in_day).group_by(RuleHitRow.rule_id)).all()
    if rules:
        s.execute(insert(RollupRuleDay), [
            {"day": day, "rule_id": r, "name": nm, "category": cat, "severity": sev, "hits": int(h), "calls": int(c)}
            for r, nm, cat, sev, h, c in rules])
