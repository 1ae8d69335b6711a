"""A live call's webhooks: sent the moment a rule fires, recorded in the outbox when the call is
stored, retried there when they failed, never sent twice — against a real ``callsense serve`` and a
real HTTP receiver."""

from __future__ import annotations

import asyncio
import time

import pytest
from api_support import EXAMPLES, TEST_RULES, Server
from test_outbox import Receiver

from callsense.live.client import read_recording, stream

MULAW = EXAMPLES / "call_stereo_8k_mulaw.wav"


@pytest.fixture(scope="module")
def steered_models(tmp_path_factory):
    from callsense.testing.forge import forge

    out = tmp_path_factory.mktemp("forge-angry-alerts")
    forge(out, size="tiny", label="angry")
    return out


@pytest.fixture
def receiver():
    r = Receiver(statuses=[503])  # the live attempt fails; the outbox's retry succeeds
    yield r
    r.close()


def _rules(url: str) -> str:
    return TEST_RULES + f"""\
  - id: test.angry_customer
    name: 客户愤怒 Angry customer
    scope: {{role: customer}}
    conditions:
      1: {{type: emotion, labels: [angry]}}
    consequence: {{severity: critical}}
  - id: test.whole_call
    name: decided at the end
    conditions:
      1: {{type: duration, above_s: 1}}
    consequence: {{severity: info, alert: true}}
alerts:
  - {{url: "{url}", format: generic, name: qa-room, retries: 2, backoff_s: 0.2, timeout_s: 5}}
"""


def test_live_alert_is_sent_at_once_then_recorded_and_retried_by_the_outbox(tmp_path, steered_models, receiver):
    srv = Server(tmp_path / "data", {"CALLSENSE_MODEL_DIR": str(steered_models),
                                     "CALLSENSE_HOME": str(tmp_path / "home"),
                                     "CALLSENSE_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}"}).start()
    try:
        with srv.client() as c:
            assert c.put("/v1/rules", json={"yaml": _rules(receiver.url)}).status_code == 200

        async def go():
            return [m async for m in stream(f"ws://127.0.0.1:{srv.port}/v1/live", read_recording(MULAW),
                                            speed=0, frame_ms=20)]

        messages = asyncio.run(go())
        alerts = [m for m in messages if m["type"] == "alert"]
        assert any(a["rule_id"] == "test.angry_customer" for a in alerts)
        stopped = next(m for m in messages if m["type"] == "stopped")
        call_id = stopped["call_id"]
        # the live attempt was made before the call ended (the receiver refused it with 503)
        angry = [r for r in receiver.requests if "test.angry_customer" in str(r[2])]
        assert angry, "the live alert was not sent while the call was on"

        # after stop: the courier retries the live alert and sends the whole-call hit
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with srv.client() as c:
                body = c.get(f"/v1/calls/{call_id}").json()
            records = {tuple(a["rule_ids"]): a for a in body["alerts"]}
            if all(r.get("delivered") for r in records.values()) and len(records) >= 2:
                break
            time.sleep(0.3)
        assert records[("test.angry_customer",)]["delivered"] is True
        assert records[("test.angry_customer",)]["attempts"] == 2  # the live one and one retry
        assert records[("test.whole_call",)]["delivered"] is True
        assert all(r["target"] == "qa-room" for r in records.values())  # never the URL with its key
        # never sent twice: one refused live attempt + one retry for the live rule, one for the other
        time.sleep(1.0)
        bodies = [str(r[2]) for r in receiver.requests]
        assert sum("test.angry_customer" in b for b in bodies) == 2
        assert sum("test.whole_call" in b for b in bodies) == 1
    finally:
        srv.stop()
