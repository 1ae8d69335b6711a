"""The web UI (Gradio Blocks) in Chinese and English: Analyze, Calls, Search, Dashboard, Rules.

Handlers call the same :class:`~callsense.service.Service` as the REST API; nothing here analyses or
queries on its own. Result panels are HTML rendered by :mod:`callsense.report` (emoji, bars, SVG).
"""

from __future__ import annotations

import logging

# Imported at module level (this module is only loaded when the UI is mounted): Gradio reads the
# handlers' ``gr.Request`` / ``gr.SelectData`` annotations to inject them, and with postponed
# annotations it can only resolve names that live in the module's globals. A local import left them
# unresolved, so Gradio passed None instead of the request: every user looked like a viewer.
import os
import shutil
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # works offline: no phoning home

import gradio as gr  # noqa: E402

from callsense.errors import CallsenseError
from callsense.labels import EMOTION_NAMES, LANGUAGES, TAG_EMOJI
from callsense.report.breakdown import STATUS_LABEL, breakdown, verdict
from callsense.report.html import SEVERITY_COLORS, emotion_headline, main_emotion, segment_tags, suggestion_html
from callsense.report.svg import BARS_CSS, LEGEND_CSS, distribution_bars, fmt_ms, legend_html, timeline_svg
from callsense.ui.dashboard import CSS as DASHBOARD_CSS
from callsense.ui.dashboard import build_dashboard_tab
from callsense.ui.live import build_live_tab
from callsense.ui.rules_view import rules_rows, rules_table_html

log = logging.getLogger("callsense")

CSS = BARS_CSS + LEGEND_CSS + """
.cs-headline{font-size:26px;margin:6px 0 10px}
.cs-muted{color:#777;font-size:12px}
.cs-table{border-collapse:collapse;width:100%;font-size:13px}
.cs-table td,.cs-table th{border-bottom:1px solid #e5e5e5;padding:4px 6px;text-align:left;vertical-align:top}
.cs-seek{cursor:pointer;color:#1565c0;text-decoration:underline dotted}
.cs-sev{color:#fff;border-radius:3px;padding:1px 6px;font-size:12px}
.cs-role-agent{color:#1565c0}.cs-role-customer{color:#c62828}
mark.cs-mark{background:#ffe082;color:inherit;padding:0 1px;border-radius:2px}
a.cs-open-call{color:#1565c0}
.cs-rules td.cs-cond{font-family:ui-monospace,monospace;font-size:11px;word-break:break-word}
.cs-rules td{font-size:12px}
""" + DASHBOARD_CSS

# Clicking anything with data-seek-ms jumps the nearest call player there (evidence → audio).
HEAD = """<script>
document.addEventListener('click', function (e) {
  const t = e.target.closest('[data-seek-ms]');
  if (!t) return;
  const scope = t.closest('.cs-call') || document;
  const a = scope.querySelector('audio.cs-player') || document.querySelector('audio.cs-player');
  if (!a) return;
  a.currentTime = Number(t.dataset.seekMs) / 1000;
  a.play().catch(function () {});
});
</script>"""

# (label, value): "" is the automatic map, so that a mono file is not forced into two roles.
CHANNEL_MAPS = [("默认 auto (stereo: agent,customer)", ""),
                ("agent,customer", "agent,customer"), ("customer,agent", "customer,agent"),
                ("agent (mono)", "agent"), ("customer (mono)", "customer")]
CALL_HEADERS = ["通话 call_id", "文件 file", "时长 seconds", "分析时间 analysed", "坐席 agent",
                "客户情绪 customer emotion", "得分 score", "命中 hits", "级别 severity"]


# ---- rendering (pure: result -> HTML) -----------------------------------------------------------------
def headline_html(result: Any) -> str:
    e = main_emotion(result)
    if e is None:
        return '<div class="cs-muted">No emotion data 无情绪数据</div>'
    role, label, conf, scores = e
    return (f'<div class="cs-headline" id="cs-main-emotion">{escape(emotion_headline(label, conf))}</div>'
            f'<div class="cs-muted">{escape(role)} · 9-class distribution 九类情绪分布</div>{distribution_bars(scores)}')


