"""The Calls tab's review widget in headless Chromium: a reviewer gives a segment a custom label and
the correction is stored with who and when (the same store the REST endpoint writes)."""

from __future__ import annotations

import json

import httpx
import pytest

from api_support import CALL
from test_ui_browser import OUT, auth_launched, browser, served  # noqa: F401  (the browser test's fixtures; served launches auth_launched)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_reviewer_labels_a_segment_in_the_calls_tab(served, browser):  # noqa: F811
    with open(CALL, "rb") as f:
        r = httpx.post(f"{served.url}/v1/analyze", files={"file": ("review.wav", f.read() + b"\x00\x00\x00\x00")},
                       data={"metadata": json.dumps({"agent_id": "rev1"})}, timeout=120)
    assert r.status_code == 200, r.text
    call_id = r.json()["call_id"]
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(served.url + "/", wait_until="load")
    page.get_by_role("tab", name="分析 Analyze").wait_for(timeout=60_000)
    page.get_by_role("tab", name="通话 Calls").click()
    page.get_by_label("坐席 Agent", exact=True).fill("rev1")
    page.get_by_role("button", name="查询 Refresh").click()
    page.wait_for_selector(".cs-call audio.cs-player", timeout=30_000)
    page.get_by_text("复核 Review: correct a segment's emotion").click()
    page.wait_for_function("document.querySelector('#cs-review-segment input') && "
                           "document.querySelector('#cs-review-segment input').value.startsWith('s')", timeout=30_000)
    label = page.locator("#cs-review-label input")
    label.click()
    label.fill("anxious")
    label.press("Enter")
    page.locator("#cs-review-note input, #cs-review-note textarea").first.fill("from the browser")
    page.locator("#cs-review-save").click()
    page.wait_for_function("document.querySelector('#cs-review-list') && "
                           "document.querySelector('#cs-review-list').innerText.includes('anxious')", timeout=30_000)
    page.screenshot(path=str(OUT / "ui-review.png"), full_page=True)
    items = httpx.get(f"{served.url}/v1/calls/{call_id}/labels", timeout=30).json()["items"]
    assert len(items) == 1 and items[0]["label"] == "anxious" and items[0]["custom"] is True
    assert items[0]["reviewer"] == "web" and items[0]["note"] == "from the browser"
    page.close()
