"""The store on SQLite and on the real PostgreSQL: schema, save/get, replace, atomicity, aggregates,
exports, privacy, purge, similarity, cross-call history."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from callsense.errors import DependencyError, StoreError
from callsense.result.qa import Evidence, RuleHit
from callsense.testing.results import event, make_result, scored, seg
from callsense.testing.store import fresh_postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """An empty, migrated store: a SQLite file, or a fresh database on the loopback PostgreSQL server
    (a test fails — never skips — when PostgreSQL cannot be reached)."""
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


def with_embeddings(result):
    segs = tuple(dataclasses.replace(s, emotion=dataclasses.replace(s.emotion, embedding_index=i))
                 for i, s in enumerate(result.segments))
    return dataclasses.replace(result, segments=segs)


def call(call_id, sha, segments, *, metadata=None, hits=(), qa=False, events=(), started="2026-01-05T09:30:00Z"):
    """A result to store; ``qa=True`` scores it with the real scorer (0-100), then sets ``hits``."""
    r = make_result(segments, call_id=call_id, metadata=metadata or {}, events=events, started_at=started)
    r = dataclasses.replace(r, source=dataclasses.replace(r.source, sha256=sha, name=f"{call_id}.wav"))
    r = scored(r, hits=hits) if qa else dataclasses.replace(r, rule_hits=tuple(hits))
    return with_embeddings(r)


def hit(rule_id, severity="warning", seg_id="s0002", text=None):
    return RuleHit(rule_id=rule_id, rule_version="1", name=rule_id.replace("_", " "), category="service",
                   severity=severity, score_delta=-5.0,
                   evidence=(Evidence(segment_id=seg_id, start_ms=1500, end_ms=4000, text=text),))


def emb(result, seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(len(result.segments), 8)).astype(np.float32)


# ---------------------------------------------------------------- schema


def test_migrations_match_the_models_and_are_idempotent(store):
    """The Alembic head creates exactly what models.py describes; running upgrade again is a no-op."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from callsense.store.migrate import current_revision, head_revision, include_name, upgrade
    from callsense.store.models import Base

    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True, "include_name": include_name}), Base.metadata)
    assert diff == []
    assert current_revision(store) == head_revision()
    assert upgrade(store) == head_revision()


def test_call_history_migration_keeps_stored_calls_as_their_first_analysis(empty_url):
    """A database stored before call_analyses existed: each stored call gets its analysis as the first
    entry of its history, and a re-analysis then keeps the call's id and adds the second."""
    from callsense.store import call_analyses, get_result, open_store, save_result
    from callsense.store.migrate import upgrade
    from callsense.store.models import Call
    from callsense.store.repo import _call_row
    from sqlalchemy import inspect

    store = open_store(empty_url, migrate=False)
    try:
        upgrade(store, "0003")
        old = call("old-id", "e" * 64, [seg("customer", 0, 1000, "我要投诉", emotion_="angry")], qa=True)
        now = datetime(2026, 1, 5, 10, 0)
        with store.engine.begin() as conn:  # what an older callsense stored (no history table yet)
            have = {c["name"] for c in inspect(conn).get_columns("calls")}  # columns of revision 0003
            row = _call_row(old, "e" * 64, "fp-old", {}, now, run_id=None, audio_path=None, redacted=False)
            conn.execute(Call.__table__.insert().values(**{k: v for k, v in row.items() if k in have}))
        upgrade(store)
        [first] = call_analyses(store, "old-id")
        assert (first.fingerprint, first.score) == ("fp-old", old.score.normalized)
        again = dataclasses.replace(old, call_id="new-id")
        assert save_result(store, again, fingerprint="fp-new") == "old-id"
        assert [a.fingerprint for a in call_analyses(store, "old-id")] == ["fp-old", "fp-new"]
        assert get_result(store, "old-id").call_id == "old-id"
    finally:
        store.close()