def player_html(service: Any, call_id: str) -> str:
    token = service.sign_audio(call_id)
    return (f'<audio class="cs-player" controls preload="metadata" style="width:100%" '
            f'src="/v1/calls/{escape(call_id)}/audio?token={token}"></audio>')


def timeline_html(result: Any) -> str:
    return f'<div class="cs-timeline-wrap">{timeline_svg(result)}{legend_html()}</div>'


def transcript_html(result: Any) -> str:
    rows = []
    for s in result.segments:
        rows.append(
            f'<tr class="cs-seg" data-segment="{escape(s.id)}"><td><span class="cs-seek" data-seek-ms="{s.start_ms}">'
            f'{fmt_ms(s.start_ms)}–{fmt_ms(s.end_ms)}</span></td><td class="cs-role-{escape(s.role)}">{escape(s.role)}</td>'
            f'<td>{escape(s.language or "")}</td><td class="cs-tags">{escape(segment_tags(s))}</td>'
            f'<td>{escape(s.text or "")}</td></tr>')
    if not rows:
        return '<div class="cs-muted">No speech found 未检测到语音</div>'
    return ('<table class="cs-table" id="cs-transcript"><tr><th>时间 Time</th><th>角色 Role</th><th>语言 Lang</th>'
            f'<th>标签 Tags</th><th>文本 Text</th></tr>{"".join(rows)}</table>')


def breakdown_html(result: Any) -> str:
    """The scorecard breakdown: every item with the points won or lost and the evidence behind it."""
    rows = "".join(
        f'<tr class="cs-item cs-{r.status}"><td>{escape(r.section)}</td><td>{escape(r.item)}</td>'
        f'<td>{escape(STATUS_LABEL[r.status])}</td>'
        f'<td>{"–" if r.status == "na" else f"{r.points:g}/{r.potential:g}"}</td><td>{escape(r.reason)}</td></tr>'
        for r in breakdown(result))
    if not rows:
        return ""
    return ('<table class="cs-table" id="cs-breakdown"><tr><th>部分 Section</th><th>项目 Item</th><th>状态 Status</th>'
            f'<th>分数 Points</th><th>原因 Why</th></tr>{rows}</table>')


def clip_link(result: Any, hit: Any, token: str | None) -> str:
    """A player for the hit's review window, cut by ``GET /v1/calls/{id}/clip`` with the page's signed audio
    token (browsers send no API key); none without a token or a window."""
    window = hit.window()
    if window is None or token is None:
        return ""
    src = (f"/v1/calls/{escape(result.call_id)}/clip?start_ms={window[0]}&amp;end_ms={window[1]}"
           f"&amp;token={escape(token)}")
    return (f'<div class="cs-clip"><audio class="cs-clip-audio" controls preload="metadata" data-rule="'
            f'{escape(hit.rule_id)}" src="{src}"></audio></div>')


def hits_html(result: Any, token: str | None = None) -> str:
    parts = []
    if result.score is not None:
        sc = result.score
        if not sc.scored:
            parts.append(f'<div class="cs-headline" id="cs-score">不计分 NOT SCORED</div>'
                         f'<div class="cs-muted" id="cs-not-scored">{escape(sc.reason or "")}</div>')
        else:
            parts.append(f'<div class="cs-headline" id="cs-score">{escape(verdict(result))}</div>')
            parts.append(breakdown_html(result))
    rows = []
    for h in result.rule_hits:
        ev = "".join(
            f'<div><span class="cs-seek" data-seek-ms="{x.start_ms}">▶ {fmt_ms(x.start_ms)}–{fmt_ms(x.end_ms)}</span> '
            f'{escape(x.segment_id or "")} {escape(("“" + x.text + "”") if x.text else "")} '
            f'<span class="cs-muted">{escape(x.note or "")}</span></div>' for x in h.evidence)
        rows.append(f'<tr class="cs-hit" data-rule="{escape(h.rule_id)}"><td><span class="cs-sev" '
                    f'style="background:{SEVERITY_COLORS.get(h.severity, "#555")}">{escape(h.severity)}</span></td>'
                    f'<td><b>{escape(h.name)}</b> <span class="cs-muted">{escape(h.rule_id)} · {escape(h.category)}'
                    f'</span>{ev}{suggestion_html(h)}{clip_link(result, h, token)}</td><td>{h.score_delta:+g}</td></tr>')
    if rows:
        parts.append('<table class="cs-table" id="cs-hits"><tr><th>级别 Severity</th><th>规则与证据 Rule & evidence'
                     f'</th><th>分 Score</th></tr>{"".join(rows)}</table>')
    else:
        parts.append('<div class="cs-muted" id="cs-hits">No rule hits 无规则命中</div>')
    return "".join(parts)


