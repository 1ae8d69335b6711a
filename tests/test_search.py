"""Search on SQLite and PostgreSQL: Chinese without spaces, English, match marking, every filter, CLI."""

from __future__ import annotations

import dataclasses
import json

import pytest

from callsense.errors import UsageError
from callsense.result.qa import Evidence, RuleHit
from callsense.testing.results import make_result, scored, seg
from callsense.testing.store import fresh_postgres_database


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request, tmp_path_factory):
    """One store per backend, filled once (the tests only read)."""
    from callsense.store import open_store, save_result

    if request.param == "sqlite":
        ctx = None
        s = open_store(f"sqlite:///{tmp_path_factory.mktemp('search') / 'store.db'}")
    else:
        ctx = fresh_postgres_database()
        s = open_store(ctx.__enter__())
    for r in CALLS:
        save_result(s, r)
    yield s
    s.close()
    if ctx is not None:
        ctx.__exit__(None, None, None)


def _call(call_id, sha, segments, *, meta, hits=(), qa=True):
    """A stored fixture; its QA score is the real scorer's (default pack and scorecard), 0-100."""
    r = make_result(segments, call_id=call_id, metadata=meta)
    r = dataclasses.replace(r, source=dataclasses.replace(r.source, sha256=sha * 64))
    return scored(r, hits=hits) if qa else dataclasses.replace(r, rule_hits=tuple(hits))


CALLS = [
    _call("zh1", "1", [seg("agent", 0, 3000, "您好，请问有什么可以帮您", emotion_="neutral"),
                       seg("customer", 3000, 9000, "我要退款，你们的服务太差了", emotion_={"angry": 0.7, "sad": 0.3},
                           asr_emotion="ANGRY", asr_events=("Cough",))],
          meta={"agent_id": "a1", "queue": "vip", "started_at": "2026-01-05T09:00:00Z", "region": "north"},
          hits=[RuleHit("complaint", "1", "complaint", "service", "critical",
                        evidence=(Evidence("s0002", 3000, 9000, text="服务太差"),))]),
    _call("zh2", "2", [seg("agent", 0, 2000, "退款已经处理好了", emotion_="happy"),
                       seg("customer", 2000, 4000, "好的谢谢", emotion_={"happy": 0.6, "angry": 0.4})],
          meta={"agent_id": "a2", "queue": "normal", "started_at": "2026-01-06T09:00:00Z", "region": "south"},),
    _call("en1", "3", [seg("agent", 0, 2000, "Hello, how can I help you?", emotion_="neutral"),
                       seg("customer", 2000, 30000, "I want a REFUND for order 100% now", emotion_="angry",
                           asr_events=("BGM",))],
          meta={"agent_id": "a1", "queue": "vip", "started_at": "2026-01-07T09:00:00Z"},
          hits=[RuleHit("dead_air", "1", "dead air", "flow", "info")]),
]


def find(store, **kw):
    from callsense.store import search_calls
    from callsense.store.search import SearchQuery

    return search_calls(store, SearchQuery(**kw))


def ids(hits):
    return [(h.call_id, h.segment_id) for h in hits]


def test_chinese_without_spaces_two_and_more_characters(store):
    assert ids(find(store, text="退款")) == [("zh2", "s0001"), ("zh1", "s0002")]  # 2 chars: below the trigram size
    [h] = find(store, text="服务太差")
    assert (h.call_id, h.segment_id, h.role, h.emoji) == ("zh1", "s0002", "customer", "😠")
    assert h.marked() == "我要退款，你们的«服务太差»了"
    assert h.start_ms == 3000 and h.end_ms == 9000
    assert find(store, text="太差了吧") == []


def test_english_is_case_insensitive_and_every_word_must_match(store):
    [h] = find(store, text="refund")
    assert h.call_id == "en1" and h.marked() == "I want a «REFUND» for order 100% now"
    assert ids(find(store, text="refund order")) == [("en1", "s0002")]
    assert find(store, text="refund pizza") == []
    assert ids(find(store, text='"how can I"')) == [("en1", "s0001")]
    assert ids(find(store, text="100%")) == [("en1", "s0002")]  # LIKE wildcards are literal
    assert find(store, text="_") == []


def test_segment_filters(store):
    assert ids(find(store, text="退款", role="agent")) == [("zh2", "s0001")]
    assert ids(find(store, emotion="angry")) == [("en1", "s0002"), ("zh1", "s0002")]
    # with a minimum score the label need not be the top one: zh2's customer is happy 0.6 / angry 0.4
    assert ids(find(store, emotion="angry", min_score=0.35)) == [("en1", "s0002"), ("zh2", "s0002"),
                                                                 ("zh1", "s0002")]
    assert ids(find(store, emotion="angry", min_score=0.8)) == [("en1", "s0002")]
    assert ids(find(store, asr_emotion="angry")) == [("zh1", "s0002")]
    assert ids(find(store, event="Cough")) == [("zh1", "s0002")]
    assert ids(find(store, event="BGM", role="customer")) == [("en1", "s0002")]


