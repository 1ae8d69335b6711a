"""The store at scale (issue 21): query plans on indexes, keyset pages, rollups equal to the exact
aggregates, compact embeddings, and the 0002 -> 0005 migration keeping every call. SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import datetime

import numpy as np
import pytest

from callsense.labels import EMOTION_NAMES
from callsense.result.qa import Evidence, QAScore, RuleHit
from callsense.testing.results import make_result, seg
from callsense.testing.store import fresh_postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    from callsense.store import open_store

    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path / 'store.db'}")
        yield s
        s.close()
    else:
        with fresh_postgres_database() as url:
            s = open_store(url)
            yield s
            s.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def _shared_store40(request, tmp_path_factory):
    from callsense.store import open_store

    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path_factory.mktemp('store40') / 'store.db'}")
        _fill(s, 40)
        yield s
        s.close()
    else:
        with fresh_postgres_database() as url:
            s = open_store(url)
            _fill(s, 40)
            yield s
            s.close()


@pytest.fixture
def store40(_shared_store40):
    """A store holding ``_fill(store, 40)``, made once per backend for the module: for the tests that only
    search it (16 per backend; a fresh database and 40 saves cost seconds a test). They patch search's thresholds
    through their own monkeypatch and remove their statement listeners; a test that stored or deleted a
    call would fail here, after it."""
    from callsense.store.repo import count_calls

    yield _shared_store40
    assert count_calls(_shared_store40) == 40, "a test changed the shared store"


TEXTS = ["我要投诉你们", "退款什么时候到", "好的谢谢", "您好请问有什么可以帮您", "发货太慢了我要退款"]
EMOS = ["angry", "neutral", "happy", "sad", "disgusted"]


def _call(i: int, *, day: int | None = None):
    rng = np.random.default_rng(i)
    segs = []
    for j in range(4):
        role = "agent" if j % 2 == 0 else "customer"
        segs.append(seg(role, j * 2000, j * 2000 + 1500 + 100 * (i % 5), TEXTS[(i + j) % len(TEXTS)],
                        emotion_=EMOS[int(rng.integers(len(EMOS)))]))
    started = None if day is None else f"2026-03-{day:02d}T{(i * 7) % 24:02d}:15:00Z"
    meta = {"agent_id": f"a{i % 3}", "category": ["billing", "delivery"][i % 2], **({"started_at": started} if started else {})}
    r = make_result(segs, call_id=f"c{i:03d}", metadata=meta)
    hits = []
    if i % 3 == 0:
        hits.append(RuleHit("risk.complaint", "1", "complaint", "service", "critical",
                            evidence=(Evidence("s0002", 2000, 3500, text="投诉"),)))
    if i % 4 == 0:
        hits.append(RuleHit("flow.dead_air", "1", "dead air", "flow", "warning"))
    segs_e = tuple(dataclasses.replace(s, emotion=dataclasses.replace(s.emotion, embedding_index=k))
                   for k, s in enumerate(r.segments))
    qa = 0.3 + 0.05 * (i % 10)
    r = dataclasses.replace(r, segments=segs_e, rule_hits=tuple(hits),
                            source=dataclasses.replace(r.source, sha256=f"{i:064d}"),
                            score=QAScore("default", "1", qa * 100, 100, qa, qa >= 0.6))
    return r, rng.normal(size=(len(segs), 16)).astype(np.float32)


def _fill(store, n=24):
    from callsense.store import save_result

    for i in range(n):
        r, e = _call(i, day=None if i % 7 == 6 else 1 + i % 5)
        save_result(store, r, embeddings=e)


# ---------------------------------------------------------------- query plans


def _plan(store, stmt) -> str:
    from sqlalchemy import text

    with store.engine.connect() as conn:
        compiled = stmt.compile(dialect=store.engine.dialect, compile_kwargs={"literal_binds": True})
        if store.dialect == "sqlite":
            rows = conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}")).all()
            return "\n".join(r[-1] for r in rows)
        conn.execute(text("SET enable_seqscan = off"))  # tiny tables: ask whether an index CAN serve it
        return "\n".join(r[0] for r in conn.execute(text(f"EXPLAIN {compiled}")).all())


def _search_stmt(store, **kw):
    """The statement search_calls runs, captured from the engine."""
    from sqlalchemy import event

    from callsense.store import SearchQuery, search_calls

    seen = []

    def capture(conn, cursor, statement, params, context, executemany):
        if "FROM calls" in statement:
            seen.append((statement, params))

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        search_calls(store, SearchQuery(**kw))
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)
    return seen[-1]


def _explain_raw(store, statement, params) -> str:
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params).all()
            return "\n".join(r[-1] for r in rows)
        conn.exec_driver_sql("SET enable_seqscan = off")
        return "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {statement}", params).all())


@pytest.mark.parametrize("query, index", [
    ({"rule_id": "risk.complaint"}, "ix_rule_hits_rule_call"),
    ({"severity": "critical"}, "ix_rule_hits_severity_call"),
    ({"text": "投诉"}, "short-term index"),  # SQLite: the character index; PostgreSQL: segment_grams
    ({"text": "款"}, "short-term index"),
    ({"emotion": "angry", "min_score": 0.9}, "ix_segments_p_angry"),
    ({"since": "2026-03-02", "until": "2026-03-03"}, "ix_calls_sort_at"),
    ({"meta": {"category": "billing", "shift": "night"}}, "ix_call_meta_key_value"),
    ({"text": "我要投诉"}, "segments_fts"),  # 3+ characters: the trigram index (SQLite)
])
def test_key_queries_are_served_by_an_index(store, query, index):
    from sqlalchemy import text

    if index == "segments_fts" and store.dialect != "sqlite":
        pytest.skip("the FTS5 trigram table is SQLite's; PostgreSQL's pg_trgm index exists only where the "
                    "server has the extension")
    if index == "short-term index":
        index = "segments_chars" if store.dialect == "sqlite" else "segment_grams"
    _fill(store, 12)
    if store.dialect == "sqlite":
        with store.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    statement, params = _search_stmt(store, **query)
    plan = _explain_raw(store, statement, params)
    assert index in plan, plan
    if store.dialect == "sqlite":
        scans = [ln for ln in plan.splitlines() if re.search(r"SCAN (segments|rule_hits)\b(?!_fts)", ln)]
        assert not scans, plan  # the FTS5 match ("SCAN segments_fts VIRTUAL TABLE") is an index use


def test_newest_first_pages_walk_the_sort_index_without_sorting(store):
    from callsense.store import list_calls

    _fill(store, 12)
    seen = []
    from sqlalchemy import event

    event.listen(store.engine, "before_cursor_execute", lambda *a: seen.append((a[2], a[3])))
    list_calls(store, limit=5)
    plan = _explain_raw(store, *seen[-1])
    assert "ix_calls_sort_at" in plan and "TEMP B-TREE" not in plan, plan


def test_listing_never_reads_the_result_json(store):
    from sqlalchemy import event

    from callsense.store import list_calls

    _fill(store, 3)
    seen = []
    event.listen(store.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    assert len(list_calls(store)) == 3
    assert seen and all("result_json" not in s for s in seen)


# ---------------------------------------------------------------- pagination


def test_keyset_pages_equal_the_full_listing(store):
    from callsense.store import SearchQuery, list_calls, search_calls

    _fill(store)
    full = [r.call_id for r in list_calls(store, limit=1000)]
    assert len(full) == 24
    pages, after = [], None
    while True:
        page = list_calls(store, limit=5, after=after)
        if not page:
            break
        pages += [r.call_id for r in page]
        after = page[-1].cursor
    assert pages == full
    assert [r.call_id for r in list_calls(store, limit=5, offset=5)] == full[5:10]  # offset still works

    everything = [(h.call_id, h.segment_id) for h in search_calls(store, SearchQuery(text="退款", limit=1000))]
    assert len(everything) > 10
    got, after = [], None
    while True:
        hits = search_calls(store, SearchQuery(text="退款", limit=4, after=after))
        if not hits:
            break
        got += [(h.call_id, h.segment_id) for h in hits]
        after = hits[-1].cursor
    assert got == everything


def test_bad_cursor_is_a_usage_error(store):
    from callsense.errors import UsageError
    from callsense.store import list_calls

    with pytest.raises(UsageError, match="bad page cursor"):
        list_calls(store, after="not-a-cursor")


# ---------------------------------------------------------------- short terms


def test_one_and_two_character_terms_match_like_a_scan(store):
    from callsense.store import SearchQuery, search_calls

    _fill(store, 10)
    for term in ("投诉", "款", "了", "谢谢", "您", "慢了", "x"):
        got = {(h.call_id, h.segment_id) for h in search_calls(store, SearchQuery(text=term, limit=1000))}
        want = {(f"c{i:03d}", f"s{j + 1:04d}") for i in range(10) for j in range(4)
                if term in TEXTS[(i + j) % len(TEXTS)]}
        assert got == want, term
    [h, *_] = search_calls(store, SearchQuery(text="款 退", limit=1))
    assert "«退»«款»" in h.marked() or "«退款»" in h.marked()


# ---------------------------------------------------------------- rollups


def _exact(monkeypatch, fn, store, **kw):
    from callsense.store import aggregates

    with monkeypatch.context() as m:
        m.setattr(aggregates, "_days", lambda since, until: None)
        return fn(store, **kw)


def test_rollups_equal_the_exact_aggregates_after_saves_replaces_and_deletes(store, monkeypatch):
    from sqlalchemy import delete

    from callsense.store import agent_scorecards, daily_trends, emotion_heatmap, rule_hit_counts, save_result
    from callsense.store.models import Call

    _fill(store)
    checks = [(agent_scorecards, {}), (daily_trends, {}), (rule_hit_counts, {}),
              (emotion_heatmap, {"by": "category"}), (emotion_heatmap, {"by": "agent_id", "role": "agent"}),
              (daily_trends, {"since": "2026-03-02", "until": "2026-03-04"})]

    def close(a, b):  # the sums differ in order only: equal up to the last rounded digit
        return (a == b or (isinstance(a, float) and isinstance(b, float) and abs(a - b) <= 1.01e-3))

    def same():
        for fn, kw in checks:
            got, want = fn(store, **kw).rows, _exact(monkeypatch, fn, store, **kw).rows
            assert len(got) == len(want) and all(len(g) == len(w) and all(map(close, g, w))
                                                 for g, w in zip(got, want)), (fn.__name__, kw, got, want)

    same()
    assert len(daily_trends(store, since="2026-03-02", until="2026-03-04").rows) == 2
    # a new call is added to its day's rollups as it is stored: the next read recomputes nothing
    from callsense.store import rollups
    from callsense.store.models import RollupDirty

    r, e = _call(30, day=4)
    save_result(store, r, embeddings=e)
    with store.session() as s:
        assert s.query(RollupDirty).count() == 0
        assert rollups.refresh(s, store.dialect) == 0
    same()
    r, e = _call(3, day=5)  # replace c003 on another day
    save_result(store, dataclasses.replace(r, rule_hits=()), embeddings=e)
    with store.session() as s:  # a raw delete, as the API does
        s.execute(delete(Call).where(Call.call_id == "c004"))
    same()
    assert sum(daily_trends(store).column("calls")) == 24


@pytest.fixture
def pg_store():
    from callsense.store import open_store

    with fresh_postgres_database() as url:
        s = open_store(url)
        yield s
        s.close()


def test_a_call_stored_while_the_rollups_are_recomputed_waits_and_is_counted(pg_store, monkeypatch):
    """On PostgreSQL every statement of a recompute sees the calls committed before it began: a call of a
    new agent stored between two statements of a recompute was once a KeyError (a 500 on the dashboard
    while a batch was storing). Saves now add to the rollups themselves, so a save and a recompute
    exclude each other (an advisory lock): the save waits for the recompute, then adds its call.
    (SQLite has no such window: a recompute holds the write lock.)"""
    import threading
    import time

    from sqlalchemy import delete

    from callsense.store import agent_scorecards, open_store, rollups, save_result
    from callsense.store.models import Call

    store = pg_store
    _fill(store, 6)
    agent_scorecards(store)  # every day clean
    with store.session() as s:
        s.execute(delete(Call).where(Call.call_id == "c002"))  # a delete: its day is recomputed on the next read
    late, late_e = _call(41, day=2)
    late = dataclasses.replace(late, metadata={**late.metadata, "agent_id": "a-new"})
    other = open_store(store.url)  # another writer, on its own connection
    real = rollups._recompute_day
    calls, saver, blocked = [], [], []

    def racing(session, day):
        first = session.execute

        def execute(*a, **kw):
            out = first(*a, **kw)
            calls.append(1)
            if len(calls) == 4:  # after the first aggregate statement of the day (3 deletes before it)
                t = threading.Thread(target=save_result, args=(other, late), kwargs={"embeddings": late_e})
                t.start()
                saver.append(t)
                time.sleep(0.5)
                blocked.append(t.is_alive())
            return out

        monkeypatch.setattr(session, "execute", execute)
        try:
            return real(session, day)
        finally:
            monkeypatch.setattr(session, "execute", first)

    try:
        with monkeypatch.context() as m:
            m.setattr(rollups, "_recompute_day", racing)
            agent_scorecards(store)
        assert len(calls) >= 4 and blocked == [True]  # the save waited for the recompute's commit
        saver[0].join(30)
        assert not saver[0].is_alive()
        got = agent_scorecards(store).rows
        assert got == _exact(monkeypatch, agent_scorecards, store).rows
        assert any("a-new" in map(str, row) for row in got)
    finally:
        other.close()


def _force(monkeypatch, threshold: int) -> None:
    """Every condition common (0) or rare (10**9) for the choice of plan: SQLite's common_threshold,
    PostgreSQL's newest_first_cap and RARE."""
    import importlib

    sm = importlib.import_module("callsense.store.search")
    monkeypatch.setattr(sm, "common_threshold", lambda calls: threshold)
    monkeypatch.setattr(sm, "newest_first_cap", lambda *a: threshold)
    monkeypatch.setattr(sm, "RARE", threshold)


