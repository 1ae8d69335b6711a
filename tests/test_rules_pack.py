"""Every rule of the shipped default pack fires on a constructed call and stays quiet on a near miss."""

from __future__ import annotations

import pytest

from callsense.rules import apply_qa, default_ruleset, evaluate
from callsense.testing.results import event, make_result, seg


def hit_ids(result):
    return {h.rule_id for h in evaluate(result, default_ruleset())}


def fires(rule_id, result):
    hits = [h for h in evaluate(result, default_ruleset()) if h.rule_id == rule_id]
    assert hits, f"{rule_id} did not fire"
    ids = {s.id for s in result.segments}
    for e in hits[0].evidence:
        assert e.segment_id is None or e.segment_id in ids
        assert 0 <= e.start_ms <= e.end_ms <= result.duration_ms
    return hits[0]


def quiet(rule_id, result):
    assert rule_id not in hit_ids(result)


def test_every_pack_rule_is_covered_here():
    tested = {"risk.complaint", "emotion.sustained_anger", "emotion.fear_at_end", "emotion.turn", "call.invalid",
              "agent.friendliness", "agent.forbidden_phrases", "agent.talk_over", "call.dead_air", "agent.health",
              "agent.greeting", "agent.disgust_streak"}
    assert {r.id for r in default_ruleset().rules} == tested


# ------------------------------------------------------------------------------- high-risk complaint
def complaint(text, emo="angry", **kw):
    return make_result([seg("agent", 0, 2000, "您好", emotion_="neutral"),
                        seg("customer", 2500, 6000, text, emotion_=emo, **kw)], duration_ms=8000)


def test_complaint_fires_with_anger_and_complaint_word():
    hit = fires("risk.complaint", complaint("你们再不发货我就投诉"))
    assert hit.severity == "critical" and hit.alert
    spans = {e.text for e in hit.evidence if e.text}
    assert {"不发货", "投诉"} <= spans
    e = next(e for e in hit.evidence if e.text == "投诉")
    assert "你们再不发货我就投诉"[e.span[0]:e.span[1]] == "投诉"


def test_complaint_fires_with_fear_and_english():
    fires("risk.complaint", complaint("I want a refund right now", emo="fearful", language="en"))


def test_complaint_uses_sensevoice_tag_when_no_emotion2vec():
    r = make_result([seg("customer", 0, 3000, "我要退款", asr_emotion="ANGRY")], duration_ms=3000)
    fires("risk.complaint", r)


def test_escalation_channel_fires_even_when_calm():
    fires("risk.complaint", complaint("我要打12315", emo="neutral"))


@pytest.mark.parametrize("text", ["没问题", "没问题，谢谢", "no problem at all"])
def test_no_problem_is_not_a_complaint(text):
    quiet("risk.complaint", complaint(text))


@pytest.mark.parametrize("text", ["我不是要投诉，就是问问", "我不想投诉", "I don't want to complain", "我不会去12315的"])
def test_negated_complaint_words_do_not_fire(text):
    quiet("risk.complaint", complaint(text))


def test_complaint_word_without_negative_emotion_does_not_fire():
    quiet("risk.complaint", complaint("退款什么时候到账", emo="happy"))


def test_anger_far_from_the_complaint_word_does_not_count():
    segs = [seg("customer", 0, 2000, "我要退款", emotion_="neutral")]
    segs += [seg("agent" if i % 2 else "customer", 3000 + i * 3000, 5000 + i * 3000, "嗯", emotion_="neutral")
             for i in range(6)]
    segs.append(seg("customer", 30000, 32000, "气死我了", emotion_="angry"))
    quiet("risk.complaint", make_result(segs, duration_ms=33000))


def test_sue_is_a_whole_word():
    quiet("risk.complaint", complaint("there is an issue with my order", emo="neutral", language="en"))