def test_call_filters(store):
    assert [h.call_id for h in find(store, meta={"agent_id": "a1"})] == ["en1", "zh1"]
    assert [h.call_id for h in find(store, meta={"region": "south"})] == ["zh2"]  # a custom field
    assert [h.call_id for h in find(store, rule_id="complaint")] == ["zh1"]
    assert [h.call_id for h in find(store, severity="info")] == ["en1", "zh1"]  # info or worse
    assert [h.call_id for h in find(store, severity="critical")] == ["zh1"]
    assert [h.call_id for h in find(store, since="2026-01-06T00:00:00Z", until="2026-01-07T00:00:00Z")] == ["zh2"]
    assert [h.call_id for h in find(store, min_duration_ms=20_000)] == ["en1"]
    assert [h.call_id for h in find(store, max_duration_ms=5_000)] == ["zh2"]
    assert [h.call_id for h in find(store, min_qa_score=50, max_qa_score=95)] == qa_between(50, 95) == ["zh2"]
    assert ids(find(store, text="退款", meta={"queue": "vip"})) == [("zh1", "s0002")]
    assert [h.segment_id for h in find(store, call_id="zh1", role="customer")] == ["s0002"]


def qa_between(lo, hi):
    """The fixture calls whose QA score (as the real scorer gave it, 0-100) lies in [lo, hi], newest first."""
    return [r.call_id for r in reversed(CALLS) if lo <= r.score.normalized <= hi]


def test_qa_filters_use_the_score_as_shown(store, capsys):
    """One QA scale: the 0-100 score the scorer gives is what the filters compare with and what
    --json shows as qa_score."""
    from callsense.cli.app import main

    assert {r.call_id: r.score.normalized for r in CALLS}.keys() == {"zh1", "zh2", "en1"}
    assert 0 < len(qa_between(50, 100)) < len(CALLS)  # the fixtures straddle the threshold
    assert [h.call_id for h in find(store, min_qa_score=50)] == qa_between(50, 100)
    assert [h.call_id for h in find(store, max_qa_score=50)] == qa_between(0, 50)
    with pytest.raises(SystemExit) as e:
        main(["search", "--min-qa", "50", "--db", store.url, "--json"])
    assert e.value.code == 0
    shown = {h["call_id"]: h["qa_score"] for h in json.loads(capsys.readouterr().out)}
    assert shown == {r.call_id: r.score.normalized for r in CALLS if r.score.normalized >= 50}
    with pytest.raises(UsageError, match="between 0 and 100"):
        find(store, min_qa_score=150)


def test_limit_offset_and_bad_queries(store):
    assert len(find(store, role="agent", limit=2)) == 2
    assert ids(find(store, role="agent", limit=1, offset=2)) == [("zh1", "s0001")]
    with pytest.raises(UsageError, match="unknown emotion"):
        find(store, emotion="furious")
    with pytest.raises(UsageError, match="unknown role"):
        find(store, role="boss")
    # tags are matched exactly in the stored text: a miscased one is read as meant, an unknown one refused
    assert ids(find(store, event="cough")) == ids(find(store, event="Cough")) == [("zh1", "s0002")]
    with pytest.raises(UsageError, match="unknown event tag 'Explosion'.*Cough"):
        find(store, event="Explosion")
    with pytest.raises(UsageError, match="unknown asr emotion tag"):
        find(store, asr_emotion="furious")
    with pytest.raises(UsageError, match="until 'tomorrow' is not an ISO 8601 time"):  # not "no bound"
        find(store, until="tomorrow")


def test_search_cli_json_and_table(store, capsys):
    from callsense.cli.app import main

    with pytest.raises(SystemExit) as e:
        main(["search", "退款", "--role", "customer", "--db", store.url, "--json"])
    assert e.value.code == 0
    [hit] = json.loads(capsys.readouterr().out)  # --json: one JSON array
    assert (hit["call_id"], hit["segment_id"], hit["marked"], hit["emoji"]) == ("zh1", "s0002",
                                                                                "我要«退款»，你们的服务太差了", "😠")
    with pytest.raises(SystemExit) as e:
        main(["search", "refund", "--db", store.url])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "en1" in out and "REFUND" in out and "00:02.0–00:30.0" in out