def _batches(statements: list[str]) -> list[str]:
    """PostgreSQL's reads of a batch of the newest calls (search._newest_calls_first)."""
    return [st for st in statements if st.startswith("SELECT calls.call_id, calls.sort_at AS sort_at")]


def _search_pages(store, size: int, **kw):
    """Every hit of ``SearchQuery(**kw)`` page by page, by cursor and by offset: (call, segment, spans)."""
    from callsense.store import SearchQuery, search_calls

    by_cursor, after = [], None
    while True:
        page = search_calls(store, SearchQuery(**kw, limit=size, after=after))
        by_cursor += [(h.call_id, h.segment_id, h.spans) for h in page]
        if len(page) < size:
            break
        after = page[-1].cursor
    by_offset = [(h.call_id, h.segment_id, h.spans) for off in range(0, len(by_cursor) + size, size)
                 for h in search_calls(store, SearchQuery(**kw, limit=size, offset=off))]
    return by_cursor, by_offset


def _statements(store, fn):
    """The SQL statements ``fn()`` runs, and its value."""
    from sqlalchemy import event

    seen: list[str] = []

    def capture(conn, cursor, statement, *a):
        seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        return seen, fn()
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)


@pytest.mark.parametrize("words, role", [("款", None), ("投诉", None), ("我要投诉", None), ("退款 到", None),
                                         ("好的", "agent"), ("火星", None)])
