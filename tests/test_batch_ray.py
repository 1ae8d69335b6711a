"""`callsense batch --ray` on a local Ray (2 CPUs, one actor): the guarantees of docs/batch.md.

Few tests on purpose, sharing one local Ray (started once for the module: a Ray start costs seconds on
2 cores); the CLI connects to it with --ray-address, as on a cluster. Marked slow; CI runs them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the ray extra: pip install 'callsense[ray]'")

from callsense.batch import BatchOptions, collect, run_batch  # noqa: E402
from callsense.batch.ray_runner import RayOptions, run_batch_ray  # noqa: E402
from callsense.errors import UsageError  # noqa: E402
from callsense.testing.rules import always_rules  # noqa: E402
from callsense.testing.store import write_fake_call  # noqa: E402

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FAKE = "callsense.testing.store:FakeAnalyzer"


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module (2 CPUs); yields its address. The batch uses it and leaves it running;
    each job carries the test's CALLSENSE_* environment to its workers (ray_runner._remote_args)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture
def webhook():
    """A local webhook that counts the alerts POSTed to it."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    got: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            got.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    server.shutdown()
    server.server_close()


def _results(url: str) -> dict[str, tuple]:
    """What the store holds per recording: the analysis without run-specific ids and times."""
    from callsense.store import get_result, list_calls, open_store

    store = open_store(url)
    try:
        out = {}
        for c in list_calls(store):
            r = get_result(store, c.call_id)
            segs = tuple((s.start_ms, s.end_ms, s.role, s.text, s.emotion.label if s.emotion else None)
                         for s in r.segments)
            out[r.source.sha256] = (Path(r.source.path).name, c.fingerprint, segs, r.emotion is not None,
                                    _analysis(r))
        return out
    finally:
        store.close()


def _analysis(r) -> str:
    """The whole stored analysis but what differs between two runs of it (ids, times, timings, alert times)."""
    from dataclasses import asdict, replace

    r = replace(r, call_id="", processing=replace(r.processing, started_at="", timings_ms={}))
    return json.dumps(_without(asdict(r), "sent_at"), sort_keys=True, default=str)


def _without(value, key: str):
    """``value`` with every ``key`` (an alert's send time) left out, at any depth."""
    if isinstance(value, dict):
        return {k: _without(v, key) for k, v in value.items() if k != key}
    if isinstance(value, (list, tuple)):
        return [_without(v, key) for v in value]
    return value


def _failures(url: str) -> list[tuple[str, str, str]]:
    from callsense.store import open_store
    from callsense.store.work import list_failures

    store = open_store(url)
    try:
        return sorted((Path(f.source_path).name, f.stage, f.error_code) for f in list_failures(store))
    finally:
        store.close()


