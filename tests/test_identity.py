"""A recording keeps its call id whoever analyses it again (batch, API), batch and service agree on the
fingerprint, uploads keep the client's file name, and the API's QA filters use the score as shown.

Through the public surface: ``callsense batch`` / ``search`` / ``report`` as subprocesses, the API of a
real ``callsense serve`` process on the same store, on SQLite and on the loopback PostgreSQL.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from api_support import CALL, Server
from callsense.testing.results import make_result, scored, seg
from callsense.testing.store import fresh_postgres_database

CLIENT_NAME = "客户来电 2026-01-05.wav"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        with fresh_postgres_database() as url:
            yield url


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "callsense", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=300)


def fixture_calls(url: str) -> dict[str, float]:
    """Three stored calls scored by the real scorer; returns {call_id: QA score 0-100}."""
    import dataclasses

    from callsense.store import open_store, save_result

    specs = {
        "fx-fail": [seg("agent", 0, 2000, "喂，你好，请讲", emotion_="neutral"),
                    seg("customer", 2000, 6000, "我要投诉你们的服务", emotion_="angry")],
        "fx-ok": [seg("agent", 0, 2000, "hi there", emotion_="neutral"),
                  seg("customer", 2000, 4000, "fine thanks", emotion_="neutral")],
        "fx-best": [seg("agent", 0, 2000, "您好，请问有什么可以帮您", emotion_="happy"),
                    seg("customer", 2000, 4000, "好的谢谢", emotion_="happy")],
    }
    store = open_store(url)
    try:
        scores = {}
        for i, (cid, segs) in enumerate(specs.items()):
            r = scored(make_result(segs, call_id=cid))
            r = dataclasses.replace(r, source=dataclasses.replace(r.source, sha256=f"{i}" * 64, name=f"{cid}.wav"))
            save_result(store, r)
            scores[cid] = r.score.normalized
        return scores
    finally:
        store.close()


def test_a_recording_keeps_its_id_across_batch_and_api(store_url, tmp_path, tiny_models):
    from callsense.store import call_analyses, open_store

    env = {"CALLSENSE_MODEL_DIR": str(tiny_models), "CALLSENSE_OFFLINE": "1", "CALLSENSE_DATABASE_URL": store_url}
    scores = fixture_calls(store_url)
    assert len(set(scores.values())) == 3, scores

    out = cli("batch", str(CALL), "--json", "--no-progress", env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["done"] == 1
    [batch_hit] = [h for h in json.loads(cli("search", "--json", env=env).stdout)
                   if h["source_name"] == CALL.name]
    call_id = batch_hit["call_id"]

    srv = Server(tmp_path / "served", env, "--no-ui", "--workers", "1").start()
    try:
        with srv.client() as c:
            r = c.post("/v1/analyze", files={"file": (CLIENT_NAME, CALL.read_bytes(), "audio/wav")},
                       data={"mode": "sync"})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["call_id"] == call_id  # the same recording: the same call
            assert body["result"]["source"]["name"] == CLIENT_NAME
            got = c.get(f"/v1/calls/{call_id}")
            assert got.status_code == 200 and got.json()["call_id"] == call_id

            # one QA scale: min_score / max_score are the 0-100 score the list shows
            threshold = sorted(scores.values())[1]
            listed = c.get("/v1/calls", params={"min_score": threshold, "limit": 100}).json()["items"]
            assert {i["call_id"] for i in listed if i["call_id"] in scores} == {
                k for k, v in scores.items() if v >= threshold}
            assert all(i["score"] is None or i["score"] >= threshold for i in listed)
            below = c.get("/v1/calls", params={"max_score": threshold - 0.01, "limit": 100}).json()["items"]
            assert {i["call_id"] for i in below if i["call_id"] in scores} == {
                k for k, v in scores.items() if v < threshold}
    finally:
        srv.stop()

    # every view shows the client's file name, never the server's upload name
    hits = [h for h in json.loads(cli("search", "--json", env=env).stdout) if h["call_id"] == call_id]
    assert [h["source_name"] for h in hits] == [CLIENT_NAME]

    # batch and service share one fingerprint: what the API stored is not analysed again
    again = cli("batch", str(CALL), "--json", "--no-progress", env=env)
    assert again.returncode == 0, again.stderr
    assert (json.loads(again.stdout)["done"], json.loads(again.stdout)["skipped"]) == (0, 1)

    store = open_store(store_url)
    try:
        history = call_analyses(store, call_id)
    finally:
        store.close()
    assert len(history) == 2 and history[0].run_id is not None and history[1].run_id is None
    assert history[0].fingerprint == history[1].fingerprint

    gone = cli("report", "no-such-call", env=env)
    assert gone.returncode == 3 and "callsense search" in gone.stderr
    assert cli("search", env=env).stdout.count(call_id) == 1  # ...and that command does list it