def test_common_words_read_newest_calls_first_and_give_the_same_pages(store40, monkeypatch, words, role):
    """A word matching more segments than common_threshold (PostgreSQL: newest_first_cap) is searched newest calls first (SQLite: by
    ix_calls_sort_at, PostgreSQL: in batches of the newest calls) instead of from every match of the
    index: the same hits in the same order, page by page (cursor and offset), as the index-first plan."""
    store = store40  # holds _fill(store, 40)

    def pages(threshold: int, size: int):
        _force(monkeypatch, threshold)
        return _search_pages(store, size, text=words, role=role)

    index_first = pages(10**9, 7)
    assert index_first[0] == index_first[1]
    if words != "火星":
        assert len(index_first[0]) > 7  # more than one page
    from sqlalchemy import event

    statements: list[str] = []
    capture = statements

    def seen(conn, cursor, statement, *a):
        capture.append(statement)

    event.listen(store.engine, "before_cursor_execute", seen)
    try:
        newest_first = pages(0, 7)
    finally:
        event.remove(store.engine, "before_cursor_execute", seen)
    assert newest_first == index_first
    # an absent word has no match to count: never common; on PostgreSQL neither is a word of 3+ characters
    # (pg_trgm serves it well at any frequency)
    if words != "火星" and (store.dialect == "sqlite" or all(len(w) <= 2 for w in words.split())):
        if store.dialect == "sqlite":  # the page's query tests the texts without the index's match set
            assert any("JOIN segments" in st and "MATCH" not in st for st in statements), statements[-3:]
        else:
            assert _batches(statements), statements[-3:]


