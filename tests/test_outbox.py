"""The alert outbox: alerts are queued with the stored result and delivered afterwards, with backoff,
never twice for the same call, rule and evidence — against a real HTTP receiver on 127.0.0.1, on
SQLite and PostgreSQL; then through ``callsense batch`` and a real ``callsense serve``."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from callsense.rules import apply_qa
from callsense.rules.model import AlertTarget
from callsense.store import get_result, open_store, save_result
from callsense.store.outbox import Courier, deliver_pending, list_alerts
from callsense.testing.results import make_result, seg
from callsense.testing.rules import always_rules
from callsense.testing.store import FakeAnalyzer, fresh_postgres_database, write_fake_call

REPO = Path(__file__).resolve().parent.parent
CALL = REPO / "examples" / "call_stereo.wav"


class Receiver:
    """A local webhook: records each POST (time, path, body) and when it answered; answers with
    ``statuses`` in turn (then 200), after ``delay_s``."""

    def __init__(self, statuses=(), delay_s: float = 0.0):
        self.requests: list[tuple[float, str, dict]] = []
        self.answered: list[float] = []
        self.statuses = list(statuses)
        self.delay_s = delay_s
        me = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                me.requests.append((time.monotonic(), self.path, body))
                if me.delay_s:
                    time.sleep(me.delay_s)
                status = me.statuses.pop(0) if me.statuses else 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                try:
                    self.wfile.write(b'{"errcode":0}')
                except OSError:
                    pass
                me.answered.append(time.monotonic())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = f"{self.base}/hook?key=SECRET"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, n: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.answered) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.answered) >= n, f"{len(self.answered)} of {n} alerts received"


@pytest.fixture
def hook():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path / 'store.db'}")
        yield s
        s.close()
    else:
        with fresh_postgres_database() as url:
            s = open_store(url)
            yield s
            s.close()


def complaint(call_id: str = "call-1", text: str = "你们再不发货我就投诉", sha: str = "a" * 64):
    r = make_result([seg("agent", 0, 2000, "您好", emotion_="neutral"),
                     seg("customer", 2500, 6000, text, emotion_="angry")], call_id=call_id)
    r = dataclasses.replace(r, source=dataclasses.replace(r.source, sha256=sha))
    return apply_qa(r)


def test_stored_alert_is_delivered_once_and_reanalysis_does_not_resend(store, hook):
    result = complaint()
    assert [h.rule_id for h in result.rule_hits if h.severity == "critical"] == ["risk.complaint"]
    target = AlertTarget(url=hook.url, name="qa-team")
    save_result(store, result, alert_targets=[target])
    assert hook.requests == []  # storing sends nothing: the outbox does, afterwards
    [queued] = list_alerts(store)
    assert (queued.status, queued.rule_ids, queued.attempts, queued.target) == ("pending", ("risk.complaint",), 0,
                                                                                 "qa-team")
    report = deliver_pending(store)
    assert (report.sent, report.retrying, report.failed) == (1, 0, 0)
    [(_, path, body)] = hook.requests
    assert "key=SECRET" in path and body["call_id"] == "call-1"
    assert body["hits"][0]["rule_id"] == "risk.complaint"

    save_result(store, result, alert_targets=[target])  # --force: the same call analysed again
    assert deliver_pending(store).attempted == 0 and len(hook.requests) == 1
    [sent] = list_alerts(store)
    assert sent.status == "delivered" and sent.attempts == 1 and sent.delivered_at is not None
    alerts = get_result(store, "call-1").alerts  # the delivery record is where results are read
    assert [(a.rule_ids, a.target, a.delivered, a.attempts) for a in alerts] == [(("risk.complaint",), "qa-team",
                                                                                   True, 1)]
    from sqlalchemy import select

    from callsense.store.models import PendingAlert

    with store.session() as s:  # a final row no longer holds the webhook's key
        assert s.execute(select(PendingAlert.target_json)).scalars().all() == [None]


def test_new_evidence_or_a_new_target_is_a_new_alert(store, hook):
    target = AlertTarget(url=hook.url)
    save_result(store, complaint(), alert_targets=[target])
    deliver_pending(store)
    changed = complaint(text="我要投诉你们，还没发货")  # the same call, other evidence
    save_result(store, changed, alert_targets=[target, AlertTarget(url=hook.url + "2")])
    assert deliver_pending(store).sent == 2  # the new evidence to the old robot; all of it to the new one
    assert len(hook.requests) == 3
    assert len(list_alerts(store, status="delivered")) == 3


def test_retry_with_backoff_then_delivered(store):
    hook = Receiver(statuses=[503, 500])
    try:
        save_result(store, complaint(), alert_targets=[AlertTarget(url=hook.url, retries=3, backoff_s=0.3)])
        assert deliver_pending(store).retrying == 1
        assert deliver_pending(store).attempted == 0  # not due yet: the backoff holds it
        [entry] = list_alerts(store)
        assert entry.status == "pending" and entry.attempts == 1 and entry.last_status == 503
        assert 0.25 <= (entry.next_attempt_at - entry.last_attempt_at).total_seconds() <= 0.35
        time.sleep(0.35)
        assert deliver_pending(store).retrying == 1
        [entry] = list_alerts(store)
        assert 0.55 <= (entry.next_attempt_at - entry.last_attempt_at).total_seconds() <= 0.65  # doubled
        assert deliver_pending(store, now=datetime.utcnow() + timedelta(seconds=1)).sent == 1
        [entry] = list_alerts(store)
        assert (entry.status, entry.attempts, entry.last_status, len(hook.requests)) == ("delivered", 3, 200, 3)
    finally:
        hook.close()


def test_refusal_is_final_and_spent_retries_fail(store):
    refusing, failing = Receiver(statuses=[400]), Receiver(statuses=[500] * 5)
    try:
        save_result(store, complaint(), alert_targets=[AlertTarget(url=refusing.url, name="r"),
                                                       AlertTarget(url=failing.url, name="f", retries=1,
                                                                   backoff_s=0.01)])
        deliver_pending(store)
        time.sleep(0.05)
        deliver_pending(store)
        by = {e.target: e for e in list_alerts(store)}
        assert (by["r"].status, by["r"].attempts, by["r"].last_status) == ("failed", 1, 400)
        assert (by["f"].status, by["f"].attempts) == ("failed", 2) and "HTTP 500" in by["f"].last_error
        assert deliver_pending(store, now=datetime.utcnow() + timedelta(hours=1)).attempted == 0
        assert not any(a.delivered for a in get_result(store, "call-1").alerts)
    finally:
        refusing.close()
        failing.close()


def test_deleting_or_purging_a_call_removes_its_alerts(store, hook):
    from sqlalchemy import func, select

    from callsense.store.models import PendingAlert
    from callsense.store.privacy import delete_call, purge

    target = AlertTarget(url=hook.url)
    save_result(store, complaint("call-1", sha="a" * 64), alert_targets=[target])
    save_result(store, complaint("call-2", sha="b" * 64), alert_targets=[target])
    delete_call(store, "call-1")
    assert [e.call_id for e in list_alerts(store)] == ["call-2"]
    purge(store, timedelta(0), what="records", now=datetime.now().astimezone() + timedelta(seconds=5))
    with store.session() as s:
        assert s.execute(select(func.count()).select_from(PendingAlert)).scalar() == 0
    assert deliver_pending(store).attempted == 0 and hook.requests == []


def test_courier_delivers_when_woken(store, hook):
    courier = Courier(store, period_s=60).start()
    try:
        save_result(store, complaint(), alert_targets=[AlertTarget(url=hook.url)])
        courier.wake()
        hook.wait_for(1, timeout=10)
    finally:
        courier.stop()
    assert courier.delivered == 1


# ------------------------------------------------------------------------------------ batch runner
class AlertingFake(FakeAnalyzer):
    """The fake analyzer with the default QA pack and one webhook (``CALLSENSE_TEST_HOOK``)."""

    ruleset = None

    def run(self, source, **kw):
        run = super().run(source, **kw)
        return dataclasses.replace(run, result=apply_qa(run.result))

    def alert_targets(self):
        import os

        return (AlertTarget(url=os.environ["CALLSENSE_TEST_HOOK"], timeout_s=10, retries=0),)


def test_a_hanging_webhook_does_not_delay_the_batch(tmp_path, monkeypatch):
    from callsense.batch import BatchOptions, collect, run_batch

    for i in range(3):
        write_fake_call(tmp_path / "in" / f"c{i}.wav", [("agent", 0, 2000, "您好", "neutral"),
                                                        ("customer", 2000, 9000, f"我要投诉 {i}", "angry")])
    hook = Receiver(delay_s=2.0)  # accepts, then hangs 2 s per message
    monkeypatch.setenv("CALLSENSE_TEST_HOOK", hook.url)
    stored_at = []
    try:
        summary = run_batch(collect(tmp_path / "in"), analyzer_factory=AlertingFake,
                            db_url=f"sqlite:///{tmp_path / 'db.sqlite'}", options=BatchOptions(),
                            on_outcome=lambda o: stored_at.append(time.monotonic()))
        assert summary.done == 3
        # every result was stored before the first alert was answered: delivery never held the analysis
        assert hook.answered and max(stored_at) < min(hook.answered)
        assert summary.wall_s < 2.0
        assert len(hook.answered) == 3  # and the batch drained its alerts before it returned
    finally:
        hook.close()


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "callsense", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


@pytest.mark.slow
def test_batch_delivers_after_storing_and_force_does_not_resend(with_models, tmp_path, hook):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(CALL, folder / "a.wav")
    rules = tmp_path / "rules.yaml"
    rules.write_text(always_rules(alert_url=hook.url, alert_format="wecom"))
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    env = {"CALLSENSE_MODEL_DIR": str(with_models)}
    first = _cli("batch", str(folder), "--db", db, "--rules", str(rules), "--json", "--no-progress", env=env)
    assert first.returncode == 0, first.stderr
    assert len(hook.requests) == 1 and "long.call" in hook.requests[0][2]["markdown"]["content"]
    again = _cli("batch", str(folder), "--db", db, "--rules", str(rules), "--force", "--json", "--no-progress",
                 env=env)
    assert again.returncode == 0 and json.loads(again.stdout)["done"] == 1, again.stderr
    assert len(hook.requests) == 1  # re-analysed, same evidence: not sent again
    listed = _cli("alerts", "--db", db, "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    [entry] = json.loads(listed.stdout)["alerts"]
    assert entry["status"] == "delivered" and entry["rule_ids"] == ["long.call"] and entry["target"] == "qa-robot"
    assert "SECRET" not in listed.stdout


# ------------------------------------------------------------------------------------------ service
@pytest.mark.slow
def test_service_delivers_after_storing_and_a_hanging_webhook_does_not_delay_the_answer(tiny_models, tmp_path):
    import httpx
    from api_support import Server

    hook = Receiver(delay_s=3.0)
    env = {"CALLSENSE_MODEL_DIR": str(tiny_models), "CALLSENSE_OFFLINE": "1",
           "CALLSENSE_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}"}
    server = Server(tmp_path / "data", env, "--no-ui").start()
    try:
        with server.client() as c:
            r = c.put("/v1/rules", content=always_rules(alert_url=hook.url, alert_format="wecom"),
                      headers={"content-type": "text/yaml"})
            assert r.status_code == 200, r.text
            with open(CALL, "rb") as f:
                r = c.post("/v1/analyze", files={"file": ("a.wav", f)}, data={"mode": "sync"})
            answered_at = time.monotonic()
            assert r.status_code == 200, r.text
            call_id = r.json()["call_id"]
            hook.wait_for(1, timeout=30)
            assert answered_at < hook.answered[0]  # the answer did not wait for the hanging webhook
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                alerts = c.get(f"/v1/calls/{call_id}").json().get("alerts") or []
                if alerts and alerts[0]["delivered"]:
                    break
                time.sleep(0.2)
            assert alerts and alerts[0]["delivered"] and alerts[0]["rule_ids"] == ["long.call"], alerts
            with open(CALL, "rb") as f:  # the same recording again: a re-analysis of the same call
                r = c.post("/v1/analyze", files={"file": ("a.wav", f)}, data={"mode": "sync"})
            assert r.status_code == 200 and r.json()["call_id"] == call_id
            time.sleep(1.0)
            assert len(hook.requests) == 1
    except httpx.HTTPError:
        print(server.log.read_text()[-3000:])
        raise
    finally:
        server.stop()
        hook.close()
