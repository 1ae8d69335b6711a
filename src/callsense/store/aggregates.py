"""Questions across calls, as query functions returning :class:`Table` (``callsense report`` prints them).

* :func:`emotion_heatmap` — mean emotion distribution of one role's speech per category / queue / team /
  agent (duration-weighted over segments with an emotion2vec distribution).
* :func:`agent_scorecards` — per agent: calls, average normalised QA score, critical rule hits, the
  customer's negative-emotion share (angry, disgusted, fearful, sad top labels, by speech time) and the
  agent's talk ratio (agent speech / agent + customer speech).
* :func:`rule_hit_counts` — hits and calls per rule.
* :func:`daily_trends` — per UTC day: calls, audio hours, average score, critical hits, negative share.

All take ``since`` / ``until`` (call time: ``started_at`` when known, else the analysis time).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from callsense.errors import UsageError
from callsense.labels import EMOTION_NAMES, NEGATIVE_EMOTIONS
from callsense.store.metadata import utc_naive
from callsense.store.models import EMOTION_COLUMNS, META_FIELDS, Call, RuleHitRow, SegmentRow

if TYPE_CHECKING:
    from callsense.store.db import Store

TimeArg = datetime | str | None


@dataclass(frozen=True)
class Table:
    """A result table: named columns and rows of plain values (numbers rounded for reading)."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def to_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row)) for row in self.rows]

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [row[i] for row in self.rows]


def _when():
    from sqlalchemy import func

    return func.coalesce(Call.started_at, Call.analyzed_at)


def _window(stmt: Any, since: TimeArg, until: TimeArg) -> Any:
    if since is not None:
        stmt = stmt.where(_when() >= utc_naive(since))
    if until is not None:
        stmt = stmt.where(_when() < utc_naive(until))
    return stmt


def _r(x: Any, nd: int = 3) -> Any:
    return None if x is None else round(float(x), nd)


def emotion_heatmap(store: Store, *, by: str = "category", role: str = "customer", since: TimeArg = None,
                    until: TimeArg = None) -> Table:
    """Rows: one per value of ``by`` (``(none)`` for calls without it); columns: segments, speech hours
    and the duration-weighted mean score of each emotion."""
    from sqlalchemy import func, select

    if by not in META_FIELDS:
        raise UsageError(f"heatmap by {by!r}: choose one of {', '.join(META_FIELDS)}")
    key = func.coalesce(getattr(Call, by), "(none)").label("key")
    w = SegmentRow.duration_ms
    stmt = select(key, func.count(SegmentRow.id), func.sum(w),
                  *[func.sum(getattr(SegmentRow, c) * w) for c in EMOTION_COLUMNS]
                  ).join(SegmentRow, SegmentRow.call_id == Call.call_id
                         ).where(SegmentRow.p_neutral.is_not(None), SegmentRow.role == role).group_by(key).order_by(key)
    rows = []
    with store.session() as s:
        for k, n, total, *sums in s.execute(_window(stmt, since, until)):
            total = float(total or 0)
            rows.append((k, int(n), _r(total / 3.6e6, 4), *[_r(v / total) if total else None for v in sums]))
    return Table(f"{role} emotion by {by}", (by, "segments", "speech_h", *EMOTION_NAMES), tuple(rows))


