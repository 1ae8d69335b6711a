"""The scorecard breakdown wherever a score is shown: CLI table, HTML report (with review clips and
suggested replies), and the not-scored state of an invalid call."""

from __future__ import annotations

import io
import wave

import numpy as np
from rich.console import Console

from callsense.cli.render import print_call
from callsense.pipeline.outputs import write_wav
from callsense.report import render_html
from callsense.report.breakdown import breakdown
from callsense.rules import apply_qa
from callsense.testing.results import make_result, seg

MONO_CALM = [seg("agent", 0, 4000, "喂你好这边是客服中心", emotion_="happy"),
             seg("customer", 4500, 9000, "好的没问题谢谢你啊", emotion_="happy")]  # no scripted greeting


def test_lost_greeting_is_a_row_with_its_reason():
    r = apply_qa(make_result(MONO_CALM, duration_ms=10000))
    rows = {row.item: row for row in breakdown(r)}
    g = rows["Scripted greeting"]
    assert g.status == "lost" and g.lost == 10 and "agent.greeting" in g.reason and "not found" in g.reason
    assert all(row.status in ("earned", "lost", "na") for row in rows.values())
    assert sum(row.points for row in rows.values()) == r.score.score


def text_of(result):
    buf = io.StringIO()
    print_call(Console(file=buf, width=240), result, None)
    return buf.getvalue()


def test_cli_table_shows_items_points_and_suggestions():
    r = apply_qa(make_result(MONO_CALM, duration_ms=10000))
    out = text_of(r)
    assert "Scripted greeting" in out and "0/10" in out and "not found" in out
    assert f"{r.score.normalized:.0f}/100" in out
    complaint = apply_qa(make_result([seg("customer", 0, 6000, "你们再不发货我就投诉", emotion_="angry")],
                                     duration_ms=8000))
    assert "建议话术" in text_of(complaint) and "escalate" in text_of(complaint)
    empty = text_of(apply_qa(make_result([], duration_ms=30000)))
    assert "not scored" in empty and "/100" not in empty


def test_html_report_breakdown_suggestion_and_playable_clip(tmp_path):
    segs = [seg("customer", 0, 5000, "你好我想问一下订单", emotion_="happy"),
            seg("agent", 6000, 20000, "这个不能退的哦亲", emotion_="neutral"),
            seg("customer", 40000, 45000, "什么意思你们太过分了", emotion_="angry")]
    r = apply_qa(make_result(segs, duration_ms=60000))
    audio = tmp_path / "audio_16k.wav"
    write_wav(audio, [np.zeros(60 * 16000, np.float32)] * 2)
    html = render_html(r, audio=audio)
    assert 'id="breakdown"' in html and "Scripted greeting" in html and "失分 lost" in html
    assert "建议话术 Suggested reply" in html
    assert '<audio class="clip" controls' in html and 'data-rule="emotion.turn"' in html
    assert "data:audio/wav;base64," in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<audio" not in render_html(r)  # no audio kept: no players, the report still renders
    empty = render_html(apply_qa(make_result([], duration_ms=30000)))
    assert "NOT SCORED" in empty and "search --invalid" in empty and 'id="breakdown"' not in empty


def test_clip_in_the_report_is_the_hits_window():
    import base64
    import re

    segs = [seg("customer", 0, 5000, "你好我想问一下订单", emotion_="happy"),
            seg("customer", 40000, 45000, "什么意思你们太过分了", emotion_="angry")]
    r = apply_qa(make_result(segs, duration_ms=60000))
    hit = next(h for h in r.rule_hits if h.rule_id == "emotion.turn")
    start, end = hit.window()
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        audio = Path(d) / "a.wav"
        write_wav(audio, np.zeros(60 * 16000, np.float32))
        html = render_html(r, audio=audio)
    data = re.search(r'data-rule="emotion.turn" src="data:audio/wav;base64,([^"]+)"', html).group(1)
    with wave.open(io.BytesIO(base64.b64decode(data))) as w:
        assert w.getnframes() == (end - start) * 16


def test_an_item_no_rule_feeds_says_so():
    from callsense.rules import load_ruleset_text

    pack = load_ruleset_text("""
ruleset: {id: t, version: "1", name: t}
rules:
  - id: t.spoke
    version: "1"
    name: spoke
    category: test
    conditions:
      1: {type: segment_count, above: 0}
    consequence: {severity: warning}
""")
    r = apply_qa(make_result(MONO_CALM, duration_ms=10000), ruleset=pack)
    rows = breakdown(r)
    assert rows and all(row.status == "na" for row in rows)
    assert {row.reason for row in rows} == {"not applicable (no rule of the rule set is bound to this item)"}