@pytest.mark.parametrize("kw", [{"emotion": "angry", "min_score": 0.9, "role": "customer"},
                                {"emotion": "angry", "min_score": 0.9}, {"emotion": "happy"},
                                {"min_score": 0.95, "role": "agent"}, {"emotion": "angry", "role": "agent"},
                                {"emotion": "sad", "min_score": 0.5, "since": "2026-03-02"}])
def test_common_emotions_read_newest_calls_first_and_give_the_same_pages(store40, monkeypatch, kw):
    """PostgreSQL: an emotion threshold (or label, top-label confidence) that many segments meet, by the
    planner's estimate (more than newest_first_cap), is read in batches of the newest calls instead of collecting and sorting every
    such segment (ix_segments_p_angry at 100,000 calls: 10 -> 76 ms): the same pages by cursor and offset.
    SQLite keeps its own plan whatever the threshold (5.0 -> 6.4 ms): the same statements."""
    store = store40  # holds _fill(store, 40)
    plans = {}
    for threshold in (10**9, 0):
        _force(monkeypatch, threshold)
        plans[threshold] = _statements(store, lambda: _search_pages(store, 5, **kw))
    (index_sql, index_first), (newest_sql, newest_first) = plans[10**9], plans[0]
    assert index_first[0] == index_first[1] and len(index_first[0]) > 5  # more than one page
    assert newest_first == index_first
    if store.dialect == "postgresql":
        assert _batches(newest_sql) and not _batches(index_sql), newest_sql[-3:]
    else:
        assert not _batches(newest_sql) and sorted(set(newest_sql)) == sorted(set(index_sql))


