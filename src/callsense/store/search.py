"""Search stored calls: free text in transcripts combined with filters (the query API of the web service).

Free text is substring search, so Chinese without spaces works: every word of the query (split on
spaces; ``"quoted phrases"`` stay whole) must occur in the segment text, case-insensitively. An index
narrows the candidates for every word: words of 1–2 characters (退款, 投诉) through the short-term index
(callsense.store.grams: the FTS5 character index ``segments_chars`` on SQLite, ``segment_grams`` on
PostgreSQL), longer ones through the FTS5 trigram table on SQLite and the pg_trgm GIN index on
PostgreSQL; ``ILIKE`` then decides, so the semantics are those of a plain substring test.

The plan follows the condition's frequency. A rare word is read from the index first (on PostgreSQL
as an array the planner cannot turn into a scan of every segment); a common one — where collecting
and sorting every match grows with the store (款: 116,000 matches at 30,000 calls) — is tested on the
newest calls' segments until the page is full. SQLite: a word is common above :func:`common_threshold`
matches (15·√calls, at least 1,000, counted on its index up to that), read by ``ix_calls_sort_at``.
PostgreSQL (:func:`_pg_newest_first`), at a decision cost that does not grow with the store: a 1–2
character word with more than 1,000 gram rows, and an emotion threshold (or label, confidence) the
planner estimates above :func:`newest_first_cap` (where the two plans read about as much), are read
in batches of the newest calls, which fall back to the index plan when the calls read show the
condition rarer than that. Every plan gives the same hits
in the same order (tests/test_store_scale.py).

When the query says anything about segments (text, role, emotion, ASR tags) the hits are segments;
otherwise they are calls (``segment_id`` is None). Hits come newest call first (``calls.sort_at``),
then in call order. Pages: ``after=hit.cursor`` of the last hit (keyset; ``offset`` still works).
Rule and severity filters read call ids from the ``(rule_id, call_id)`` / ``(severity, call_id)``
indexes. ``outliers`` / ``min_outlier`` keep segments by their latest stored outlier score
(``callsense clusters outliers``; the newest run that scored each segment), and the hits carry it.
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement

from callsense.errors import InputError, UsageError
from callsense.labels import EMOTION_BY_NAME, EMOTION_NAMES, ROLES, SENSEVOICE_EMOTIONS, SENSEVOICE_EVENTS
from callsense.store.metadata import parse_time, utc_naive
from callsense.store.models import META_FIELDS, Call, CallMeta, RuleHitRow, SegmentRow

if TYPE_CHECKING:
    from callsense.store.db import Store

SEVERITIES = ("info", "warning", "critical")
EVENT_TAGS = tuple(t for t in SENSEVOICE_EVENTS if t != "Speech")  # "Speech" is SenseVoice's "no event"


@dataclass(frozen=True)
class SearchQuery:
    text: str | None = None  # words that must all occur in one segment; "quoted phrase" kept whole
    role: str | None = None  # agent, customer, unknown
    emotion: str | None = None  # emotion2vec label: the segment's top label (or, with min_score, its score)
    min_score: float | None = None  # with emotion: P(emotion) >= min_score; alone: top-label confidence
    asr_emotion: str | None = None  # SenseVoice emotion tag, e.g. ANGRY
    event: str | None = None  # SenseVoice event tag on the segment, e.g. Cough, BGM
    rule_id: str | None = None  # the call has a hit of this rule
    severity: str | None = None  # the call has a hit of at least this severity
    meta: dict[str, str] = field(default_factory=dict)  # metadata field -> value (any field)
    since: datetime | str | None = None  # call time (started_at, else analysis time) >= since
    until: datetime | str | None = None  # call time < until
    min_duration_ms: int | None = None
    max_duration_ms: int | None = None
    min_qa_score: float | None = None  # QA score 0-100, as shown (QAScore.normalized)
    max_qa_score: float | None = None
    call_id: str | None = None
    invalid: bool = False  # only the discard view: calls a scorecard left "not scored" (call.invalid)
    outliers: bool = False  # only segments whose latest outlier score (callsense clusters outliers) is flagged
    min_outlier: float | None = None  # only segments whose latest outlier score is at least this
    limit: int = 50
    offset: int = 0
    after: str | None = None  # the cursor of the last hit of the previous page (keyset pagination)

    def __post_init__(self) -> None:
        if self.role is not None and self.role not in ROLES:
            raise UsageError(f"unknown role {self.role!r}; valid: {', '.join(ROLES)}")
        if self.emotion is not None and self.emotion not in EMOTION_NAMES:
            raise UsageError(f"unknown emotion {self.emotion!r}; valid: {', '.join(EMOTION_NAMES)}")
        if self.severity is not None and self.severity not in SEVERITIES:
            raise UsageError(f"unknown severity {self.severity!r}; valid: {', '.join(SEVERITIES)}")
        if self.min_score is not None and not 0.0 <= self.min_score <= 1.0:
            raise UsageError("min_score must be between 0 and 1")
        for name in ("min_qa_score", "max_qa_score"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 100.0:
                raise UsageError(f"{name} must be a QA score between 0 and 100 (as shown), not {value:g}")
        if self.min_outlier is not None and not 0.0 <= self.min_outlier <= 2.0:
            raise UsageError(f"min_outlier is a cosine distance between 0 and 2, not {self.min_outlier:g}")
        if self.limit < 1:
            raise UsageError("limit must be at least 1")
        # a tag is matched exactly in the stored text: an unknown or miscased one would find nothing, silently
        for name, known in (("event", EVENT_TAGS), ("asr_emotion", SENSEVOICE_EMOTIONS)):
            value = getattr(self, name)
            if value is not None:
                canonical = {k.lower(): k for k in known}.get(str(value).strip().lower())
                if canonical is None:
                    raise UsageError(f"unknown {name.replace('_', ' ')} tag {value!r}; valid: {', '.join(known)}")
                object.__setattr__(self, name, canonical)
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value != "":
                try:
                    parse_time(value, field=name)  # a typo is said, not read as "no bound"
                except InputError as e:
                    raise UsageError(e.message, hint=e.hint) from None

    @property
    def terms(self) -> tuple[str, ...]:
        if not self.text or not self.text.strip():
            return ()
        try:
            parts = shlex.split(self.text)
        except ValueError:  # unbalanced quote: take the words as they are
            parts = self.text.split()
        return tuple(p for p in parts if p.strip())

    @property
    def segment_level(self) -> bool:
        return bool(self.terms or self.role or self.emotion or self.min_score is not None or self.asr_emotion
                    or self.event or self.by_outlier)

    @property
    def by_outlier(self) -> bool:
        return self.outliers or self.min_outlier is not None


@dataclass(frozen=True)
class SearchHit:
    call_id: str
    source_name: str
    call_time: datetime | None  # started_at, else analysis time (naive UTC)
    duration_ms: int
    agent_id: str | None
    qa_score: float | None  # 0-100, as shown
    segment_id: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    role: str | None = None
    emotion: str | None = None
    emoji: str = ""
    emotion_score: float | None = None
    text: str = ""
    spans: tuple[tuple[int, int], ...] = ()  # character offsets of the matches in text
    outlier_score: float | None = None  # the segment's latest outlier score (outlier searches only)
    outlier_flagged: bool | None = None
    reason: str | None = None  # why the call was left not scored (``invalid`` searches: the discard view)
    cursor: str = ""  # SearchQuery(after=cursor) gives the hits after this one

    def marked(self, open_: str = "«", close: str = "»") -> str:
        """The text with each match wrapped in ``open_`` … ``close``."""
        out, last = [], 0
        for a, b in self.spans:
            out += [self.text[last:a], open_, self.text[a:b], close]
            last = b
        out.append(self.text[last:])
        return "".join(out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id, "source_name": self.source_name,
            "call_time": self.call_time.isoformat() + "Z" if self.call_time else None,
            "duration_ms": self.duration_ms, "agent_id": self.agent_id, "qa_score": self.qa_score,
            "segment_id": self.segment_id, "start_ms": self.start_ms, "end_ms": self.end_ms, "role": self.role,
            "emotion": self.emotion, "emoji": self.emoji, "emotion_score": self.emotion_score, "text": self.text,
            "spans": [list(s) for s in self.spans], "marked": self.marked(), "cursor": self.cursor,
            **({"outlier_score": self.outlier_score, "outlier_flagged": self.outlier_flagged}
               if self.outlier_score is not None else {}),
            **({"reason": self.reason} if self.reason is not None else {}),
        }


def search(store: Store, query: SearchQuery) -> list[SearchHit]:
    """Segments (or calls) matching ``query``; see the module docstring."""
    from callsense.store.cursor import make_cursor

    pg = store.dialect == "postgresql"
    # common words (and, on PostgreSQL, a common emotion threshold): newest calls first, their segments
    # tested until the page is full (SQLite through ix_calls_sort_at; PostgreSQL in batches of the newest
    # calls, _newest_calls_first) — not the index's every match
    batches = _pg_newest_first(store, query) if pg and query.segment_level else None
    newest_first = batches is not None if pg else query.segment_level and _common_words(store, query)
    stmt = _statement(store, query, newest_first=newest_first)
    terms = query.terms
    hits = []
    with store.session() as s:
        rows = _newest_calls_first(s, stmt, query, batches) if batches is not None else None
        if rows is None:  # the index plan (also when the newest calls held fewer matches than estimated)
            stmt = stmt if batches is None else _statement(store, query, newest_first=False)
            rows = s.execute(stmt.limit(query.limit).offset(query.offset))
        for row in rows:
            base = {"call_id": row.call_id, "source_name": row.source_name, "call_time": row.call_time,
                    "duration_ms": row.duration_ms, "agent_id": row.agent_id, "qa_score": row.score_normalized}
            if not query.segment_level:
                hits.append(SearchHit(**base, cursor=make_cursor(row.call_time, row.call_id)))
                continue
            label = row.emotion_label
            hits.append(SearchHit(
                **base, segment_id=row.segment_id, start_ms=row.start_ms, end_ms=row.end_ms, role=row.role,
                emotion=label, emoji=EMOTION_BY_NAME[label].emoji if label in EMOTION_BY_NAME else "",
                emotion_score=row.emotion_score, text=row.text, spans=match_spans(row.text, terms),
                cursor=make_cursor(row.call_time, row.call_id, row.idx),
                **({"outlier_score": round(float(row.outlier_score), 4), "outlier_flagged": bool(row.outlier_flagged)}
                   if query.by_outlier else {}),
            ))
    return hits


def _statement(store: Store, query: SearchQuery, *, newest_first: bool) -> Any:
    """The ordered search statement, without limit or offset; ``newest_first``: without the text
    index's set of matches (the rows are tested on the newest calls instead)."""
    from sqlalchemy import select

    from callsense.store.cursor import after_condition

    when = Call.sort_at
    call_cols = (Call.call_id, Call.source_name, when.label("call_time"), Call.duration_ms, Call.agent_id,
                 Call.score_normalized)
    if query.segment_level:
        stmt = select(*call_cols, SegmentRow.segment_id, SegmentRow.idx, SegmentRow.start_ms, SegmentRow.end_ms,
                      SegmentRow.role, SegmentRow.emotion_label, SegmentRow.emotion_score, SegmentRow.text
                      ).join(SegmentRow, SegmentRow.call_id == Call.call_id)
        stmt = _segment_filters(stmt, query, store.dialect, newest_first=newest_first)
        if query.by_outlier:
            stmt = _outlier_filter(stmt, query)
        stmt = stmt.order_by(when.desc(), Call.call_id, SegmentRow.idx)
        if query.after:
            stmt = stmt.where(after_condition(query.after, when, Call.call_id, SegmentRow.idx))
    else:
        stmt = select(*call_cols).order_by(when.desc(), Call.call_id)
        if query.after:
            stmt = stmt.where(after_condition(query.after, when, Call.call_id))
    return _call_filters(stmt, query, when, hits_exist=_common_hits(store, query))


