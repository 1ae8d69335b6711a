"""The Dashboard tab: heat map (emotions and events), daily trends, agent profiles, script effectiveness
and one agent before/after a date, each a chart with its PNG and CSV to download.

The data comes from :meth:`callsense.service.calls.Calls.board` (the store's aggregates over the per-day
rollups); the pictures from :mod:`callsense.ui.charts`. The tab loads when it is opened and on Refresh.
Downloads are written under the service's UI temp folder (``DATA/ui-tmp/dashboard/``), which the privacy
sweep empties after an hour (docs/privacy.md).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from callsense.errors import CallsenseError

log = logging.getLogger("callsense")

GROUPS = {"category": "类别 Category", "queue": "队列 Queue", "team": "团队 Team", "agent_id": "坐席 Agent"}
CHARTS = (("heatmap", "情绪 × 类别热力图 Emotion × category heat map (events included)"),
          ("trends", "每日趋势 Daily trends"),
          ("agents", "坐席画像 Agent profiles"),
          ("script", "话术效果 Script effectiveness"))
# the charts at their own aspect ratio (Gradio's image box would crop a wide heat map)
CSS = """
.cs-chart .image-container,.cs-chart .image-frame{height:auto!important;width:100%}
.cs-chart img{width:100%!important;height:auto!important;max-height:none!important;object-fit:contain!important}
"""
RULE_HEADERS = ["规则 Rule", "名称 Name", "类别 Category", "级别 Severity", "命中 Hits", "通话 Calls"]


def _files(service: Any, chart: Any) -> tuple[str, list[str]]:
    """Write the chart's PNG and CSV into a fresh folder of the UI temp dir; (png path, [png, csv])."""
    root = Path(service.settings.ui_temp_dir) / "dashboard"
    root.mkdir(parents=True, exist_ok=True)
    d = Path(tempfile.mkdtemp(dir=root))
    png, csv = d / f"callsense_{chart.name}.png", d / f"callsense_{chart.name}.csv"
    png.write_bytes(chart.png)
    csv.write_text(chart.csv, encoding="utf-8-sig")  # with a BOM: spreadsheet programs read the Chinese right
    return str(png), [str(png), str(csv)]


def load_dashboard(service: Any, by: str | None, date_from: str | None, date_to: str | None) -> list[Any]:
    """The four charts (image, downloads each), the rule table and a status line."""
    from callsense.ui import charts

    by = by or "category"
    window = {"date_from": (date_from or "").strip() or None, "date_to": (date_to or "").strip() or None}
    try:
        heat = service.calls.board("heatmap", by=by, **window)
        trends = service.calls.board("trends", **window)
        agents = service.calls.board("agents", **window)
        script = service.calls.board("script", **window)
        rules = service.calls.board("rules", **window)
    except CallsenseError as e:
        raise gr.Error(f"{e.code}: {e}") from None
    out: list[Any] = []
    for chart in (charts.heatmap(heat, GROUPS.get(by, by)), charts.trends(trends), charts.agents(agents),
                  charts.script(script)):
        png, files = _files(service, chart)
        out += [png, files]
    out.append([list(r) for r in rules.rows])
    n = sum(trends.column("calls"))
    span = f"{window['date_from'] or '…'} – {window['date_to'] or '…'}"
    out.append(f'<span id="cs-dash-status">{n} 通话 calls · {span}</span>')
    return out


def load_before_after(service: Any, agent: str | None, day: str | None, days: Any) -> list[Any]:
    """The before/after chart; an empty agent or date is filled in (the agent with most calls, the middle
    day of the stored calls) so that the chart is never blank on opening."""
    from callsense.ui import charts

    agent, day = (agent or "").strip(), (day or "").strip()
    try:
        if not agent:
            rows = sorted(service.calls.board("agents").to_dicts(), key=lambda r: (-r["calls"], r["agent_id"]))
            agent = rows[0]["agent_id"] if rows else ""
        if not day:
            stored = service.calls.board("trends").column("day")
            day = stored[len(stored) // 2] if stored else ""
        if not agent or not day:
            return [None, [], agent, day]
        table = service.calls.board("before_after", agent_id=agent, day=day, days=int(days) if days else None)
    except (CallsenseError, ValueError) as e:
        raise gr.Error(f"{getattr(e, 'code', 'usage_error')}: {e}") from None
    png, files = _files(service, charts.before_after(table, agent, day))
    return [png, files, agent, day]


def _chart(name: str, title: str) -> list[Any]:
    """A chart's image (titled inside the picture; its buttons: download and full screen, no share) and its PNG + CSV files."""
    return [gr.Image(label=title, show_label=False, type="filepath", interactive=False, buttons=["download", "fullscreen"],
                     elem_id=f"cs-chart-{name}", elem_classes=["cs-chart"]),
            gr.File(label="下载 Download PNG · CSV", file_count="multiple", interactive=False,
                    elem_id=f"cs-dl-{name}")]


def build_dashboard_tab(service: Any) -> Any:
    """The tab, built inside the caller's ``gr.Tabs``; returns it."""
    with gr.Tab("看板 Dashboard", id="dashboard") as tab:
        with gr.Row():
            by = gr.Dropdown(list(GROUPS), value="category", label="热力图维度 Heat map by", elem_id="cs-dash-by")
            d_from = gr.Textbox(label="起始 From (YYYY-MM-DD)", max_lines=1, elem_id="cs-dash-from")
            d_to = gr.Textbox(label="截止 To (YYYY-MM-DD, 含 inclusive)", max_lines=1, elem_id="cs-dash-to")
            refresh = gr.Button("刷新 Refresh", variant="primary", elem_id="cs-dash-refresh")
        status = gr.HTML()
        outputs: list[Any] = []
        for row in (CHARTS[:1], CHARTS[1:2], CHARTS[2:]):  # the wide ones alone, the profiles side by side
            with gr.Row():
                for name, title in row:
                    with gr.Column():
                        outputs += _chart(name, title)
        gr.Markdown("**规则命中 Rule hits**")
        rules = gr.Dataframe(headers=RULE_HEADERS, interactive=False, elem_id="cs-dash-rules")
        gr.Markdown("**坐席前后对比 One agent before / after a date** (培训、新话术 training, a new script)")
        with gr.Row():
            agent = gr.Textbox(label="坐席 Agent id (空: 通话最多的 empty: most calls)", max_lines=1,
                               elem_id="cs-ba-agent")
            day = gr.Textbox(label="日期 Date (YYYY-MM-DD)", max_lines=1, elem_id="cs-ba-day")
            days = gr.Number(label="每侧天数 Days each side (0: 全部 all)", value=0, precision=0, minimum=0)
            compare = gr.Button("对比 Compare", elem_id="cs-ba-compare")
        ba_img, ba_files = _chart("before_after", "前后对比 Before / after")

        def main(by_, from_, to_):
            return load_dashboard(service, by_, from_, to_)

        def ba(agent_, day_, days_):
            return load_before_after(service, agent_, day_, days_)

        main_io = ([by, d_from, d_to], [*outputs, rules, status])
        ba_io = ([agent, day, days], [ba_img, ba_files, agent, day])
        for event in (tab.select, refresh.click):  # loads when opened, not only on Refresh
            event(main, *main_io).then(ba, *ba_io)
        compare.click(ba, *ba_io)
    return tab
