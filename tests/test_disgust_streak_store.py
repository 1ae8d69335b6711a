"""The seeds' alert "the same agent's customers show high disgust in 3 consecutive calls" (the default pack's
``agent.disgust_streak``) with its history read from the store, as `callsense batch` and the API do it
(``apply_store_rules``), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from callsense.rules import default_ruleset
from callsense.store.history import apply_store_rules
from callsense.testing.results import seg
from test_store import call, store  # noqa: F401 - the store fixture (SQLite and PostgreSQL)


def agent_call(call_id, customer_emotion, day, agent="a1"):
    return call(call_id, call_id[-1] * 64,
                [seg("agent", 0, 3000, "您好很高兴为您服务", emotion_="neutral"),
                 seg("customer", 3500, 9000, "你们这服务真让人恶心", emotion_=customer_emotion)],
                metadata={"agent_id": agent, "started_at": f"2026-01-0{day}T09:00:00Z"},
                started=f"2026-01-0{day}T09:00:00Z")


def streak_after(store, earlier):  # noqa: F811
    from callsense.store import save_result

    for c in earlier:
        save_result(store, c)
    now = agent_call("c9", "disgusted", 9)
    out = apply_store_rules(store, now, default_ruleset())
    return next((h for h in out.rule_hits if h.rule_id == "agent.disgust_streak"), None)


def test_third_disgusted_call_of_one_agent_alerts(store):  # noqa: F811
    hit = streak_after(store, [agent_call("c1", "neutral", 1), agent_call("c2", "disgusted", 2),
                               agent_call("c3", "disgusted", 3)])
    assert hit is not None and hit.alert and hit.severity == "warning"
    assert any("c2" in (e.note or "") or "c3" in (e.note or "") for e in hit.evidence)


@pytest.mark.parametrize("earlier", [
    [("c2", "disgusted", 2, "a1"), ("c3", "neutral", 3, "a1")],  # the latest earlier call was calm: no streak
    [("c2", "disgusted", 2, "a2"), ("c3", "disgusted", 3, "a2")],  # another agent's customers
    [("c3", "disgusted", 3, "a1")],  # only two calls so far
], ids=["broken", "other-agent", "two-calls"])
def test_no_alert_without_three_disgusted_calls_running(store, earlier):  # noqa: F811
    assert streak_after(store, [agent_call(i, e, d, a) for i, e, d, a in earlier]) is None
