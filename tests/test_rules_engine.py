"""The rule language: expressions, windows, condition types, scorecards, history, and properties."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import HealthCheck, given, settings

from callsense.rules import (
    CallSummary,
    EmotionShare,
    apply_qa,
    default_ruleset,
    expr,
    load_ruleset_text,
    load_scorecard_text,
)
from callsense.rules.evaluate import evaluate, evaluate_outcomes
from callsense.rules.scorecard import score_call
from callsense.testing.results import event, hypothesis_results, make_result, seg


def rules(body: str):
    return load_ruleset_text(textwrap.dedent(body))


def one(condition: str, *, scope: str = "", expression: str | None = None):
    """A one-rule set with ``condition`` as condition 1 (YAML flow mapping)."""
    text = f"rules:\n  - id: r\n    name: R\n    conditions:\n      1: {condition}\n"
    if scope:
        text += f"    scope: {scope}\n"
    if expression:
        text += f"    expression: \"{expression}\"\n"
    return load_ruleset_text(text)


def fired(ruleset, result) -> bool:
    return bool(evaluate(result, ruleset))


# ------------------------------------------------------------------------------------ expressions
@pytest.mark.parametrize("text,values,expected", [
    ("1 && (2 || !3)", {1: True, 2: False, 3: False}, True),
    ("1 && (2 || !3)", {1: True, 2: False, 3: True}, False),
    ("1 || 2 && 3", {1: False, 2: True, 3: False}, False),
    ("!(1 || 2)", {1: False, 2: False}, True),
    ("1 and not 2", {1: True, 2: False}, True),
    ("!!1", {1: True}, True),
])
def test_expressions(text, values, expected):
    assert expr.evaluate(expr.parse(text), values) is expected


@pytest.mark.parametrize("text,column", [("1 &&", 4), ("1 & 2", 2), ("(1 || 2", 7), ("1 2", 2), ("1 && x", 5)])
def test_expression_errors_carry_the_column(text, column):
    with pytest.raises(expr.ExprSyntaxError) as e:
        expr.parse(text)
    assert e.value.column == column


def test_support_explains_what_made_it_true():
    tree = expr.parse("1 && (2 || !3)")
    assert expr.support(tree, {1: True, 2: True, 3: True}) == ({1, 2}, set())
    assert expr.support(tree, {1: True, 2: False, 3: False}) == ({1}, {3})


# ----------------------------------------------------------------------------------------- windows
def test_first_and_last_windows():
    r = make_result([seg("agent", 0, 2000, "您好"), seg("agent", 50000, 52000, "再见")], duration_ms=60000)
    assert fired(one("{type: keywords, words: [您好]}", scope="{window: {first_s: 10}}"), r)
    assert not fired(one("{type: keywords, words: [再见]}", scope="{window: {first_s: 10}}"), r)
    assert fired(one("{type: keywords, words: [再见]}", scope="{window: {last_segments: 1}}"), r)
    assert not fired(one("{type: keywords, words: [您好]}", scope="{window: {share: [0.5, 1.0]}}"), r)


def test_min_chars_ignores_short_segments():
    r = make_result([seg("customer", 0, 1000, "退款"), seg("customer", 2000, 4000, "嗯嗯")])
    assert fired(one("{type: keywords, words: [退款]}"), r)
    assert not fired(one("{type: keywords, words: [退款]}", scope="{min_chars: 3}"), r)


def test_around_window_needs_its_anchor():
    rs = rules("""
        rules:
          - id: r
            name: R
            conditions:
              1: {type: keywords, words: [投诉], role: customer}
              2: {type: keywords, words: [抱歉], role: agent, window: {around: 1, seconds: 10}}
            expression: "1 && !2"
    """)
    no_apology = make_result([seg("customer", 0, 3000, "我要投诉"), seg("agent", 4000, 6000, "好的")])
    apology = make_result([seg("customer", 0, 3000, "我要投诉"), seg("agent", 4000, 6000, "非常抱歉")])
    late = make_result([seg("customer", 0, 3000, "我要投诉"), seg("agent", 30000, 32000, "非常抱歉")])
    assert fired(rs, no_apology) and not fired(rs, apology) and fired(rs, late)
    # evidence of a hit that rests on an absence: the customer's words, then nothing else needed
    hit = evaluate(no_apology, rs)[0]
    assert hit.evidence[0].segment_id == "s0001"


# ---------------------------------------------------------------------------------------- keywords
def test_keyword_modes():
    r = make_result([seg("agent", 0, 3000, "您好 欢迎致电 请问有什么可以帮您")])
    assert fired(one("{type: keywords, words: [您好, 帮您], match: all, in_order: true}"), r)
    assert not fired(one("{type: keywords, words: [帮您, 您好], match: all, in_order: true}"), r)
    assert fired(one("{type: keywords, words: [您好, 欢迎], match: all, within: 4}"), r)
    assert not fired(one("{type: keywords, words: [您好, 帮您], match: all, within: 5}"), r)
    assert fired(one("{type: keywords, words: [您好, 再见, 欢迎], at_least: 2}"), r)
    assert not fired(one("{type: keywords, words: [您好, 再见, 拜拜], at_least: 2}"), r)
    assert fired(one("{type: keywords, words: [再见], match: none}"), r)
    assert not fired(one("{type: keywords, words: [您好], match: none}"), r)


def test_english_keywords_are_case_insensitive_whole_words():
    r = make_result([seg("customer", 0, 3000, "I want a REFUND", language="en")])
    assert fired(one("{type: keywords, words: [refund]}"), r)
    assert not fired(one("{type: keywords, words: [fun]}"), r)


def test_regex_with_exclusion():
    r = make_result([seg("customer", 0, 3000, "订单号 12345678"), seg("customer", 4000, 6000, "测试 87654321")])
    hits = evaluate(r, one(r"{type: regex, pattern: '\d{8}', exclude: '测试'}"))
    assert [e.text for e in hits[0].evidence] == ["12345678"]


def test_similarity_and_repetition():
    r = make_result([seg("agent", 0, 3000, "您好很高兴为您服务。"), seg("customer", 4000, 6000, "喂喂。喂喂。喂喂")])
    assert fired(one("{type: similarity, examples: [您好，很高兴为您服务], min_similarity: 0.9}"), r)
    assert not fired(one("{type: similarity, examples: [感谢您的来电再见], min_similarity: 0.8}"), r)
    assert fired(one("{type: repetition, min_repeats: 3, min_length: 2}"), r)
    assert not fired(one("{type: repetition, min_repeats: 3, min_length: 3}"), r)


# ------------------------------------------------------------------------ acoustic and timing types
def test_speech_rate_loudness_talk_ratio_duration():
    fast = make_result([seg("agent", 0, 3000, "这个问题您需要先去我们官网上面登录然后点击退款申请", language="zh",
                            level_dbfs=-8.0)], duration_ms=4000)  # 25 chars in 3 s = 500/min
    assert fired(one("{type: speech_rate, above: 350}"), fast)
    assert not fired(one("{type: speech_rate, above: 500}"), fast)
    assert not fired(one("{type: speech_rate, unit: words_per_min, above: 10}"), fast)
    assert fired(one("{type: speech_rate, per: role, below: 501}"), fast)
    assert fired(one("{type: loudness, above_dbfs: -10}"), fast)
    assert not fired(one("{type: loudness, above_dbfs: -5}"), fast)
    assert fired(one("{type: talk_ratio, above: 0.8}", scope="{role: agent}"), make_result(
        [seg("agent", 0, 9000, "a"), seg("customer", 9000, 10000, "b")]))
    assert fired(one("{type: duration, below_s: 5}"), fast)
    assert not fired(one("{type: duration, above_s: 5}"), fast)


def test_silence_kinds():
    r = make_result([seg("agent", 8000, 10000, "喂")], duration_ms=30000)
    assert fired(one("{type: silence, kind: leading, min_s: 8}"), r)
    assert fired(one("{type: silence, kind: trailing, min_s: 20}"), r)
    assert not fired(one("{type: silence, kind: trailing, min_s: 21}"), r)
    assert not fired(one("{type: silence, min_s: 1}"), r)  # one turn: no dead air between turns


def test_event_share_and_role():
    r = make_result([seg("agent", 0, 1000, "a")], duration_ms=10000,
                    events=[event("Laughter", 2000, 3000, role="customer"), event("BGM", 4000, 10000)])
    assert fired(one("{type: event, events: [Laughter], role: customer}"), r)
    assert not fired(one("{type: event, events: [Laughter], role: agent}"), r)
    assert fired(one("{type: event, events: [BGM], min_share: 0.6}"), r)
    assert not fired(one("{type: event, events: [BGM], min_share: 0.61}"), r)


def test_metadata_comparisons_and_missing_fields():
    r = make_result([seg("agent", 0, 1000, "a")], metadata={"queue": "vip", "wait_s": 95, "custom": {"tier": 3}})
    assert fired(one("{type: metadata, field: queue, op: in, value: [vip, gold]}"), r)
    assert fired(one("{type: metadata, field: wait_s, op: gt, value: 60}"), r)
    assert fired(one("{type: metadata, field: custom.tier, op: ge, value: 3}"), r)
    assert fired(one("{type: metadata, field: direction, op: missing}"), r)
    assert not fired(one("{type: metadata, field: direction, op: eq, value: inbound}"), r)
    outcome = evaluate_outcomes(r, one("{type: metadata, field: direction, op: eq, value: inbound}"))[0]
    assert outcome.status == "na"


def test_emotion_change_within_segments():
    r = make_result([seg("customer", 0, 2000, "a", emotion_="neutral"), seg("customer", 3000, 5000, "b",
                     emotion_="sad"), seg("customer", 6000, 8000, "c", emotion_="angry")], duration_ms=10000)
    assert fired(one("{type: emotion_change, before: [neutral], after: [angry], within_segments: 2}"), r)
    assert not fired(one("{type: emotion_change, before: [neutral], after: [angry], within_segments: 1}"), r)


def test_history_conditions():
    rs = one("{type: history, by: agent, last: 3, emotion: disgusted, min_share: 0.3}", scope="{role: customer}")
    r = make_result([seg("agent", 0, 1000, "a")], metadata={"agent_id": "A7"}, call_id="c4")

    def past(i, share, agent="A7"):
        return CallSummary(call_id=f"c{i}", started_at=f"2026-01-0{i}T10:00:00Z", agent_id=agent,
                           emotions=(EmotionShare("customer", "disgusted", share),))

    assert fired(rs, r) is False  # no history: N/A, never a hit
    assert evaluate(r, rs, history=[past(1, 0.5), past(2, 0.4), past(3, 0.6)])
    assert not evaluate(r, rs, history=[past(1, 0.5), past(2, 0.1), past(3, 0.6)])
    assert not evaluate(r, rs, history=[past(1, 0.5), past(2, 0.4), past(3, 0.6, agent="B1")])
    flagged = one("{type: history, flag: risk.complaint, last: 2}")
    hist = [CallSummary("c1", "2026-01-01", agent_id="A7", flags=("risk.complaint",)),
            CallSummary("c2", "2026-01-02", agent_id="A7", flags=("risk.complaint",))]
    assert evaluate(r, flagged, history=hist)


# -------------------------------------------------------------------------------------- scorecards
CARD = """
scorecard:
  id: t
  version: 2
  pass_score: 70
  sections:
    - id: a
      weight: 3
      items:
        - {id: greet, points: 10, rules: [greet], mode: pass_if_hit}
        - {id: rude, points: 10, rules: [rude], mode: deduct}
    - id: b
      weight: 1
      items:
        - {id: overlap, points: 10, rules: [overlap]}
