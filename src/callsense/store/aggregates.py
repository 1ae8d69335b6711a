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

    def to_csv(self) -> str:
        """The columns and rows as CSV text (None as an empty cell)."""
        import csv
        import io

        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(self.columns)
        w.writerows(["" if v is None else v for v in row] for row in self.rows)
        return out.getvalue()


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


def _field_days(s: Any, stmt: Any, model: Any, days: tuple[str | None, str | None]) -> Any:
    """``stmt`` on the heat-map rollup restricted to ``days`` as a list of days rather than a range:
    the key is (day, field, value, role), so each day is then one seek to (day, field) instead of a
    read of every field's rows — customer_id's grow with the customers (193,000 of 233,000 rows at
    100,000 calls: 28 ms against 4.5 ms at 10,000). Open ends take the first and last stored day."""
    from datetime import date, timedelta

    from sqlalchemy import func, select

    lo, hi = days
    if lo is None or hi is None:
        first, last = s.execute(select(func.min(model.day), func.max(model.day))).one()
        if first is None:
            return _day_window(stmt, model, days)
        lo = lo or first
        hi = hi or (date.fromisoformat(last) + timedelta(days=1)).isoformat()
    start, end = date.fromisoformat(lo), date.fromisoformat(hi)
    if not 0 < (end - start).days <= 3700:  # nothing, or over ten years: the range is fine
        return _day_window(stmt, model, (lo, hi))
    return stmt.where(model.day.in_([(start + timedelta(days=i)).isoformat() for i in range((end - start).days)]))


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

        stmt = (select(R.value, func.sum(R.segments), func.sum(R.speech_ms),
                       *[func.sum(getattr(R, f"w_{n}")) for n in EMOTION_NAMES])
                .where(R.field == by, R.role == role).group_by(R.value).order_by(R.value))
        with store.session() as s:
            refresh(s, store.dialect)
            result = s.execute(_field_days(s, stmt, R, days)).all()
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


# ---------------------------------------------------------------- dashboard views (issue 13)
def event_heatmap(store: Store, *, by: str = "category", since: TimeArg = None, until: TimeArg = None) -> Table:
    """Rows: one per value of ``by``; columns: calls, then per event type (SenseVoice events and the
    tone detector's: BGM, Laughter, ringback...) the share of the group's calls with at least one."""
    from sqlalchemy import func, select

    from callsense.store.models import EventRow

    if by not in META_FIELDS:
        raise UsageError(f"heatmap by {by!r}: choose one of {', '.join(META_FIELDS)}")
    key = func.coalesce(getattr(Call, by), "(none)").label("key")
    with store.session() as s:
        calls = dict(s.execute(_window(select(key, func.count(Call.call_id)).group_by(key), since, until)).all())
        with_event = s.execute(_window(
            select(key, EventRow.type, func.count(func.distinct(EventRow.call_id)))
            .join(EventRow, EventRow.call_id == Call.call_id).group_by(key, EventRow.type), since, until)).all()
    types = sorted({t for _, t, _ in with_event})
    counts = {(k, t): int(n) for k, t, n in with_event}
    rows = tuple((k, int(calls[k]), *[_r(counts.get((k, t), 0) / calls[k]) for t in types]) for k in sorted(calls))
    return Table(f"calls with an event by {by}", (by, "calls", *types), rows)


def emotion_event_heatmap(store: Store, *, by: str = "category", role: str = "customer", since: TimeArg = None,
                          until: TimeArg = None) -> Table:
    """The dashboard's heat map: per value of ``by``, the calls, the duration-weighted mean of each
    emotion of ``role`` (:func:`emotion_heatmap`) and, per event type, the share of calls with one
    (:func:`event_heatmap`); columns ``event:<type>``. Every cell is a share in 0..1."""
    emo = {r[0]: r for r in emotion_heatmap(store, by=by, role=role, since=since, until=until).rows}
    ev = event_heatmap(store, by=by, since=since, until=until)
    types = ev.columns[2:]
    rows = []
    for k, n, *shares in ev.rows:
        e = emo.get(k)
        rows.append((k, n, *(e[3:] if e else (None,) * len(EMOTION_NAMES)), *shares))
    return Table(f"{role} emotion and events by {by}", (by, "calls", *EMOTION_NAMES, *[f"event:{t}" for t in types]),
                 tuple(rows))


AFTER_WITHIN_MS = 30_000
"""Script effectiveness: a customer segment answers an agent turn when it starts after the turn starts,
before the agent's next turn, and within this long after the turn ends."""