# ---------------------------------------------------------------------------------- emotion rules
def test_sustained_anger():
    segs = [seg("customer", i * 4000, i * 4000 + 3500, "...", emotion_=("angry", 0.8)) for i in range(3)]
    hit = fires("emotion.sustained_anger", make_result(segs, duration_ms=13000))  # 10.5 s of anger
    assert "sustained" in hit.evidence[0].note
    near = [seg("customer", i * 4000, i * 4000 + 3000, "...", emotion_=("angry", 0.8)) for i in range(3)]
    quiet("emotion.sustained_anger", make_result(near, duration_ms=13000))  # 9 s
    broken = segs[:2] + [seg("customer", 8000, 8500, "ok", emotion_="neutral"),
                         seg("customer", 9000, 12500, "...", emotion_=("angry", 0.8))]
    quiet("emotion.sustained_anger", make_result(broken, duration_ms=13000))  # the run is interrupted


def test_fear_near_the_end():
    fires("emotion.fear_at_end", make_result([seg("customer", 80000, 85000, "那怎么办", emotion_="fearful")],
                                             duration_ms=90000))
    quiet("emotion.fear_at_end", make_result([seg("customer", 10000, 15000, "那怎么办", emotion_="fearful")],
                                             duration_ms=90000))


def test_emotion_turn_with_30s_evidence():
    segs = [seg("customer", 0, 5000, "你好", emotion_="happy"),
            seg("agent", 6000, 20000, "这个不能退", emotion_="neutral"),
            seg("customer", 40000, 45000, "什么意思", emotion_="angry"),
            seg("agent", 80000, 85000, "抱歉", emotion_="neutral")]
    r = make_result(segs, duration_ms=90000)
    hit = fires("emotion.turn", r)
    window = next(e for e in hit.evidence if e.segment_id is None)
    assert (window.start_ms, window.end_ms) == (25000, 55000)
    assert "s0004" not in {e.segment_id for e in hit.evidence}
    steady = [s if s["role"] != "customer" or s["start_ms"] else dict(s, emotion="angry") for s in segs]
    quiet("emotion.turn", make_result(steady, duration_ms=90000))  # angry all along: no turn


def test_emotion_turn_covers_sad_to_angry():
    # the seeds' 😊 -> 😡 -> 😔 -> 😡: the second turn, sad -> angry, is flagged with its own window
    segs = [seg("customer", 0, 4000, "你好", emotion_="angry"),
            seg("customer", 40000, 44000, "唉算了", emotion_="sad"),
            seg("customer", 80000, 84000, "你们太过分了", emotion_="angry")]
    hit = fires("emotion.turn", make_result(segs, duration_ms=100000))
    window = next(e for e in hit.evidence if e.segment_id is None)
    assert window.start_ms < 80000 < window.end_ms
    fearful = [dict(s, emotion="fearful") if s["start_ms"] == 40000 else s for s in segs]
    quiet("emotion.turn", make_result(fearful, duration_ms=100000))  # fear -> anger is not in the list


def test_agent_friendliness():
    cold = [seg("agent", i * 3000, i * 3000 + 2000, "好的", emotion_="neutral") for i in range(5)]
    hit = fires("agent.friendliness", make_result(cold, duration_ms=16000))
    assert "0 of 5" in hit.evidence[0].note
    warm = cold[:3] + [seg("agent", 9000, 11000, "好的", emotion_="happy")]
    quiet("agent.friendliness", make_result(warm, duration_ms=16000))  # 1 of 4 = 25% >= 20%
    quiet("agent.friendliness", make_result(cold[:2], duration_ms=16000))  # too few turns to judge


# ------------------------------------------------------------------------------------- call rules
def test_invalid_call_mostly_music_and_short_speech():
    r = make_result([seg("customer", 50000, 52000, "喂喂")], duration_ms=60000, events=[event("BGM", 0, 40000)])
    fires("call.invalid", r)
    talky = make_result([seg("customer", 30000, 58000, "喂你好我想问一下我的订单为什么还没有到")], duration_ms=60000,
                        events=[event("BGM", 0, 40000)])
    quiet("call.invalid", talky)  # 28 s of speech: a real call, even with music under most of it
    ringing = make_result([seg("customer", 50000, 58000, "喂你好我想问一下我的订单")], duration_ms=60000,
                          events=[event("Ringback", 0, 45000)])
    hit = fires("call.invalid", ringing)  # 75% ringback, 8 s of speech
    assert any("Ringback" in (e.note or "") for e in hit.evidence)
    some_music = make_result([seg("customer", 50000, 58000, "喂你好我想问一下我的订单")], duration_ms=60000,
                             events=[event("BGM", 0, 30000)])
    quiet("call.invalid", some_music)  # 50%: under the seeds' 60%


