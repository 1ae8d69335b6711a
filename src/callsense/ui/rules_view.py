"""The rules table of the web UI's Rules tab: one row per rule, read from a loaded rule set.

Pure functions (rule set -> rows), so the summary of a condition is tested without a browser.
"""

from __future__ import annotations

import dataclasses
from typing import Any

HEADERS = ["编号 id", "名称 name", "级别 severity", "条件 conditions", "分值 points", "建议话术 suggestion"]
MAX_LIST = 4  # list values show their first few entries, then "…(+n)"
MAX_VALUE_CHARS = 60


def _value(v: Any) -> str:
    if isinstance(v, (tuple, list, frozenset, set)):
        items = [str(x) for x in v]
        more = f" …(+{len(items) - MAX_LIST})" if len(items) > MAX_LIST else ""
        return "[" + ", ".join(items[:MAX_LIST]) + more + "]"
    if dataclasses.is_dataclass(v):
        inner = _fields(v)
        return "{" + ", ".join(f"{k}: {x}" for k, x in inner) + "}"
    text = str(v)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _fields(obj: Any) -> list[tuple[str, str]]:
    """The fields of a dataclass that differ from their defaults, rendered short."""
    out = []
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if f.default is not dataclasses.MISSING and v == f.default:
            continue
        if f.default_factory is not dataclasses.MISSING and v == f.default_factory():
            continue
        if v is None or v == () or v == "":
            continue
        out.append((f.name, _value(v)))
    return out


def condition_summary(rule: Any) -> str:
    """``1 keywords(words: [投诉, …]) · 2 emotion(labels: [angry]) · (1 && 2) || 3``: every condition with
    the settings it changes, and the expression when it is not "all of them"."""
    parts = []
    for n, c in sorted(rule.conditions.items()):
        args = ", ".join(f"{k}: {v}" for k, v in _fields(c))
        parts.append(f"{n} {c.type}({args})" if args else f"{n} {c.type}")
    scope = getattr(rule, "scope", None)
    role = getattr(scope, "role", "any")
    text = " · ".join(parts)
    if rule.expression:
        text += f" · {rule.expression}"
    return f"[{role}] {text}" if role and role != "any" else text


def _items(scorecard: Any) -> dict[str, Any]:
    if scorecard is None:
        return {}
    return {f"{s.id}.{i.id}": i for s in scorecard.scorecard.sections for i in s.items}


def points_text(rule: Any, items: dict[str, Any]) -> str:
    """What the rule is worth on the scorecard: its item's points and mode, and its deduction."""
    c = rule.consequence
    parts = []
    item = items.get(c.item) if c.item else None
    if item is not None:
        parts.append(f"{c.item}: {item.points:g} ({item.mode})")
    elif c.item:
        parts.append(c.item)
    if c.score_delta:
        parts.append(f"{c.score_delta:+g}")
    if c.not_scored:
        parts.append("not scored 不计分")
    return " · ".join(parts) or "–"


def suggestion_text(rule: Any) -> str:
    s = getattr(rule, "suggestion", None)
    if s is None:
        return ""
    return " / ".join(x for x in (getattr(s, "zh", None), getattr(s, "en", None)) if x)


def rules_rows(ruleset: Any, scorecard: Any = None) -> list[list[str]]:
    """One row per rule: id, name, severity, condition summary, points, suggestion."""
    items = _items(scorecard)
    return [[r.id, r.name, r.consequence.severity + ("" if r.enabled else " (off 停用)"), condition_summary(r),
             points_text(r, items), suggestion_text(r)] for r in ruleset.rules]


def rules_table_html(rows: list[list[str]]) -> str:
    """The rows as the UI's HTML table (wrapping text; the condition summary in a small monospace)."""
    from html import escape

    if not rows:
        return '<div class="cs-muted" id="cs-rules-table">No rules 无规则</div>'
    head = "".join(f"<th>{escape(h)}</th>" for h in HEADERS)
    body = "".join(
        f'<tr class="cs-rule" data-rule="{escape(r[0])}"><td><code>{escape(r[0])}</code></td><td>{escape(r[1])}</td>'
        f'<td>{escape(r[2])}</td><td class="cs-cond">{escape(r[3])}</td><td>{escape(r[4])}</td>'
        f'<td>{escape(r[5])}</td></tr>' for r in rows)
    return f'<table class="cs-table cs-rules" id="cs-rules-table"><tr>{head}</tr>{body}</table>'
