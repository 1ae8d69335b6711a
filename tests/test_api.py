"""The REST API through an HTTP client (FastAPI's TestClient): every endpoint, the error codes, auth."""

from __future__ import annotations

import contextlib
import io
import json
import threading
import wave

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api_support import CALL, CLIP, TEST_RULES, assert_problem, wait_ready
from callsense.api import create_app
from callsense.errors import UsageError
from callsense.labels import EMOTION_NAMES, EMOTIONS
from callsense.result.model import CallAnalysis
from callsense.service import ServiceSettings, is_loopback
from callsense.service.keys import KeyStore
from callsense.testing.store import fresh_postgres_database


def _app_client(tmp, models, **settings):
    mp = pytest.MonkeyPatch()
    mp.setenv("CALLSENSE_MODEL_DIR", str(models))
    mp.setenv("CALLSENSE_OFFLINE", "1")
    settings.setdefault("ui", False)
    settings.setdefault("database_url", f"sqlite:///{tmp / 'store.db'}")
    s = ServiceSettings(data_dir=tmp, **settings)
    client = TestClient(create_app(s), raise_server_exceptions=False)
    client.__enter__()
    wait_ready(client.get)
    return client, mp


@pytest.fixture(scope="module")
def api(tmp_path_factory, tiny_models):
    client, mp = _app_client(tmp_path_factory.mktemp("api"), tiny_models)
    yield client
    client.__exit__(None, None, None)
    mp.undo()


@pytest.fixture(scope="module")
def analysed(api):
    """One call analysed through the API (metadata included), shared by the read tests."""
    r = api.post("/v1/analyze", files={"file": ("my call.wav", variant(CALL, 1), "audio/wav")},
                 data={"metadata": json.dumps({"agent_id": "a17", "queue": "refunds", "category": "logistics"}),
                       "language": "auto", "granularity": "frame"})
    assert r.status_code == 200, r.text
    return r.json()


def variant(path, n: int) -> bytes:
    """The recording with its last sample changed: another recording for the store (one result per content)."""
    data = bytearray(path.read_bytes())
    data[-2:] = int(n).to_bytes(2, "little", signed=True)
    return bytes(data)


def _post(api, path, content: bytes, name="x.wav", **data):
    return api.post(path, files={"file": (name, content, "application/octet-stream")}, data=data)


def _wav_bytes(seconds: float, rate: int = 16000, channels: int = 1) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    x = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat(x[:, None], channels, axis=1).tobytes())
    return buf.getvalue()


# ---- operations ----------------------------------------------------------------------------------------
def test_health_ready_and_metrics(api, analysed):
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200 and ready.json()["models"]["sensevoice-small"] is True
    text = api.get("/metrics").text
    assert 'callsense_http_requests_total{method="POST",route="/v1/analyze",status="200"}' in text
    assert "callsense_http_request_duration_seconds_bucket" in text
    assert "callsense_queue_depth 0.0" in text
    assert 'callsense_model_loaded{model="sensevoice-small"} 1.0' in text
    seconds = [float(line.split()[-1]) for line in text.splitlines()
               if line.startswith('callsense_audio_seconds_processed_total{endpoint="analyze"}')]
    assert seconds and seconds[0] >= analysed["result"]["source"]["duration_ms"] / 1000 - 0.01


def test_request_id_echoed_or_generated(api):
    r = api.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    generated = api.get("/healthz").headers["x-request-id"]
    assert generated and generated != "abc-123"
    assert api.get("/healthz", headers={"X-Request-ID": "bad id\n"}).headers["x-request-id"] != "bad id\n"


def test_openapi_docs(api):
    paths = api.get("/openapi.json").json()["paths"]
    for p in ("/v1/analyze", "/v1/emotion", "/v1/audio/transcriptions", "/v1/calls", "/v1/calls/{call_id}",
              "/v1/calls/{call_id}/audio", "/v1/search", "/v1/stats/{name}", "/v1/rules", "/v1/jobs/{job_id}"):
        assert p in paths
    assert api.get("/docs").status_code == 200


