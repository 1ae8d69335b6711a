"""The one-page HTML report of a call: a single self-contained file (inline CSS and SVG, no scripts
or network), with the call's facts, metrics, emotion timeline, transcript, rule hits and score."""

from __future__ import annotations

import wave
from html import escape
from pathlib import Path
from typing import Any

from callsense.analysis.common import overall_emotion as mean_emotion
from callsense.errors import CallsenseError
from callsense.labels import EMOTION_BY_NAME, EMOTION_NAMES, TAG_EMOJI
from callsense.report.breakdown import STATUS_LABEL, breakdown, verdict
from callsense.report.svg import BARS_CSS, LEGEND_CSS, distribution_bars, fmt_ms, legend_html, timeline_svg

SEVERITY_COLORS = {"critical": "#c62828", "warning": "#ef6c00", "info": "#1565c0"}  # the report's and the UI's


def overall_emotion(result: Any, role: str | None = None) -> tuple[str, float, tuple[float, ...]] | None:
    """Duration-weighted mean distribution of ``role``'s segments (all segments when None):
    (top label, its score, the 9 scores), or None without emotion data."""
    scores = mean_emotion(result.segments, role)
    if scores is None:
        return None
    best = max(range(len(scores)), key=scores.__getitem__)
    return EMOTION_NAMES[best], scores[best], scores


def main_emotion(result: Any) -> tuple[str, str, float, tuple[float, ...]] | None:
    """The emotion to headline: the customer's when there is a customer, else the whole call's.
    Returns (role, label, confidence, scores)."""
    for role in ("customer", None):
        found = overall_emotion(result, role)
        if found:
            return (role or "call", *found)
    return None


def emotion_headline(label: str, confidence: float) -> str:
    """The seeds' format: ``😠 愤怒 (Angry) 置信度: 78.6%``."""
    e = EMOTION_BY_NAME[label]
    return f"{e.emoji} {e.zh} ({e.en}) 置信度 confidence: {confidence * 100:.1f}%"


def segment_tags(seg: Any) -> str:
    """Emoji of a segment's emotion and events (display only; raw tags stay in the data)."""
    parts = []
    if seg.emotion is not None:
        parts.append(EMOTION_BY_NAME[seg.emotion.label].emoji)
    elif seg.asr_emotion and seg.asr_emotion in TAG_EMOJI:
        parts.append(TAG_EMOJI[seg.asr_emotion])
    parts += [TAG_EMOJI.get(ev, f"[{ev}]") for ev in seg.asr_events]
    return " ".join(parts)


def _metric_rows(result: Any) -> list[tuple[str, str]]:
    m = result.metrics
    if m is None:
        return []
    rows: list[tuple[str, str]] = []

    def add(label: str, value: Any, fmt: str = "{}") -> None:
        if value is not None:
            rows.append((label, fmt.format(value)))

    add("Talk time 通话时长", fmt_ms(getattr(m, "talk_ms", None)) if getattr(m, "talk_ms", None) is not None else None)
    ratio = getattr(m, "agent_talk_ratio", None)
    add("Agent talk ratio 坐席说话占比", f"{ratio * 100:.0f}%" if ratio is not None else None)
    add("Dead air 静默", f"{getattr(m, 'dead_air_ms', 0) / 1000:.1f} s ({len(getattr(m, 'dead_air', ()))}×)"
        if hasattr(m, "dead_air_ms") else None)
    add("Interruptions 抢话", getattr(m, "interruptions", None) if getattr(m, "overlap_measurable", False) else None)
    fr = getattr(m, "first_response_ms", None)
    add("First response 首次响应", f"{fr / 1000:.1f} s" if fr is not None else None)
    hold = getattr(m, "hold_share", None)
    add("Hold/music 等待音乐", f"{hold * 100:.0f}%" if hold is not None else None)
    for r in getattr(m, "roles", ()):
        rate = r.chars_per_min if r.chars_per_min is not None else r.words_per_min
        unit = "chars/min" if r.chars_per_min is not None else "words/min"
        add(f"Speech rate {r.role}", f"{rate:.0f} {unit}" if rate is not None else None)
    values = getattr(m, "values", None)  # older result layout: a flat dict
    if isinstance(values, dict):
        rows += [(k, str(v)) for k, v in values.items()]
    return rows


