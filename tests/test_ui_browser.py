"""The web UI in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright).

Starts ``callsense serve``, uploads the example call on the Analyze tab, waits for the result and
checks what a supervisor reads: the emoji headline, the 9 distribution bars, the transcript by role,
a rule hit whose evidence moves the player, its score breakdown and playable review clip; the Calls
page, search hits that open their call, the rules table, the packaged examples. Screenshots go to
test-output/; with ``CALLSENSE_SCREENSHOTS=1`` the documentation's (docs/img/analyze.png, calls.png,
rules.png: made with random test models) are rewritten too.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import httpx
import pytest

from api_support import CALL, REPO, TEST_RULES, Server
from callsense.labels import EMOTION_BY_NAME, EMOTION_NAMES
from callsense.report import emotion_headline, main_emotion
from callsense.report.svg import fmt_ms
from callsense.result.model import CallAnalysis

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
OUT = REPO / "test-output"
DOC_IMG = REPO / "docs" / "img"
GRADIO_ARG_WARNING = "arguments for function"  # Gradio: "Expected 9 arguments for function ..., received 8"


def shot(page, name: str, doc: str | None = None) -> None:
    """test-output/<name>.png; also docs/img/<doc>.png when CALLSENSE_SCREENSHOTS=1."""
    OUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
    if doc and os.environ.get("CALLSENSE_SCREENSHOTS") == "1":
        page.screenshot(path=str(DOC_IMG / f"{doc}.png"), full_page=True)


def open_app(browser, srv):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(srv.url + "/", wait_until="load")
    page.get_by_role("tab", name="分析 Analyze").wait_for(timeout=60_000)  # the app is mounted
    return page

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def auth_launched(tmp_path_factory, tiny_models):
    """The ``--auth`` server of the roles test, launched with the module's first server and waited for only
    by that test (served_auth): its start-up (imports, Gradio's UI build) overlaps the other tests'."""
    from callsense.service.keys import KeyStore

    data = tmp_path_factory.mktemp("ui-auth")
    keys = KeyStore(data / "api-keys.json")
    _, viewer = keys.create("viewer", "vera")
    _, admin = keys.create("admin", "ada")
    env = {"CALLSENSE_MODEL_DIR": str(tiny_models), "CALLSENSE_OFFLINE": "1",
           "CALLSENSE_DATABASE_URL": f"sqlite:///{data / 'store.db'}"}
    srv = Server(data, env, "--auth", root_args=("-v",)).launch()
    srv.keys = {"vera": viewer, "ada": admin}
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_models, auth_launched):
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail("Debian chromium is required for the browser test: apt-get install -y chromium")
    data = tmp_path_factory.mktemp("ui")
    env = {"CALLSENSE_MODEL_DIR": str(tiny_models), "CALLSENSE_OFFLINE": "1",
           "CALLSENSE_DATABASE_URL": f"sqlite:///{data / 'store.db'}"}
    srv = Server(data, env, root_args=("-v",)).start()  # -v: Gradio's warnings reach the log
    # a rule that fires whenever the customer speaks: a deterministic hit on random-weight models
    r = httpx.put(f"{srv.url}/v1/rules", json={"yaml": TEST_RULES}, timeout=30)
    assert r.status_code == 200, r.text
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def test_analyze_page(served, browser):
    OUT.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(served.url + "/", wait_until="load")
    page.get_by_role("tab", name="分析 Analyze").wait_for(timeout=60_000)  # the app is mounted
    for tab in ("分析 Analyze", "通话 Calls", "搜索 Search", "看板 Dashboard", "规则 Rules"):
        assert page.get_by_role("tab", name=tab).is_visible()
    # the dropdowns show their defaults, not blank
    assert "auto" in page.locator("#cs-channels input").input_value()
    assert page.locator("#cs-emotion-model input").input_value().startswith("emotion2vec")
    assert page.locator("#cs-example input").input_value() == "call_zh.wav"  # the packaged examples
    page.locator("#cs-audio input[type=file]").set_input_files(str(CALL))
    page.wait_for_selector("#cs-audio audio, #cs-audio wave, #cs-audio canvas", state="attached", timeout=30_000)
    page.screenshot(path=str(OUT / "ui-uploaded.png"))
    page.locator("#cs-analyze").click()
    page.wait_for_selector("#cs-main-emotion", timeout=120_000)
    page.wait_for_selector("#cs-transcript", timeout=30_000)
    page.screenshot(path=str(OUT / "ui-analyze-result.png"), full_page=True)

    # what the page shows is the stored result of this call
    calls = httpx.get(f"{served.url}/v1/calls", timeout=30).json()["items"]
    assert len(calls) == 1 and calls[0]["filename"] == CALL.name
    result = CallAnalysis.from_dict(httpx.get(f"{served.url}/v1/calls/{calls[0]['call_id']}", timeout=30).json())

    _, label, conf, scores = main_emotion(result)
    headline = page.locator("#cs-main-emotion").inner_text()
    assert headline.strip() == emotion_headline(label, conf)
    assert headline.startswith(EMOTION_BY_NAME[label].emoji)

    bars = page.locator("#cs-main .cs-bar-row")
    assert bars.count() == 9
    shown = {bars.nth(i).get_attribute("data-label"): float(bars.nth(i).locator(".cs-bar-value").inner_text()
                                                          .rstrip("%")) for i in range(9)}
    assert set(shown) == set(EMOTION_NAMES)
    for name, value in zip(EMOTION_NAMES, scores):
        assert abs(shown[name] - value * 100) < 0.06
    widths = [bars.nth(i).locator(".cs-bar").bounding_box()["width"] for i in range(9)]
    assert widths == sorted(widths, reverse=True) and widths[0] > widths[-1] >= 0

    rows = page.locator("#cs-transcript tr.cs-seg")
    assert rows.count() == len(result.segments) > 0
    for i, seg in enumerate(result.segments):
        cells = rows.nth(i).locator("td")
        assert cells.nth(1).inner_text() == seg.role and cells.nth(4).inner_text() == seg.text
    # start–end times
    seg = result.segments[0]
    assert rows.nth(0).locator("td").nth(0).inner_text() == f"{fmt_ms(seg.start_ms)}–{fmt_ms(seg.end_ms)}"

    hit = page.locator('#cs-hits tr.cs-hit[data-rule="test.customer_spoke"]')
    assert hit.is_visible() and "客户发言 Customer spoke" in hit.inner_text()
    assert page.locator("#cs-timeline svg.cs-timeline").is_visible()
    assert page.locator("#cs-breakdown tr.cs-item").count() == len(result.score.items)  # the scorecard breakdown

    # the hit's review clip plays: cut by /v1/calls/{id}/clip with the page's token, as long as its window
    start, end = result.rule_hits[0].window()
    page.wait_for_function("document.querySelector('#cs-hits audio.cs-clip-audio').readyState >= 1", timeout=30_000)
    seconds = page.evaluate("document.querySelector('#cs-hits audio.cs-clip-audio').duration")
    assert abs(seconds - (end - start) / 1000) < 0.1, seconds
    src = page.locator("#cs-hits audio.cs-clip-audio").first.get_attribute("src")
    clip = httpx.get(served.url + src, timeout=30)  # the src itself answers a WAV
    assert clip.status_code == 200 and clip.headers["content-type"].startswith("audio/") and clip.content[:4] == b"RIFF"
    assert page.locator("#cs-breakdown").is_visible()

    # evidence → the player jumps there
    evidence = result.rule_hits[0].evidence[1]
    page.wait_for_function("document.querySelector('audio.cs-player').readyState >= 1", timeout=30_000)
    hit.locator(".cs-seek").nth(1).click()
    t = page.evaluate("document.querySelector('audio.cs-player').currentTime")
    assert abs(t - evidence.start_ms / 1000) < 0.3, t
    shot(page, "ui-analyze", "analyze")

    # downloads: result.json, embeddings.npy and the HTML report
    names = page.locator("#cs-files").inner_text()
    assert "result.json" in names and "embeddings.npy" in names and "report.html" in names
    page.close()


def test_load_example_analyses(served, browser):
    """"Load example" loads a packaged call and analyses it: no Analyze click needed."""
    page = open_app(browser, served)
    page.locator("#cs-example input").click()
    page.get_by_role("option", name="call_ko.wav").click()
    page.locator("#cs-load-example").click()
    page.wait_for_selector("#cs-main-emotion", timeout=120_000)
    page.wait_for_selector("#cs-transcript, #cs-transcript-box .cs-muted", timeout=30_000)
    calls = httpx.get(f"{served.url}/v1/calls", timeout=30).json()["items"]
    assert "call_ko.wav" in [c["filename"] for c in calls]
    page.close()


def test_calls_and_rules_tabs(served, browser):
    page = open_app(browser, served)
    with open(CALL, "rb") as f:  # a stored call to list, analysed through the API with metadata
        r = httpx.post(f"{served.url}/v1/analyze", files={"file": ("api.wav", f.read() + b"\x00\x00")},
                       data={"metadata": json.dumps({"agent_id": "a42"})}, timeout=120)
    assert r.status_code == 200, r.text
    call_id = r.json()["call_id"]
    page.get_by_role("tab", name="通话 Calls").click()
    # opening the tab lists the calls, no Refresh needed
    page.wait_for_function(f"document.querySelector('#cs-calls-table').innerText.includes('{call_id}')",
                           timeout=30_000)
    page.get_by_label("坐席 Agent", exact=True).fill("a42")
    page.get_by_role("button", name="查询 Refresh").click()
    page.wait_for_function(f"document.body.innerText.includes('{call_id}')", timeout=30_000)
    page.wait_for_selector(".cs-call audio.cs-player", timeout=30_000)
    assert page.locator(".cs-call #cs-transcript tr.cs-seg").count() == len(r.json()["result"]["segments"])
    headers = page.locator("#cs-calls-table").inner_text()
    for h in ("通话 call_id", "文件 file", "时长 seconds", "得分 score", "级别 severity"):
        assert h in headers, headers
    assert page.locator(".cs-call #cs-breakdown tr.cs-item").count() > 0  # the breakdown on the call page
    # clicking a row opens it (pick_row)
    page.locator("#cs-calls-table").get_by_text(call_id, exact=True).filter(visible=True).click()
    page.wait_for_function(f"document.querySelector('#cs-call-pick input').value === '{call_id}'", timeout=30_000)
    shot(page, "ui-calls", "calls")

    page.get_by_role("tab", name="规则 Rules").click()
    page.get_by_role("button", name="重新加载 Reload").click()
    page.wait_for_function("document.querySelector('#cs-rules-table').innerText.includes('test.customer_spoke')",
                           timeout=30_000)
    table = page.locator("#cs-rules-table").inner_text()
    assert "segment_count(above: 0)" in table and "[customer]" in table and "warning" in table
    for h in ("编号 id", "名称 name", "级别 severity", "条件 conditions", "分值 points", "建议话术 suggestion"):
        assert h in table
    assert "Version 版本 1" in page.locator("#cs-rules-version").inner_text()
    page.get_by_role("button", name="校验 Validate").click()
    page.wait_for_selector("text=valid 有效", timeout=30_000)
    shot(page, "ui-rules", "rules")
    page.close()


def test_search_hits_highlighted_and_open_their_call(served, browser):
    calls = httpx.get(f"{served.url}/v1/calls", timeout=30).json()["items"]
    result = httpx.get(f"{served.url}/v1/calls/{calls[0]['call_id']}", timeout=30).json()
    word = next(s["text"] for s in result["segments"] if len((s["text"] or "").strip()) >= 2).strip()[:2]
    page = open_app(browser, served)
    page.get_by_role("tab", name="搜索 Search").click()
    page.get_by_label("文本 Text (e.g. 退款)").fill(word)
    page.get_by_role("button", name="搜索 Search").click()
    page.wait_for_selector("#cs-search-results tr.cs-search-hit", timeout=30_000)
    marks = page.locator("#cs-search-results mark.cs-mark")
    assert marks.count() > 0 and marks.first.inner_text().lower() == word.lower()
    assert "«" not in page.locator("#cs-search-results").inner_text()
    first = page.locator("#cs-search-results tr.cs-search-hit").first
    target = first.get_attribute("data-call")
    first.locator("a.cs-open-call").click()  # the link opens the call in the Calls tab
    page.wait_for_selector(f".cs-call audio.cs-player[src*='/v1/calls/{target}/']", timeout=60_000)
    assert page.get_by_role("tab", name="通话 Calls").get_attribute("aria-selected") == "true"
    page.close()


def test_no_gradio_argument_warnings(served):
    """Gradio checks every handler against its inputs when the UI is built (the server runs with -v, so its
    warnings are in the log); this runs after the tests above, which used each handler (analyse, load
    example, list, pick a row, open a call, search, open from a link, rules reload/validate/save)."""
    log = served.log.read_text()
    assert "alembic" in log  # -v: libraries' records (here alembic's) reach the log, so would Gradio's
    assert GRADIO_ARG_WARNING not in log, [x for x in log.splitlines() if GRADIO_ARG_WARNING in x]


# ---- roles under --auth ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served_auth(auth_launched):
    return auth_launched.start()  # launched with the module's first server (auth_launched): now ready


def _sign_in(browser, srv, name):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(srv.url + "/", wait_until="load")
    page.get_by_label("username").wait_for(timeout=60_000)  # the login form is mounted
    page.get_by_label("username").fill(name)
    page.get_by_label("password").fill(srv.keys[name])
    page.get_by_role("button", name="Login").click()
    page.wait_for_selector("#cs-whoami", timeout=30_000)
    page.wait_for_function(f"document.querySelector('#cs-whoami').innerText.includes('{name}')", timeout=30_000)
    return page


def _save_rules(page, text):
    page.get_by_role("tab", name="规则 Rules").click()
    page.get_by_role("button", name="重新加载 Reload").click()
    page.wait_for_function("document.body.innerText.includes('Version 版本')", timeout=30_000)
    editor = page.locator(".cm-content").first
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    editor.fill(text)
    page.get_by_role("button", name="保存 Save (admin)").click()
    page.wait_for_function("/✅ saved|❌/.test(document.body.innerText)", timeout=30_000)
    return page.locator("body").inner_text()


def test_viewer_cannot_save_rules_admin_can(served_auth, browser):
    page = _sign_in(browser, served_auth, "vera")
    assert "viewer" in page.locator("#cs-whoami").inner_text()
    body = _save_rules(page, TEST_RULES)
    assert "only admins can change rules" in body and "saved as version" not in body
    page.close()
    rules = httpx.get(f"{served_auth.url}/v1/rules", timeout=30,
                      headers={"Authorization": f"Bearer {served_auth.keys['ada']}"}).json()
    assert rules["version"] == 0  # nothing was stored

    page = _sign_in(browser, served_auth, "ada")
    assert "admin" in page.locator("#cs-whoami").inner_text()
    body = _save_rules(page, TEST_RULES)
    assert "saved as version 已保存为版本 1" in body
    # the header shows the new version, and the rules table the saved rules
    page.wait_for_function("document.querySelector('#cs-rules-version').innerText.includes('Version 版本 1')",
                           timeout=30_000)
    assert "custom" in page.locator("#cs-rules-version").inner_text()
    assert "test.customer_spoke" in page.locator("#cs-rules-table").inner_text()
    page.close()
    rules = httpx.get(f"{served_auth.url}/v1/rules", timeout=30,
                      headers={"Authorization": f"Bearer {served_auth.keys['ada']}"}).json()
    assert rules["version"] == 1 and "test.customer_spoke" in rules["yaml"]
    # Gradio injected the request into every handler (it warned "received 1 argument instead of 2" before)
    assert "arguments for function" not in served_auth.log.read_text()
