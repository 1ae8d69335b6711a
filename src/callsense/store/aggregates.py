"""Questions across calls, as query functions returning :class:`Table` (``callsense report`` prints them).

* :func:`emotion_heatmap` — mean emotion distribution of one role's speech per category / queue / team /
  agent (duration-weighted over segments with an emotion2vec distribution).
* :func:`agent_scorecards` — per agent: calls, average normalised QA score, critical rule hits, the
  customer's negative-emotion share (angry, disgusted, fearful, sad top labels, by speech time) and the
  agent's talk ratio (agent speech / agent + customer speech).
* :func:`rule_hit_counts` — hits and calls per rule.
* :func:`daily_trends` — per UTC day: calls, audio hours, average score, critical hits, negative share.

All take ``since`` / ``until`` (call time: ``started_at`` when known, else the analysis time). When
both are whole UTC days (or absent) the tables are summed from the per-day rollups
(callsense.store.rollups: a 90-day dashboard reads ~90 rows per agent, not every segment); a bound
inside a day is answered exactly from the call rows over the ``calls.sort_at`` index.
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
    return Call.sort_at  # = coalesce(started_at, analyzed_at), stored and indexed


def _days(since: TimeArg, until: TimeArg) -> tuple[str | None, str | None] | None:
    """The rollup day range for ``[since, until)``, or None when a bound falls inside a day."""
    out = []
    for t in (since, until):
        if t is None:
            out.append(None)
            continue
        t = utc_naive(t)
        if t.time() != datetime.min.time():
            return None
        out.append(t.date().isoformat())
    return out[0], out[1]


def _day_window(stmt: Any, model: Any, days: tuple[str | None, str | None]) -> Any:
    lo, hi = days
    if lo is not None:
        stmt = stmt.where(model.day >= lo)
    if hi is not None:
        stmt = stmt.where(model.day < hi)
    return stmt


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
    days = _days(since, until)
    if days is not None:
        from callsense.store.models import RollupEmotionDay as R
        from callsense.store.rollups import refresh

        stmt = _day_window(select(R.value, func.sum(R.segments), func.sum(R.speech_ms),
                                  *[func.sum(getattr(R, f"w_{n}")) for n in EMOTION_NAMES])
                           .where(R.field == by, R.role == role).group_by(R.value).order_by(R.value), R, days)
        with store.session() as s:
            refresh(s, store.dialect)
            result = s.execute(stmt).all()
    else:
        result = None
    key = func.coalesce(getattr(Call, by), "(none)").label("key")
    w = SegmentRow.duration_ms
    stmt = select(key, func.count(SegmentRow.id), func.sum(w),
                  *[func.sum(getattr(SegmentRow, c) * w) for c in EMOTION_COLUMNS]
                  ).join(SegmentRow, SegmentRow.call_id == Call.call_id
                         ).where(SegmentRow.p_neutral.is_not(None), SegmentRow.role == role).group_by(key).order_by(key)
    rows = []
    if result is None:
        with store.session() as s:
            result = s.execute(_window(stmt, since, until)).all()
    for k, n, total, *sums in result:
        total = float(total or 0)
        rows.append((k, int(n), _r(total / 3.6e6, 4), *[_r(v / total) if total else None for v in sums]))
    return Table(f"{role} emotion by {by}", (by, "segments", "speech_h", *EMOTION_NAMES), tuple(rows))


def agent_scorecards(store: Store, *, since: TimeArg = None, until: TimeArg = None) -> Table:
    from sqlalchemy import case, func, select

    days = _days(since, until)
    if days is not None:
        return _scorecards_from_rollups(store, days)
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


def _scorecards_from_rollups(store: Store, days: tuple[str | None, str | None]) -> Table:
    from sqlalchemy import func, select

    from callsense.store.models import RollupAgentDay as R
    from callsense.store.rollups import refresh

    cols = (R.calls, R.audio_ms, R.score_sum, R.score_n, R.critical_hits, R.agent_ms, R.customer_ms,
            R.customer_neg_ms, R.customer_emo_ms)
    stmt = _day_window(select(R.agent_id, *[func.sum(c) for c in cols]).where(R.agent_id != "")
                       .group_by(R.agent_id).order_by(R.agent_id), R, days)
    with store.session() as s:
        refresh(s, store.dialect)
        result = s.execute(stmt).all()
    rows = []
    for agent, n, ms, ssum, sn, crit, a_ms, c_ms, neg, emo in result:
        a_ms, c_ms = float(a_ms or 0), float(c_ms or 0)
        rows.append((agent, int(n), _r(int(ms or 0) / 3.6e6, 4), _r(ssum / sn) if sn else None, int(crit or 0),
                     _r(neg / emo) if emo else None, _r(a_ms / (a_ms + c_ms)) if a_ms + c_ms else None))
    return Table("agent scorecards",
                 ("agent_id", "calls", "audio_h", "avg_score", "critical_hits", "customer_negative_share", "talk_ratio"),
                 tuple(rows))


def rule_hit_counts(store: Store, *, since: TimeArg = None, until: TimeArg = None) -> Table:
    from sqlalchemy import func, select

    days = _days(since, until)
    if days is not None:
        from callsense.store.models import RollupRuleDay as R
        from callsense.store.rollups import refresh

        rstmt = _day_window(select(R.rule_id, func.max(R.name), func.max(R.category), func.max(R.severity),
                                   func.sum(R.hits), func.sum(R.calls)).group_by(R.rule_id), R, days)
        with store.session() as s:
            refresh(s, store.dialect)
            rows = sorted(((r, nm, cat, sev, int(h), int(c)) for r, nm, cat, sev, h, c in s.execute(rstmt)),
                          key=lambda t: (-t[4], t[0]))
        return Table("rule hits", ("rule_id", "name", "category", "severity", "hits", "calls"), tuple(rows))
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

    days_range = _days(since, until)
    if days_range is not None:
        from callsense.store.models import RollupAgentDay as R
        from callsense.store.rollups import refresh

        stmt = _day_window(select(R.day, func.sum(R.calls), func.sum(R.audio_ms), func.sum(R.score_sum),
                                  func.sum(R.score_n), func.sum(R.critical_hits), func.sum(R.customer_neg_ms),
                                  func.sum(R.customer_emo_ms)).group_by(R.day).order_by(R.day), R, days_range)
        with store.session() as s:
            refresh(s, store.dialect)
            result = s.execute(stmt).all()
        return Table("daily trends", ("day", "calls", "audio_h", "avg_score", "critical_hits",
                                      "customer_negative_share"),
                     tuple((day, int(n), _r(int(ms or 0) / 3.6e6, 4), _r(ssum / sn) if sn else None, int(crit or 0),
                            _r(neg / emo) if emo else None)
                           for day, n, ms, ssum, sn, crit, neg, emo in result))
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
