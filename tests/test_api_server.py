"""The service as users run it: ``callsense serve`` in a subprocess (uvicorn), driven over real HTTP.

Covers the official ``openai`` client on /v1/audio/transcriptions in every response format, 20
simultaneous analyses (200 or 429, never 500, memory bounded), and jobs that survive a crash.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from api_support import CALL, CLIP, Server
from callsense.service.keys import KeyStore

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_models):
    data = tmp_path_factory.mktemp("served")
    _, key = KeyStore(data / "api-keys.json").create("analyst", "tester")
    env = {"CALLSENSE_MODEL_DIR": str(tiny_models), "CALLSENSE_OFFLINE": "1",
           "CALLSENSE_DATABASE_URL": f"sqlite:///{data / 'store.db'}"}
    srv = Server(data, env, "--auth", "--no-ui", "--workers", "1", "--max-queue", "3").start()
    srv.key = key
    yield srv
    srv.stop()


def test_openai_client_every_response_format(server):
    from openai import AuthenticationError, OpenAI

    client = OpenAI(base_url=f"{server.url}/v1", api_key=server.key, max_retries=0)

    def transcribe(fmt, **kw):
        with open(CALL, "rb") as f:
            return client.audio.transcriptions.create(model="sensevoice-small", file=f, response_format=fmt, **kw)

    plain = transcribe("json")
    assert plain.text
    verbose = transcribe("verbose_json", timestamp_granularities=["segment", "word"])
    assert verbose.text == plain.text and verbose.duration > 20 and verbose.language in ("zh", "en", "yue", "ja", "ko")
    segs = verbose.segments
    assert segs and all(s.end > s.start for s in segs) and [s.start for s in segs] == sorted(s.start for s in segs)
    extra = segs[0].model_extra  # callsense's SenseVoice tags ride along as extra fields
    assert extra["role"] in ("agent", "customer") and "emotion" in extra and isinstance(extra["events"], list)
    assert verbose.words and verbose.words[0].end >= verbose.words[0].start
    text = transcribe("text")
    assert text.strip() == plain.text
    srt = transcribe("srt")
    assert srt.startswith("1\n00:00:") and " --> " in srt and segs[0].text in srt
    assert srt.count(" --> ") == len(segs)
    vtt = transcribe("vtt")
    assert vtt.startswith("WEBVTT") and vtt.count(" --> ") == len(segs) and segs[-1].text in vtt
    bad = OpenAI(base_url=f"{server.url}/v1", api_key="cs_nothing_here", max_retries=0)
    with pytest.raises(AuthenticationError), open(CLIP, "rb") as f:
        bad.audio.transcriptions.create(model="whisper-1", file=f)


def test_twenty_simultaneous_analyses(server):
    """1 worker and 3 waiting places: the rest are told to come back (429 + Retry-After), none fail."""
    clip = CLIP.read_bytes()
    results: list[tuple[int, str | None, str]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(20)
    rss_before = server.peak_rss_mb()

    def one(i):
        with server.client(server.key) as c:
            barrier.wait()
            r = c.post("/v1/analyze", files={"file": (f"c{i}.wav", clip)}, data={"embeddings": "false"})
        with lock:
            results.append((r.status_code, r.headers.get("retry-after"), r.text[:200]))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    statuses = [s for s, _, _ in results]
    assert len(statuses) == 20 and set(statuses) <= {200, 429}, results
    assert statuses.count(200) >= 1
    assert all(int(ra) > 0 for s, ra, _ in results if s == 429)
    # memory is bounded: at most workers + queue recordings are in memory at once
    assert server.peak_rss_mb() - rss_before < 400
    with server.client(server.key) as c:
        metrics = c.get("/metrics").text
    assert 'status="429"' in metrics or statuses.count(200) == 20
    assert "callsense_queue_depth 0.0" in metrics


def test_jobs_survive_a_crash(tmp_path, tiny_models):
    """A job queued or running when the server dies is picked up by the next server."""
    from callsense.service.jobs import JobQueue
    from callsense.store import open_store

    env = {"CALLSENSE_MODEL_DIR": str(tiny_models), "CALLSENSE_OFFLINE": "1",
           "CALLSENSE_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}"}
    first = Server(tmp_path, env, "--no-ui").start()
    with first.client() as c, open(CALL, "rb") as f:
        r = c.post("/v1/analyze", files={"file": ("c.wav", f)}, data={"mode": "async",
                                                                      "metadata": json.dumps({"agent_id": "j1"})})
        assert r.status_code == 202
        done_id = r.json()["job"]["id"]
        assert c.get(f"/v1/jobs/{done_id}", params={"wait": 60}).json()["status"] == "done"
    first.kill()

    # What a crash mid-analysis leaves: an upload and a row marked running by a process now gone.
    upload = tmp_path / "uploads" / "crashed.upload"
    upload.write_bytes(CLIP.read_bytes())
    store = open_store(env["CALLSENSE_DATABASE_URL"])
    queue = JobQueue(store.engine, runner=lambda job: "")
    job = queue.submit(str(upload), filename="crashed.wav", options={}, metadata={"agent_id": "j2"})
    with store.engine.begin() as conn:
        conn.execute(queue.table.update().where(queue.table.c.id == job.id)
                     .values(status="running", owner="deadhost:1", attempts=1))
    store.close()

    second = Server(tmp_path, env, "--no-ui").start()
    try:
        with second.client() as c:
            picked = c.get(f"/v1/jobs/{job.id}", params={"wait": 60, "include_result": "true"}).json()
            assert picked["status"] == "done", picked
            assert picked["attempts"] == 2 and picked["result"]["metadata"]["agent_id"] == "j2"
            assert c.get(f"/v1/jobs/{done_id}").json()["status"] == "done"  # history kept
            assert not upload.exists()  # the upload is removed once analysed
    finally:
        second.stop()
    assert "took over from deadhost:1" in second.log.read_text()  # its lease (none) had expired


def test_serve_refuses_public_address_without_keys(tmp_path):
    import subprocess
    import sys

    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "callsense", "serve", "--host", "0.0.0.0", "--port", "1",
                        "--data-dir", str(tmp_path), "--no-ui"], capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode == 2 and "without API keys" in p.stderr and "callsense keys create" in p.stderr
    assert time.monotonic() - t0 < 60


def test_keys_cli(tmp_path):
    from cli_support import run_cli

    def cli(*args):  # in this process: four Python start-ups saved
        return run_cli([*args, "--data-dir", tmp_path])

    made = cli("keys", "create", "--role", "viewer", "--name", "wallboard")
    assert made.returncode == 0 and made.stdout.startswith("cs_")
    key = made.stdout.strip()
    assert KeyStore(tmp_path / "api-keys.json").verify(key).role == "viewer"
    listed = cli("keys", "list").stdout
    assert "wallboard" in listed and key not in listed
    assert cli("keys", "create", "--role", "god").returncode == 2
    assert cli("keys", "revoke", "wallboard").returncode == 0
    assert KeyStore(tmp_path / "api-keys.json").verify(key) is None