# ---- analysis -----------------------------------------------------------------------------------------
def test_analyze_returns_full_result(analysed):
    assert analysed["status"] == "done"
    result = CallAnalysis.from_dict(analysed["result"])  # validates against the typed model
    assert result.call_id == analysed["call_id"]
    assert result.metadata["agent_id"] == "a17" and result.metadata["filename"] == "my call.wav"
    assert len(result.tracks) == 2 and result.segments
    assert {s.role for s in result.segments} == {"agent", "customer"}
    assert result.emotion is not None and result.emotion.timeline  # frame granularity
    assert result.processing.timings_ms["asr"] >= 0
    assert "/work" not in json.dumps(analysed["result"]["metadata"])  # no server path leaks into metadata


def test_analyze_options_change_the_analysis(api):
    r = api.post("/v1/analyze", files={"file": ("c.wav", variant(CALL, 2))},
                 data={"channels": "customer,agent", "granularity": "utterance", "embeddings": "false"})
    assert r.status_code == 200, r.text
    res = r.json()["result"]
    assert res["separation"]["channel_map"] == ["customer", "agent"]
    assert res["emotion"]["timeline"] == []
    assert all(s["emotion"]["embedding_index"] is None for s in res["segments"] if s["emotion"])


def test_calls_list_get_audio_report_embeddings(api, analysed):
    call_id = analysed["call_id"]
    page = api.get("/v1/calls", params={"agent_id": "a17"}).json()
    assert [c["call_id"] for c in page["items"]] == [call_id] and page["total"] == 1
    assert page["items"][0]["queue"] == "refunds"
    assert api.get("/v1/calls", params={"agent_id": "nobody"}).json()["total"] == 0
    assert api.get(f"/v1/calls/{call_id}").json() == analysed["result"]

    full = api.get(f"/v1/calls/{call_id}/audio")
    assert full.status_code == 200 and full.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(full.content)) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 2
    part = api.get(f"/v1/calls/{call_id}/audio", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == full.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(full.content)}"

    html = api.get(f"/v1/calls/{call_id}/report")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert call_id in html.text and "<svg" in html.text and "<script" not in html.text
    external = html.text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "http://" not in external and "https://" not in external  # self-contained: nothing fetched

    emb = np.load(io.BytesIO(api.get(f"/v1/calls/{call_id}/embeddings").content))
    with_emb = [s for s in analysed["result"]["segments"] if s["emotion"] and s["emotion"]["embedding_index"] is not None]
    assert emb.shape[0] == len(with_emb) and emb.dtype == np.float32


def test_clip_is_cut_on_demand_and_bad_ranges_are_422(api, analysed):
    call_id = analysed["call_id"]
    r = api.get(f"/v1/calls/{call_id}/clip", params={"start_ms": 500, "end_ms": 1500})
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(r.content)) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 2 and w.getnframes() == 16000
    full = api.get(f"/v1/calls/{call_id}/audio").content
    assert r.content[44:] == full[44 + 500 * 16 * 4:44 + 1500 * 16 * 4]  # the same samples as the audio
    duration = analysed["result"]["source"]["duration_ms"]
    for start, end in ((1500, 500), (-1, 100), (0, 200_000), (duration + 10, duration + 100)):
        bad = api.get(f"/v1/calls/{call_id}/clip", params={"start_ms": start, "end_ms": end})
        assert_problem(bad, 422)
    assert api.get("/v1/calls/nope/clip", params={"start_ms": 0, "end_ms": 100}).status_code == 404


def test_search_and_stats(api, analysed):
    hits = api.get("/v1/search", params={"role": "customer"}).json()
    customer_segments = [s for s in analysed["result"]["segments"] if s["role"] == "customer"]
    assert hits["total"] >= len(customer_segments)
    assert {h["role"] for h in hits["items"]} == {"customer"}
    word = customer_segments[0]["text"][:2]
    found = api.get("/v1/search", params={"q": word}).json()["items"]
    assert any(word in h["text"] for h in found)
    heat = api.get("/v1/stats/emotions", params={"by": "category"}).json()
    assert heat["labels"] == list(EMOTION_NAMES)
    row = next(r for r in heat["rows"] if r["key"] == "logistics")
    assert abs(sum(row["scores"]) - 1) < 0.01
    agents = api.get("/v1/stats/agents").json()["rows"]
    assert any(a["agent_id"] == "a17" and a["calls"] == 1 for a in agents)
    assert api.get("/v1/stats/rules").status_code == 200
    assert api.get("/v1/stats/daily").json()["rows"][0]["calls"] >= 1
    assert_problem(api.get("/v1/stats/nonsense"), 404, "not_found")