CSS = """
body{font-family:-apple-system,"Segoe UI","Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:24px;color:#222;max-width:1000px}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:22px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;width:100%;font-size:13px} td,th{border-bottom:1px solid #eee;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#fafafa} .muted{color:#777;font-size:12px} .headline{font-size:22px;margin:8px 0}
.facts td:first-child{width:220px;color:#555} .role-agent{color:#1565c0} .role-customer{color:#c62828}
.sev{color:#fff;border-radius:3px;padding:1px 6px;font-size:12px} .score{font-size:28px;font-weight:600}
.pass{color:#2e7d32} .fail{color:#c62828} .evidence{font-size:12px;color:#444;margin:2px 0 0 10px}
.notscored{color:#6d4c41} tr.lost td{background:#fff5f5} tr.na td{color:#999}
.suggestion{font-size:12px;margin:4px 0 0 10px;padding:4px 6px;background:#f1f8e9;border-left:3px solid #7cb342}
audio.clip{height:28px;margin:4px 0 0 10px;vertical-align:middle}
""" + BARS_CSS + LEGEND_CSS


def score_section(result: Any) -> str:
    """The score headline and the scorecard breakdown: every item, its points won or lost and why."""
    sc = result.score
    if sc is None:
        return '<p class="muted">No scorecard was applied.</p>'
    if not sc.scored:
        return (f'<div class="score notscored" id="score">不计分 NOT SCORED</div>'
                f'<div class="muted">{escape(sc.reason or "")} · listed in the discard view '
                f'(<code>callsense search --invalid</code>)</div>')
    cls = "pass" if sc.passed else "fail"
    rows = "".join(
        f'<tr class="{r.status}"><td>{escape(r.section)}</td><td>{escape(r.item)}</td>'
        f'<td>{escape(STATUS_LABEL[r.status])}</td>'
        f'<td>{"–" if r.status == "na" else f"{r.points:g} / {r.potential:g}"}</td>'
        f'<td>{escape(r.reason)}</td></tr>' for r in breakdown(result))
    table = ('<table class="breakdown" id="breakdown"><tr><th>Section 部分</th><th>Item 项目</th><th>Status 状态</th>'
             f'<th>Points 分数</th><th>Why 原因</th></tr>{rows}</table>') if rows else ""
    return (f'<div class="score {cls}" id="score">{escape(verdict(result))}</div>'
            f'<div class="muted">scorecard {escape(sc.scorecard_id)} v{escape(str(sc.scorecard_version))}'
            f' · {sc.score:g} of {sc.potential:g} points</div>{table}')


def suggestion_html(hit: Any) -> str:
    s = getattr(hit, "suggestion", None)
    if s is None:
        return ""
    return (f'<div class="suggestion"><b>建议话术 Suggested reply</b>: {escape(s.zh)}'
            f'{"<br>" + escape(s.en) if s.en else ""}</div>')


def _clip_html(hit: Any, audio: Path | None) -> str:
    """An embedded player for the hit's review window (a data: URI: the report stays one offline file)."""
    if audio is None:
        return ""
    from callsense.report.clips import MAX_CLIP_MS, cut_clip, data_uri

    window = hit.window(MAX_CLIP_MS)
    if window is None:
        return ""
    try:
        clip = cut_clip(audio, *window)
    except (CallsenseError, OSError, EOFError, wave.Error):  # audio gone or shorter than the result: still render
        return ""
    return (f'<div><audio class="clip" controls preload="none" data-rule="{escape(hit.rule_id)}" '
            f'src="{data_uri(clip)}"></audio> <span class="muted">review clip {fmt_ms(window[0])}–'
            f'{fmt_ms(window[1])}</span></div>')


