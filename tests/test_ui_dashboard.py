"""The Dashboard tab in a real headless Chromium: charts drawn when the tab is opened (no Refresh), every one
an image with its PNG and CSV to download, the CSV the store's numbers, nothing fetched from outside.

The store is filled before the server starts with hand-made results (several days, agents, categories,
events, a rule matching agent turns), so the charts have something to show without analysing audio.
With ``CALLSENSE_SCREENSHOTS=1`` the test also writes docs/img/dashboard.png (random test data).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import random
import re
from pathlib import Path

import httpx
import pytest

from api_support import REPO, Server
from callsense.result.qa import Evidence, RuleHit
from callsense.testing.results import event, make_result, scored, seg
from test_ui_browser import OUT, browser  # noqa: F401 - the headless Chromium fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DOC_IMG = REPO / "docs" / "img"
CHARTS = ("heatmap", "trends", "agents", "script", "before_after")


def _results(n: int = 14):
    rng = random.Random(13)
    out = []
    for i in range(n):
        agent, category = f"a{i % 3 + 1}", ("billing", "refund", "tech")[i % 3 if i % 4 else 1]
        scores = [rng.random() ** 2 for _ in range(9)]
        angry = [0.0] * 9
        angry[0] = 1.0
        segs = [seg("agent", 0, 2500, "您好，请问有什么可以帮您", emotion_="neutral"),
                seg("customer", 2600, 6000, "我要投诉，退款还没到" if i % 4 == 0 else "请问账单什么时候寄出", emotion_=scores),
                seg("agent", 6100, 8000, "非常抱歉给您带来不便", emotion_="neutral"),
                seg("customer", 8100, 11_000, "好吧，谢谢", emotion_="happy" if i % 2 else angry)]
        events = [event("BGM", 0, 1500, role="agent")] if i % 3 == 0 else []
        if i % 5 == 0:
            events.append(event("ringback", 0, 800))
        r = make_result(segs, call_id=f"dash{i:02d}", metadata={"agent_id": agent, "category": category},
                        events=events, started_at=f"2026-01-{5 + i // 3:02d}T09:{i:02d}:00Z")
        r = dataclasses.replace(r, source=dataclasses.replace(r.source, sha256=f"{i:064x}", name=f"dash{i:02d}.wav"))
        r = scored(r)
        apology = RuleHit(rule_id="script.apology", rule_version="1", name="道歉话术 Apology", category="script",
                          severity="info", evidence=(Evidence(segment_id="s0003", start_ms=6100, end_ms=8000,
                                                              role="agent"),))
        out.append(dataclasses.replace(r, rule_hits=(*r.rule_hits, apology) if i % 2 else r.rule_hits))
    return out


@pytest.fixture(scope="module")
def served_board(tmp_path_factory, tiny_models):
    from callsense.store import open_store, save_result

    data = tmp_path_factory.mktemp("ui-dash")
    url = f"sqlite:///{data / 'store.db'}"
    store = open_store(url)
    for r in _results():
        save_result(store, r)
    store.close()
    srv = Server(data, {"CALLSENSE_MODEL_DIR": str(tiny_models), "CALLSENSE_OFFLINE": "1",
                        "CALLSENSE_DATABASE_URL": url}).start()
    srv.store_url = url
    yield srv
    srv.stop()


def test_served_page_references_no_cdn(served_board):
    html = httpx.get(served_board.url + "/", timeout=30).text
    external = re.findall(r"""(?:src|href)=["'](https?://[^"']+)""", html)
    assert [u for u in external if not u.startswith(served_board.url)] == []
    assert not re.search(r"cdn\.|jsdelivr|unpkg|googleapis|gstatic", html)


def test_dashboard_charts_render_and_download(served_board, browser, tmp_path):  # noqa: F811
    from callsense.store import emotion_event_heatmap, open_store

    OUT.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(served_board.url + "/", wait_until="load")
    page.get_by_role("tab", name="分析 Analyze").wait_for(timeout=60_000)  # the app is mounted

    # the Calls tab lists the stored calls when opened (no Refresh)
    page.get_by_role("tab", name="通话 Calls").click()
    page.wait_for_function("document.body.innerText.includes('dash13')", timeout=30_000)

    page.get_by_role("tab", name="看板 Dashboard").click()  # no Refresh: the tab loads its data when opened
    try:
        for name in CHARTS:
            page.locator(f"#cs-chart-{name}").scroll_into_view_if_needed()  # the images load lazily
            page.wait_for_function(f"(() => {{ const i = document.querySelector('#cs-chart-{name} img');"
                                   "return i && i.complete && i.naturalWidth > 300; })()", timeout=60_000)
    finally:
        page.screenshot(path=str(OUT / "ui-dashboard-wait.png"), full_page=True)
    page.wait_for_function("document.querySelector('#cs-dash-status') && "
                           "document.querySelector('#cs-dash-status').innerText.includes('14')", timeout=30_000)
    assert page.locator(".toast-wrap .toast-body, .error").count() == 0
    assert not errors, errors
    assert page.locator("#cs-ba-agent input, #cs-ba-agent textarea").first.input_value() == "a1"  # filled in

    # every chart has its PNG and CSV to download; the heat map's CSV is the store's table
    for name in CHARTS:
        text = page.locator(f"#cs-dl-{name}").inner_text().replace("\n", "")
        assert f"callsense_{name}.png" in text and f"callsense_{name}.csv" in text, text
    with page.expect_download() as dl:
        page.locator("#cs-dl-heatmap a[download='callsense_heatmap.csv']").click()
    path = tmp_path / "heatmap.csv"
    dl.value.save_as(path)
    got = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    store = open_store(served_board.store_url)
    want = emotion_event_heatmap(store, by="category")
    store.close()
    assert got[0] == list(want.columns) and "event:BGM" in got[0] and "event:ringback" in got[0]
    assert [r[0] for r in got[1:]] == [r[0] for r in want.rows] == ["billing", "refund", "tech"]
    assert [float(x) for x in got[1][2:]] == pytest.approx([float(x) for x in want.rows[0][2:]])
    # the files are in the service's UI temp folder (swept by the privacy sweep)
    assert list((Path(served_board.data_dir) / "ui-tmp" / "dashboard").rglob("callsense_heatmap.csv"))

    # nothing came from outside the service
    assert [u for u in requests if not u.startswith((served_board.url, "data:", "blob:"))] == []
    page.screenshot(path=str(OUT / "ui-dashboard.png"), full_page=True)
    if os.environ.get("CALLSENSE_SCREENSHOTS") == "1":
        page.screenshot(path=str(DOC_IMG / "dashboard.png"), full_page=True)
        page.locator("#cs-chart-heatmap").screenshot(path=str(DOC_IMG / "dashboard-heatmap.png"))

    # another grouping and a date window: Refresh redraws from the store
    page.locator("#cs-dash-from input, #cs-dash-from textarea").first.fill("2026-01-06")
    page.get_by_role("button", name="刷新 Refresh").click()
    page.wait_for_function("document.querySelector('#cs-dash-status').innerText.includes('2026-01-06')",
                           timeout=30_000)
    assert page.locator("#cs-dash-status").inner_text().startswith("11 ")  # the 3 calls of 01-05 left out
    page.close()
