"""The Calls tab's review widget: a reviewer corrects a segment's emotion or gives it a custom label.

``review_panel(service, pick, role_of)`` adds, under the open call, a segment chooser (filled when a call
is opened), a label chooser (the nine classes, the labels reviewers already used, or any new label typed
in), a note, and the call's corrections so far. Saving calls ``Service.label_segment`` — the same as
``POST /v1/calls/{id}/segments/{seg}/label`` — with the signed-in user's name as the reviewer
(``web`` when the UI needs no sign-in). Viewers see the corrections but cannot save.
"""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

from callsense.errors import CallsenseError
from callsense.labels import EMOTION_NAMES


def segment_choices(result: Any) -> list[tuple[str, str]]:
    """(display, segment id) per segment: time, role, the model's label and the start of the text."""
    out = []
    for s in result.segments:
        emo = s.emotion.label if s.emotion is not None else "-"
        text = (s.text or "")[:40]
        out.append((f"{s.id} · {s.start_ms / 1000:.1f}s · {s.role} · {emo} · {text}", s.id))
    return out


def corrections_html(items: list[dict[str, Any]]) -> str:
    if not items:
        return '<div class="cs-muted" id="cs-review-list">No corrections yet 暂无复核</div>'
    rows = "".join(
        f"<tr><td>{html.escape(c['segment_id'])}</td><td>{html.escape(c['previous'] or '-')}</td>"
        f"<td><b>{html.escape(c['label'])}</b>{' (custom)' if c['custom'] else ''}</td>"
        f"<td>{html.escape(c['reviewer'])}</td><td>{html.escape(c['at'])}</td>"
        f"<td>{html.escape(c['note'] or '')}</td></tr>" for c in items)
    return ('<table class="cs-table" id="cs-review-list"><tr><th>segment</th><th>model</th><th>label 标注</th>'
            f"<th>reviewer 复核人</th><th>at</th><th>note</th></tr>{rows}</table>")


def review_panel(service: Any, pick: Any, role_of: Any) -> None:
    """Add the widget to the current Blocks context and wire it to the call chooser ``pick``."""

    def labels_known() -> list[str]:
        from callsense.store.corrections import list_corrections

        try:
            used = sorted({c.label for c in list_corrections(service.store, latest=True)} - set(EMOTION_NAMES))
        except CallsenseError:
            used = []
        return [*EMOTION_NAMES, *used]

    def load(call_id: str | None):
        if not call_id:
            return gr.update(choices=[], value=None), gr.update(choices=labels_known()), corrections_html([])
        try:
            result = service.calls.get(call_id)
            items = service.segment_labels(call_id)
        except CallsenseError as e:
            raise gr.Error(f"{e.code}: {e}") from e
        choices = segment_choices(result)
        return (gr.update(choices=choices, value=choices[0][1] if choices else None),
                gr.update(choices=labels_known()), corrections_html(items))

    def save(call_id, segment_id, label, note, request: gr.Request):
        if role_of(request) == "viewer":
            raise gr.Error("this needs the analyst role 需要分析员权限")
        if not call_id or not segment_id:
            raise gr.Error("open a call and choose a segment first 请先选择通话和片段")
        if not label:
            raise gr.Error("choose or type a label 请选择或输入标签")
        reviewer = getattr(request, "username", None) or "web"
        try:
            service.label_segment(call_id, segment_id, label, reviewer=reviewer, note=note or None)
            items = service.segment_labels(call_id)
        except CallsenseError as e:
            raise gr.Error(f"{e.code}: {e}") from e
        return corrections_html(items), gr.update(choices=labels_known()), ""

    with gr.Accordion("复核 Review: correct a segment's emotion", open=False, elem_id="cs-review"):
        with gr.Row():
            seg = gr.Dropdown([], label="片段 Segment", elem_id="cs-review-segment", scale=3)
            label = gr.Dropdown(list(EMOTION_NAMES), label="标注 Label (one of the nine, or type your own)",
                                allow_custom_value=True, elem_id="cs-review-label", scale=2)
            note = gr.Textbox(label="备注 Note", max_lines=1, elem_id="cs-review-note", scale=2)
            btn = gr.Button("保存 Save label", variant="primary", elem_id="cs-review-save", scale=1)
        listing = gr.HTML(corrections_html([]))
    pick.change(load, pick, [seg, label, listing])
    btn.click(save, [pick, seg, label, note], [listing, label, note])
