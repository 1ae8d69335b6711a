"""The dashboard's charts (callsense.ui.charts): every chart is a PNG of the rows it was given and a CSV of
the same rows; an empty table draws "no data" instead of failing."""

from __future__ import annotations

import csv
import io

import pytest

from callsense.labels import EMOTION_NAMES
from callsense.store.aggregates import Table

pytest.importorskip("matplotlib", reason="matplotlib is part of the serve extra")

PNG = b"\x89PNG\r\n\x1a\n"


def _png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(PNG)
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def _csv(chart) -> list[list[str]]:
    return list(csv.reader(io.StringIO(chart.csv)))


def test_every_chart_is_a_png_and_the_csv_of_its_rows():
    from callsense.ui import charts

    e = tuple(round(1 / 9, 3) for _ in EMOTION_NAMES)
    heat = Table("h", ("category", "calls", *EMOTION_NAMES, "event:BGM"),
                 (("billing", 2, *e, 0.5), ("tech", 1, *e, None)))
    trends = Table("t", ("day", "calls", "audio_h", "avg_score", "critical_hits", "customer_negative_share"),
                   (("2026-01-05", 1, 0.1, 80.0, 1, 0.5), ("2026-01-06", 2, 0.2, None, 0, None)))
    agents = Table("a", ("agent_id", "calls", "audio_h", "avg_score", "critical_hits", "customer_negative_share",
                         "talk_ratio"), (("a1", 2, 0.1, 85.0, 1, 0.25, 0.6), ("a2", 1, 0.1, None, 0, None, None)))
    script = Table("s", ("rule_id", "name", "agent_turns", "customer_segments", "customer_emotion_s",
                         "customer_negative_share", "baseline", "delta"),
                   (("(unmatched)", "", 3, 4, 10.0, 0.6, 0.6, None), ("apology", "apology", 2, 2, 5.0, 0.1, 0.6, -0.5)))
    ba = Table("b", ("period", "from", "until", "calls", "avg_score", "critical_hits", "customer_negative_share",
                     *EMOTION_NAMES), (("before", None, "2026-01-06", 1, 70.0, 1, 0.5, *e),
                                       ("after", "2026-01-06", None, 0, None, 0, None, *(None,) * 9)))
    made = [charts.heatmap(heat, "类别 Category"), charts.trends(trends), charts.agents(agents), charts.script(script),
            charts.before_after(ba, "a1", "2026-01-06")]
    assert [c.name for c in made] == ["heatmap", "trends", "agents", "script", "before_after"]
    for chart, table in zip(made, (heat, trends, agents, script, ba)):
        w, h = _png_size(chart.png)
        assert w > 400 and h > 150
        rows = _csv(chart)
        assert rows[0] == list(table.columns) and len(rows) == 1 + len(table.rows)
        assert rows[1][0] == str(table.rows[0][0])
    assert _csv(made[0])[2][-1] == ""  # None is an empty cell


def test_an_empty_table_draws_no_data():
    from callsense.ui import charts

    empty = Table("t", ("day", "calls", "audio_h", "avg_score", "critical_hits", "customer_negative_share"), ())
    chart = charts.trends(empty)
    assert chart.png.startswith(PNG) and _csv(chart) == [list(empty.columns)]
    full = charts.trends(Table("t", empty.columns, (("2026-01-05", 1, 0.1, 80.0, 1, 0.5),)))
    assert full.png != chart.png