def log_markdown(result: Any) -> str:
    src = result.source
    lines = [
        f"**Call 通话** `{result.call_id}` · {result.duration_ms / 1000:.1f} s",
        f"**Audio 音频**: {src.container or '?'} / {src.codec or '?'}, {src.sample_rate} Hz, {src.channels} ch, "
        f"{src.size_bytes / 1024:.0f} KiB" + (" (narrowband → 16 kHz)" if src.narrowband else ""),
        "**Timings 耗时**: " + (", ".join(f"{k} {v:.0f} ms" for k, v in result.processing.timings_ms.items()) or "–"),
        "**Models 模型**: " + (", ".join(f"{m.name} ({m.runtime})" for m in result.processing.models) or "–"),
    ]
    lines += [f"- ⚠️ {w}" for w in result.processing.warnings]
    lines += [f"- skipped {s.feature}: {s.reason}" for s in result.processing.skipped]
    return "\n\n".join(lines)


def call_page_html(service: Any, result: Any) -> str:
    return (f'<div class="cs-call">{player_html(service, result.call_id)}{headline_html(result)}'
            f'<h3>情绪曲线 Emotion timeline</h3>{timeline_html(result)}<h3>规则命中 Rule hits</h3>'
            f'{hits_html(result, service.sign_audio(result.call_id))}'
            f'<h3>转写 Transcript</h3>{transcript_html(result)}</div>')


def highlighted(text: str, spans: Any) -> str:
    """``text`` escaped, each matched span wrapped in ``<mark>``."""
    out, last = [], 0
    for a, b in sorted(tuple(x) for x in spans or ()):
        if a < last:
            continue
        out += [escape(text[last:a]), f'<mark class="cs-mark">{escape(text[a:b])}</mark>']
        last = b
    out.append(escape(text[last:]))
    return "".join(out)


def search_html(items: list[dict[str, Any]]) -> str:
    """Search hits as a table: matches highlighted; each row links to its call (opened in the Calls tab)."""
    if not items:
        return '<div class="cs-muted" id="cs-search-results">No matches 无结果</div>'
    rows = []
    for h in items:
        href = f"?call={quote(h['call_id'])}"
        when = (f"{fmt_ms(h['start_ms'])}–{fmt_ms(h['end_ms'])}" if h.get("start_ms") is not None
                and h.get("end_ms") is not None else "")
        rows.append(
            f'<tr class="cs-search-hit" data-call="{escape(h["call_id"])}"><td><a class="cs-open-call" '
            f'href="{escape(href)}" target="_self">{escape(h["call_id"])}</a><div class="cs-muted">'
            f'{escape(h.get("filename") or "")}</div></td><td>{escape(when)}</td><td>{escape(h.get("role") or "")}'
            f'</td><td>{escape((h.get("emoji", "") + " " + (h.get("emotion") or "")).strip())}</td>'
            f'<td>{highlighted(h.get("text") or "", h.get("spans"))}</td></tr>')
    return ('<table class="cs-table" id="cs-search-results"><tr><th>通话 call_id</th><th>时间 time</th>'
            f'<th>角色 role</th><th>情绪 emotion</th><th>文本 text</th></tr>{"".join(rows)}</table>')