def render_html(result: Any, audio: str | Path | None = None) -> str:
    """The report as one HTML string. With ``audio`` (the call's processed ``audio_16k.wav``), every hit
    with a time window gets an embedded review clip."""
    audio = Path(audio) if audio is not None and Path(audio).is_file() else None
    src = result.source
    meta = result.metadata or {}
    e = main_emotion(result)
    headline = ""
    if e:
        role, label, conf, scores = e
        headline = (f'<div class="headline" id="main-emotion">{escape(emotion_headline(label, conf))} '
                    f'<span class="muted">({escape(role)})</span></div>{distribution_bars(scores)}')
    score_html = score_section(result)
    facts = [
        ("Call id", result.call_id), ("File 文件", meta.get("filename") or src.name),
        ("Duration 时长", f"{result.duration_ms / 1000:.1f} s"),
        ("Audio 音频", f"{src.container or '?'} / {src.codec or '?'}, {src.sample_rate} Hz, {src.channels} ch"
                     + (" (narrowband)" if src.narrowband else "")),
        ("Roles 角色", ", ".join(f"ch{i}={r}" for i, r in enumerate(result.separation.channel_map))),
        ("Languages 语言", ", ".join(sorted({s.language for s in result.segments if s.language})) or "–"),
        ("Analysed 分析时间", result.processing.started_at),
        ("Models 模型", ", ".join(f"{m.name} ({m.runtime})" for m in result.processing.models) or "–"),
    ]
    facts += [(f"meta: {k}", str(v)) for k, v in meta.items() if k != "filename"]
    fact_rows = "".join(f"<tr><td>{escape(k)}</td><td>{escape(str(v))}</td></tr>" for k, v in facts)
    metric_rows = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in _metric_rows(result))
    seg_rows = "".join(
        f'<tr id="{escape(s.id)}"><td>{fmt_ms(s.start_ms)}–{fmt_ms(s.end_ms)}</td>'
        f'<td class="role-{escape(s.role)}">{escape(s.role)}</td><td>{escape(s.language or "")}</td>'
        f'<td>{escape(segment_tags(s))}</td><td>{escape(s.text or "")}</td></tr>' for s in result.segments)
    hits = []
    for h in result.rule_hits:
        ev = "".join(f'<div class="evidence">{fmt_ms(x.start_ms)}–{fmt_ms(x.end_ms)} '
                     f'{escape(x.segment_id or "")} {escape(("“" + x.text + "”") if x.text else "")} '
                     f'{escape(x.note or "")}</div>' for x in h.evidence)
        color = SEVERITY_COLORS.get(h.severity, "#555")
        hits.append(f'<tr><td><span class="sev" style="background:{color}">{escape(h.severity)}</span></td>'
                    f'<td><b>{escape(h.name)}</b> <span class="muted">{escape(h.rule_id)} · {escape(h.category)}'
                    f'</span>{ev}{suggestion_html(h)}{_clip_html(h, audio)}</td><td>{h.score_delta:+g}</td></tr>')
    hits_html = (f"<table><tr><th>Severity</th><th>Rule 规则 / evidence 证据</th><th>Score</th></tr>{''.join(hits)}"
                 "</table>") if hits else '<p class="muted">No rule hits 无规则命中.</p>'
    timings = ", ".join(f"{k} {v:.0f} ms" for k, v in result.processing.timings_ms.items())
    warnings = "".join(f"<li>{escape(w)}</li>" for w in result.processing.warnings)
    skipped = "".join(f"<li>{escape(s.feature)}: {escape(s.reason)}</li>" for s in result.processing.skipped)
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>callsense report {escape(result.call_id)}</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}</style></head>
<body>
<h1>Call report 通话质检报告 · {escape(result.call_id)}</h1>
<div class="muted">callsense {escape(result.processing.callsense_version)} · pipeline {escape(result.processing.pipeline_version)}</div>
<h2>Score 评分</h2>{score_html}
<h2>Emotion 情绪</h2>{headline or '<p class="muted">No emotion data.</p>'}
<h2>Emotion timeline 情绪曲线</h2>{timeline_svg(result)}{legend_html()}
<h2>Rule hits 规则命中</h2>{hits_html}
<h2>Facts 通话信息</h2><table class="facts">{fact_rows}</table>
<h2>Metrics 指标</h2>{f'<table class="facts">{metric_rows}</table>' if metric_rows else '<p class="muted">No metrics.</p>'}
<h2>Transcript 转写</h2><table><tr><th>Time</th><th>Role</th><th>Lang</th><th>Tags</th><th>Text</th></tr>{seg_rows}</table>
<h2>Processing 处理日志</h2><p class="muted">{escape(timings)}</p>
{f'<ul>{warnings}</ul>' if warnings else ''}{f'<p class="muted">Skipped:</p><ul>{skipped}</ul>' if skipped else ''}
<p class="muted">Outputs of random-weight test models are meaningless; real accuracy needs the real models.</p>
</body></html>
"""
