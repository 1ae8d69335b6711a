"""The dashboard's charts: a store :class:`~callsense.store.aggregates.Table` in, a PNG and a CSV out.

Drawn server-side with matplotlib (Agg, no pyplot state, no network), so that what the page shows and
what a supervisor downloads are the same picture made from the same rows. Titles and axes are
bilingual (中文 English); Chinese needs a CJK font on the server (fonts-noto-cjk or fonts-wqy-microhei
on Debian); without one the labels' Chinese shows as boxes and a warning is logged once.
"""

from __future__ import annotations

import io
import logging
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from callsense.labels import EMOTION_BY_NAME, EMOTION_NAMES

log = logging.getLogger("callsense")

CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei",
             "Microsoft YaHei", "PingFang SC", "SimHei", "Droid Sans Fallback")
NO_DATA = "暂无数据 No data yet"
_LOCK = threading.Lock()  # matplotlib's rc settings are process-global: one chart drawn at a time


@dataclass(frozen=True)
class Chart:
    """One rendered chart: the PNG, the CSV of the rows drawn, and a file stem for downloads."""

    name: str
    png: bytes
    csv: str


def table_csv(table: Any) -> str:
    return table.to_csv()


@lru_cache(maxsize=1)
def _fonts() -> tuple[str, ...]:
    from matplotlib import font_manager

    have = {f.name for f in font_manager.fontManager.ttflist}
    cjk = [f for f in CJK_FONTS if f in have]
    if not cjk:
        log.warning("charts: no CJK font found (%s); Chinese in chart labels shows as boxes — install one, e.g. "
                    "apt-get install fonts-noto-cjk", ", ".join(CJK_FONTS[:4]))
    return (*cjk, "DejaVu Sans")  # matplotlib falls back glyph by glyph along this list


def emotion_label(name: str) -> str:
    e = EMOTION_BY_NAME[name]
    return f"{e.zh} {e.en}"


def _render(name: str, table: Any, draw: Callable[[Any, Any], None], size: tuple[float, float] = (9, 4.2),
            has_data: bool | None = None) -> Chart:
    from matplotlib.figure import Figure

    with _LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Glyph ... missing from font": logged once by _fonts instead
        import matplotlib

        with matplotlib.rc_context({"font.family": list(_fonts()), "axes.spines.top": False,
                                    "axes.spines.right": False, "font.size": 10}):
            fig = Figure(figsize=size, dpi=110, layout="constrained")
            ax = fig.add_subplot()
            if bool(table.rows) if has_data is None else has_data:
                draw(fig, ax)
            else:
                ax.set_axis_off()
                ax.text(0.5, 0.5, NO_DATA, ha="center", va="center", fontsize=14, color="#777")
            buf = io.BytesIO()
            fig.savefig(buf, format="png")
    return Chart(name, buf.getvalue(), table_csv(table))


def heatmap(table: Any, by_label: str) -> Chart:
    """Rows: the groups; columns: the 9 emotions then the ``event:<type>`` shares; a cell is 0..1."""
    cols = list(table.columns[2:])

    def draw(fig, ax):
        import numpy as np

        data = np.array([[np.nan if v is None else float(v) for v in row[2:]] for row in table.rows])
        im = ax.imshow(data, cmap="Reds", vmin=0.0, vmax=max(0.5, float(np.nanmax(data)) if data.size and
                                                          not np.isnan(data).all() else 0.5), aspect="auto")
        labels = [emotion_label(c).replace(" ", "\n") if c in EMOTION_NAMES else "事件\n" + c.split(":", 1)[1]
                  for c in cols]
        ax.set_xticks(range(len(cols)), labels, fontsize=8)
        ax.set_yticks(range(len(table.rows)), [f"{r[0]} ({r[1]})" for r in table.rows])
        n_emo = sum(c in EMOTION_NAMES for c in cols)
        if n_emo < len(cols):
            ax.axvline(n_emo - 0.5, color="#333", linewidth=1.5)
        for i, row in enumerate(data):
            for j, v in enumerate(row):
                if not np.isnan(v):
                    ax.text(j, i, f"{v:.0%}", ha="center", va="center", fontsize=8,
                            color="white" if v > 0.35 else "#222")
        ax.set_xlabel("客户情绪占比（按语音时长） · 有该事件的通话占比 — customer emotion share (speech time) · "
                      "share of calls with the event", fontsize=8)
        ax.set_ylabel(f"{by_label} (通话数 calls)")
        ax.set_title("情绪 × 类别热力图（含事件） Emotion × category heat map, events included")
        fig.colorbar(im, ax=ax, shrink=0.8, format=lambda x, _: f"{x:.0%}")

    return _render("heatmap", table, draw, size=(11, 1.6 + 0.45 * max(3, len(table.rows))))