"""
RULES = """
rules:
  - {id: greet, name: G, conditions: {1: {type: keywords, words: [您好]}}, scope: {role: agent}}
  - {id: rude, name: R, conditions: {1: {type: keywords, words: [滚]}}, consequence: {score_delta: -4}}
  - {id: overlap, name: O, conditions: {1: {type: talk_over, min_s: 0.5}}}
  - {id: fatal, name: F, conditions: {1: {type: keywords, words: [骗子]}}, consequence: {severity: critical}}
"""


def test_scorecard_weights_na_and_auto_fail():
    rs, card = load_ruleset_text(RULES), load_scorecard_text(CARD)
    assert card.version == "2"
    mono = make_result([seg("unknown", 0, 2000, "喂"), seg("unknown", 3000, 4000, "滚")], stereo=False)
    score = score_call(evaluate_outcomes(mono, rs), card, rs)
    items = {i.item_id: i for i in score.items}
    assert items["greet"].status == "lost"  # mono: agent rules run on the unknown speakers; nobody greets
    assert items["rude"].points == 6 and items["rude"].status == "lost"
    assert items["overlap"].status == "na" and items["overlap"].potential == 0
    assert score.potential == 20 and score.score == 6
    assert score.normalized == pytest.approx(30.0) and not score.passed  # section b is N/A: only a counts
    good = make_result([seg("agent", 0, 2000, "您好"), seg("customer", 2500, 4000, "好")])
    s2 = score_call(evaluate_outcomes(good, rs), card, rs)
    assert s2.normalized == 100 and s2.passed and not s2.auto_failed
    bad = make_result([seg("agent", 0, 2000, "您好"), seg("customer", 2500, 4000, "骗子")])
    s3 = score_call(evaluate_outcomes(bad, rs), card, rs)
    assert s3.auto_failed and not s3.passed and s3.normalized == 0 and s3.auto_fail_rules == ("fatal",)


def test_apply_qa_records_scorecard_and_rule_versions():
    out = apply_qa(make_result([seg("customer", 0, 2000, "我要投诉", emotion_="angry")]))
    hit = out.rule_hits[0]
    assert (hit.ruleset_id, hit.rule_version) == ("callsense-default", "1")
    assert (out.score.scorecard_id, out.score.scorecard_version) == ("callsense-default", "1.0")


def test_disabled_rules_do_not_run():
    rs = rules("""
        rules:
          - {id: r, name: R, enabled: false, conditions: {1: {type: duration, above_s: 0}}}
    """)
    assert evaluate_outcomes(make_result([seg("agent", 0, 1000, "a")]), rs) == ()


# -------------------------------------------------------------------------------------- properties
EVERYTHING = """
rules:
  - id: all-types
    name: every condition type at once
    conditions:
      1: {type: keywords, words: [投诉, refund], negations: [不是, not], exclude: [没问题]}
      2: {type: regex, pattern: '\\d+', exclude: 'x'}
      3: {type: similarity, examples: [您好]}
      4: {type: repetition, min_repeats: 2, min_length: 1}
      5: {type: emotion, labels: [negative], sustained_s: 1}
      6: {type: emotion_change, before: [neutral], after: [angry]}
      7: {type: event, events: [Cough, BGM], min_share: 0.1}
      8: {type: silence, min_s: 0.5}
      9: {type: talk_over, min_s: 0}
      10: {type: speech_rate, above: 10, per: role}
      11: {type: loudness, spike: true, above_dbfs: -20}
      12: {type: talk_ratio, below: 0.9}
      13: {type: duration, above_s: 1}
      14: {type: text_length, below: 1000}
      15: {type: segment_count, above: 0}
      16: {type: metadata, field: queue, op: contains, value: a}
      17: {type: history, flag: x, last: 1}
      18: {type: emotion, labels: [positive], share_below: 0.5, window: {around: 1, segments: 1}}
      19: {type: keywords, words: [您好], window: {around: 8, seconds: 3}, match: none}
      20: {type: emotion, labels: [angry], window: {last_segments: 2}, role: customer}
    expression: "1 || 2 || 3 || 4 || 5 || 6 || 7 || 8 || 9 || 10 || 11 || 12 || 13 || 14 || 15 || 16 || 17
      || 18 || !19 || 20"