def test_service_jobs_migration_keeps_a_table_the_service_made_itself(empty_url):
    """Before revision 0002 the service created ``service_jobs`` with create_all on a 0001 database:
    upgrading such a database keeps the table and its jobs, and ends with the schema of the models."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import MetaData, Table, func, select

    from callsense.store import open_store
    from callsense.store.migrate import current_revision, head_revision, include_name, upgrade
    from callsense.store.models import Base, service_jobs

    store = open_store(empty_url, migrate=False)
    try:
        upgrade(store, "0001")
        # what the service's create_all made (revision 0003 added lease_until later)
        old = Table("service_jobs", MetaData(), *[c._copy() for c in service_jobs.columns if c.name != "lease_until"])
        old.create(store.engine)
        with store.engine.begin() as conn:
            conn.execute(old.insert().values(id="j1", status="queued", created_at="2026-01-01T00:00:00Z",
                                             upload_path="/u/j1.upload", options_json="{}", metadata_json="{}",
                                             attempts=0))
        assert upgrade(store) == "0001"
        assert current_revision(store) == head_revision()
        with store.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(service_jobs)).scalar() == 1
            diff = compare_metadata(MigrationContext.configure(
                conn, opts={"compare_type": True, "include_name": include_name}), Base.metadata)
        assert diff == []
    finally:
        store.close()


def test_unreachable_database_is_one_clear_store_error(tmp_path):
    from callsense.store import open_store

    with pytest.raises(StoreError) as e:
        open_store("postgresql://nobody:secret@127.0.0.1:1/nothing")
    msg = str(e.value)
    assert "cannot reach the database" in msg and "127.0.0.1:1" in msg
    assert "secret" not in msg  # the password never appears in messages
    assert e.value.exit_code == 5


def test_default_url_is_a_sqlite_file_under_the_user_data_dir(monkeypatch):
    from platformdirs import user_data_dir

    from callsense.store.db import database_url

    monkeypatch.delenv("CALLSENSE_DATABASE_URL", raising=False)
    assert database_url() == f"sqlite:///{user_data_dir('callsense')}/callsense.db"
    monkeypatch.setenv("CALLSENSE_DATABASE_URL", "postgresql://u@h/db")
    assert database_url() == "postgresql+psycopg://u@h/db"


# ---------------------------------------------------------------- save / get


def test_save_and_get_round_trip_with_every_part(store):
    from sqlalchemy import func, select

    from callsense.analysis.metrics import compute_metrics
    from callsense.store import get_embeddings, get_result, list_calls, save_result
    from callsense.store.models import EventRow, MetricRow, RuleHitRow, SegmentRow

    r = call("c1", "a" * 64, [seg("agent", 0, 2000, "您好，请问有什么可以帮您", emotion_="happy"),
                              seg("customer", 2500, 6000, "我要投诉", emotion_="angry", asr_events=("Cough",))],
             metadata={"agent_id": "a7", "queue": "vip", "started_at": "2026-01-05T17:30:00+08:00", "vip": True},
             hits=[hit("complaint", "critical", text="投诉")], qa=True,
             events=[event("Cough", 3000, 3500, role="customer", segment_id="s0002")])
    r = dataclasses.replace(r, metrics=compute_metrics(r))
    e = emb(r, 1)
    assert save_result(store, r, embeddings=e, fingerprint="fp1") == "c1"

    back = get_result(store, "c1")
    assert back.segments == r.segments and back.rule_hits == r.rule_hits and back.score == r.score
    assert back.metadata["started_at"] == "2026-01-05T09:30:00Z"  # normalised to UTC
    [rec] = list_calls(store)
    assert (rec.agent_id, rec.fingerprint, rec.score) == ("a7", "fp1", r.score.normalized)
    assert rec.started_at == datetime(2026, 1, 5, 9, 30)
    vectors = get_embeddings(store, "c1")
    assert set(vectors) == {"s0001", "s0002", "call", "call:agent", "call:customer"}
    assert np.allclose(vectors["s0002"], e[1] / np.linalg.norm(e[1]), atol=1e-3)  # stored as float16 (callsense.store.vectors)
    with store.session() as s:
        assert s.execute(select(func.count()).select_from(SegmentRow)).scalar() == 2
        assert s.execute(select(func.count()).select_from(EventRow)).scalar() == 1
        metrics = dict(s.execute(select(MetricRow.name, MetricRow.value)).all())
        assert metrics["duration_ms"] == r.metrics.duration_ms
        assert metrics["agent_talk_ratio"] == pytest.approx(r.metrics.agent_talk_ratio)
        assert metrics["customer.talk_ms"] == 3500 and metrics["agent.segments"] == 1
        assert s.execute(select(RuleHitRow.severity)).scalars().all() == ["critical"]


def test_saving_the_same_recording_again_replaces_it_under_the_same_id(store):
    """A re-analysis (which the analyzer gave a new id) updates the stored call: same call id, the new
    result, and the history of both analyses."""
    from callsense.store import CallNotFoundError, call_analyses, count_calls, get_result, keep_identity, save_result
    from callsense.store.search import SearchQuery, search

    first = call("c1", "b" * 64, [seg("customer", 0, 4000, "first version", emotion_="sad")], qa=True)
    save_result(store, first, fingerprint="v1")
    second = call("c1-new", "b" * 64, [seg("customer", 0, 4000, "second version 投诉", emotion_="angry")], qa=True)
    assert keep_identity(store, second).call_id == "c1"
    assert keep_identity(store, second, source_name="客户.wav").source.name == "客户.wav"
    assert save_result(store, second, fingerprint="v2") == "c1"
    assert count_calls(store) == 1
    back = get_result(store, "c1")
    assert (back.call_id, back.segments[0].text) == ("c1", "second version 投诉")
    with pytest.raises(CallNotFoundError, match="callsense search"):
        get_result(store, "c1-new")
    assert search(store, SearchQuery(text="first")) == []  # the old transcript left the search index too
    assert [h.call_id for h in search(store, SearchQuery(text="second"))] == ["c1"]
    history = call_analyses(store, "c1")
    assert [(a.fingerprint, a.score) for a in history] == [("v1", first.score.normalized),
                                                             ("v2", second.score.normalized)]
    assert history[0].score != history[1].score


def test_two_writers_storing_the_same_recording_at_once_store_it_once(store, tmp_path):
    """Two servers (or batch workers) finishing the same recording at the same moment: every save
    succeeds (no unique violation surfacing as a crashed job), and the store holds one call, once."""
    import threading

    from callsense.store import call_analyses, count_calls, get_result, open_store, save_result
    from callsense.store.models import SegmentRow

    url = store.engine.url.render_as_string(hide_password=False)
    writers = [open_store(url) for _ in range(4)]
    errors: list[BaseException] = []
    try:
        for round_ in range(5):
            sha = f"{round_:x}" * 64
            results = [call(f"r{round_}-{w}", sha[:64], [seg("customer", 0, 4000, f"writer {w}", emotion_="angry"),
                                                          seg("agent", 4000, 8000, "好的", emotion_="neutral")]) for w in range(4)]
            barrier = threading.Barrier(len(writers))

            def save(w: int) -> None:
                try:
                    barrier.wait(10)
                    save_result(writers[w], results[w], embeddings=emb(results[w], w))
                except BaseException as e:  # noqa: BLE001 - collected and asserted below
                    errors.append(e)

            threads = [threading.Thread(target=save, args=(w,)) for w in range(len(writers))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert not errors, errors
            assert count_calls(store) == round_ + 1
            with store.session() as s:
                cid = s.query(SegmentRow.call_id).filter(SegmentRow.text.like("writer %")).distinct().all()
            ids = {c for (c,) in cid}
            assert len(ids) == round_ + 1  # each recording's segments under one call id
            stored = [c for c in ids if c.startswith(f"r{round_}-")]
            assert len(stored) == 1
            assert len(get_result(store, stored[0]).segments) == 2
            with store.session() as s:  # the rows rewritten once, not twice
                assert s.query(SegmentRow).filter(SegmentRow.call_id == stored[0]).count() == 2
            assert len(call_analyses(store, stored[0])) == len(writers)
    finally:
        for w in writers:
            w.close()


def test_a_failing_save_leaves_nothing_behind(store, monkeypatch):
    """A result is written in one transaction: an error half-way leaves no call, no segments."""
    from sqlalchemy import func, select

    from callsense.store import count_calls, repo, save_result
    from callsense.store.models import SegmentRow

    r = call("c1", "c" * 64, [seg("agent", 0, 1000, "hello", emotion_="neutral")], hits=[hit("x")])

    def boom(*a, **k):
        raise RuntimeError("disk gone mid-write")

    monkeypatch.setattr(repo, "_jsonable", boom)  # fails while building the rule-hit rows, after inserts began
    with pytest.raises(RuntimeError):
        save_result(store, r)
    assert count_calls(store) == 0
    with store.session() as s:
        assert s.execute(select(func.count()).select_from(SegmentRow)).scalar() == 0


def test_bad_metadata_is_refused_with_the_field_name(store):
    from callsense.errors import InputError
    from callsense.store import save_result

    r = call("c1", "d" * 64, [], metadata={"started_at": "yesterday"})
    with pytest.raises(InputError, match="started_at"):
        save_result(store, r)


def test_get_unknown_call(store):
    from callsense.store import CallNotFoundError, get_result

    with pytest.raises(CallNotFoundError, match="nope"):
        get_result(store, "nope")


# ---------------------------------------------------------------- aggregates


@pytest.fixture
def filled(store):
    from callsense.store import save_result

    calls = [
        call("c1", "1" * 64, [seg("agent", 0, 3000, "您好", emotion_="neutral"),
                              seg("customer", 3000, 7000, "我要投诉你们的服务态度", emotion_="angry")],
             metadata={"agent_id": "a1", "category": "billing", "started_at": "2026-01-05T09:00:00Z"},
             hits=[hit("complaint", "critical")], qa=True),
        call("c2", "2" * 64, [seg("agent", 0, 1000, "hello, how can I help you", emotion_="happy"),
                              seg("customer", 1000, 4000, "thanks a lot", emotion_="happy")],
             metadata={"agent_id": "a1", "category": "billing", "started_at": "2026-01-06T09:00:00Z"},
             qa=True),
        call("c3", "3" * 64, [seg("agent", 0, 2000, "hi", emotion_="neutral"),
                              seg("customer", 2000, 4000, "this is bad", emotion_="sad")],
             metadata={"agent_id": "a2", "category": "tech", "started_at": "2026-01-06T10:00:00Z"},
             hits=[hit("complaint", "warning"), hit("dead_air", "info")], qa=True),
    ]
    for i, c in enumerate(calls):
        save_result(store, c, embeddings=emb(c, i))
    store.fixture_scores = {c.call_id: c.score.normalized for c in calls}  # the real scorer's, 0-100
    assert len(set(store.fixture_scores.values())) == 3  # distinct, so an average can tell them apart
    return store


def test_agent_scorecards(filled):
    from callsense.store import agent_scorecards

    t = agent_scorecards(filled)
    rows = {r["agent_id"]: r for r in t.to_dicts()}
    qa = filled.fixture_scores
    assert rows["a1"]["calls"] == 2 and rows["a1"]["avg_score"] == pytest.approx((qa["c1"] + qa["c2"]) / 2)
    assert rows["a1"]["critical_hits"] == 1
    assert rows["a1"]["customer_negative_share"] == pytest.approx(4000 / 7000, abs=1e-3)  # angry 4 s of 7 s
    assert rows["a1"]["talk_ratio"] == pytest.approx(4000 / 11000, abs=1e-3)
    assert rows["a2"]["customer_negative_share"] == 1.0


def test_emotion_heatmap_rule_counts_and_daily_trends(filled):
    from callsense.store import daily_trends, emotion_heatmap, rule_hit_counts

    heat = {r["category"]: r for r in emotion_heatmap(filled, by="category").to_dicts()}
    assert set(heat) == {"billing", "tech"}
    assert heat["billing"]["angry"] == pytest.approx(4000 / 7000, abs=1e-3)
    assert heat["tech"]["sad"] == pytest.approx(1.0)
    counts = {r["rule_id"]: (r["hits"], r["calls"]) for r in rule_hit_counts(filled).to_dicts()}
    assert counts == {"complaint": (2, 2), "dead_air": (1, 1)}
    days = {r["day"]: r for r in daily_trends(filled).to_dicts()}
    assert days["2026-01-05"]["calls"] == 1 and days["2026-01-06"]["calls"] == 2
    qa = filled.fixture_scores
    assert days["2026-01-06"]["avg_score"] == pytest.approx((qa["c2"] + qa["c3"]) / 2)
    only_6th = daily_trends(filled, since="2026-01-06T00:00:00Z").column("day")
    assert only_6th == ["2026-01-06"]


# ---------------------------------------------------------------- similarity


def test_similar_calls_and_segments(store):
    from callsense.store import find_similar, save_result

    base = np.eye(4, dtype=np.float32)
    specs = {"x": [0, 1], "y": [0, 1], "z": [2, 3]}  # y has the same segment vectors as x; z is orthogonal
    for i, (cid, rows) in enumerate(specs.items()):
        r = call(cid, f"{i}" * 64, [seg("customer", 0, 1000, f"{cid} one", emotion_="angry"),
                                    seg("customer", 1000, 2000, f"{cid} two", emotion_="sad")])
        save_result(store, r, embeddings=base[rows])
    hits = find_similar(store, "x", k=5)
    assert [h.call_id for h in hits] == ["y", "z"]
    assert hits[0].score == pytest.approx(1.0) and hits[1].score == pytest.approx(0.0, abs=1e-6)
    seg_hits = find_similar(store, "z", "s0002", k=1)
    assert (seg_hits[0].call_id, seg_hits[0].text, seg_hits[0].score) == (seg_hits[0].call_id, seg_hits[0].text, 0.0)
    assert find_similar(store, "x", "s0001", k=1)[0].segment_id == "s0001"
    assert find_similar(store, "x", "s0001", k=1)[0].call_id == "y"


def test_similar_without_embeddings_says_why(store):
    from callsense.errors import UsageError
    from callsense.store import find_similar, save_result

    save_result(store, call("c1", "e" * 64, [seg("agent", 0, 1000, "x", emotion_="happy")]))
    with pytest.raises(UsageError, match="no stored embedding"):
        find_similar(store, "c1")


# ---------------------------------------------------------------- exports & privacy


def test_redact_text_kinds():
    from callsense.store import RedactionConfig, redact_text

    text = ("我的手机是13812345678，身份证110105199003071239，卡号6222 0212 3456 7890 128，"
            "邮箱 zhang.san@example.com，座机 010-62345678，念一遍：一三八一二三四五六七八")
    red, kinds = redact_text(text)
    assert "13812345678" not in red and "110105199003071239" not in red and "6222" not in red
    assert "zhang.san@example.com" not in red and "62345678" not in red and "一三八" not in red
    assert red.count("[PHONE]") == 3 and "[ID]" in red and "[CARD]" in red and "[EMAIL]" in red
    assert kinds == ("email", "id", "card", "phone")
    assert redact_text("订单号 12345 没问题")[1] == ()  # short numbers stay
    only_email, kinds = redact_text(text, RedactionConfig(kinds=("email",)))
    assert kinds == ("email",) and "13812345678" in only_email


def test_export_csv_jsonl_redacted_by_default(filled, tmp_path):
    from callsense.store import EXPORT_COLUMNS, export_calls, save_result

    save_result(filled, call("c4", "4" * 64, [seg("customer", 0, 1000, "call me on 13812345678", emotion_="sad")],
                             metadata={"agent_id": "a2"}))
    out = tmp_path / "calls.csv"
    assert export_calls(filled, out, format="csv") == 4
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert tuple(rows[0].keys()) == EXPORT_COLUMNS["calls"]
    c4 = next(r for r in rows if r["call_id"] == "c4")
    assert "[PHONE]" in c4["transcript"] and "13812345678" not in c4["transcript"]
    c1 = next(r for r in rows if r["call_id"] == "c1")
    assert (c1["critical_hits"], c1["first_customer_emotion"], c1["agent_id"]) == ("1", "angry", "a1")

    buf = io.StringIO()
    export_calls(filled, buf, format="jsonl", what="segments", redact=False)
    segs = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert tuple(segs[0]) == EXPORT_COLUMNS["segments"]
    assert any(s["text"] == "call me on 13812345678" for s in segs)

    buf = io.StringIO()
    export_calls(filled, buf, format="jsonl", what="rule_hits")
    hits = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert sorted(h["rule_id"] for h in hits) == ["complaint", "complaint", "dead_air"]


def test_one_qa_scale_in_search_export_and_listing(filled):
    """The score users see (0-100) is what search filters compare with, what search --json and export
    call qa_score, and what list_calls gives; export's qa_points are the raw points behind it."""
    import subprocess
    import sys

    from callsense.store import list_calls

    qa = filled.fixture_scores
    assert {r.call_id: r.score for r in list_calls(filled)} == qa
    run = lambda *a: subprocess.run([sys.executable, "-m", "callsense", *a, "--db", filled.url],  # noqa: E731
                                    capture_output=True, text=True, timeout=120)
    out = run("export", "--what", "calls", "--format", "jsonl")
    assert out.returncode == 0, out.stderr
    exported = {r["call_id"]: r for r in map(json.loads, out.stdout.splitlines())}
    assert {k: r["qa_score"] for k, r in exported.items()} == qa
    assert all(r["qa_points"] is not None and r["qa_points"] != r["qa_score"] for r in exported.values()
               if r["qa_score"] in (0.0, 90.0))  # auto-failed / partial: raw points differ from the score
    threshold = sorted(qa.values())[1]  # the middle score: some calls above, some below
    out = run("search", "--min-qa", str(threshold), "--json")
    assert out.returncode == 0, out.stderr
    shown = {h["call_id"]: h["qa_score"] for h in json.loads(out.stdout)}
    assert shown == {k: v for k, v in qa.items() if v >= threshold} and 0 < len(shown) < len(qa)
    help_text = run("search", "--help").stdout
    assert "0-100" in help_text and "(0-1)" not in help_text


