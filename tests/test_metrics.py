"""Call metrics on constructed results with known answers (definitions: docs/metrics.md)."""

from __future__ import annotations

import pytest

from callsense.analysis.metrics import MetricsOptions, compute_metrics
from callsense.testing.results import event, make_result, seg


def two_party():
    # agent 0-4 s, customer 3-8 s (1 s overlap, customer started second), 8-15 s silence,
    # agent 15-20 s, customer 20-30 s; call 40 s
    return make_result([
        seg("agent", 0, 4000, "您好请问有什么可以帮您", emotion_="happy"),
        seg("customer", 3000, 8000, "我的快递一直没有到", emotion_="neutral"),
        seg("agent", 15000, 20000, "I will check that for you now", language="en", emotion_="neutral"),
        seg("customer", 20000, 30000, "好的谢谢", emotion_="angry"),
    ], duration_ms=40000)


def test_talk_time_ratio_and_non_talk():
    m = compute_metrics(two_party())
    agent, customer = m.role("agent"), m.role("customer")
    assert agent.talk_ms == 9000 and customer.talk_ms == 15000
    assert m.agent_talk_ratio == pytest.approx(9000 / 24000)
    assert m.talk_ms == 23000  # union: 0-8 s and 15-30 s
    assert m.non_talk_ms == 17000
    assert agent.talk_share == pytest.approx(9000 / 40000)
    assert m.leading_silence_ms == 0 and m.trailing_silence_ms == 10000


def test_dead_air_threshold_and_neighbours():
    m = compute_metrics(two_party())
    assert [(d.start_ms, d.end_ms) for d in m.dead_air] == [(8000, 15000)]
    assert (m.dead_air[0].before_segment_id, m.dead_air[0].after_segment_id) == ("s0002", "s0003")
    assert m.dead_air_ms == 7000
    assert compute_metrics(two_party(), options=MetricsOptions(dead_air_min_ms=7001)).dead_air == ()
    # trailing silence after the last speech is not dead air
    assert all(d.end_ms <= 20000 for d in m.dead_air)


def test_hold_music_is_not_dead_air_but_is_hold_share():
    r = make_result([seg("agent", 0, 2000, "请稍等"), seg("agent", 30000, 32000, "让您久等了")],
                    duration_ms=40000, events=[event("BGM", 5000, 25000)])
    m = compute_metrics(r)
    assert m.hold_ms == 20000 and m.hold_share == pytest.approx(0.5)
    # 2-5 s (3 s) is under the 5 s threshold; 25-30 s is dead air; the music between is not
    assert [(d.start_ms, d.end_ms) for d in m.dead_air] == [(25000, 30000)]
    counted = compute_metrics(r, options=MetricsOptions(hold_is_not_dead_air=False))
    assert [(d.start_ms, d.end_ms) for d in counted.dead_air] == [(2000, 30000)]


def test_overlaps_who_started_and_interruptions():
    m = compute_metrics(two_party())
    assert m.overlap_measurable
    assert len(m.overlaps) == 1
    o = m.overlaps[0]
    assert (o.start_ms, o.end_ms, o.interrupter, o.interrupted) == (3000, 4000, "customer", "agent")
    assert (o.interrupter_segment_id, o.interrupted_segment_id) == ("s0002", "s0001")
    assert o.interruption and m.interruptions == 1
    assert m.role("customer").interruptions == 1 and m.role("agent").interruptions == 0
    short = make_result([seg("agent", 0, 4000, "x"), seg("customer", 3700, 5000, "嗯")], duration_ms=5000)
    ms = compute_metrics(short)
    assert len(ms.overlaps) == 1 and not ms.overlaps[0].interruption and ms.interruptions == 0


def test_touching_segments_do_not_overlap_and_clipping_at_call_edges():
    r = make_result([seg("agent", 0, 3000, "a"), seg("customer", 3000, 6000, "b"),
                     seg("agent", 5500, 7000, "c")], duration_ms=6500)  # last segment runs past the end
    m = compute_metrics(r)
    assert [(o.start_ms, o.end_ms) for o in m.overlaps] == [(5500, 6000)]
    assert m.talk_ms == 6500 and m.non_talk_ms == 0
    assert m.role("agent").talk_ms == 3000 + 1000


def test_mono_has_no_overlaps():
    r = make_result([seg("unknown", 0, 4000, "a"), seg("unknown", 3000, 6000, "b")], stereo=False)
    m = compute_metrics(r)
    assert not m.overlap_measurable and m.overlaps == () and m.interruptions == 0
    assert m.agent_talk_ratio is None
    assert m.role("unknown").talk_ms == 6000