def test_emotion_utterance_and_frame(api):
    clip = CLIP.read_bytes()
    u = _post(api, "/v1/emotion", clip, "clip.wav")
    assert u.status_code == 200, u.text
    body = u.json()
    assert list(body["distribution"]) == list(EMOTION_NAMES)
    assert abs(sum(body["distribution"].values()) - 1) < 1e-3
    assert body["label"] == max(body["distribution"], key=body["distribution"].get)
    assert body["emoji"] == next(e.emoji for e in EMOTIONS if e.name == body["label"])
    assert body["timeline"] == [] and body["embedding"] is None and body["duration_ms"] > 0
    f = _post(api, "/v1/emotion", clip, "clip.wav", granularity="frame", embedding="true").json()
    assert len(f["timeline"]) >= 2 and all(len(w["scores"]) == 9 for w in f["timeline"])
    assert len(f["embedding"]) > 0 and all(isinstance(x, float) for x in f["embedding"])
    named_as_analyze = _post(api, "/v1/emotion", clip, "clip.wav", embeddings="true").json()  # the documented name
    assert named_as_analyze["embedding"] is not None and len(named_as_analyze["embedding"]) == len(f["embedding"])


# ---- jobs ---------------------------------------------------------------------------------------------
def test_async_job_and_wait(api):
    r = api.post("/v1/analyze", files={"file": ("c.wav", variant(CALL, 3))}, data={"mode": "async"})
    assert r.status_code == 202, r.text
    job = r.json()["job"]
    assert r.headers["location"] == f"/v1/jobs/{job['id']}" and job["status"] in ("queued", "running", "done")
    done = api.get(f"/v1/jobs/{job['id']}", params={"wait": 60, "include_result": "true"}).json()
    assert done["status"] == "done" and done["call_id"] == done["result"]["call_id"]
    assert any(j["id"] == job["id"] for j in api.get("/v1/jobs").json()["items"])
    assert_problem(api.get("/v1/jobs/nope"), 404, "not_found")


def test_long_recording_becomes_a_job(tmp_path, tiny_models):
    client, mp = _app_client(tmp_path, tiny_models, sync_max_s=1.0)
    try:
        r = _post(client, "/v1/analyze", _wav_bytes(2.0), "long.wav")
        assert r.status_code == 202
        job = client.get(f"/v1/jobs/{r.json()['job']['id']}", params={"wait": 60}).json()
        assert job["status"] == "done"
        assert client.get(f"/v1/calls/{job['call_id']}").json()["source"]["duration_ms"] == 2000
    finally:
        client.__exit__(None, None, None)
        mp.undo()


# ---- bad input ------------------------------------------------------------------------------------------
def test_bad_audio_is_4xx_with_reason(api):
    assert_problem(_post(api, "/v1/analyze", b"this is not audio" * 50, "notes.wav"), 415, "audio_decode")
    body = assert_problem(_post(api, "/v1/analyze", b"", "empty.wav"), 400)
    assert body["source"] == "empty.wav"
    truncated = _wav_bytes(1.0)[:30]  # header cut in the middle
    r = _post(api, "/v1/analyze", truncated, "cut.wav")
    assert r.status_code in (400, 415, 422), r.text
    assert_problem(_post(api, "/v1/emotion", b"RIFF....WAVEjunk", "x.wav"), 415)
    assert_problem(_post(api, "/v1/audio/transcriptions", b"\x00" * 1000, "x.wav"), 415)