def agent_scorecards(store: Store, *, since: TimeArg = None, until: TimeArg = None) -> Table:
    from sqlalchemy import case, func, select

    with store.session() as s:
        base = _window(select(Call.agent_id, func.count(Call.call_id), func.avg(Call.score_normalized),
                              func.sum(Call.duration_ms)).where(Call.agent_id.is_not(None)).group_by(Call.agent_id),
                       since, until)
        calls = {a: (int(n), avg, int(ms or 0)) for a, n, avg, ms in s.execute(base)}
        crit = _window(select(Call.agent_id, func.count(RuleHitRow.id)).join(RuleHitRow, RuleHitRow.call_id == Call.call_id)
                       .where(RuleHitRow.severity == "critical", Call.agent_id.is_not(None)).group_by(Call.agent_id),
                       since, until)
        critical = dict(s.execute(crit).all())
        neg = case((SegmentRow.emotion_label.in_(sorted(NEGATIVE_EMOTIONS)), SegmentRow.duration_ms), else_=0)
        seg = _window(select(Call.agent_id, SegmentRow.role, func.sum(SegmentRow.duration_ms), func.sum(neg),
                             func.sum(case((SegmentRow.emotion_label.is_not(None), SegmentRow.duration_ms), else_=0)))
                      .join(SegmentRow, SegmentRow.call_id == Call.call_id)
                      .where(Call.agent_id.is_not(None)).group_by(Call.agent_id, SegmentRow.role), since, until)
        speech: dict[str, dict[str, tuple[float, float, float]]] = defaultdict(dict)
        for agent, role, total, negative, with_emotion in s.execute(seg):
            speech[agent][role] = (float(total or 0), float(negative or 0), float(with_emotion or 0))
    rows = []
    for agent in sorted(calls):
        n, avg, ms = calls[agent]
        sp = speech.get(agent, {})
        a_ms, c = sp.get("agent", (0.0, 0.0, 0.0))[0], sp.get("customer", (0.0, 0.0, 0.0))
        talk = a_ms / (a_ms + c[0]) if a_ms + c[0] else None
        neg_share = c[1] / c[2] if c[2] else None
        rows.append((agent, n, _r(ms / 3.6e6, 4), _r(avg), int(critical.get(agent, 0)), _r(neg_share), _r(talk)))
    return Table("agent scorecards",
                 ("agent_id", "calls", "audio_h", "avg_score", "critical_hits", "customer_negative_share", "talk_ratio"),
                 tuple(rows))


def rule_hit_counts(store: Store, *, since: TimeArg = None, until: TimeArg = None) -> Table:
    from sqlalchemy import func, select

    stmt = _window(select(RuleHitRow.rule_id, func.max(RuleHitRow.name), func.max(RuleHitRow.category),
                          func.max(RuleHitRow.severity), func.count(RuleHitRow.id),
                          func.count(func.distinct(RuleHitRow.call_id)))
                   .join(Call, Call.call_id == RuleHitRow.call_id).group_by(RuleHitRow.rule_id), since, until)
    with store.session() as s:
        rows = sorted(((r, nm, cat, sev, int(h), int(c)) for r, nm, cat, sev, h, c in s.execute(stmt)),
                      key=lambda t: (-t[4], t[0]))
    return Table("rule hits", ("rule_id", "name", "category", "severity", "hits", "calls"), tuple(rows))


def daily_trends(store: Store, *, since: TimeArg = None, until: TimeArg = None) -> Table:
    """Per UTC day of the call time."""
    from sqlalchemy import case, func, select

    with store.session() as s:
        calls = s.execute(_window(select(Call.call_id, _when(), Call.duration_ms, Call.score_normalized),
                                  since, until)).all()
        crit = dict(s.execute(_window(select(RuleHitRow.call_id, func.count(RuleHitRow.id))
                                      .join(Call, Call.call_id == RuleHitRow.call_id)
                                      .where(RuleHitRow.severity == "critical").group_by(RuleHitRow.call_id),
                                      since, until)).all())
        neg = case((SegmentRow.emotion_label.in_(sorted(NEGATIVE_EMOTIONS)), SegmentRow.duration_ms), else_=0)
        cust = {c: (float(n or 0), float(t or 0)) for c, n, t in s.execute(_window(
            select(SegmentRow.call_id, func.sum(neg), func.sum(SegmentRow.duration_ms))
            .join(Call, Call.call_id == SegmentRow.call_id)
            .where(SegmentRow.role == "customer", SegmentRow.emotion_label.is_not(None))
            .group_by(SegmentRow.call_id), since, until))}
    days: dict[str, dict[str, Any]] = {}
    for call_id, when, ms, score in calls:
        d = days.setdefault(when.date().isoformat(), {"calls": 0, "ms": 0, "scores": [], "crit": 0, "neg": 0.0,
                                                      "cust": 0.0})
        d["calls"] += 1
        d["ms"] += int(ms)
        if score is not None:
            d["scores"].append(float(score))
        d["crit"] += int(crit.get(call_id, 0))
        n, t = cust.get(call_id, (0.0, 0.0))
        d["neg"] += n
        d["cust"] += t
    rows = tuple(
        (day, d["calls"], _r(d["ms"] / 3.6e6, 4), _r(sum(d["scores"]) / len(d["scores"])) if d["scores"] else None,
         d["crit"], _r(d["neg"] / d["cust"]) if d["cust"] else None)
        for day, d in sorted(days.items())
    )
    return Table("daily trends", ("day", "calls", "audio_h", "avg_score", "critical_hits", "customer_negative_share"),
                 rows)