def test_invalid_call_no_speech_or_too_little():
    hit = fires("call.invalid", make_result([], duration_ms=30000))
    assert "0.0 s of speech" in hit.evidence[0].note
    fires("call.invalid", make_result([seg("customer", 0, 2500, "喂你好我想问一下我的订单")], duration_ms=30000))
    fires("call.invalid", make_result([seg("customer", 0, 8000, "喂喂喂")], duration_ms=30000))  # 3 characters
    quiet("call.invalid", make_result([seg("customer", 0, 8000, "喂你好我想问一下我的订单")], duration_ms=30000))


def test_invalid_call_is_not_scored():
    out = apply_qa(make_result([], duration_ms=30000))
    assert out.score.status == "not_scored" and not out.score.scored
    assert out.score.passed is None and out.score.normalized is None and out.score.verdict == "not scored"
    assert out.score.reason.startswith("call.invalid: ") and "speech" in out.score.reason
    assert out.score.items == () and [h.rule_id for h in out.rule_hits] == ["call.invalid"]
    again = type(out).from_dict(out.to_dict())  # the not-scored state survives result.json
    assert again.score == out.score


def test_no_asr_text_length_is_not_applicable():
    r = make_result([seg("customer", 0, 8000, "", asr_status="skipped")], duration_ms=10000)
    quiet("call.invalid", r)  # 8 s of speech, no transcript to count: not invalid


def test_dead_air():
    r = make_result([seg("agent", 0, 2000, "您好"), seg("customer", 7500, 9000, "在吗")], duration_ms=10000)
    hit = fires("call.dead_air", r)
    assert (hit.evidence[0].start_ms, hit.evidence[0].end_ms) == (2000, 7500)
    quiet("call.dead_air", make_result([seg("agent", 0, 2000, "您好"), seg("customer", 6500, 9000, "在吗")],
                                       duration_ms=10000))


def test_agent_talks_over_customer():
    r = make_result([seg("customer", 0, 6000, "我跟你说这个问题"), seg("agent", 3000, 8000, "你听我说")])
    hit = fires("agent.talk_over", r)
    assert hit.evidence[0].segment_id == "s0002" and hit.evidence[0].role == "agent"
    # the customer talking over the agent is not this rule; nor is a short backchannel
    quiet("agent.talk_over", make_result([seg("agent", 0, 6000, "a"), seg("customer", 3000, 8000, "b")]))
    quiet("agent.talk_over", make_result([seg("customer", 0, 6000, "a"), seg("agent", 5000, 8000, "嗯")]))
    # on mono audio talk-over cannot be measured
    quiet("agent.talk_over", make_result([seg("unknown", 0, 6000, "a"), seg("unknown", 3000, 8000, "b")],
                                         stereo=False))


def test_agent_health():
    coughs = [event("Cough", t, t + 300, role="agent") for t in (1000, 5000, 9000)]
    fires("agent.health", make_result([seg("agent", 0, 10000, "您好")], events=coughs))
    quiet("agent.health", make_result([seg("agent", 0, 10000, "您好")], events=coughs[:2]))
    customer_coughs = [event("Cough", t, t + 300, role="customer") for t in (1000, 5000, 9000)]
    quiet("agent.health", make_result([seg("agent", 0, 10000, "您好")], events=customer_coughs))
    # cough tags left on segments count too, once each
    tagged = [seg("agent", i * 2000, i * 2000 + 1000, "咳", asr_events=["Cough"]) for i in range(3)]
    fires("agent.health", make_result(tagged))


