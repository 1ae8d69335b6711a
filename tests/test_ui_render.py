"""The web UI's pure renderers: the rules table, search-hit highlighting, the transcript's times."""

from __future__ import annotations

from callsense.rules import default_ruleset
from callsense.rules.loader import default_scorecard, load_ruleset_text
from callsense.ui.rules_view import HEADERS, condition_summary, points_text, rules_rows, rules_table_html


def test_rules_rows_cover_every_default_rule_with_points_and_suggestions():
    rs = default_ruleset()
    rows = rules_rows(rs, default_scorecard())
    assert [r[0] for r in rows] == [r.id for r in rs.rules]
    assert all(len(r) == len(HEADERS) for r in rows)
    by_id = {r[0]: r for r in rows}
    complaint = by_id["risk.complaint"]
    assert complaint[2] == "critical"
    assert complaint[3].startswith("[customer] 1 keywords(words: [投诉,") and complaint[3].endswith("(1 && 2) || 3")
    assert "…(+" in complaint[3]  # long word lists are shortened
    assert complaint[4] == "risk.complaint: 10 (fail_if_hit)"
    assert complaint[5].startswith("非常抱歉") and " / I'm very sorry" in complaint[5]
    assert by_id["agent.forbidden_phrases"][4] == "service.etiquette: 20 (deduct) · -20"
    assert by_id["call.invalid"][4] == "not scored 不计分"


def test_condition_summary_shows_only_what_differs_from_the_defaults():
    rs = load_ruleset_text("""\
rules:
  - id: t.one
    name: one
    conditions:
      1: {type: segment_count, above: 0}
""")
    rule = rs.rules[0]
    assert condition_summary(rule) == "1 segment_count(above: 0)"
    assert points_text(rule, {}) == "–"
    html = rules_table_html(rules_rows(rs))
    assert 'data-rule="t.one"' in html and "segment_count(above: 0)" in html


def test_rules_table_escapes_text():
    html = rules_table_html([["<x>", "a&b", "info", "1 c", "–", ""]])
    assert "<x>" not in html and "&lt;x&gt;" in html and "a&amp;b" in html


def test_search_hits_are_highlighted_and_link_to_their_call():
    from callsense.ui.app import highlighted, search_html

    assert highlighted("我要退款<b>", [[2, 4]]) == '我要<mark class="cs-mark">退款</mark>&lt;b&gt;'
    assert highlighted("abcabc", [[3, 6], [0, 3]]) == '<mark class="cs-mark">abc</mark><mark class="cs-mark">abc</mark>'
    html = search_html([{"call_id": "c 1", "filename": "x.wav", "start_ms": 1000, "end_ms": 2500, "role": "customer",
                         "emoji": "😠", "emotion": "angry", "text": "我要退款", "spans": [[2, 4]]}])
    assert 'href="?call=c%201"' in html and "0:01–0:02" in html
    assert "«" not in html and '<mark class="cs-mark">退款</mark>' in html
    assert "No matches" in search_html([])


def test_a_hit_shows_its_suggested_reply_and_its_review_clip():
    """The Analyze and Calls pages render hits with hits_html: the default pack's suggestion (zh and en) and a
    player for the hit's window, cut by the clip route with the page's token."""
    from callsense.rules import apply_qa
    from callsense.testing.results import make_result, seg
    from callsense.ui.app import hits_html

    r = apply_qa(make_result([seg("customer", 0, 5000, "你好我想问一下订单", emotion_="happy"),
                              seg("customer", 40000, 45000, "什么意思你们太过分了", emotion_="angry")],
                             duration_ms=60000, call_id="c-1"))
    hit = next(h for h in r.rule_hits if h.rule_id == "emotion.turn")
    html = hits_html(r, token="tok")
    assert hit.suggestion.zh in html and hit.suggestion.en.replace("'", "&#x27;") in html
    start, end = hit.window()
    assert f"/v1/calls/c-1/clip?start_ms={start}&amp;end_ms={end}&amp;token=tok" in html
    assert "cs-clip-audio" not in hits_html(r)  # no token (no signed audio): no player