def trends(table: Any) -> Chart:
    """Daily trends: the average score (left axis) and the customer negative share (right axis)."""
    def draw(fig, ax):
        days = table.column("day")
        x = range(len(days))
        score = [float("nan") if v is None else v for v in table.column("avg_score")]
        neg = [float("nan") if v is None else 100 * v for v in table.column("customer_negative_share")]
        ax.plot(x, score, marker="o", color="#1565c0", label="平均分 Avg score")
        ax.set_ylim(0, 100)
        ax.set_ylabel("平均分 Avg score (0–100)", color="#1565c0")
        ax2 = ax.twinx()
        ax2.plot(x, neg, marker="s", color="#c62828", label="客户负面 % Customer negative %")
        ax2.set_ylim(0, 100)
        ax2.set_ylabel("客户负面情绪占比 Customer negative %", color="#c62828")
        ax2.spines["right"].set_visible(True)
        step = max(1, len(days) // 12)
        ax.set_xticks(list(x)[::step], [f"{d}\n({n})" for d, n in zip(days, table.column("calls"))][::step],
                      fontsize=8)
        ax.set_xlabel("日期 Day (通话数 calls), UTC")
        ax.set_title("每日趋势 Daily trends")
        lines = ax.get_lines() + ax2.get_lines()
        ax.legend(lines, [ln.get_label() for ln in lines], loc="lower left", fontsize=8)

    return _render("trends", table, draw)


def _grouped_bars(ax: Any, groups: list[str], series: list[tuple[str, list[Any], str]], horizontal: bool = False
                  ) -> None:
    n = len(series)
    width = 0.8 / max(1, n)
    for k, (label, values, color) in enumerate(series):
        pos = [i - 0.4 + width * (k + 0.5) for i in range(len(groups))]
        vals = [0 if v is None else v for v in values]
        bars = (ax.barh if horizontal else ax.bar)(pos, vals, width * 0.95, label=label, color=color)
        ax.bar_label(bars, labels=["–" if v is None else f"{v:.0f}" for v in values], fontsize=7, padding=2)
    (ax.set_yticks if horizontal else ax.set_xticks)(range(len(groups)), groups, fontsize=8)


def agents(table: Any) -> Chart:
    """Agent profiles: average score, customer negative % and agent talk % per agent."""
    def pct(col):
        return [None if v is None else 100 * v for v in table.column(col)]

    def draw(fig, ax):
        groups = [f"{a}\n({n})" for a, n in zip(table.column("agent_id"), table.column("calls"))]
        _grouped_bars(ax, groups, [("平均分 Avg score", table.column("avg_score"), "#1565c0"),
                                   ("客户负面 % Customer negative %", pct("customer_negative_share"), "#c62828"),
                                   ("坐席说话 % Agent talk %", pct("talk_ratio"), "#9e9e9e")])
        ax.set_ylim(0, 110)
        ax.set_ylabel("分数 / 百分比 Score / %")
        ax.set_xlabel("坐席 Agent (通话数 calls)")
        ax.set_title("坐席画像 Agent profiles")
        ax.legend(fontsize=8, loc="upper right", ncols=3)

    return _render("agents", table, draw)


def script(table: Any) -> Chart:
    """Script effectiveness: the customer negative % after the turns each rule matched, and after the rest."""
    def draw(fig, ax):
        names = [("未匹配 unmatched turns" if r == "(unmatched)" else f"{r}") + f" ({n})"
                 for r, n in zip(table.column("rule_id"), table.column("agent_turns"))]
        vals = [None if v is None else 100 * v for v in table.column("customer_negative_share")]
        colors = ["#9e9e9e" if r == "(unmatched)" else "#1565c0" for r in table.column("rule_id")]
        bars = ax.barh(range(len(names)), [0 if v is None else v for v in vals], color=colors)
        ax.bar_label(bars, labels=["–" if v is None else f"{v:.0f}%" for v in vals], fontsize=8, padding=2)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.invert_yaxis()
        base = table.column("baseline")[0]
        if base is not None:
            ax.axvline(100 * base, color="#c62828", linestyle="--", linewidth=1, label="基线 baseline")
            ax.legend(fontsize=8, loc="lower right")
        ax.set_xlim(0, 105)
        ax.set_xlabel("坐席该句之后客户负面情绪占比 Customer negative % after the agent turn")
        ax.set_ylabel("规则 Rule (坐席话轮 agent turns)")
        ax.set_title("话术效果 Script effectiveness")

    return _render("script", table, draw, size=(9, 1.6 + 0.4 * max(3, len(table.rows))))


def before_after(table: Any, agent_id: str, day: str) -> Chart:
    """One agent's customers before and after a date: their emotion distribution, side by side."""
    rows = table.to_dicts()

    def draw(fig, ax):
        series = []
        for r, color in zip(rows, ("#9e9e9e", "#1565c0")):
            tag = "之前 before" if r["period"] == "before" else "之后 after"
            score = "–" if r["avg_score"] is None else f"{r['avg_score']:.0f}"
            neg = "–" if r["customer_negative_share"] is None else f"{100 * r['customer_negative_share']:.0f}%"
            series.append((f"{tag}: {r['calls']} 通话 calls, 平均分 score {score}, 负面 negative {neg}",
                           [None if r[e] is None else 100 * r[e] for e in EMOTION_NAMES], color))
        _grouped_bars(ax, [emotion_label(e).replace(" ", "\n") for e in EMOTION_NAMES], series)
        top = max([v for _, vals, _ in series for v in vals if v is not None] or [0])
        ax.set_ylim(0, min(105, top * 1.3 + 10))
        ax.set_ylabel("客户情绪占比 Customer emotion %")
        ax.set_title(f"坐席 {agent_id} 在 {day} 前后 Agent {agent_id} before / after {day}")
        ax.legend(fontsize=8, loc="upper right")

    return _render("before_after", table, draw, has_data=any(r["calls"] for r in rows))