@dataclass(frozen=True)
class _Batches:
    """PostgreSQL: how :func:`_newest_calls_first` reads a common condition's newest calls."""

    first: int  # calls in the first batch: enough for the page at the estimated frequency
    cap: int  # matches in the store (extrapolated from the calls read) at or below which the index plan is cheaper
    calls: int  # calls in the store (the planner's estimate)


FIRST_BATCH = (16, 128, 4096)  # the first batch's calls: at least; at most for a word; at most for an emotion
MAX_BATCH = 65536
RARE = 1000  # at most this many matches: the index plan at any size (a word's gram rows are counted this far)
MARGIN = 1.5  # a batch holds about this many times the hits still needed, at the frequency known: a next one is rare


def _newest_calls_first(s: Any, stmt: Any, q: SearchQuery, plan: _Batches) -> list[Any] | None:
    """PostgreSQL, a common condition: ``stmt`` run on batches of the newest calls until the page is full
    — an index range of calls and their segments each time, whatever plan the planner would have picked
    for the whole store (it scanned every segment: 750 ms at 30,000 calls). The first batch is sized from
    the estimated frequency; each next one from the frequency measured so far. None when the calls read
    show the condition rarer than estimated (extrapolated to the store, at most ``plan.cap`` matches): then
    the index plan is the cheaper one, and the caller runs it (the same rows, in the same order)."""
    from sqlalchemy import or_, select

    from callsense.store.cursor import after_condition, make_cursor, parse_cursor

    when = Call.sort_at
    need, got, last, k, read = q.offset + q.limit, [], None, plan.first, 0
    start = None
    if q.after:  # the next page starts within the cursor's call: read calls from that one on, not from the newest
        at, call_id, _ = parse_cursor(q.after)
        start = or_(Call.call_id == call_id, after_condition(make_cursor(at, call_id), when, Call.call_id))
    while len(got) < need:
        cq = _call_filters(select(Call.call_id, when.label("sort_at")), q, when).order_by(when.desc(), Call.call_id)
        if start is not None:
            cq = cq.where(start)
        if last is not None:
            cq = cq.where(after_condition(last, when, Call.call_id))
        batch = s.execute(cq.limit(k)).all()
        if not batch:
            break
        got += s.execute(_in_batch(stmt, batch, start, last).limit(need - len(got))).all()
        read += len(batch)
        if len(batch) < k or len(got) >= need:
            break
        if len(got) * max(plan.calls, read) / read <= plan.cap:
            return None
        last = make_cursor(batch[-1].sort_at, batch[-1].call_id)
        k = min(MAX_BATCH, max(2 * k, math.ceil(MARGIN * (need - len(got)) * read / len(got))))
    return got[q.offset:need]