def test_bad_options_are_422(api):
    clip = CLIP.read_bytes()
    assert_problem(_post(api, "/v1/analyze", clip, language="zn"), 422, "usage")  # the README typo users made
    assert_problem(_post(api, "/v1/analyze", clip, channels="left,right"), 422, "usage")
    assert_problem(_post(api, "/v1/analyze", clip, metadata="{not json"), 422, "usage")
    assert_problem(_post(api, "/v1/analyze", clip, metadata="[1, 2]"), 422, "usage")
    assert_problem(_post(api, "/v1/analyze", clip, mode="later"), 422, "usage")
    assert_problem(_post(api, "/v1/emotion", clip, granularity="word"), 422, "usage")
    assert_problem(_post(api, "/v1/audio/transcriptions", clip, response_format="docx"), 422, "usage")
    body = assert_problem(api.post("/v1/analyze", data={"language": "zh"}), 422, "validation")
    assert body["errors"][0]["loc"][-1] == "file"
    assert_problem(api.get("/v1/calls/does-not-exist"), 404)
    assert_problem(api.get("/v1/calls/../../etc/passwd/audio"), 404)
    assert_problem(api.get("/v1/calls", params={"limit": 0}), 422, "validation")
    uploads = list((api.app.state.service.settings.uploads_dir).iterdir())
    assert uploads == []  # refused uploads are not left behind


def test_limits_413(tmp_path, tiny_models):
    client, mp = _app_client(tmp_path, tiny_models, max_upload_mb=0.05, max_duration_s=1.0)
    try:
        big = _wav_bytes(3.0)  # ~94 KB > 0.05 MB
        assert_problem(_post(client, "/v1/analyze", big, "big.wav"), 413, "upload_too_large")

        def chunks():  # no Content-Length: the limit is enforced while the body streams in
            boundary = b"--b0undary"
            yield boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'
            yield big
            yield b"\r\n" + boundary + b"--\r\n"

        r = client.post("/v1/analyze", content=chunks(),
                        headers={"Content-Type": "multipart/form-data; boundary=b0undary"})
        assert_problem(r, 413)
        long = _wav_bytes(1.5, rate=8000)  # 24 KB: under the size limit, over the duration limit
        assert_problem(_post(client, "/v1/analyze", long, "long.wav"), 413, "audio_limit")
    finally:
        client.__exit__(None, None, None)
        mp.undo()


