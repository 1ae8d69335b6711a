"""The web UI's Live tab in a real headless Chromium, fed by a real ``/v1/live`` WebSocket call.

A stereo μ-law call is streamed at real-time pace (``callsense.live.client``) to ``callsense serve``
with tiny models steered to anger; the page must show the call in progress and the alert of the
angry-customer rule while the call is still streaming, then list the finished call, which opens on
the Calls tab. The screenshot of the page mid-call is docs/img/live.png (random test models;
rewritten with ``CALLSENSE_SCREENSHOTS=1``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from api_support import EXAMPLES, REPO, TEST_RULES, Server
from callsense.live.client import read_recording, stream

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MULAW = EXAMPLES / "call_stereo_8k_mulaw.wav"
OUT = REPO / "test-output"
DOC_IMG = REPO / "docs" / "img" / "live.png"

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RULES = TEST_RULES + """\
  - id: test.angry_customer
    name: 客户愤怒 Angry customer
    scope: {role: customer}
    conditions:
      1: {type: emotion, labels: [angry]}
    consequence: {severity: critical}
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail("Debian chromium is required for the browser test: apt-get install -y chromium")
    from callsense.testing.forge import forge

    models = tmp_path_factory.mktemp("forge-angry-ui")
    forge(models, size="tiny", label="angry")  # steered: the emotion rule fires deterministically
    data = tmp_path_factory.mktemp("live-ui")
    srv = Server(data, {"CALLSENSE_MODEL_DIR": str(models), "CALLSENSE_OFFLINE": "1",
                        "CALLSENSE_DATABASE_URL": f"sqlite:///{data / 'store.db'}"}).start()
    with srv.client() as c:
        assert c.put("/v1/rules", json={"yaml": RULES}).status_code == 200
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


class LiveCall(threading.Thread):
    """Streams the recording at real-time pace in the background; keeps every server message."""

    def __init__(self, srv: Server, call_id: str):
        super().__init__(daemon=True)
        self.url = f"ws://127.0.0.1:{srv.port}/v1/live"
        self.call_id = call_id
        self.messages: list[dict] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        async def go() -> None:
            async for m in stream(self.url, read_recording(MULAW), speed=1.0, frame_ms=20, call_id=self.call_id):
                self.messages.append(m)

        try:
            asyncio.run(go())
        except BaseException as e:  # reported by the test, not lost in the thread
            self.error = e


def test_live_tab_shows_call_in_progress_and_its_alert(served, browser):
    OUT.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    # the Live tab polls only while shown: a page on another tab goes network-idle
    page.goto(served.url + "/", wait_until="load")
    page.get_by_role("tab", name="分析 Analyze").wait_for(timeout=60_000)  # the app is mounted
    page.get_by_role("tab", name="实时 Live").click(timeout=60_000)
    page.wait_for_selector("text=No live calls 暂无进行中的通话", timeout=30_000)

    call = LiveCall(served, "live_ui_demo")
    call.start()
    # the call in progress appears, with its alert, while the client is still streaming
    page.wait_for_selector('.cs-live-call[data-call="live_ui_demo"]', timeout=30_000)
    page.wait_for_selector('#cs-live-alerts tr.cs-live-alert[data-rule="test.angry_customer"]', timeout=60_000)
    seen_at = time.monotonic()
    alerts = [m for m in call.messages if m["type"] == "alert"]
    assert any(a["rule_id"] == "test.angry_customer" for a in alerts)  # the client was told too
    assert not any(m["type"] == "stopped" for m in call.messages), "the call ended before the page showed it"
    row = page.locator('#cs-live-alerts tr.cs-live-alert[data-rule="test.angry_customer"]')
    assert "客户愤怒 Angry customer" in row.inner_text() and "live_ui_demo" in row.inner_text()
    box = page.locator('.cs-live-call[data-call="live_ui_demo"]').inner_text()
    assert "angry" in box  # the steered emotion of the side that spoke
    page.wait_for_function("document.querySelector('.cs-live-lines') && "
                           "/(agent|customer):/.test(document.querySelector('.cs-live-lines').innerText)",
                           timeout=30_000)
    page.screenshot(path=str(OUT / "ui-live.png"), full_page=True)
    if os.environ.get("CALLSENSE_SCREENSHOTS") == "1":  # the documentation's copy, only when asked
        page.screenshot(path=str(DOC_IMG), full_page=True)
    assert time.monotonic() - seen_at < 60

    # the call ends: it leaves the list of calls in progress and is listed as finished
    call.join(120)
    assert call.error is None, call.error
    assert call.messages[-1]["type"] == "stopped"
    page.wait_for_selector("text=No live calls 暂无进行中的通话", timeout=30_000)
    finished = page.locator("#cs-live-finished")
    page.wait_for_function("document.querySelector('#cs-live-finished').innerText.includes('live_ui_demo')",
                           timeout=30_000)
    # selecting it opens the stored call on the Calls tab
    finished.get_by_test_id("cell-0-0").click()
    page.wait_for_selector(".cs-call #cs-transcript tr.cs-seg", timeout=30_000)
    finals = [m for m in call.messages if m["type"] == "final"]
    assert page.locator(".cs-call #cs-transcript tr.cs-seg").count() == len(finals) > 0
    assert page.get_by_role("tab", name="通话 Calls", selected=True).is_visible()
    page.close()
