"""The dashboard's store views (heat map with events, script effectiveness, before/after an agent's date)
and the SQL views for BI tools (revision 0008), on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from callsense.errors import UsageError
from callsense.testing.results import event, seg
from test_store import call, emb, hit, store  # noqa: F401 - the store fixture (SQLite and PostgreSQL)


@pytest.fixture
def board(store):  # noqa: F811
    from callsense.store import save_result

    calls = [
        call("c1", "1" * 64, [seg("agent", 0, 3000, "您好", emotion_="neutral"),
                              seg("customer", 3000, 7000, "我要投诉", emotion_="angry"),
                              seg("agent", 7000, 9000, "非常抱歉", emotion_="neutral"),
                              seg("customer", 9000, 12000, "好吧", emotion_="neutral")],
             metadata={"agent_id": "a1", "category": "billing", "started_at": "2026-01-05T09:00:00Z"},
             events=[event("BGM", 0, 2000, role="agent")],
             hits=[hit("apology", "info", seg_id="s0003"), hit("complaint", "critical", seg_id="s0002")], qa=True),
        call("c2", "2" * 64, [seg("agent", 0, 1000, "抱歉久等", emotion_="neutral"),
                              seg("customer", 1000, 4000, "没关系", emotion_="happy"),
                              seg("customer", 60_000, 61_000, "还在吗", emotion_="sad")],  # long after: no answer
             metadata={"agent_id": "a1", "category": "billing", "started_at": "2026-01-07T09:00:00Z"},
             events=[event("Laughter", 1500, 2000, role="customer")],
             hits=[hit("apology", "info", seg_id="s0001")], qa=True),
        call("c3", "3" * 64, [seg("agent", 0, 2000, "hi", emotion_="neutral"),
                              seg("customer", 2000, 4000, "this is bad", emotion_="sad")],
             metadata={"agent_id": "a2", "category": "tech", "started_at": "2026-01-06T10:00:00Z"},
             events=[event("BGM", 0, 500), event("BGM", 900, 1200)], qa=True),
    ]
    for i, c in enumerate(calls):
        save_result(store, c, embeddings=emb(c, i))
    store.fixture_scores = {c.call_id: c.score.normalized for c in calls}
    return store


def test_heatmap_has_emotions_and_events(board):
    from callsense.store import emotion_event_heatmap, event_heatmap

    ev = {r["category"]: r for r in event_heatmap(board).to_dicts()}
    assert ev["billing"] == {"category": "billing", "calls": 2, "BGM": 0.5, "Laughter": 0.5}
    assert ev["tech"] == {"category": "tech", "calls": 1, "BGM": 1.0, "Laughter": 0.0}  # two BGMs: one call
    t = emotion_event_heatmap(board)
    assert t.columns[-2:] == ("event:BGM", "event:Laughter")
    rows = {r["category"]: r for r in t.to_dicts()}
    assert rows["billing"]["angry"] == pytest.approx(4000 / 11000, abs=1e-3)  # customer speech of c1 + c2
    assert rows["tech"]["sad"] == pytest.approx(1.0) and rows["tech"]["event:BGM"] == 1.0
    with pytest.raises(UsageError):
        event_heatmap(board, by="colour")


def test_script_effectiveness(board):
    from callsense.store import script_effectiveness

    rows = {r["rule_id"]: r for r in script_effectiveness(board).to_dicts()}
    assert set(rows) == {"(unmatched)", "apology"}  # complaint's evidence is a customer segment: no agent turn
    # answers to the apologies: c1's neutral 3 s and c2's happy 3 s (c2's late "还在吗" answers nothing)
    assert rows["apology"]["agent_turns"] == 2 and rows["apology"]["customer_segments"] == 2
    assert rows["apology"]["customer_negative_share"] == 0.0
    # answers to the other turns: c1's angry 4 s and c3's sad 2 s
    assert rows["(unmatched)"]["agent_turns"] == 2 and rows["(unmatched)"]["customer_negative_share"] == 1.0
    assert rows["apology"]["baseline"] == 1.0 and rows["apology"]["delta"] == -1.0
    # a longer answer window takes c2's late segment in (sad, 1 s of 7 s)
    wide = {r["rule_id"]: r for r in script_effectiveness(board, within_ms=120_000).to_dicts()}
    assert wide["apology"]["customer_negative_share"] == pytest.approx(1000 / 7000, abs=1e-3)
    only_6th = script_effectiveness(board, since="2026-01-06T00:00:00Z", until="2026-01-07T00:00:00Z").to_dicts()
    assert [r["rule_id"] for r in only_6th] == ["(unmatched)"]


def test_agent_before_after(board):
    from callsense.store import agent_before_after

    qa = board.fixture_scores
    before, after = agent_before_after(board, "a1", "2026-01-06").to_dicts()
    assert (before["period"], before["calls"], after["calls"]) == ("before", 1, 1)
    assert before["avg_score"] == pytest.approx(qa["c1"]) and after["avg_score"] == pytest.approx(qa["c2"])
    assert before["critical_hits"] == 1 and after["critical_hits"] == 0
    assert before["customer_negative_share"] == pytest.approx(4000 / 7000, abs=1e-3)
    assert before["angry"] == pytest.approx(4000 / 7000, abs=1e-3)
    assert after["happy"] == pytest.approx(3000 / 4000, abs=1e-3) and after["sad"] == pytest.approx(0.25, abs=1e-3)
    near = agent_before_after(board, "a1", "2026-01-07", days=1).to_dicts()
    assert [r["calls"] for r in near] == [0, 1] and near[0]["avg_score"] is None  # 01-06: no a1 call
    with pytest.raises(UsageError):
        agent_before_after(board, "a1", "06/01/2026")
    with pytest.raises(UsageError):
        agent_before_after(board, "", "2026-01-06")


def _rows(store, sql):  # noqa: F811
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(sql))]


def test_bi_views(board):
    qa = board.fixture_scores
    calls = {r["call_id"]: r for r in _rows(board, "SELECT * FROM calls_v")}
    c1 = calls["c1"]
    assert c1["file"] == "c1.wav" and c1["call_day"] == "2026-01-05" and c1["agent_id"] == "a1"
    assert float(c1["duration_s"]) == 12.0 and c1["score"] == pytest.approx(qa["c1"])
    assert (c1["rule_hits"], c1["critical_hits"]) == (2, 1) and not c1["invalid"]
    assert float(c1["agent_speech_s"]) == 5.0 and float(c1["customer_speech_s"]) == 7.0
    assert float(c1["customer_negative_share"]) == pytest.approx(4000 / 7000, abs=1e-6)

    segs = _rows(board, "SELECT * FROM segments_v WHERE call_id = 'c1' ORDER BY idx")
    assert [s["role"] for s in segs] == ["agent", "customer", "agent", "customer"]
    assert segs[1]["emotion"] == "angry" and float(segs[1]["start_s"]) == 3.0 and float(segs[1]["p_angry"]) == 1.0
    assert segs[1]["text"] == "我要投诉" and segs[1]["category"] == "billing"

    hits = _rows(board, "SELECT * FROM hits_v ORDER BY call_id, rule_id")
    assert [(h["call_id"], h["rule_id"], h["severity"]) for h in hits] == [
        ("c1", "apology", "info"), ("c1", "complaint", "critical"), ("c2", "apology", "info")]
    assert hits[0]["agent_id"] == "a1" and hits[0]["call_day"] == "2026-01-05"

    days = {(r["day"], r["agent_id"]): r for r in _rows(board, "SELECT * FROM agent_day_v")}
    assert set(days) == {("2026-01-05", "a1"), ("2026-01-06", "a2"), ("2026-01-07", "a1")}
    d = days[("2026-01-05", "a1")]
    assert d["calls"] == 1 and d["critical_hits"] == 1 and float(d["avg_score"]) == pytest.approx(qa["c1"])
    assert float(d["customer_negative_share"]) == pytest.approx(4000 / 7000, abs=1e-6)
    assert float(days[("2026-01-07", "a1")]["customer_negative_share"]) == pytest.approx(1000 / 4000, abs=1e-6)


def test_bi_views_go_with_a_downgrade_and_come_back(board):
    from alembic import command

    from callsense.store.migrate import alembic_config, upgrade

    cfg = alembic_config(board.url)
    with board.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0007")
    with pytest.raises(Exception, match="calls_v"):
        _rows(board, "SELECT * FROM calls_v")
    upgrade(board)
    assert len(_rows(board, "SELECT * FROM calls_v")) == 3