@pytest.mark.parametrize("kw", [{"text": "火锅"}, {"text": "锅", "role": "customer"}, {"emotion": "fearful"},
                                {"emotion": "fearful", "min_score": 0.5}])
def test_a_condition_the_newest_calls_lack_goes_back_to_the_index_with_the_same_pages(pg_store, monkeypatch, kw):
    """PostgreSQL: when the newest calls hold fewer matches than the estimate promised (here: none; the
    matches are all in the oldest calls), the batches stop after the first one and the index plan runs
    instead — the same pages, without reading every call in batches."""
    import importlib

    from callsense.store import save_result

    sm = importlib.import_module("callsense.store.search")
    store = pg_store
    _fill(store, 40)
    for i in range(3):  # three calls older than all the others, the only ones with 火锅 and fear
        r, e = _call(50 + i)
        segs = tuple(dataclasses.replace(sg, text=f"火锅{sg.text}", emotion=dataclasses.replace(
            sg.emotion, label="fearful", scores=tuple(1.0 if n == "fearful" else 0.0 for n in EMOTION_NAMES)))
            for sg in r.segments)
        r = dataclasses.replace(r, segments=segs, metadata={**r.metadata, "started_at": "2026-01-01T08:00:00Z"})
        save_result(store, r, embeddings=e)
    _force(monkeypatch, 10**9)
    want = _search_pages(store, 5, **kw)
    assert len(want[0]) > 5 and want[0] == want[1]
    _force(monkeypatch, 0)
    monkeypatch.setattr(sm, "FIRST_BATCH", (8, 8, 8))
    sql, got = _statements(store, lambda: _search_pages(store, 5, **kw))
    assert got == want
    searches = sum(st.startswith("SELECT relname, greatest(reltuples") for st in sql)
    batches, pages = len(_batches(sql)), sum("JOIN segments" in st for st in sql)
    # each search reads one batch: the 8 newest calls (no match: back to the index plan), or, for a
    # cursor page within the oldest calls, the rest of the store
    assert batches == searches and pages - batches >= len(range(0, len(want[0]) + 5, 5)), sql[-6:]


