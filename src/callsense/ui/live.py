"""The web UI's Live tab: calls in progress, an alert feed, and the calls that just ended.

Everything shown comes from :meth:`callsense.live.manager.LiveCalls.snapshot` (the same registry the
``/v1/live`` WebSocket feeds), polled by a ``gr.Timer`` every :data:`POLL_S` seconds, so an alert is
on screen within a second of the final that fired it. A finished call is a row of a table: selecting
it opens the call on the Calls tab. Rendering (:func:`calls_html`, :func:`alerts_html`) is pure.
"""

from __future__ import annotations

from html import escape
from typing import Any

import gradio as gr

from callsense.labels import EMOTION_BY_NAME
from callsense.report.html import SEVERITY_COLORS

POLL_S = 0.5  # the snapshot is a few dicts: polling twice a second keeps the feed under a second behind

# inline styles: the app's stylesheet (ui/app.py) stays the other tabs' business
CALL_STYLE = "border:1px solid #e5e5e5;border-radius:6px;padding:6px 10px;margin:6px 0"
SPEAKING_STYLE = "font-weight:bold;color:#2e7d32"

LABEL = "实时 Live"
FINISHED_HEADERS = ["call_id", "status 状态", "seconds 秒", "segments 语段", "alerts 预警"]


def _emotion(label: str | None) -> str:
    if not label:
        return "–"
    e = EMOTION_BY_NAME.get(label)
    return f"{e.emoji} {e.zh} {label}" if e is not None else label


def calls_html(snapshot: dict[str, Any]) -> str:
    """The calls in progress: who is speaking, each side's latest emotion, the last lines."""
    calls = snapshot.get("live", [])
    if not calls:
        return '<div class="cs-muted" id="cs-live-calls">No live calls 暂无进行中的通话</div>'
    parts = []
    for c in calls:
        speaking = ", ".join(c["speaking"]) or "–"
        emotions = " · ".join(f'<span class="cs-role-{escape(role)}">{escape(role)}</span> '
                              f'{escape(_emotion(label))}' for role, label in c["emotion"].items())
        lines = "".join(f"<div>{escape(line)}</div>" for line in c["last_lines"]) or \
            '<div class="cs-muted">…</div>'
        parts.append(
            f'<div class="cs-live-call" style="{CALL_STYLE}" data-call="{escape(c["call_id"])}"><b>{escape(c["call_id"])}</b> '
            f'<span class="cs-muted">{c["heard_s"]:.1f} s · {c["alerts"]} alerts 预警</span><br>'
            f'正在说话 Speaking: <span class="cs-live-speaking" style="{SPEAKING_STYLE}">{escape(speaking)}</span><br>'
            f'情绪 Emotion: {emotions}<div class="cs-live-lines">{lines}</div></div>')
    return f'<div id="cs-live-calls">{"".join(parts)}</div>'


def alerts_html(snapshot: dict[str, Any]) -> str:
    """The alert feed, newest first, with the evidence's words and times."""
    alerts = snapshot.get("alerts", [])
    if not alerts:
        return '<div class="cs-muted" id="cs-live-alerts">No alerts yet 暂无预警</div>'
    rows = []
    for a in alerts:
        evidence = "; ".join(f'{e.get("start_ms", 0) / 1000:.1f}s {e.get("text") or e.get("note") or ""}'.strip()
                             for e in a.get("evidence", [])[:3])
        rows.append(
            f'<tr class="cs-live-alert" data-rule="{escape(a["rule_id"])}" data-call="{escape(a["call_id"])}">'
            f'<td>{escape(a["at"])}</td><td><span class="cs-sev" style="background:'
            f'{SEVERITY_COLORS.get(a["severity"], "#555")}">{escape(a["severity"])}</span></td>'
            f'<td><b>{escape(a["message"])}</b> <span class="cs-muted">{escape(a["rule_id"])}</span>'
            f'<div class="cs-muted">{escape(evidence)}</div></td><td>{escape(a["call_id"])}</td></tr>')
    return ('<table class="cs-table" id="cs-live-alerts"><tr><th>时间 Time</th><th>级别 Severity</th>'
            f'<th>预警 Alert</th><th>通话 Call</th></tr>{"".join(rows)}</table>')


def finished_rows(snapshot: dict[str, Any]) -> list[list[Any]]:
    return [[f["call_id"], f["status"], f["duration_s"], f["segments"], f["alerts"]]
            for f in snapshot.get("finished", [])]


def build_live_tab(service: Any, *, tabs: Any = None, open_pick: Any = None) -> None:
    """Add the Live tab to the ``gr.Tabs`` being built. With ``tabs`` (the ``gr.Tabs``) and
    ``open_pick`` (the Calls tab's call dropdown), selecting a finished call opens it there; without
    them the table still shows the id to open."""
    from callsense.live.manager import live_calls

    registry = live_calls(service)

    def refresh(shown: list[str]) -> tuple[Any, ...]:
        snap = registry.snapshot()
        ids = [f["call_id"] for f in snap["finished"]]
        # the table is only re-sent when a call ended, so a tick never disturbs a click on it
        table = gr.update(value=finished_rows(snap)) if ids != shown else gr.update()
        return calls_html(snap), alerts_html(snap), table, ids

    def open_finished(evt: gr.SelectData, table: Any) -> tuple[Any, Any]:
        try:
            call_id = table.iloc[evt.index[0], 0] if hasattr(table, "iloc") else table[evt.index[0]][0]
        except (IndexError, KeyError, TypeError):
            return gr.update(), gr.update()
        # the dropdown's choices are the Calls tab's last listing: make sure this call is one of them
        return gr.update(choices=[call_id], value=call_id), gr.Tabs(selected="calls")

    def poll_while_shown(evt: gr.SelectData) -> Any:
        return gr.Timer(active=evt.value == LABEL or evt.index == "live")

    with gr.Tab(LABEL, id="live") as tab:
        gr.Markdown("**进行中的通话 Calls in progress** · 每 0.5 秒刷新 refreshed every 0.5 s")
        calls_out = gr.HTML(calls_html({}), elem_id="cs-live-calls-box")
        gr.Markdown("**实时预警 Alert feed**")
        alerts_out = gr.HTML(alerts_html({}), elem_id="cs-live-alerts-box")
        gr.Markdown("**已结束 Finished calls** · 点击打开 select one to open it in Calls 通话")
        finished = gr.Dataframe(headers=FINISHED_HEADERS, value=[], interactive=False, elem_id="cs-live-finished")
        shown = gr.State([])
        # polls only while the tab is shown: a page left on another tab stays quiet (and "network
        # idle" for a browser waiting on it)
        timer = gr.Timer(POLL_S, active=False)
        tab.select(lambda: gr.Timer(active=True), None, timer, queue=False)
        if tabs is not None:
            tabs.select(poll_while_shown, None, timer, queue=False)
        timer.tick(refresh, shown, [calls_out, alerts_out, finished, shown], show_progress="hidden",
                   queue=False)
        if tabs is not None and open_pick is not None:
            finished.select(open_finished, finished, [open_pick, tabs])