def script_effectiveness(store: Store, *, since: TimeArg = None, until: TimeArg = None,
                         within_ms: int = AFTER_WITHIN_MS) -> Table:
    """How customers sound after an agent turn that a rule matched, against turns no rule matched.

    Per call, every customer segment is attributed to the agent turn it answers: the last agent segment
    that started before it, if the customer segment starts at most ``within_ms`` after that turn ended.
    An agent turn is *matched by rule R* when a hit of R in that call has that segment as evidence
    (a scripted greeting, apology, a forbidden phrase...). Per rule: the agent turns it matched, the
    customer segments that answered them and their *customer negative share* (the share of that speech
    time, among segments with an emotion, whose top emotion is angry, disgusted, fearful or sad; the
    scorecards' definition), then the same for the answers to turns that no rule matched (the first row,
    ``(unmatched)``, and the column ``baseline``), and ``delta`` = share − baseline (negative: calmer
    customers after the scripted turn)."""
    from sqlalchemy import select

    hits_q = _window(select(RuleHitRow.call_id, RuleHitRow.rule_id, RuleHitRow.name, RuleHitRow.evidence_json)
                     .join(Call, Call.call_id == RuleHitRow.call_id), since, until)
    segs_q = _window(select(SegmentRow.call_id, SegmentRow.segment_id, SegmentRow.role, SegmentRow.start_ms,
                            SegmentRow.end_ms, SegmentRow.duration_ms, SegmentRow.emotion_label)
                     .join(Call, Call.call_id == SegmentRow.call_id)
                     .where(SegmentRow.role.in_(("agent", "customer")))
                     .order_by(SegmentRow.call_id, SegmentRow.start_ms, SegmentRow.idx), since, until)
    import json

    matched: dict[tuple[str, str], set[str]] = defaultdict(set)  # (call, agent segment) -> rules
    names: dict[str, str] = {}
    with store.session() as s:
        for call_id, rule_id, name, ev in s.execute(hits_q):
            names.setdefault(rule_id, name)
            for e in json.loads(ev or "[]"):
                if isinstance(e, dict) and e.get("segment_id"):
                    matched[(call_id, e["segment_id"])].add(rule_id)
        segs = s.execute(segs_q).all()
    # per rule (None: unmatched): agent turns, answers, speech ms with an emotion, negative ms
    acc: dict[str | None, list[float]] = defaultdict(lambda: [0, 0, 0.0, 0.0])
    last: tuple[str, str, int] | None = None  # (call, segment, end) of the current agent turn
    for call_id, seg_id, role, start, end, dur, label in segs:
        if last is not None and last[0] != call_id:
            last = None
        if role == "agent":
            last = (call_id, seg_id, int(end))
            rules = matched.get((call_id, seg_id)) or {None}
            for r in rules:
                acc[r][0] += 1
            continue
        if last is None or start - last[2] > within_ms:
            continue
        for r in matched.get((last[0], last[1])) or {None}:
            a = acc[r]
            a[1] += 1
            if label is not None:
                a[2] += float(dur)
                a[3] += float(dur) if label in NEGATIVE_EMOTIONS else 0.0
    base = acc.get(None)
    baseline = _r(base[3] / base[2]) if base and base[2] else None
    rows = []
    for r in [None, *sorted(k for k in acc if k is not None)]:
        if r not in acc:
            continue
        turns, answers, emo_ms, neg_ms = acc[r]
        share = _r(neg_ms / emo_ms) if emo_ms else None
        delta = _r(share - baseline) if share is not None and baseline is not None and r is not None else None
        rows.append(("(unmatched)" if r is None else r, "" if r is None else names.get(r, r), int(turns),
                     int(answers), _r(emo_ms / 1000, 1), share, baseline, delta))
    return Table("customer after agent turns", ("rule_id", "name", "agent_turns", "customer_segments",
                                                "customer_emotion_s", "customer_negative_share", "baseline",
                                                "delta"), tuple(rows))


def agent_before_after(store: Store, agent_id: str, day: str, *, days: int | None = None) -> Table:
    """One agent's calls before ``day`` (UTC, 'YYYY-MM-DD') and from it on — a training date, a new
    script: calls, average score, critical hits, the customer negative share (as in the scorecards) and
    the customers' mean emotion distribution (duration-weighted, as in the heat map). ``days`` limits
    each side to that many days next to ``day``. Summed from the per-day rollups."""
    from datetime import date, timedelta

    from sqlalchemy import func, select

    from callsense.store.models import RollupAgentDay as A
    from callsense.store.models import RollupEmotionDay as E
    from callsense.store.rollups import refresh

    if not agent_id:
        raise UsageError("before/after needs an agent id")
    try:
        d = date.fromisoformat(str(day)[:10])
    except ValueError:
        raise UsageError(f"before/after date must be YYYY-MM-DD, not {day!r}") from None
    if days is not None and days < 1:
        raise UsageError(f"days must be at least 1, not {days}")
    sides = (("before", None if days is None else (d - timedelta(days=days)).isoformat(), d.isoformat()),
             ("after", d.isoformat(), None if days is None else (d + timedelta(days=days)).isoformat()))
    rows = []
    with store.session() as s:
        refresh(s, store.dialect)
        for name, lo, hi in sides:
            n, ssum, sn, crit, neg, emo = s.execute(_day_window(
                select(func.sum(A.calls), func.sum(A.score_sum), func.sum(A.score_n), func.sum(A.critical_hits),
                       func.sum(A.customer_neg_ms), func.sum(A.customer_emo_ms)).where(A.agent_id == agent_id),
                A, (lo, hi))).one()
            total, *w = s.execute(_day_window(
                select(func.sum(E.speech_ms), *[func.sum(getattr(E, f"w_{x}")) for x in EMOTION_NAMES])
                .where(E.field == "agent_id", E.value == agent_id, E.role == "customer"), E, (lo, hi))).one()
            total = float(total or 0)
            rows.append((name, lo, hi, int(n or 0), _r(ssum / sn) if sn else None, int(crit or 0),
                         _r(neg / emo) if emo else None, *[_r(x / total) if total else None for x in w]))
    return Table(f"agent {agent_id} before/after {d.isoformat()}",
                 ("period", "from", "until", "calls", "avg_score", "critical_hits", "customer_negative_share",
                  *EMOTION_NAMES), tuple(rows))