def _in_batch(stmt: Any, batch: list[Any], start: Any, last: str | None) -> Any:
    """``stmt`` on the calls of ``batch`` (the next calls after ``start`` / ``last``, newest first): as
    the range of ix_calls_sort_at they span — a range scan in order, no list of ids to plan (with a
    LIMIT the planner walked that index over every call filtering by such a list: 22,000 buffers at
    20,000 calls). The same calls: ``stmt`` has the call filters that chose them."""
    from sqlalchemy import and_, or_

    from callsense.store.cursor import after_condition

    when = Call.sort_at
    lo, lo_id = batch[-1].sort_at, batch[-1].call_id
    if lo is None or batch[0].sort_at is None:  # calls without a time (first, descending; none since 0005): by id
        return stmt.where(Call.call_id.in_([r.call_id for r in batch]))
    if start is not None:
        stmt = stmt.where(start)
    if last is not None:
        stmt = stmt.where(after_condition(last, when, Call.call_id))
    return stmt.where(when >= lo, or_(when > lo, and_(when == lo, Call.call_id <= lo_id)))


def _calls_estimate(s: Any, dialect: str) -> int:
    """About how many calls the store holds, without counting them: SQLite's highest rowid, PostgreSQL's
    planner estimate (0 before the first ANALYZE)."""
    from sqlalchemy import func, literal_column, select, text

    if dialect == "postgresql":
        return int(s.execute(text("SELECT greatest(reltuples, 0) FROM pg_class WHERE relname = 'calls'")).scalar() or 0)
    return int(s.execute(select(func.coalesce(func.max(literal_column("rowid")), 0)).select_from(Call)).scalar_one())