# ---- the app ---------------------------------------------------------------------------------------------
def examples(service: Any) -> dict[str, Path]:
    """The example picker's recordings: ``settings.examples_dir`` when set; otherwise the calls shipped in
    the package (:mod:`callsense.examples`, there after a plain pip install), then, in a source checkout,
    the repository's ``examples/``."""
    from callsense.examples import AUDIO_SUFFIXES, example_files

    d = service.settings.examples_dir
    if d is not None:
        if not Path(d).is_dir():
            return {}
        return {p.name: p for p in sorted(Path(d).iterdir()) if p.suffix.lower() in AUDIO_SUFFIXES}
    found = example_files()
    repo = Path(__file__).resolve().parents[3] / "examples"  # the repository's examples/ (source checkouts)
    if (repo / "make_example.py").is_file():
        found.update({p.name: p for p in sorted(repo.iterdir()) if p.suffix.lower() in AUDIO_SUFFIXES
                      and p.name not in found})
    return found


def _forget_ui_file(service: Any, path: str | None) -> None:
    """Delete Gradio's cached copy of an uploaded recording once the service has its own."""
    if not path:
        return
    p = Path(path).resolve()
    cache = service.settings.ui_temp_dir.resolve()
    if p.is_relative_to(cache) and p.is_file():
        p.unlink(missing_ok=True)
        try:
            p.parent.rmdir()
        except OSError:
            pass


def role_of_user(service: Any, username: str | None) -> str:
    """The role of the signed-in user (the UI's user name is the key's name): the lowest role among the
    keys of that name, so a name shared by several keys never grants more than the weakest of them."""
    from callsense.service.keys import ROLES

    if not service.settings.auth_required:
        return "admin"
    roles = [k.role for k in service.keys.list() if username and k.name == username]
    return min(roles, key=ROLES.index) if roles else "viewer"


