"""Small inline-SVG and HTML plots (no plotting library): the emotion timeline per role and the
9-class distribution bars. Shared by the HTML report and the web UI."""

from __future__ import annotations

from html import escape
from typing import Any

from callsense.labels import EMOTION_NAMES, EMOTIONS, NEGATIVE_EMOTIONS, POSITIVE_EMOTIONS

COLORS: dict[str, str] = {
    "angry": "#d62728", "disgusted": "#8c564b", "fearful": "#9467bd", "happy": "#2ca02c", "neutral": "#9e9e9e",
    "other": "#bcbd22", "sad": "#1f77b4", "surprised": "#ff7f0e", "unknown": "#cfcfcf",
}
ROLE_ORDER = ("customer", "agent", "unknown")


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "–"
    s = int(ms) // 1000
    return f"{s // 60}:{s % 60:02d}"


def distribution_bars(scores: tuple[float, ...] | list[float] | dict[str, float], *, css_class: str = "cs-dist") -> str:
    """The 9 classes as labelled horizontal bars (HTML), highest first; emoji + zh + en + percent."""
    if isinstance(scores, dict):
        values = [float(scores.get(n, 0.0)) for n in EMOTION_NAMES]
    else:
        values = [float(v) for v in scores]
    rows = []
    for e, v in sorted(zip(EMOTIONS, values), key=lambda x: -x[1]):
        pct = max(0.0, min(1.0, v)) * 100
        rows.append(
            f'<div class="cs-bar-row" data-label="{e.name}">'
            f'<span class="cs-bar-label">{e.emoji} {escape(e.zh)} {escape(e.en)}</span>'
            f'<span class="cs-bar-track"><span class="cs-bar" style="width:{pct:.1f}%;background:{COLORS[e.name]}">'
            f'</span></span><span class="cs-bar-value">{pct:.1f}%</span></div>')
    return f'<div class="{css_class}">{"".join(rows)}</div>'


BARS_CSS = """
.cs-dist{font-size:13px;max-width:520px}
.cs-bar-row{display:flex;align-items:center;gap:8px;margin:3px 0}
.cs-bar-label{width:150px;white-space:nowrap}
.cs-bar-track{flex:1;background:#eee;border-radius:3px;height:14px;overflow:hidden}
.cs-bar{display:block;height:14px}
.cs-bar-value{width:52px;text-align:right;font-variant-numeric:tabular-nums}
"""


def timeline_svg(result: Any, *, width: int = 900, lane_height: int = 46) -> str:
    """Emotion over the call, one lane per role (per diarized speaker on a mono call, "S1 agent"): blocks coloured by the top emotion (opacity = its
    score), and a valence line (P(positive) − P(negative)) across each lane. Uses the emotion2vec
    timeline when there is one, else one block per segment."""
    duration = max(1, result.duration_ms)
    points = _points(result)
    roles = _lanes(result, points)
    left, top, axis_h = 80, 8, 22
    plot_w = width - left - 10
    height = top + lane_height * len(roles) + axis_h

    def x(ms: float) -> float:
        return left + plot_w * min(max(ms, 0), duration) / duration

    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="cs-timeline" viewBox="0 0 {width} {height}" '
             f'width="100%" role="img" aria-label="emotion timeline">'),
             '<style>text{font:11px sans-serif;fill:#333}</style>']
    for i, role in enumerate(roles):
        y0 = top + i * lane_height
        parts.append(f'<rect x="{left}" y="{y0}" width="{plot_w}" height="{lane_height - 6}" fill="#f6f6f6"/>')
        parts.append(f'<text x="{left - 6}" y="{y0 + lane_height / 2}" text-anchor="end">{escape(role)}</text>')
        lane = sorted((p for p in points if p["lane"] == role), key=lambda p: p["start_ms"])
        for p in lane:
            x0, x1 = x(p["start_ms"]), x(p["end_ms"])
            label = p["label"]
            opacity = 0.25 + 0.75 * p["score"]
            parts.append(f'<rect x="{x0:.1f}" y="{y0 + 2}" width="{max(1.0, x1 - x0):.1f}" height="{lane_height - 10}" '
                         f'fill="{COLORS.get(label, "#999")}" fill-opacity="{opacity:.2f}">'
                         f'<title>{fmt_ms(p["start_ms"])}–{fmt_ms(p["end_ms"])} {escape(label)} '
                         f'{p["score"]:.2f}</title></rect>')
        # valence line: +1 at the lane's top, -1 at its bottom
        if lane:
            mid, half = y0 + (lane_height - 6) / 2, (lane_height - 12) / 2
            path = " ".join(f'{"M" if j == 0 else "L"}{x((p["start_ms"] + p["end_ms"]) / 2):.1f},'
                            f'{mid - half * p["valence"]:.1f}' for j, p in enumerate(lane))
            parts.append(f'<path d="{path}" fill="none" stroke="#222" stroke-width="1.2" stroke-opacity="0.7"/>')
    y_axis = top + lane_height * len(roles)
    step = _tick_step(duration)
    t = 0
    while t <= duration:
        parts.append(f'<line x1="{x(t):.1f}" y1="{y_axis - 4}" x2="{x(t):.1f}" y2="{y_axis}" stroke="#555"/>')
        parts.append(f'<text x="{x(t):.1f}" y="{y_axis + 14}" text-anchor="middle">{fmt_ms(t)}</text>')
        t += step
    parts.append("</svg>")
    return "".join(parts)