def _planned_rows(s: Any, stmt: Any) -> int:
    """PostgreSQL: the planner's estimate of the rows of ``stmt`` (from the table statistics; nothing is read)."""
    import json

    conn = s.connection()
    compiled = stmt.compile(dialect=conn.dialect)
    plan = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + str(compiled), compiled.params).scalar()
    return int((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]["Plan Rows"])


def common_threshold(calls: int) -> int:
    """SQLite: above this many matching segments a word is "common" (see :func:`_common_words`): where
    reading the calls newest first costs about what collecting and sorting every match costs (measured
    at 30,000 calls: 116,000 matches of 款 took 220 ms that way against 14 ms newest first)."""
    return max(1000, int(15 * calls ** 0.5))


# PostgreSQL: what a row read by the index plan costs against a row read newest first (a segment of a
# batch's call, its ILIKE or emotion test). A word: 10 — each match an id lookup, a heap fetch and a join
# (the 15·√calls of common_threshold at 50 hits and 30 segments a call); an emotion: 1 — measured at 20,000
# calls, 0.74 µs a row of ix_segments_p_angry's bitmap against 0.75 µs a segment of a batch.
ROW_COST = {"word": 10.0, "emotion": 1.0}
SEGMENTS_PER_CALL = 30  # until the planner's statistics say