def test_empty_call():
    m = compute_metrics(make_result([], duration_ms=0))
    assert m.duration_ms == 0 and m.talk_ms == 0 and m.agent_talk_ratio is None
    assert m.hold_share is None and m.leading_silence_ms is None and m.longest_monologue is None
    assert m.role("agent").emotion is None and m.role("agent").emotion_quarters == ()
    silent = compute_metrics(make_result([], duration_ms=10000))
    assert silent.non_talk_ms == 10000 and silent.dead_air == ()
    assert silent.role("customer").emotion_quarters == (None, None, None, None)


def test_one_speaker():
    r = make_result([seg("agent", 0, 5000, "您好"), seg("agent", 6000, 9000, "喂")], duration_ms=10000)
    m = compute_metrics(r)
    assert m.agent_talk_ratio == 1.0
    assert m.first_response_ms is None and m.first_agent_speech_ms == 0
    assert m.longest_monologue.segment_ids == ("s0001", "s0002")
    assert m.longest_monologue.duration_ms == 9000


def test_first_response_and_monologue():
    r = make_result([seg("customer", 1000, 3000, "喂"), seg("agent", 4500, 6000, "您好"),
                     seg("customer", 6000, 20000, "a"), seg("customer", 21000, 30000, "b")], duration_ms=30000)
    m = compute_metrics(r)
    assert m.first_agent_speech_ms == 4500
    assert m.first_response_ms == 1500
    assert m.longest_monologue.role == "customer"
    assert (m.longest_monologue.start_ms, m.longest_monologue.end_ms) == (6000, 30000)


def test_speech_rate_units():
    r = make_result([seg("agent", 0, 6000, "您好，请问有什么可以帮您？", language="zh"),  # 11 chars in 6 s
                     seg("customer", 6000, 12000, "I want a refund please", language="en"),  # 5 words
                     seg("customer", 12000, 15000, "我的iPhone坏了")],  # no language: 4 CJK + 1 word
                    duration_ms=15000)
    m = compute_metrics(r)
    by_id = {s.segment_id: s for s in m.segments}
    assert by_id["s0001"].rate_unit == "chars_per_min" and by_id["s0001"].speech_rate == pytest.approx(110)
    assert by_id["s0002"].rate_unit == "words_per_min" and by_id["s0002"].speech_rate == pytest.approx(50)
    assert by_id["s0003"].units == 5 and by_id["s0003"].speech_rate == pytest.approx(100)
    assert m.role("customer").words_per_min == pytest.approx(50)
    assert m.role("customer").chars_per_min == pytest.approx(100)
    assert m.role("agent").words_per_min is None


def test_loudness_scale_and_spikes():
    segs = [seg("agent", i * 2000, i * 2000 + 1500, "好", level_dbfs=-30.0, peak_dbfs=-10.0) for i in range(4)]
    segs.append(seg("agent", 9000, 10000, "喂！", level_dbfs=-12.0, peak_dbfs=-1.0))
    segs.append(seg("customer", 10000, 11000, "a"))  # no level: None, not a crash
    m = compute_metrics(make_result(segs, duration_ms=12000))
    agent = m.role("agent")
    assert agent.loudness_spikes == ("s0005",)
    assert agent.peak_dbfs == -1.0
    assert -30 < agent.level_dbfs < -12
    assert m.role("customer").level_dbfs is None and m.role("customer").loudness is None
    by_id = {s.segment_id: s for s in m.segments}
    assert by_id["s0001"].loudness == pytest.approx(50.0)  # -30 dBFS on a -60..0 scale
    assert by_id["s0005"].loudness == pytest.approx(80.0)


def test_emotion_per_role_quarters_and_trend():
    # 40 s call: customer happy in Q1, neutral Q2, angry Q4 -> worsening
    r = make_result([seg("customer", 0, 5000, "a", emotion_="happy"),
                     seg("customer", 10000, 15000, "b", emotion_="neutral"),
                     seg("customer", 32000, 38000, "c", emotion_="angry"),
                     seg("agent", 5000, 9000, "d", asr_emotion="HAPPY")],  # SenseVoice tag only
                    duration_ms=40000)
    m = compute_metrics(r)
    cust = m.role("customer")
    q = cust.emotion_quarters
    assert len(q) == 4 and q[2] is None
    assert q[0].dominant == "happy" and q[1].dominant == "neutral" and q[3].dominant == "angry"
    assert cust.emotion_trend == "worsening"
    assert cust.emotion.scores[0] == pytest.approx(6 / 16)  # angry share, duration-weighted
    assert m.role("agent").emotion.dominant == "happy"
    assert m.role("agent").emotion_trend is None  # one quarter only


def test_segment_spanning_quarters_is_weighted_by_overlap():
    r = make_result([seg("customer", 8000, 12000, "a", emotion_="sad")], duration_ms=40000)
    q = compute_metrics(r).role("customer").emotion_quarters
    assert q[0].dominant == "sad" and q[1].dominant == "sad" and q[2] is None and q[3] is None