"""


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hypothesis_results())
def test_evaluation_never_raises_and_evidence_points_into_the_call(result):
    rulesets = [default_ruleset(), load_ruleset_text(EVERYTHING)]
    ids = {s.id for s in result.segments}
    for rs in rulesets:
        outcomes = evaluate_outcomes(result, rs, strict=True,
                                     history=[CallSummary("old", "2026-01-01", agent_id="x", flags=("x",))])
        for o in outcomes:
            assert o.status in ("hit", "pass", "na")
            if o.hit is None:
                continue
            assert o.hit.evidence, f"{o.rule_id} hit without evidence"
            for e in o.hit.evidence:
                assert e.segment_id is None or e.segment_id in ids
                assert 0 <= e.start_ms <= e.end_ms <= result.duration_ms
                if e.span is not None:
                    text = next(s.text for s in result.segments if s.id == e.segment_id)
                    assert text[e.span[0]:e.span[1]] == e.text
    out = apply_qa(result)
    if out.score.scored:
        assert 0 <= out.score.normalized <= 100 and out.score.passed in (True, False)
    else:  # an invalid call: no score, no verdict, the reason named
        assert out.score.normalized is None and out.score.passed is None and out.score.reason
    assert out.metrics.talk_ms + out.metrics.non_talk_ms == out.metrics.duration_ms