def newest_first_cap(calls: int, need: int, per_call: float, share: float, row_cost: float) -> int:
    """PostgreSQL: the matching segments above which reading the newest calls first reads less than the
    index plan. Newest first reads ``MARGIN · need · calls / matches`` calls of ``per_call`` segments (at
    ``matches / calls`` hits a call); the index plan reads ``matches / share`` rows (``share``: the part of
    the rows its index returns that match, e.g. one role of two), each ``row_cost`` times dearer. Equal at
    ``matches = √(MARGIN · need · per_call · share · calls / row_cost)``."""
    return int(math.sqrt(MARGIN * need * per_call * share * max(calls, 0) / row_cost))


def _pg_newest_first(store: Store, q: SearchQuery) -> _Batches | None:
    """PostgreSQL: whether to read ``q``'s newest calls first (:func:`_newest_calls_first`) — at a cost
    that does not grow with the store — and how. Two kinds of query qualify, with nothing else narrowing
    the search: words of 1–2 characters, and an emotion threshold, label or top-label confidence (with a
    role or not; a role alone the planner already reads newest call first). Common: more matching
    segments than :func:`newest_first_cap` and than :data:`RARE`.

    - Words: each word's gram rows are counted up to :data:`RARE`; a word with no more is rare and read
      from the gram index. A more frequent one is tried on the newest calls, which measure its frequency (the planner's statistics only size the first batch: for a
      gram outside its most common values they are a guess).
    - An emotion: the planner's estimate of the matching segments (statistics of ``p_<emotion>``,
      ``emotion_label``, ``emotion_score``, ``role``); the index plan reads the range of
      ``ix_segments_p_angry`` or of the ``emotion_label`` index, else every segment (no index)."""
    from sqlalchemy import func, select, text

    from callsense.store.grams import gram_condition, servable
    from callsense.store.models import SegmentGram

    narrowed = (q.call_id or q.meta or q.rule_id or q.severity or q.invalid or q.asr_emotion or q.event
                or q.by_outlier)
    emotional = bool(q.emotion) or q.min_score is not None
    if narrowed or (q.terms and emotional) or not (q.terms or emotional):
        return None
    if not all(servable(t) for t in q.terms):
        return None  # pg_trgm serves a word of 3+ characters well whatever its frequency
    need = q.offset + q.limit
    with store.session() as s:
        stats = dict(s.execute(text("SELECT relname, greatest(reltuples, 0) FROM pg_class"
                                    " WHERE relname IN ('calls', 'segments')")).all())
        calls, segments = int(stats.get("calls") or 0), int(stats.get("segments") or 0)
        per_call = segments / calls if calls and segments else SEGMENTS_PER_CALL
        if q.terms:
            # with a role, the index plan reads both roles' matches: the batches' hits are its share of them
            share = (min(1.0, _planned_rows(s, select(SegmentRow.id).where(SegmentRow.role == q.role)) / segments)
                     if q.role and segments else 1.0)
            cap = max(RARE, newest_first_cap(calls, need, per_call, share, ROW_COST["word"]))
            for term in q.terms:  # counted up to RARE only: a cost that does not grow with the store
                sub = select(SegmentGram.segment_pk).where(gram_condition(SegmentGram.gram, term)).limit(RARE + 1)
                if s.execute(select(func.count()).select_from(sub.subquery())).scalar_one() <= RARE:
                    return None
            matches = min(_planned_rows(s, select(SegmentGram.segment_pk).where(gram_condition(SegmentGram.gram, t)))
                          for t in q.terms)
            most = FIRST_BATCH[1]
        else:
            matches = _planned_rows(s, _segment_filters(select(SegmentRow.id), q, "postgresql"))
            read = _index_rows(s, q, segments)
            share = min(1.0, matches / max(read, 1))
            cap = max(RARE, newest_first_cap(calls, need, per_call, share, ROW_COST["emotion"]))
            if matches <= cap:
                return None
            most = FIRST_BATCH[2]
    first = math.ceil(MARGIN * need * max(calls, 1) / max(matches, 1))
    return _Batches(first=min(most, max(FIRST_BATCH[0], first)), cap=cap, calls=calls)