def test_forbidden_phrases():
    hit = fires("agent.forbidden_phrases", make_result([seg("agent", 0, 3000, "这个不归我管，你找别人去")]))
    assert {e.text for e in hit.evidence} == {"不归我管", "找别人去"}
    quiet("agent.forbidden_phrases", make_result([seg("customer", 0, 3000, "这个不归我管")]))  # customers may
    quiet("agent.forbidden_phrases", make_result([seg("agent", 0, 3000, "这个问题我来帮您处理")]))


def test_greeting():
    fires("agent.greeting", make_result([seg("agent", 1000, 3000, "您好，很高兴为您服务！")], duration_ms=60000))
    quiet("agent.greeting", make_result([seg("agent", 40000, 43000, "您好，很高兴为您服务")], duration_ms=60000))
    quiet("agent.greeting", make_result([seg("agent", 1000, 3000, "喂？")], duration_ms=60000))


# ---------------------------------------------------------------------------------- the whole pack
def test_apply_qa_fills_metrics_hits_and_score():
    r = complaint("你们再不发货我就投诉")
    out = apply_qa(r)
    assert out.metrics is not None and out.score is not None
    assert out.score.scorecard_id == "callsense-default" and out.score.auto_failed and not out.score.passed
    assert "risk.complaint" in out.score.auto_fail_rules
    assert r.metrics is None  # the input is not modified
    calm = apply_qa(make_result([seg("agent", 0, 3000, "您好，很高兴为您服务", emotion_="happy"),
                                 seg("customer", 3500, 6000, "好的没问题谢谢", emotion_="happy")]))
    assert calm.rule_hits and {h.rule_id for h in calm.rule_hits} == {"agent.greeting"}
    assert calm.score.passed and calm.score.normalized == pytest.approx(100.0)


# ------------------------------------------------------------------------------------- alerts
def _summary(call_id, disgust, agent="a1", when="2026-01-0{}T09:00:00Z"):
    from callsense.rules import CallSummary, EmotionShare

    return CallSummary(call_id=call_id, started_at=when.format(call_id[-1]), agent_id=agent,
                       emotions=(EmotionShare("customer", "disgusted", disgust),))


def _disgusted_call(label="disgusted"):
    return make_result([seg("agent", 0, 3000, "您好很高兴为您服务", emotion_="neutral"),
                        seg("customer", 3500, 9000, "你们这服务真让人恶心", emotion_=label)],
                       duration_ms=10000, metadata={"agent_id": "a1"}, call_id="c4")


def _hits(result, history):
    return {h.rule_id: h for h in evaluate(result, default_ruleset(), history=history)}


def test_disgust_streak_fires_on_the_third_disgusted_call_of_one_agent():
    history = [_summary("c1", 0.1), _summary("c2", 0.6), _summary("c3", 0.5)]
    hit = _hits(_disgusted_call(), history)["agent.disgust_streak"]
    assert hit.alert and "c2" in hit.evidence[-1].note + hit.evidence[0].note


def test_disgust_streak_stays_quiet_when_the_streak_is_broken():
    assert "agent.disgust_streak" not in _hits(_disgusted_call(), [_summary("c2", 0.1), _summary("c3", 0.5)])
    calm_now = _disgusted_call("neutral")
    assert "agent.disgust_streak" not in _hits(calm_now, [_summary("c2", 0.6), _summary("c3", 0.5)])
    other_agent = [_summary("c2", 0.6, agent="a2"), _summary("c3", 0.5, agent="a2")]
    assert "agent.disgust_streak" not in _hits(_disgusted_call(), other_agent)  # N/A: no history of a1


@pytest.mark.parametrize("rule_id", ["risk.complaint", "emotion.sustained_anger", "emotion.fear_at_end",
                                     "agent.disgust_streak"])
def test_seed_alerts_are_alerts(rule_id):
    rule = default_ruleset().rule(rule_id)
    assert rule.consequence.alert


def test_every_pack_rule_has_a_bilingual_suggestion_carried_by_its_hits():
    for rule in default_ruleset().rules:
        assert rule.suggestion and rule.suggestion.zh and rule.suggestion.en, rule.id
    hit = fires("risk.complaint", complaint("你们再不发货我就投诉"))
    assert hit.suggestion == default_ruleset().rule("risk.complaint").suggestion