def test_newest_first_cap_is_where_both_plans_read_the_same():
    """PostgreSQL's rule: at newest_first_cap matches both plans read as much (rows weighted by their
    cost); the benchmark's `angry >= 0.9, customer` (0.16 matches a call, half of ix_segments_p_angry's
    range) stays on the index at 10,000 calls and is read newest first at 100,000; a word's cap is the
    15·√calls of common_threshold."""
    from callsense.store.search import MARGIN, ROW_COST, common_threshold, newest_first_cap

    for calls, share, cost in ((10_000, 0.5, 1.0), (100_000, 0.5, 1.0), (100_000, 1.0, 10.0), (7_000, 0.2, 3.0)):
        cap = newest_first_cap(calls, 50, 30, share, cost)
        newest_rows, index_rows = MARGIN * 50 * calls / cap * 30, cap / share * cost
        assert abs(newest_rows - index_rows) / index_rows < 2e-3
    assert 0.163 * 10_000 <= newest_first_cap(10_000, 50, 30, 0.5, ROW_COST["emotion"])
    assert 0.163 * 100_000 > newest_first_cap(100_000, 50, 30, 0.5, ROW_COST["emotion"])
    assert abs(newest_first_cap(100_000, 50, 30, 1.0, ROW_COST["word"]) - common_threshold(100_000)) <= 1


@pytest.mark.parametrize("kw", [{"rule_id": "risk.complaint"}, {"severity": "warning"}, {"severity": "critical"},
                                {"rule_id": "flow.dead_air", "since": "2026-03-02"}])
def test_common_rules_read_newest_calls_first_and_give_the_same_pages(store40, monkeypatch, kw):
    """A rule or severity that many calls hit is filtered newest call first by a correlated EXISTS on the
    (rule_id, call_id) index (SQLite) instead of collecting every such call: the same pages."""
    import importlib

    from sqlalchemy import event

    from callsense.store import SearchQuery, search_calls

    sm = importlib.import_module("callsense.store.search")
    store = store40  # holds _fill(store, 40)

    def pages(threshold: int):
        monkeypatch.setattr(sm, "common_threshold", lambda calls: threshold)
        out, after = [], None
        while True:
            page = search_calls(store, SearchQuery(**kw, limit=4, after=after))
            out += [h.call_id for h in page]
            if len(page) < 4:
                return out
            after = page[-1].cursor

    collected = pages(10**9)
    assert len(collected) > 4
    statements: list[str] = []

    def seen(conn, cursor, statement, *a):
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", seen)
    try:
        assert pages(0) == collected
    finally:
        event.remove(store.engine, "before_cursor_execute", seen)
    if store.dialect == "sqlite":
        assert any("EXISTS (SELECT 1" in st for st in statements), statements[-2:]


# ---------------------------------------------------------------- embeddings