def _index_rows(s: Any, q: SearchQuery, segments: int) -> int:
    """PostgreSQL: the rows the index plan of an emotion condition reads (the planner's estimate): the
    range of ``ix_segments_p_angry`` or of the ``emotion_label`` index, else every segment."""
    from sqlalchemy import select

    if q.emotion and q.min_score is not None:
        if q.emotion != "angry":
            return segments
        return _planned_rows(s, select(SegmentRow.id).where(SegmentRow.p_angry >= q.min_score))
    if q.emotion:
        return _planned_rows(s, select(SegmentRow.id).where(SegmentRow.emotion_label == q.emotion))
    return segments


def _common_words(store: Store, q: SearchQuery) -> bool:
    """SQLite: whether every word of ``q`` matches more segments than :func:`common_threshold`, and
    nothing else narrows the search. Then the newest calls hold a page of hits, and reading calls by
    ``ix_calls_sort_at`` finds it without collecting every match (which grows with the store); for a
    rare word the index-first plan SQLite picks is the fast one (newest first would read every call).
    (An emotion threshold stays on SQLite's own plan: 5.0 → 6.4 ms from 10,000 to 100,000 calls.)"""
    from sqlalchemy import text

    from callsense.store.grams import char_phrase

    narrowed = (q.call_id or q.meta or q.rule_id or q.severity or q.invalid or q.emotion or q.min_score is not None
                or q.asr_emotion or q.event or q.by_outlier)
    if not q.terms or narrowed:
        return False
    with store.session() as s:
        cap = common_threshold(_calls_estimate(s, store.dialect))
        for term in q.terms:
            name, phrase = (("segments_fts", '"' + term.replace('"', '""') + '"') if len(term) >= 3
                            else ("segments_chars", char_phrase(term)))
            if phrase is None:
                return False
            n = s.execute(text(f"SELECT count(*) FROM (SELECT rowid FROM {name} WHERE {name} MATCH :p LIMIT :cap)"),
                          {"p": phrase, "cap": cap + 1}).scalar_one()
            if n <= cap:
                return False
    return True