def legend_html() -> str:
    items = "".join(f'<span class="cs-legend-item"><span style="background:{COLORS[e.name]}"></span>'
                    f'{e.emoji} {escape(e.zh)} {escape(e.en)}</span>' for e in EMOTIONS)
    return f'<div class="cs-legend">{items} <span class="cs-legend-item">— valence (positive − negative)</span></div>'


LEGEND_CSS = """
.cs-legend{font-size:12px;display:flex;flex-wrap:wrap;gap:10px;margin:4px 0}
.cs-legend-item span{display:inline-block;width:10px;height:10px;margin-right:3px;border-radius:2px}
"""


def _valence(scores: tuple[float, ...] | list[float]) -> float:
    pos = sum(s for n, s in zip(EMOTION_NAMES, scores) if n in POSITIVE_EMOTIONS)
    neg = sum(s for n, s in zip(EMOTION_NAMES, scores) if n in NEGATIVE_EMOTIONS)
    return max(-1.0, min(1.0, pos - neg))


def _lanes(result: Any, points: list[dict[str, Any]]) -> list[str]:
    speakers = getattr(getattr(result, "separation", None), "speakers", ())
    if speakers:  # diarized mono: one lane per speaker, in order of first appearance
        names = [_speaker_lane(s.speaker, s.role) for s in sorted(speakers, key=lambda s: s.speaker)]
        return [n for n in names if any(p["lane"] == n for p in points)] + sorted(
            {p["lane"] for p in points} - set(names)) or ["unknown"]
    return [r for r in ROLE_ORDER if any(p["lane"] == r for p in points)] or ["unknown"]


def _speaker_lane(speaker: int | None, role: str) -> str:
    return role if speaker is None else f"S{speaker + 1} {role}"


def _points(result: Any) -> list[dict[str, Any]]:
    out = []
    diarized = bool(getattr(getattr(result, "separation", None), "speakers", ()))
    speaker_of = {s.id: getattr(s, "speaker", None) for s in result.segments} if diarized else {}
    timeline = result.emotion.timeline if result.emotion is not None else ()
    if timeline:
        for p in timeline:
            best = max(range(len(p.scores)), key=lambda i: p.scores[i])
            out.append({"role": p.role, "lane": _speaker_lane(speaker_of.get(p.segment_id), p.role),
                        "start_ms": p.start_ms, "end_ms": p.end_ms, "label": EMOTION_NAMES[best],
                        "score": float(p.scores[best]), "valence": _valence(p.scores)})
        return out
    for s in result.segments:
        if s.emotion is None:
            continue
        out.append({"role": s.role, "lane": _speaker_lane(speaker_of.get(s.id), s.role), "start_ms": s.start_ms, "end_ms": s.end_ms, "label": s.emotion.label,
                    "score": float(s.emotion.confidence), "valence": _valence(s.emotion.scores)})
    return out


def _tick_step(duration_ms: int) -> int:
    for step in (1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000):
        if duration_ms / step <= 12:
            return step
    return 1_800_000