def test_overload_429_with_retry_after(tmp_path, tiny_models):
    """20 simultaneous analyses against 1 worker + 2 waiting: every answer is 200 or 429, never 500."""
    client, mp = _app_client(tmp_path, tiny_models, workers=1, max_queue=2)
    clip = CLIP.read_bytes()
    statuses, retry = [], []
    lock = threading.Lock()
    barrier = threading.Barrier(20)

    def one():
        barrier.wait()
        r = _post(client, "/v1/analyze", clip, "clip.wav", rules="false", embeddings="false")
        with lock:
            statuses.append(r.status_code)
            if r.status_code == 429:
                retry.append(r.headers.get("retry-after"))
                assert r.json()["code"] == "busy"

    try:
        threads = [threading.Thread(target=one) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert len(statuses) == 20 and set(statuses) <= {200, 429}, statuses
        assert statuses.count(200) >= 1
        assert all(r and int(r) > 0 for r in retry)
        assert client.app.state.service.limiter.depth == 0
    finally:
        client.__exit__(None, None, None)
        mp.undo()


# ---- rules ----------------------------------------------------------------------------------------------
def test_rules_get_validate_put_versioned(api):
    default = api.get("/v1/rules").json()
    assert default["version"] == 0 and default["source"] == "default" and default["rules"]
    bad = api.put("/v1/rules", content="rules: [ {id: x, conditions: }", headers={"Content-Type": "text/yaml"})
    assert_problem(bad, 422, "rules")
    dry = api.put("/v1/rules", params={"dry_run": "true"}, content=TEST_RULES, headers={"Content-Type": "text/yaml"})
    assert dry.status_code == 200 and dry.json()["valid"] is True
    assert api.get("/v1/rules").json()["version"] == 0  # a dry run stores nothing
    put = api.put("/v1/rules", json={"yaml": TEST_RULES})
    assert put.status_code == 200, put.text
    assert put.json()["version"] == 1 and [r["id"] for r in put.json()["rules"]] == ["test.customer_spoke"]
    assert api.get("/v1/rules").json()["yaml"] == TEST_RULES
    r = _post(api, "/v1/analyze", variant(CALL, 4), "c.wav")
    hits = r.json()["result"]["rule_hits"]
    assert [h["rule_id"] for h in hits] == ["test.customer_spoke"] and hits[0]["ruleset_version"] == "7"
    assert api.get("/v1/rules", params={"version": 0}).json()["source"] == "default"
    assert_problem(api.get("/v1/rules", params={"version": 9}), 404)


# A cross-call rule on top of TEST_RULES: the agent's last 2 stored calls both had test.customer_spoke.
HISTORY_RULES = TEST_RULES + """\
  - id: test.spoke_streak
    version: "1"
    name: Streak
    category: test
    conditions:
      1: {type: history, by: agent, flag: test.customer_spoke, last: 2}
    consequence: {severity: critical}
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_cross_call_rules_see_the_agents_stored_calls(tmp_path, tiny_models, backend):
    """History rules are applied before the service stores a call (as in ``callsense batch``), inline
    and in jobs alike: the hit is in the answer, the call folder and the store."""
    with contextlib.ExitStack() as stack:
        db = {"database_url": stack.enter_context(fresh_postgres_database())} if backend == "postgresql" else {}
        client, mp = _app_client(tmp_path, tiny_models, **db)
        stack.callback(mp.undo)
        stack.callback(client.__exit__, None, None, None)
        assert client.put("/v1/rules", json={"yaml": HISTORY_RULES}).status_code == 200

        def analyse(n: int, agent: str, mode: str = "sync") -> tuple[str, list[str]]:
            meta = {"agent_id": agent, "started_at": f"2026-01-0{n}T10:00:00Z"}
            r = client.post("/v1/analyze", files={"file": ("c.wav", variant(CALL, n))},
                            data={"metadata": json.dumps(meta), "mode": mode})
            assert r.status_code in (200, 202), r.text
            if mode == "async":
                job = client.get(f"/v1/jobs/{r.json()['job']['id']}", params={"wait": 60}).json()
                assert job["status"] == "done", job
                call_id = job["call_id"]
            else:
                call_id = r.json()["call_id"]
            stored = client.get(f"/v1/calls/{call_id}").json()
            return call_id, [h["rule_id"] for h in stored["rule_hits"]]

        first, hits = analyse(1, "h1")
        assert hits == ["test.customer_spoke"]  # no earlier calls: not applicable
        second, hits = analyse(2, "h1")
        assert hits == ["test.customer_spoke"]  # one earlier call of h1, two needed
        _, hits = analyse(3, "h2")
        assert hits == ["test.customer_spoke"]  # h1's calls are not h2's history
        third, hits = analyse(4, "h1", mode="async")
        assert hits == ["test.customer_spoke", "test.spoke_streak"]
        note = client.get(f"/v1/calls/{third}").json()["rule_hits"][1]["evidence"][0]["note"]
        assert f"{second}, {first}" in note


# ---- security ------------------------------------------------------------------------------------------
def test_auth_by_role(tmp_path, tiny_models):
    keys = KeyStore(tmp_path / "api-keys.json")
    tokens = {role: keys.create(role)[1] for role in ("viewer", "analyst", "admin")}
    stored = (tmp_path / "api-keys.json").read_text()
    assert not any(t in stored for t in tokens.values())  # only hashes are stored
    assert (tmp_path / "api-keys.json").stat().st_mode & 0o077 == 0

    client, mp = _app_client(tmp_path, tiny_models, auth="on")

    def h(role):
        return {"Authorization": f"Bearer {tokens[role]}"}

    try:
        r = client.get("/v1/calls")
        assert_problem(r, 401, "unauthorized")
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert_problem(client.get("/v1/calls", headers={"Authorization": "Bearer cs_00000000_forged"}), 401)
        assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200

        assert client.get("/v1/calls", headers=h("viewer")).status_code == 200
        assert client.get("/v1/calls", headers={"X-API-Key": tokens["viewer"]}).status_code == 200
        assert client.get("/v1/me", headers=h("analyst")).json()["role"] == "analyst"
        clip = CLIP.read_bytes()
        r = client.post("/v1/analyze", files={"file": ("c.wav", clip)}, headers=h("viewer"))
        assert_problem(r, 403, "forbidden")
        r = client.post("/v1/analyze", files={"file": ("c.wav", clip)}, headers=h("analyst"))
        assert r.status_code == 200
        call_id = r.json()["call_id"]
        assert_problem(client.put("/v1/rules", json={"yaml": TEST_RULES}, headers=h("analyst")), 403)
        assert_problem(client.delete(f"/v1/calls/{call_id}", headers=h("analyst")), 403)
        assert client.put("/v1/rules", json={"yaml": TEST_RULES}, headers=h("admin")).status_code == 200
        # players: the audio needs a key, or a signed link made by the service
        assert_problem(client.get(f"/v1/calls/{call_id}/audio"), 401)
        token = client.app.state.service.sign_audio(call_id)
        assert client.get(f"/v1/calls/{call_id}/audio", params={"token": token}).status_code == 200
        assert_problem(client.get(f"/v1/calls/{call_id}/audio", params={"token": token[:-1] + "x"}), 401)
        assert client.delete(f"/v1/calls/{call_id}", headers=h("admin")).status_code == 204
        assert_problem(client.get(f"/v1/calls/{call_id}", headers=h("admin")), 404)
        keys.revoke("admin-" + keys.list()[-1].id)
        assert_problem(client.get("/v1/calls", headers=h("admin")), 401)
    finally:
        client.__exit__(None, None, None)
        mp.undo()


def test_public_address_needs_keys_unless_disabled(tmp_path):
    with pytest.raises(UsageError, match="without API keys"):
        create_app(ServiceSettings(host="0.0.0.0", data_dir=tmp_path, ui=False))
    create_app(ServiceSettings(host="0.0.0.0", data_dir=tmp_path, ui=False, auth="off"))  # explicit opt-out
    KeyStore(tmp_path / "api-keys.json").create("admin")
    create_app(ServiceSettings(host="0.0.0.0", data_dir=tmp_path, ui=False))
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3") and not is_loopback("example.com")


def test_cors_off_by_default(api):
    r = api.options("/v1/calls", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in r.headers


def test_report_cli_from_store_and_folder(api, analysed, tmp_path):
    from callsense.cli.app import main

    svc = api.app.state.service
    call_id = analysed["call_id"]
    out = tmp_path / "r.html"
    with pytest.raises(SystemExit) as e:
        main(["report", call_id, "--html", "-o", str(out), "--database-url", svc.store.url])
    assert e.value.code == 0
    html = out.read_text(encoding="utf-8")
    assert call_id in html and "<svg" in html and "my call.wav" in html
    with pytest.raises(SystemExit) as e:
        main(["report", str(svc.calls.folder(call_id)), "-o", str(tmp_path / "f.html")])
    assert e.value.code == 0 and (tmp_path / "f.html").read_text(encoding="utf-8").count("cs-bar-row") >= 9
    with pytest.raises(SystemExit) as e:
        main(["report", "no-such-call", "--database-url", svc.store.url])
    assert e.value.code == 3


def test_web_ui_login_with_a_key(tmp_path, tiny_models):
    """With keys required the UI asks for a login (key name + key); its session is not an API key."""
    import warnings

    _, token = KeyStore(tmp_path / "api-keys.json").create("admin", "boss")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client, mp = _app_client(tmp_path, tiny_models, auth="on", ui=True)
    # Gradio can inject gr.Request / gr.SelectData into every handler (it warned "Expected 2 arguments
    # for save_rules, received 1" when it could not, and every signed-in user then acted as a viewer)
    assert not [w for w in caught if "arguments for function" in str(w.message)], [str(w.message) for w in caught]
    try:
        assert client.get("/config").status_code == 401
        assert client.post("/login", data={"username": "boss", "password": "cs_wrong"}).status_code == 400
        assert client.post("/login", data={"username": "someone", "password": token}).status_code == 400
        assert client.post("/login", data={"username": "boss", "password": token}).status_code == 200
        assert client.get("/config").status_code == 200
        assert_problem(client.get("/v1/calls"), 401)
    finally:
        client.__exit__(None, None, None)
        mp.undo()
