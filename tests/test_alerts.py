"""Alert webhooks against a real HTTP server on 127.0.0.1: each format, retries, dead webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from callsense.rules import apply_qa
from callsense.rules.alerts import attach_alerts, send_alerts
from callsense.rules.model import AlertTarget
from callsense.testing.results import make_result, seg


class Hook:
    """A local webhook: records requests; answers with ``statuses`` in turn (then 200), or sleeps."""

    def __init__(self, statuses=(), body=b'{"errcode":0,"errmsg":"ok"}', delay_s=0.0):
        self.requests: list[tuple[str, dict]] = []
        self.statuses = list(statuses)
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.requests.append((self.path, json.loads(data)))
                if delay_s:
                    time.sleep(delay_s)
                status = hook.statuses.pop(0) if hook.statuses else 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:  # the client gave up (the timeout test): that is the point
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?key=SECRET"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def result():
    r = make_result([seg("agent", 0, 2000, "您好", emotion_="neutral"),
                     seg("customer", 2500, 6000, "你们再不发货我就投诉", emotion_="angry")], call_id="call-7")
    return apply_qa(r)


def no_sleep(_):
    pass


@pytest.mark.parametrize("fmt", ["generic", "wecom", "dingtalk", "feishu", "slack"])
def test_each_format_is_received(result, fmt):
    with Hook() as hook:
        records = send_alerts(result, [AlertTarget(url=hook.url, format=fmt)], sleep=no_sleep)
    assert len(records) == 1 and records[0].delivered and records[0].attempts == 1 and records[0].status == 200
    assert records[0].rule_ids == ("risk.complaint",)
    assert "SECRET" not in records[0].target  # webhook keys are not stored in results
    (_, body), = hook.requests
    if fmt == "generic":
        assert body["event"] == "callsense.alert" and body["call_id"] == "call-7"
        assert body["hits"][0]["rule_id"] == "risk.complaint"
        assert any(e["text"] == "投诉" and e["segment_id"] == "s0002" for e in body["hits"][0]["evidence"])
    elif fmt == "wecom":
        assert body["msgtype"] == "markdown" and "risk.complaint" in body["markdown"]["content"]
    elif fmt == "dingtalk":
        assert body["msgtype"] == "markdown" and "call-7" in body["markdown"]["title"]
        assert "投诉" in body["markdown"]["text"]
    elif fmt == "feishu":
        assert body["msg_type"] == "text" and "risk.complaint" in body["content"]["text"]
    else:
        assert "*[CRITICAL]" in body["text"]


def test_dingtalk_and_feishu_signing(result):
    with Hook() as hook:
        send_alerts(result, [AlertTarget(url=hook.url, format="dingtalk", secret="s3"),
                             AlertTarget(url=hook.url, format="feishu", secret="s3")], sleep=no_sleep)
    (ding_path, _), (_, feishu_body) = hook.requests
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(ding_path).query)
    expected = base64.b64encode(hmac.new(b"s3", f"{q['timestamp'][0]}\ns3".encode(), hashlib.sha256).digest())
    assert q["sign"][0] == expected.decode() and q["key"] == ["SECRET"]
    ts = feishu_body["timestamp"]
    assert feishu_body["sign"] == base64.b64encode(hmac.new(f"{ts}\ns3".encode(), b"", hashlib.sha256).digest()).decode()


def test_retries_with_backoff_then_delivered(result):
    waits = []
    with Hook(statuses=[503, 500]) as hook:
        rec, = send_alerts(result, [AlertTarget(url=hook.url, retries=3, backoff_s=0.2)], sleep=waits.append)
    assert rec.delivered and rec.attempts == 3 and len(hook.requests) == 3
    assert waits == [0.2, 0.4]


def test_failing_server_gives_up_and_records_it(result):
    with Hook(statuses=[500] * 10) as hook:
        rec, = send_alerts(result, [AlertTarget(url=hook.url, retries=2, backoff_s=0.01)])
    assert not rec.delivered and rec.attempts == 3 and rec.status == 500 and "HTTP 500" in rec.error
    assert len(hook.requests) == 3


def test_refusal_in_body_is_not_delivery_and_is_not_retried(result):
    with Hook(body=b'{"errcode":93000,"errmsg":"invalid webhook url"}') as hook:
        rec, = send_alerts(result, [AlertTarget(url=hook.url, format="wecom", retries=3)], sleep=no_sleep)
    assert not rec.delivered and rec.attempts == 1 and "93000" in rec.error


def test_dead_webhook_never_raises_or_blocks_beyond_its_timeout(result):
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    rec, = send_alerts(result, [AlertTarget(url=f"http://127.0.0.1:{port}/x", retries=1, backoff_s=0.01,
                                            timeout_s=1.0)])
    assert not rec.delivered and rec.attempts == 2 and "ConnectError" in rec.error
    assert time.monotonic() - t0 < 3
    with Hook(delay_s=2.0) as slow:  # accepts, then hangs past the timeout
        t0 = time.monotonic()
        rec, = send_alerts(result, [AlertTarget(url=slow.url, retries=0, timeout_s=0.3)])
        elapsed = time.monotonic() - t0
    assert not rec.delivered and "Timeout" in rec.error and elapsed < 1.5


def test_only_alerting_hits_are_sent_and_records_land_in_the_result(result):
    quiet = apply_qa(make_result([seg("agent", 0, 4000, "您好，很高兴为您服务，请讲", emotion_="happy")]))
    with Hook() as hook:
        assert send_alerts(quiet, [AlertTarget(url=hook.url)]) == ()  # info hit only: nothing to send
        info = send_alerts(quiet, [AlertTarget(url=hook.url, min_severity="info")], sleep=no_sleep)
        out = attach_alerts(result, [AlertTarget(url=hook.url, name="qa-team")], sleep=no_sleep)
    assert info[0].rule_ids == ("agent.greeting",)
    assert out.alerts[-1].target == "qa-team" and out.alerts[-1].delivered
    assert out.to_dict()["alerts"][0]["rule_ids"] == ["risk.complaint"]


@pytest.mark.parametrize("fmt", ["wecom", "dingtalk", "feishu", "slack", "generic"])
def test_an_invalid_call_that_alerts_says_not_scored(result, fmt):
    """A call left not scored (call.invalid) can still carry an alerting hit: its message must say so, not crash."""
    import dataclasses

    from callsense.rules.alerts import build_body

    unscored = dataclasses.replace(result, score=dataclasses.replace(
        result.score, normalized=None, passed=None, status="not_scored", reason="call.invalid: 1.2 s of speech"))
    body = json.dumps(build_body(unscored, [h for h in unscored.rule_hits if h.alert], fmt), ensure_ascii=False)
    assert "/100" not in body
    if fmt != "generic":
        assert "not scored" in body