def build_ui(service: Any) -> Any:
    from callsense.service import AnalyzeRequest

    example_files = examples(service)

    def role_of(request: gr.Request | None) -> str:
        return role_of_user(service, getattr(request, "username", None))

    def fail(e: CallsenseError) -> Any:
        raise gr.Error(f"{e.code}: {e}")

    # ---- Analyze
    def run_analysis(audio_path, language, channels, emotion_model, granularity, export_emb, agent, queue,
                     request: gr.Request):
        if role_of(request) == "viewer":
            raise gr.Error("this needs the analyst role 需要分析员权限")
        if not audio_path:
            raise gr.Error("upload or record audio first 请先上传或录制音频")
        try:
            try:
                upload = service.save_path(audio_path)
            finally:
                _forget_ui_file(service, audio_path)  # Gradio's copy of the recording: ours is in uploads/
            req = AnalyzeRequest(language=language, channels=tuple(channels.split(",")) if channels else None,
                                 granularity=granularity, embeddings=bool(export_emb),
                                 emotion_model=None if emotion_model in (None, "", default_emotion)
                                 else emotion_model).validate()
            meta = {k: v for k, v in (("agent_id", agent), ("queue", queue)) if v}
            outcome = service.analyze(upload, req, meta, mode="sync")
        except CallsenseError as e:
            return fail(e)
        result, folder = outcome.result, outcome.folder
        from callsense.report import render_html

        # Downloads live in the call's folder and are named after the call, so that deleting the call
        # also finds Gradio's cached copies of them (docs/privacy.md).
        cid = result.call_id
        report = folder / f"{cid}_report.html"
        report.write_text(render_html(result, audio=folder / "audio_16k.wav"), encoding="utf-8")
        files = [str(report)]
        for name in ("result.json", "embeddings.npy"):
            if (folder / name).is_file():
                shutil.copyfile(folder / name, folder / f"{cid}_{name}")
                files.insert(-1, str(folder / f"{cid}_{name}"))
        return (f'<div class="cs-call">{player_html(service, result.call_id)}{headline_html(result)}</div>',
                timeline_html(result), transcript_html(result), hits_html(result, service.sign_audio(cid)),
                log_markdown(result), files)

    def load_example(name):
        if not name or name not in example_files:
            raise gr.Error("choose an example 请选择示例")
        return str(example_files[name])

    # ---- Calls
    def list_calls(agent, queue, date_from, date_to, min_score, severity, emotion, invalid=False):
        try:
            page = service.calls.list(filters={"agent_id": agent, "queue": queue, "date_from": date_from,
                                               "date_to": date_to, "min_score": min_score or None,
                                               "severity": severity or None, "emotion": emotion or None,
                                               "invalid": bool(invalid)}, limit=200)
        except CallsenseError as e:
            return fail(e)
        def score(r):  # an invalid call (the discard view) says it was not scored, not a blank
            return r["score"] if r["score"] is not None else ("不计分 not scored" if r["not_scored_reason"] else "")

        rows = [[r["call_id"], r["filename"], round(r["duration_ms"] / 1000, 1), r["analyzed_at"], r["agent_id"] or "",
                 r["customer_emotion"] or "", score(r), r["rule_hits"], r["max_severity"] or ""] for r in page["items"]]
        ids = [r["call_id"] for r in page["items"]]
        return rows, gr.update(choices=ids, value=ids[0] if ids else None)

    def list_on_open(agent, queue, date_from, date_to, min_score, severity, emotion, invalid, current):
        """Opening the Calls tab lists the calls (no Refresh needed) and keeps the call already open."""
        rows, picked = list_calls(agent, queue, date_from, date_to, min_score, severity, emotion, invalid)
        ids = [r[0] for r in rows]
        if current:
            return rows, gr.update(choices=ids if current in ids else [current, *ids], value=current)
        return rows, picked

    def open_call(call_id):
        if not call_id:
            return '<div class="cs-muted">Choose a call 请选择通话</div>'
        try:
            return call_page_html(service, service.calls.get(call_id))
        except CallsenseError as e:
            return fail(e)

    def pick_row(evt: gr.SelectData, table):
        try:
            return table.iloc[evt.index[0], 0] if hasattr(table, "iloc") else table[evt.index[0]][0]
        except (IndexError, KeyError, TypeError):
            return gr.update()

    # ---- Search
    def run_search(text, emotion, role, event, severity):
        try:
            page = service.calls.search(text=text or None, emotion=emotion or None, role=role or None,
                                        event=event or None, severity=severity or None, limit=200)
        except CallsenseError as e:
            return fail(e)
        return search_html(page["items"])

    def open_from_url(request: gr.Request):
        """``/?call=ID`` (the search results' links) opens that call in the Calls tab."""
        call_id = (request.query_params.get("call") if request is not None else None) or ""
        if not call_id:
            return gr.update(), gr.update()
        return gr.update(choices=[call_id], value=call_id), gr.Tabs(selected="calls")

    # ---- Rules
    def rules_view(version: int | None = None) -> tuple[str, str, str]:
        """The YAML, the header line and the rules table of a stored version (the newest by default)."""
        from callsense.rules import default_ruleset
        from callsense.rules.loader import default_scorecard

        v = service.rules.get(version)
        d = v.to_dict()
        summary = (f"**Version 版本 {d['version']}** ({'default 默认' if d['source'] == 'default' else 'custom 自定义'})"
                   f" · {len(d.get('rules', []))} rules 条规则")
        text = d.get("yaml") or ""
        ruleset = service.rules.validate(text) if text.strip() else default_ruleset()
        return text, summary, rules_table_html(rules_rows(ruleset, default_scorecard()))

    def load_rules():
        try:
            return rules_view()
        except CallsenseError as e:
            return fail(e)

    def validate_rules(text):
        try:
            rs = service.rules.validate(text)
        except CallsenseError as e:
            return f"❌ {e}"
        from callsense.service.rulesets import summarize

        return f"✅ valid 有效 · {len(summarize(rs)['rules'])} rules"

    def whoami(request: gr.Request):
        name = getattr(request, "username", None) or "local"
        return f"👤 {escape(name)} · {role_of(request)}"

    def save_rules(text, request: gr.Request):
        if role_of(request) != "admin":
            return "❌ only admins can change rules 仅管理员可修改规则", gr.update(), gr.update()
        try:
            v = service.rules.put(text)
            _, summary, table = rules_view(v.version)
        except CallsenseError as e:
            return f"❌ {e}", gr.update(), gr.update()
        return f"✅ saved as version 已保存为版本 {v.version}", summary, table

    from callsense.engines.catalog import CATALOG

    emotion_models = [name for name, spec in CATALOG.items() if "emotion" in name] if isinstance(CATALOG, dict) else []
    default_emotion = service.engines.base_options.emotion_model  # what an analysis without a choice uses
    if default_emotion not in emotion_models:
        emotion_models.insert(0, default_emotion)

    with gr.Blocks(title="callsense · 通话分析", analytics_enabled=False) as demo:
        gr.Markdown("## callsense · 客服通话分析 Call analysis\n"
                    "转写、语种、情绪与质检规则 · transcript, language, emotion and QA rules — all local.")
        who = gr.Markdown(elem_id="cs-whoami")
        with gr.Tabs() as tabs:
            with gr.Tab("分析 Analyze", id="analyze"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=320):
                        audio = gr.Audio(sources=["upload", "microphone"], type="filepath",
                                         label="录音 Recording (WAV/MP3/M4A/FLAC/OGG)", elem_id="cs-audio")
                        with gr.Row():
                            example = gr.Dropdown(list(example_files), value=next(iter(example_files), None),
                                                  label="示例 Example", elem_id="cs-example")
                            load_btn = gr.Button("加载示例 Load example", elem_id="cs-load-example")
                        language = gr.Dropdown(list(LANGUAGES), value="auto", label="语言 Language")
                        channels = gr.Dropdown(CHANNEL_MAPS, value="", allow_custom_value=True,
                                               label="声道角色 Channel map", elem_id="cs-channels")
                        emotion_model = gr.Dropdown(emotion_models, value=default_emotion,
                                                    label="情绪模型 Emotion model", elem_id="cs-emotion-model")
                        granularity = gr.Radio(["frame", "utterance"], value="frame",
                                               label="粒度 Granularity (frame: timeline 帧级曲线)")
                        export_emb = gr.Checkbox(value=True, label="导出嵌入 Export embeddings (.npy)")
                        with gr.Row():
                            agent = gr.Textbox(label="坐席 Agent id", max_lines=1)
                            queue = gr.Textbox(label="队列 Queue", max_lines=1)
                        run_btn = gr.Button("开始分析 Analyze", variant="primary", elem_id="cs-analyze")
                    with gr.Column(scale=2):
                        main_out = gr.HTML(elem_id="cs-main")
                        timeline_out = gr.HTML(elem_id="cs-timeline", label="情绪曲线 Emotion timeline")
                        hits_out = gr.HTML(elem_id="cs-rule-hits")
                        transcript_out = gr.HTML(elem_id="cs-transcript-box")
                        with gr.Accordion("处理日志 Processing log", open=False):
                            log_out = gr.Markdown(elem_id="cs-log")
                        files_out = gr.File(label="下载 Downloads: result.json, embeddings.npy, report.html",
                                            file_count="multiple", elem_id="cs-files")
                analyze_in = [audio, language, channels, emotion_model, granularity, export_emb, agent, queue]
                analyze_out = [main_out, timeline_out, transcript_out, hits_out, log_out, files_out]
                # "Load example" loads the recording and analyses it, as if Analyze had been pressed
                load_btn.click(load_example, example, audio).success(run_analysis, analyze_in, analyze_out)
                run_btn.click(run_analysis, analyze_in, analyze_out)

            with gr.Tab("通话 Calls", id="calls") as calls_tab:
                with gr.Row():
                    f_agent = gr.Textbox(label="坐席 Agent", max_lines=1)
                    f_queue = gr.Textbox(label="队列 Queue", max_lines=1)
                    f_from = gr.Textbox(label="起始 From (YYYY-MM-DD)", max_lines=1)
                    f_to = gr.Textbox(label="截止 To (YYYY-MM-DD)", max_lines=1)
                with gr.Row():
                    f_score = gr.Number(label="最低分 Min score (0-100)", value=None)
                    f_sev = gr.Dropdown(["", "info", "warning", "critical"], value="", label="级别 Severity ≥")
                    f_emo = gr.Dropdown([""] + list(EMOTION_NAMES), value="", label="客户情绪 Customer emotion")
                    f_invalid = gr.Checkbox(value=False, label="仅无效通话 Invalid calls only (discard view)",
                                            elem_id="cs-invalid-only")
                    refresh = gr.Button("查询 Refresh", variant="primary")
                table = gr.Dataframe(headers=CALL_HEADERS, interactive=False, wrap=True, elem_id="cs-calls-table")
                pick = gr.Dropdown([], label="打开通话 Open call", elem_id="cs-call-pick")
                call_out = gr.HTML()
                filters = [f_agent, f_queue, f_from, f_to, f_score, f_sev, f_emo, f_invalid]
                refresh.click(list_calls, filters, [table, pick])
                calls_tab.select(list_on_open, [*filters, pick], [table, pick])
                table.select(pick_row, table, pick)
                pick.change(open_call, pick, call_out)
                from callsense.ui.review import review_panel  # reviewers' corrections (issue 20)

                review_panel(service, pick, role_of)

            with gr.Tab("搜索 Search", id="search"):
                with gr.Row():
                    s_text = gr.Textbox(label="文本 Text (e.g. 退款)", max_lines=1)
                    s_emo = gr.Dropdown([""] + list(EMOTION_NAMES), value="", label="情绪 Emotion")
                    s_role = gr.Dropdown(["", "customer", "agent"], value="", label="角色 Role")
                    s_event = gr.Dropdown([""] + [t for t in TAG_EMOJI if t[0].isupper() and not t.isupper()],
                                          value="", label="事件 Event")
                    s_sev = gr.Dropdown(["", "info", "warning", "critical"], value="", label="级别 Severity ≥")
                    s_btn = gr.Button("搜索 Search", variant="primary")
                gr.Markdown("点击通话编号在「通话」中打开 · click a call id to open it in Calls", elem_classes="cs-muted")
                s_table = gr.HTML(elem_id="cs-search")
                s_btn.click(run_search, [s_text, s_emo, s_role, s_event, s_sev], s_table)
                s_text.submit(run_search, [s_text, s_emo, s_role, s_event, s_sev], s_table)

            build_dashboard_tab(service)  # callsense.ui.dashboard: charts, loaded when opened

            with gr.Tab("规则 Rules", id="rules"):
                r_info = gr.Markdown(elem_id="cs-rules-version")
                with gr.Row():
                    with gr.Column(scale=1):
                        r_yaml = gr.Code(language="yaml", label="规则 YAML (admin may edit 管理员可编辑)", lines=24,
                                         max_lines=40)
                        with gr.Row():
                            r_reload = gr.Button("重新加载 Reload")
                            r_check = gr.Button("校验 Validate")
                            r_save = gr.Button("保存 Save (admin)", variant="primary")
                        r_msg = gr.Markdown()
                    with gr.Column(scale=1):
                        gr.Markdown("**规则一览 Rules at a glance**")
                        r_table = gr.HTML(elem_id="cs-rules-box")
                r_reload.click(load_rules, None, [r_yaml, r_info, r_table])
                r_check.click(validate_rules, r_yaml, r_msg)
                r_save.click(save_rules, r_yaml, [r_msg, r_info, r_table])

            build_live_tab(service, tabs=tabs, open_pick=pick)
        demo.load(load_rules, None, [r_yaml, r_info, r_table])
        demo.load(open_from_url, None, [pick, tabs])
        demo.load(whoami, None, who)
    return demo


def mount_ui(app: Any, service: Any) -> Any:
    """Mount the UI at ``/`` of ``app`` (API routes registered before keep precedence)."""
    # Gradio's upload/download cache inside the data folder (swept, cleared on delete), not in /tmp.
    # Gradio reads GRADIO_TEMP_DIR each time it saves an upload, so setting it here is in time.
    service.settings.ui_temp_dir.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(service.settings.ui_temp_dir)
    auth = None
    if service.settings.auth_required:
        def auth(username: str, password: str) -> bool:
            key = service.keys.verify(password)
            return key is not None and key.name == username

    return gr.mount_gradio_app(
        app, build_ui(service), path="/", auth=auth,
        auth_message="用户名 = API key name, 密码 = API key · user name = key name, password = the key",
        allowed_paths=[str(service.settings.calls_dir), *sorted({str(p.parent) for p in examples(service).values()})],
        css=CSS, head=HEAD, footer_links=["api"],
        # system fonts: the default theme fetches Google Fonts, which an offline site cannot reach
        theme=gr.themes.Default(font=["system-ui", "Noto Sans CJK SC", "sans-serif"],
                                font_mono=["ui-monospace", "monospace"]),
        max_file_size=int(service.settings.max_upload_bytes), show_error=True,
    )