def test_ray_batch_stores_what_the_process_pool_stores(with_models, tmp_path, local_ray, webhook):
    """Real pipeline (tiny forged models), split into decode tasks and separate SenseVoice and emotion2vec+
    actor pools: good and broken files, results equal to the process pool's, failures with stage and
    reason, alerts delivered once stored, and a re-run that skips everything."""
    import ray

    from callsense.pipeline import AnalyzeOptions, Analyzer

    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(EXAMPLES / "call_stereo.wav", folder / "a.wav")
    shutil.copy(EXAMPLES / "call_stereo_8k_mulaw.wav", folder / "b.wav")
    shutil.copy(EXAMPLES / "call_stereo.wav", folder / "a-copy.wav")  # same bytes: one recording
    (folder / "c.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (folder / "d.mp3").write_bytes(b"\x00\x01 not audio")
    rules = tmp_path / "rules.yaml"
    rules.write_text(always_rules(alert_url=webhook[0]))
    factory = partial(Analyzer, AnalyzeOptions(num_threads=1, allow_download=False, rules=rules))
    pool_url, ray_url = f"sqlite:///{tmp_path / 'pool.db'}", f"sqlite:///{tmp_path / 'ray.db'}"
    pool = run_batch(collect(folder), analyzer_factory=factory, db_url=pool_url, options=BatchOptions(workers=1))
    assert len(webhook[1]) == 2  # one alert per stored call

    seen = []
    s = run_batch_ray(collect(folder), analyzer_factory=factory, db_url=ray_url,
                      ray_options=RayOptions(asr_actors=1, emotion_actors=1, cpus_per_actor=0.5),
                      on_outcome=seen.append)
    assert (s.total, s.done, s.skipped, s.failed) == (pool.total, pool.done, pool.skipped, pool.failed) \
        == (5, 2, 1, 2), s.failures
    assert len(seen) == 5 and s.audio_ms == pool.audio_ms > 0
    assert {Path(f.path).name for f in s.failures} == {"c.wav", "d.mp3"}
    assert all(f.reason and f.error_code for f in s.failures)
    got, want = _results(ray_url), _results(pool_url)
    assert len(got) == 2 and {k: v[1:] for k, v in got.items()} == {k: v[1:] for k, v in want.items()}
    assert _failures(ray_url) == _failures(pool_url) and {st for _, st, _ in _failures(ray_url)} == {"analyze"}
    # every kind of process reports its own peak memory (each is a Python with onnxruntime: > 50 MB)
    assert set(s.peak_rss_mb) == {"decode-task", "asr-actor", "emotion-actor", "driver"}, s.peak_rss_mb
    assert all(mb > 50 for mb in s.peak_rss_mb.values()), s.peak_rss_mb
    assert set(pool.peak_rss_mb) == {"worker"}
    assert ray.is_initialized()  # the module's Ray was used and left running
    assert len(webhook[1]) == 4  # the Ray batch's driver delivered its two calls' alerts too
    again = run_batch_ray(collect(folder), analyzer_factory=factory, db_url=ray_url,
                          ray_options=RayOptions(actors=1, cpus_per_actor=0.5))
    assert (again.done, again.skipped, again.failed) == (0, 5, 0)  # stored and failed-before are skipped
    assert _results(ray_url) == got
    # pools that reserve every CPU of the cluster would wait for ever: a clear usage error instead
    with pytest.raises(UsageError, match="2 CPUs.*need 2.5"):
        run_batch_ray(collect(folder), analyzer_factory=factory, db_url=ray_url,
                      options=BatchOptions(force=True), ray_options=RayOptions(actors=1, cpus_per_actor=1.0))
    assert _results(ray_url) == got


def test_pool_sizes_below_one_are_usage_errors(tmp_path):
    folder = tmp_path / "in"
    write_fake_call(folder / "call.wav", [("agent", 0, 2000, "您好", "neutral")])
    for flag in ("--asr-actors", "--emotion-actors"):
        p = subprocess.run([sys.executable, "-m", "callsense", "batch", str(folder), "--ray", flag, "0",
                            "--analyzer", FAKE, "--db", f"sqlite:///{tmp_path / 's.db'}", "--no-progress"],
                           capture_output=True, text=True, timeout=120, check=False)
        assert p.returncode == 2 and flag in p.stderr, p.stderr


def test_kill_the_driver_then_rerun_gives_one_result_per_file(tmp_path, local_ray):
    folder = tmp_path / "in"
    for i in range(8):
        write_fake_call(folder / f"call{i}.wav", [("agent", 0, 2000, "您好", "neutral"),
                                                  ("customer", 2000, 30_000, f"我要退款 {i}", "angry")])
    url = f"sqlite:///{tmp_path / 'store.db'}"
    env = {**os.environ, "CALLSENSE_FAKE_DELAY_S": "0.5", "RAY_DEDUP_LOGS": "0"}

    def cli(*extra: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "callsense", "batch", str(folder), "--ray", "--analyzer", FAKE,
                                 "--ray-address", local_ray, "--db", url, "--no-progress", *extra],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                                env=env)

    p = cli()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(_results_or_none(url)) < 2 and p.poll() is None:
        time.sleep(0.2)
    assert p.poll() is None, p.communicate()
    os.killpg(p.pid, signal.SIGKILL)  # the driver, mid-run (Ray ends its job's actors)
    p.wait()
    partial_n = len(_results_or_none(url))
    assert 2 <= partial_n < 8

    p = cli("--json")
    out, err = p.communicate(timeout=240)
    assert p.returncode == 0, err
    summary = json.loads(out)
    assert (summary["done"], summary["skipped"], summary["failed"]) == (8 - partial_n, partial_n, 0)
    assert len(_results_or_none(url)) == 8


def _results_or_none(url: str) -> dict:
    try:
        return _results(url)
    except Exception:  # noqa: BLE001 - the database may not exist yet
        return {}