def test_parquet_export_needs_pyarrow_or_writes_a_file(filled, tmp_path):
    from callsense.store import export_calls

    try:
        import pyarrow.parquet as pq
    except ImportError:
        with pytest.raises(DependencyError, match=r"pip install 'callsense\[parquet\]'"):
            export_calls(filled, tmp_path / "c.parquet", format="parquet")
        return
    assert export_calls(filled, tmp_path / "c.parquet", format="parquet") == 3
    assert pq.read_table(tmp_path / "c.parquet").num_rows == 3


def test_stored_redaction(store):
    from callsense.store import get_result, save_result
    from callsense.store.search import SearchQuery, search

    r = call("c1", "f" * 64, [seg("customer", 0, 1000, "邮箱 a@b.cn 电话 13900001111", emotion_="neutral")])
    save_result(store, r, redact=True)
    back = get_result(store, "c1")
    assert back.segments[0].text == "邮箱 [EMAIL] 电话 [PHONE]"
    assert back.segments[0].redactions == ("email", "phone")
    assert search(store, SearchQuery(text="13900001111")) == []


def test_purge_by_retention(store, tmp_path):
    from sqlalchemy import update

    from callsense.store import count_calls, purge, save_result
    from callsense.store.models import Call

    audio = tmp_path / "kept.wav"
    audio.write_bytes(b"x")
    save_result(store, call("old", "7" * 64, [seg("agent", 0, 1000, "old", emotion_="happy")]),
                audio_path=str(audio))
    save_result(store, call("new", "8" * 64, [seg("agent", 0, 1000, "new", emotion_="happy")]))
    with store.session() as s:
        s.execute(update(Call).where(Call.call_id == "old")
                  .values(stored_at=datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(days=100)))
    dry = purge(store, "90d", dry_run=True)
    assert (dry.calls, dry.audio_files) == (1, 1) and audio.exists() and count_calls(store) == 2
    audio_only = purge(store, "90d", what="audio")
    assert audio_only.audio_files == 1 and not audio.exists() and count_calls(store) == 2
    gone = purge(store, "90d", what="records")
    assert gone.calls == 1 and count_calls(store) == 1