def with_reasons(store: Store, hits: list[SearchHit]) -> list[SearchHit]:
    """The discard view's hits with the reason their call was left not scored (``score.reason`` of the
    stored result: "call.invalid: 0.0 s of speech (< 3 s); ..."): one read of the hits' results, so
    for a page of hits (``callsense search --invalid``), not for a scan."""
    import dataclasses
    import json

    from sqlalchemy import select

    from callsense.store.codec import result_text

    ids = list(dict.fromkeys(h.call_id for h in hits))
    reasons: dict[str, str] = {}
    with store.session() as s:
        for row in s.execute(select(Call.call_id, Call.result_json, Call.result_z).where(Call.call_id.in_(ids))):
            score = json.loads(result_text(row.result_json, row.result_z) or "{}").get("score") or {}
            reasons[row.call_id] = score.get("reason") or ""
    return [dataclasses.replace(h, reason=reasons.get(h.call_id, "")) for h in hits]


def match_spans(text: str, terms: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """Merged, sorted character spans of every case-insensitive occurrence of ``terms`` in ``text``."""
    spans = []
    for term in terms:
        spans += [(m.start(), m.end()) for m in re.finditer(re.escape(term), text, flags=re.IGNORECASE)]
    merged: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return tuple(merged)


def _like_escape(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class _ArraySubquery(ColumnElement):
    """PostgreSQL's ``ARRAY(SELECT ...)`` of a one-column select: an init plan, evaluated once."""

    inherit_cache = False

    def __init__(self, subquery: Any):
        self.subquery = subquery


@compiles(_ArraySubquery)
def _compile_array(element: _ArraySubquery, compiler: Any, **kw: Any) -> str:
    return f"ARRAY({compiler.process(element.subquery, **kw)})"


def _array(subquery: Any) -> Any:
    return _ArraySubquery(subquery)


def _segment_filters(stmt: Any, q: SearchQuery, dialect: str, *, newest_first: bool = False) -> Any:
    from sqlalchemy import column, func, literal_column, select, table

    from callsense.store.grams import char_phrase, gram_condition, servable
    from callsense.store.models import SegmentGram

    for term in q.terms:
        col = SegmentRow.text
        if dialect == "postgresql" and servable(term):
            # not on the pg_trgm index: it cannot serve 1-2 characters, and PostgreSQL used it anyway
            # (estimated 22 rows, then rechecked all 909,000: 790 ms for an absent word at 30,000 calls)
            col = SegmentRow.text.concat("")
        stmt = stmt.where(col.ilike(f"%{_like_escape(term)}%", escape="\\"))
        if dialect == "sqlite":
            # an index finds the candidate rows; the ILIKE above keeps the exact semantics. 3+
            # characters: the trigram index; 1-2: the character index (a phrase of the characters)
            if len(term) >= 3:
                name, phrase = "segments_fts", '"' + term.replace('"', '""') + '"'
            else:
                name, phrase = "segments_chars", char_phrase(term)  # None: spaces only, nothing indexed
            if phrase is not None and not newest_first:  # a common word: tested on the newest calls' segments
                fts = table(name, column("rowid"))
                stmt = stmt.where(SegmentRow.id.in_(
                    select(fts.c.rowid).where(literal_column(name).op("MATCH")(phrase))))
        elif servable(term) and not newest_first:
            # 1-2 characters, a rare word: its segments from the gram index (pg_trgm needs 3), as an array
            # computed first — as a plain IN, PostgreSQL scanned every segment instead (790 ms at 30,000
            # calls for an absent word). A common word is tested on the newest calls' segments only.
            ids = select(SegmentGram.segment_pk).where(gram_condition(SegmentGram.gram, term))
            stmt = stmt.where(SegmentRow.id == func.any(_array(ids)))
    if q.role:
        stmt = stmt.where(SegmentRow.role == q.role)
    if q.emotion and q.min_score is not None:
        stmt = stmt.where(getattr(SegmentRow, f"p_{q.emotion}") >= q.min_score)
    elif q.emotion:
        stmt = stmt.where(SegmentRow.emotion_label == q.emotion)
    elif q.min_score is not None:
        stmt = stmt.where(SegmentRow.emotion_score >= q.min_score)
    if q.asr_emotion:
        stmt = stmt.where(SegmentRow.asr_emotion == q.asr_emotion.upper())
    if q.event:
        stmt = stmt.where(SegmentRow.asr_events.like(f"% {_like_escape(q.event)} %", escape="\\"))
    return stmt


def _outlier_filter(stmt: Any, q: SearchQuery) -> Any:
    """Segments by their latest outlier score (the newest outliers run that scored each), with the score."""
    from callsense.store.clusters import latest_scores_subquery

    o = latest_scores_subquery()
    stmt = stmt.join(o, (o.c.call_id == SegmentRow.call_id) & (o.c.segment_id == SegmentRow.segment_id))
    stmt = stmt.add_columns(o.c.score.label("outlier_score"), o.c.flagged.label("outlier_flagged"))
    if q.outliers:
        stmt = stmt.where(o.c.flagged.is_(True))
    if q.min_outlier is not None:
        stmt = stmt.where(o.c.score >= q.min_outlier)
    return stmt


def _call_filters(stmt: Any, q: SearchQuery, when: Any, *, hits_exist: bool = False) -> Any:
    from sqlalchemy import exists, select

    if q.call_id:
        stmt = stmt.where(Call.call_id == q.call_id)
    for key, value in q.meta.items():
        if key in META_FIELDS:
            stmt = stmt.where(getattr(Call, key) == str(value))
        else:
            stmt = stmt.where(Call.call_id.in_(select(CallMeta.call_id).where(
                CallMeta.key == key, CallMeta.value == str(value))))
    if q.since is not None:
        stmt = stmt.where(when >= utc_naive(q.since))
    if q.until is not None:
        stmt = stmt.where(when < utc_naive(q.until))
    if q.min_duration_ms is not None:
        stmt = stmt.where(Call.duration_ms >= q.min_duration_ms)
    if q.max_duration_ms is not None:
        stmt = stmt.where(Call.duration_ms <= q.max_duration_ms)
    if q.min_qa_score is not None:
        stmt = stmt.where(Call.score_normalized >= q.min_qa_score)
    if q.max_qa_score is not None:
        stmt = stmt.where(Call.score_normalized <= q.max_qa_score)
    if q.invalid:  # a scorecard ran and gave no score: an invalid call (result.score.status "not_scored")
        stmt = stmt.where(Call.scorecard_id.is_not(None), Call.score_normalized.is_(None))
    # IN (uncorrelated): the subquery is one range scan of the (rule_id, call_id) / (severity, call_id)
    # index, evaluated once, not once per call. For a rule many calls hit (hits_exist, _common_hits) that
    # range grows with the store, and a correlated EXISTS on the same index, newest call first, stops
    # at the page's end instead (SQLite, 100,000 calls: 123 ms against 3 ms)
    cond = _hit_conditions(q)
    if cond:
        stmt = stmt.where(exists(select(1).where(RuleHitRow.call_id == Call.call_id, *cond)) if hits_exist
                          else Call.call_id.in_(select(RuleHitRow.call_id).where(*cond)))
    return stmt


def _hit_conditions(q: SearchQuery) -> list[Any]:
    cond = []
    if q.rule_id:
        cond.append(RuleHitRow.rule_id == q.rule_id)
    if q.severity:
        cond.append(RuleHitRow.severity.in_(SEVERITIES[SEVERITIES.index(q.severity):]))
    return cond


def _common_hits(store: Store, q: SearchQuery) -> bool:
    """SQLite: whether more calls than :func:`common_threshold` have a hit the rule or severity filter
    asks for, and nothing else narrows the search (then the newest calls hold a page). PostgreSQL's
    planner chose well on its own (6 ms at 40,000 calls)."""
    from sqlalchemy import func, select

    cond = _hit_conditions(q)
    if store.dialect != "sqlite" or not cond or q.segment_level or q.call_id or q.meta or q.invalid:
        return False
    with store.session() as s:
        cap = common_threshold(_calls_estimate(s, store.dialect))
        sub = select(RuleHitRow.call_id).where(*cond).limit(cap + 1)
        return s.execute(select(func.count()).select_from(sub.subquery())).scalar_one() > cap