def _hard_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Unit vectors with a correlated half and a few dominant dimensions (transformer features have
    them): the hard case for one scale per vector."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, dim)).astype(np.float32)
    v[: n // 2] += rng.normal(size=dim).astype(np.float32) * 3  # correlated pairs too, not only ~0 cosines
    v[:, :4] *= 8
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("dim, nbytes", [(1024, 1197), (768, 896)])
def test_stored_embeddings_keep_cosine_within_1e3_of_float32(dim, nbytes):
    """Rotated 645-level codes (7 bytes per 6 values: 29 % of float32), dominant dimensions included,
    also when they all fall in one Hadamard block of a dimension that is not a power of two (768)."""
    from callsense.store.vectors import decode, decode_block, encode

    v = _hard_vectors(200, dim)
    enc = [encode(x) for x in v]
    assert all(len(b) == nbytes for b in enc)
    d = np.stack([decode(b, dim) for b in enc])
    assert np.allclose(d, decode_block(enc, dim), atol=1e-6)
    exact, approx = v @ v.T, d @ d.T
    assert float(np.abs(exact - approx).max()) < 1e-3
    assert float(exact[:100, :100].min()) > 0.5  # the correlated block was really tested


def test_cosines_in_the_rotated_space_equal_those_of_the_decoded_vectors():
    """The exact scan scores rotated codes against the rotated query: the same cosines as decoding."""
    from callsense.store.vectors import cosines, decode_block, encode_q12, encode_rows

    v = _hard_vectors(50, 1024, seed=1)
    q = v[0] * 3.0  # any norm
    for rows in (encode_rows(v), encode_q12(v), encode_rows(v[:25]) + encode_q12(v[25:])):
        want = decode_block(rows, 1024) @ (q / np.linalg.norm(q))
        assert np.abs(cosines(rows, 1024, q) - want).max() < 1e-5
    assert float(cosines(encode_rows(v), 1024, q)[0]) > 0.999


@pytest.mark.parametrize("dim, nbytes", [(1024, 1197), (768, 896), (64, 77), (768 + 2, 770 * 3 // 2 + 4),
                                         (16, 28), (8, 16), (7, 14)])
def test_every_dimension_round_trips_and_older_rows_still_read(dim, nbytes):
    from callsense.store.vectors import decode, decode_block, encode, encode_q12, packs

    rng = np.random.default_rng(dim)
    v = rng.normal(size=(4, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    new = [encode(x) for x in v]
    assert {len(b) for b in new} == {nbytes}  # rotated for multiples of 64, 12-bit for other even dims > 8
    f16, f32 = v[0].astype(np.float16).tobytes(), v[1].tobytes()  # rows of revisions 0005-0007 and before
    older = [f16, f32] + (encode_q12(v[3:4]) if packs(dim) else [])  # 12-bit: revisions 0008-0010
    mixed = decode_block([new[2], *older], dim)
    assert np.abs(mixed - v[[2, 0, 1, 3][:len(older) + 1]]).max() < 2e-3
    assert np.abs(decode(new[0], dim) - v[0]).max() < 2e-3
    with pytest.raises(ValueError, match="does not hold"):
        decode(b"\0" * (nbytes + 1), dim)


def test_the_rotation_is_fixed_and_orthogonal():
    """Stored codes depend on the sign pattern and the transform: they must never change."""
    from callsense.store.vectors import rotate, unrotate

    for dim in (64, 768, 1024):
        m = np.random.default_rng(dim).normal(size=(3, dim)).astype(np.float32)
        y = rotate(m)
        assert np.allclose(unrotate(y), m, atol=1e-5)
        assert np.allclose(y @ y.T, m @ m.T, atol=1e-3)
    e0 = np.zeros((1, 1024), dtype=np.float32)
    e0[0, 0] = 1.0
    spread = np.abs(rotate(e0)[0])
    assert np.allclose(spread, 1 / 32)  # one dimension spread evenly over all 1024
    # the sign flips, pinned: the first value of each unit vector's rotation carries its dimension's sign
    for dim, first, negative in ((768, "-++--++-+---++++-+++--+-++++-+-+", 381),
                                 (1024, "+--++++-++-++++----++++----++---", 538)):
        signs = np.sign(rotate(np.eye(dim, dtype=np.float32))[:, 0])
        assert "".join("+-"[int(x < 0)] for x in signs[:32]) == first and int((signs < 0).sum()) == negative


# ---------------------------------------------------------------- migration


def test_upgrade_from_0002_keeps_every_call_and_serves_the_new_indexes(empty_url):
    """A store written at revision 0002 (float32 vectors, no sort_at, no grams) upgrades to the head
    without losing a call: listing, short-term search, similarity and rollups all see the old calls."""
    from sqlalchemy import text

    from callsense.store import (
        SearchQuery,
        daily_trends,
        find_similar,
        get_result,
        list_calls,
        open_store,
        search_calls,
    )
    from callsense.store.migrate import current_revision, head_revision, upgrade

    store = open_store(empty_url, migrate=False)
    try:
        upgrade(store, "0002")
        rng = np.random.default_rng(5)
        with store.engine.begin() as conn:
            for i in range(3):
                r, _ = _call(i, day=2 + i)
                conn.execute(text(
                    "INSERT INTO calls (call_id, content_sha256, fingerprint, source_name, size_bytes, sample_rate,"
                    " channels, duration_ms, narrowband, separation, agent_id, started_at, metadata_json,"
                    " score_normalized, pipeline_version, callsense_version, analyzed_at, stored_at, redacted,"
                    " audio_deleted, result_json) VALUES (:id, :sha, 'fp', :name, 1, 16000, 2, 8000, false, 'stereo',"
                    " :agent, :started, '{}', 0.5, '1', '1', :at, :at, false, false, :rj)"),
                    {"id": r.call_id, "sha": r.source.sha256, "name": f"{r.call_id}.wav", "agent": f"a{i}",
                     "started": datetime(2026, 3, 2 + i, 9), "at": datetime(2026, 4, 1),
                     "rj": json.dumps(r.to_dict(), ensure_ascii=False)})
                for j, sg in enumerate(r.segments):
                    conn.execute(text(
                        "INSERT INTO segments (call_id, segment_id, idx, channel, role, start_ms, end_ms, duration_ms,"
                        " text, asr_events, asr_status, emotion_label, p_neutral) VALUES (:c, :s, :i, 0, :role,"
                        " :a, :b, :d, :t, '', 'ok', 'neutral', 1.0)"),
                        {"c": r.call_id, "s": sg.id, "i": j, "role": sg.role, "a": sg.start_ms, "b": sg.end_ms,
                         "d": sg.end_ms - sg.start_ms, "t": sg.text})
                    v = rng.normal(size=16).astype(np.float32)
                    v /= np.linalg.norm(v)
                    conn.execute(text("INSERT INTO embeddings (call_id, kind, segment_id, role, dim, vector)"
                                      " VALUES (:c, 'segment', :s, :role, 16, :v)"),
                                 {"c": r.call_id, "s": sg.id, "role": sg.role, "v": v.tobytes()})
        assert upgrade(store) == "0002"
        assert current_revision(store) == head_revision()
        listed = list_calls(store)
        assert [c.call_id for c in listed] == ["c002", "c001", "c000"]  # by the backfilled sort_at
        assert all(get_result(store, c.call_id).call_id == c.call_id for c in listed)
        want = {(f"c{i:03d}", f"s{j + 1:04d}") for i in range(3) for j in range(4) if "投诉" in TEXTS[(i + j) % 5]}
        assert {(h.call_id, h.segment_id) for h in search_calls(store, SearchQuery(text="投诉"))} == want
        hits = find_similar(store, "c000", "s0001", k=3)  # float32 rows of 0002 are still read
        assert len(hits) == 3 and all(-1.0 <= h.score <= 1.0 for h in hits)
        assert daily_trends(store).column("calls") == [1, 1, 1]
        # 3+ characters go through the rebuilt trigram index (SQLite: external content since 0010),
        # and a deletion reaches it: the index never answers with a segment that is gone
        long_want = {h for h in want if "我要投诉" in TEXTS[(int(h[0][1:]) + int(h[1][1:]) - 1) % 5]}
        assert long_want and {(h.call_id, h.segment_id)
                              for h in search_calls(store, SearchQuery(text="我要投诉"))} == long_want
        from callsense.store import save_result
        from callsense.store.privacy import delete_call

        delete_call(store, "c000")
        r, e = _call(7, day=9)
        save_result(store, r, embeddings=e)  # a new call after the upgrade is indexed by the triggers
        after = {(h.call_id, h.segment_id) for h in search_calls(store, SearchQuery(text="我要投诉"))}
        assert {c for c, _ in after} == {c for c, _ in long_want if c != "c000"} | {"c007"}
        if store.dialect == "sqlite":
            with store.engine.connect() as conn:  # FTS5's own consistency check against segments
                conn.execute(text("INSERT INTO segments_fts(segments_fts) VALUES ('integrity-check')"))
    finally:
        store.close()


def test_a_failed_bulk_insert_is_a_sqlalchemy_error_on_both_backends(store):
    """save_result's one-statement inserts (unnest on PostgreSQL, through the driver's cursor) fail
    as SQLAlchemy errors, like every other statement: callers catch IntegrityError, disk-full, etc."""
    import sqlalchemy.exc

    from callsense.store.models import SegmentGram
    from callsense.store.repo import _insert_many

    with pytest.raises(sqlalchemy.exc.IntegrityError), store.session() as s:
        _insert_many(s.connection(), SegmentGram, [{"gram": "ab", "segment_pk": 999},
                                                   {"gram": "cd", "segment_pk": 998}])  # no such segments