# ---------------------------------------------------------------- cross-call history


def test_call_history_summaries_for_cross_call_rules(store):
    from callsense.store import call_history, save_result

    for i, (emo, rules) in enumerate([("disgusted", ["rude"]), ("disgusted", []), ("happy", []), ("disgusted", [])]):
        r = call(f"c{i}", f"{i}" * 64, [seg("customer", 0, 4000, "...", emotion_=emo)],
                 metadata={"agent_id": "a1", "customer_id": f"cust{i % 2}",
                           "started_at": f"2026-01-0{i + 1}T10:00:00Z"},
                 hits=[hit(x, seg_id="s0001") for x in rules])
        save_result(store, r)
    hist = call_history(store, agent_id="a1", before="2026-01-03T12:00:00Z", limit=3)
    assert [h.call_id for h in hist] == ["c2", "c1", "c0"]  # newest first, c3 is later
    assert hist[2].flags == ("rude",)
    assert hist[1].share("customer", "disgusted") == pytest.approx(1.0)
    assert hist[0].share("customer", "disgusted") == pytest.approx(0.0)
    by_customer = call_history(store, customer_id="cust1")
    assert [h.call_id for h in by_customer] == ["c3", "c1"]


def test_cross_call_rule_fires_on_the_agents_stored_history(store):
    """The seeds' rule: the same agent's last 3 calls all show high customer disgust."""
    from callsense.rules import load_ruleset_text
    from callsense.store import save_result
    from callsense.store.history import apply_store_rules

    ruleset = load_ruleset_text(
        "rules:\n  - id: agent_disgust_streak\n    name: Agent disgust streak\n"
        "    scope: {role: customer}\n    conditions:\n"
        "      1: {type: history, by: agent, last: 3, emotion: disgusted, min_share: 0.5}\n")

    def new_call(i, agent, emo="disgusted"):
        return call(f"c{i}", f"{i}" * 64, [seg("customer", 0, 4000, "...", emotion_=emo)],
                    metadata={"agent_id": agent, "started_at": f"2026-01-0{i}T10:00:00Z"})

    for i in (1, 2):
        save_result(store, apply_store_rules(store, new_call(i, "a1"), ruleset))
    save_result(store, apply_store_rules(store, new_call(3, "a2"), ruleset))  # another agent's call
    fourth = apply_store_rules(store, new_call(4, "a1"), ruleset)
    assert fourth.rule_hits == ()  # only 2 earlier calls of a1
    save_result(store, fourth)
    fifth = apply_store_rules(store, new_call(5, "a1", emo="happy"), ruleset)
    assert [h.rule_id for h in fifth.rule_hits] == ["agent_disgust_streak"]
    assert "c4, c2, c1" in fifth.rule_hits[0].evidence[0].note


def test_store_is_a_context_manager(tmp_path):
    from callsense.store import count_calls, open_store

    with open_store(f"sqlite:///{tmp_path / 'ctx.db'}") as store:
        assert count_calls(store) == 0
        pool = store.engine.pool
    assert pool is not store.engine.pool  # closed: the engine's connections were disposed
