"""Service latency: the API's overhead over the engines' own time, at 1, 4 and 16 concurrent clients.

    python bench/load_api.py                  # full-size models, 10 s clip, both endpoints (~5 min)
    python bench/load_api.py --smoke --json   # tiny models, few requests (seconds)

1. Baseline, in this process, warm: the same 10 s clip through the library, ``--baseline-runs`` times:
   ``Analyzer.run`` (what ``POST /v1/analyze`` does) and decode + ``emotion_engine().score`` (what
   ``POST /v1/emotion`` does). Its median is "the engines' own time".
2. ``callsense serve --no-ui`` in a subprocess pinned to ``--threads`` CPUs (models warm: the
   script waits for ``/readyz``), ``--max-queue`` raised so 16 clients queue instead of getting 429.
3. For each endpoint and each concurrency c in 1, 4, 16: c client threads send the clip
   ``--requests`` times in all (after 2 warm-up requests). Per request: latency (client send to
   full response). Reported: p50, p95, throughput, and two overheads:

   * ``latency overhead`` = p50 latency / baseline - 1: at c = 1 this is the API's own cost (upload,
     form parsing, storing the result, JSON); at c > 1 it includes queueing behind other requests;
   * ``throughput overhead`` = wall time / (requests x baseline / workers) - 1: how much slower the
     service drains c clients than the engines alone would; the figure the target (<= 10 %) is
     about at c > 1.

Writes the ``api`` section of bench/RESULTS.md (not with --smoke unless --results) and bench/work/api.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common
import gen_call

WORK = HERE / "work"
ENDPOINTS = ("/v1/analyze", "/v1/emotion")
TARGET_OVERHEAD = 0.10


def percentile(values: list[float], q: float) -> float:
    xs = sorted(values)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def baseline(clip: Path, emotion_model: str, threads: int, runs: int) -> dict[str, float]:
    """Median warm in-process time of what each endpoint computes."""
    import numpy as np

    from callsense.audio.decode import load_audio
    from callsense.engines.base import EmotionOptions, SegmentAudio
    from callsense.pipeline import AnalyzeOptions, Analyzer

    analyzer = Analyzer(AnalyzeOptions(emotion_model=emotion_model, num_threads=threads, allow_download=False)).load()
    engine = analyzer.emotion_engine()

    def analyze_once() -> None:
        analyzer.run(clip)

    def emotion_once() -> None:
        audio = load_audio(clip, analyzer.options.audio)
        samples = np.mean(np.stack([t.samples for t in audio.tracks]), axis=0).astype(np.float32)
        engine.score([SegmentAudio(id="clip", samples=samples, start_ms=0)], EmotionOptions(granularity="utterance"))

    out = {}
    for endpoint, fn in (("/v1/analyze", analyze_once), ("/v1/emotion", emotion_once)):
        fn()  # warm-up
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        out[endpoint] = statistics.median(times)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``callsense serve`` in a subprocess, pinned, with its own data dir; a context manager."""

    def __init__(self, models: Path, emotion_model: str, threads: int, max_queue: int):
        self.port = free_port()
        self.tmp = tempfile.TemporaryDirectory(prefix="bench-api-")
        env = common.pinned_env(threads)
        env.update({"CALLSENSE_MODEL_DIR": str(models), "CALLSENSE_OFFLINE": "1",
                    "CALLSENSE_HOME": self.tmp.name})
        self.cmd = [sys.executable, "-m", "callsense", "serve", "--no-ui", "--port", str(self.port),
                    "--data-dir", str(Path(self.tmp.name) / "service"), "--threads", str(threads),
                    "--max-queue", str(max_queue), "--emotion-model", emotion_model, "--log-level", "warning"]
        cpus = common.cpu_set(threads)
        self.log = open(Path(self.tmp.name) / "server.log", "w")  # noqa: SIM115 - closed in __exit__
        self.proc = subprocess.Popen(self.cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=lambda: os.sched_setaffinity(0, cpus))  # noqa: PLW1509 - one syscall
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout_s: float) -> float:
        import httpx

        started = time.perf_counter()
        while time.perf_counter() - started < timeout_s:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}):\n{self.read_log()[-3000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {timeout_s:.0f} s:\n{self.read_log()[-3000:]}")

    def read_log(self) -> str:
        self.log.flush()
        return (Path(self.tmp.name) / "server.log").read_text(errors="replace")

    def __enter__(self) -> Server:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        self.tmp.cleanup()


def one_request(client, url: str, endpoint: str, clip_bytes: bytes) -> tuple[float, float | None]:
    """(latency s, engine time s reported in the response or None)."""
    data = {"mode": "sync"} if endpoint == "/v1/analyze" else {"granularity": "utterance"}
    t = time.perf_counter()
    r = client.post(url + endpoint, files={"file": ("clip.wav", clip_bytes, "audio/wav")}, data=data)
    latency = time.perf_counter() - t
    if r.status_code != 200:
        raise RuntimeError(f"{endpoint}: HTTP {r.status_code}: {r.text[:500]}")
    engine = None
    if endpoint == "/v1/analyze":
        timings = r.json()["result"]["processing"].get("timings_ms", {})
        engine = sum(timings.values()) / 1000 if timings else None
    return latency, engine


def load_level(url: str, endpoint: str, clip_bytes: bytes, clients: int, requests: int) -> dict:
    import httpx

    local = threading.local()

    def work(_: int) -> tuple[float, float | None]:
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=600)
        return one_request(local.client, url, endpoint, clip_bytes)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(work, range(requests)))
    wall = time.perf_counter() - started
    lat = [r[0] for r in results]
    eng = [r[1] for r in results if r[1] is not None]
    return {"clients": clients, "requests": requests, "wall_s": wall, "p50_s": percentile(lat, 0.5),
            "p95_s": percentile(lat, 0.95), "throughput_rps": requests / wall,
            "engine_in_response_p50_s": percentile(eng, 0.5) if eng else None}


def run(models: Path, clip: Path, *, emotion_model: str, threads: int, levels: list[int], requests: int,
        baseline_runs: int, workers: int = 1) -> dict:
    import httpx

    base = baseline(clip, emotion_model, threads, baseline_runs)
    clip_bytes = clip.read_bytes()
    out = {"baseline_s": base, "levels": {}}
    with Server(models, emotion_model, threads, max_queue=max(levels) * 2 + 4) as server:
        out["ready_s"] = server.wait_ready(600)
        with httpx.Client(timeout=600) as c:
            for endpoint in ENDPOINTS:
                for _ in range(2):
                    one_request(c, server.url, endpoint, clip_bytes)
        for endpoint in ENDPOINTS:
            rows = []
            for clients in levels:
                n = max(requests, 2 * clients)
                r = load_level(server.url, endpoint, clip_bytes, clients, n)
                b = base[endpoint]
                r["latency_overhead_p50"] = r["p50_s"] / b - 1
                r["latency_overhead_p95"] = r["p95_s"] / b - 1
                r["throughput_overhead"] = r["wall_s"] / (n * b / workers) - 1
                rows.append(r)
                print(f"{endpoint} c={clients}: p50 {r['p50_s']:.3f} s p95 {r['p95_s']:.3f} s, "
                      f"throughput overhead {r['throughput_overhead']:+.1%}", file=sys.stderr, flush=True)
            out["levels"][endpoint] = rows
    return out


def render_markdown(doc: dict, meta: dict) -> str:
    lines = ["## Service latency (bench/load_api.py)", "",
             f"Command: `{meta['command']}`  ",
             f"Machine: {common.machine_line(meta['machine'])}  ",
             f"10 s clip, {meta['threads']} threads pinned, 1 worker, warm models; baseline = the same work "
             "in-process through the library (median of "
             f"{meta['baseline_runs']}): " + ", ".join(f"{k} {v:.3f} s" for k, v in doc["baseline_s"].items()) + ".",
             "SMOKE RUN: tiny models, figures mean nothing." if meta["smoke"] else
             "Random-weight full-size models: speed only.", ""]
    rows = []
    for endpoint, levels in doc["levels"].items():
        for r in levels:
            rows.append([endpoint, r["clients"], r["requests"], f"{r['p50_s']:.3f}", f"{r['p95_s']:.3f}",
                         f"{r['throughput_rps']:.2f}", f"{r['latency_overhead_p50']:+.1%}",
                         f"{r['latency_overhead_p95']:+.1%}", f"{r['throughput_overhead']:+.1%}"])
    lines.append(common.markdown_table(["endpoint", "clients", "requests", "p50 s", "p95 s", "req/s",
                                        "p50 vs engines", "p95 vs engines", "throughput overhead"], rows))
    lines += ["", ("At 1 client the latency overhead is the API's own cost; at 4 and 16 clients requests queue "
                   "behind each other (1 worker), so the throughput overhead is the comparable figure "
                   f"(target <= {TARGET_OVERHEAD:.0%}).")]
    return "\n".join(lines) + "\n"


def verdict(doc: dict) -> dict:
    checks = {}
    for endpoint, levels in doc["levels"].items():
        for r in levels:
            value = r["latency_overhead_p50"] if r["clients"] == 1 else r["throughput_overhead"]
            checks[f"{endpoint} c={r['clients']}"] = {"value": round(value, 4), "limit": TARGET_OVERHEAD,
                                                      "met": value <= TARGET_OVERHEAD}
    return {"targets": checks, "all_met": all(c["met"] for c in checks.values())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny models, few requests")
    p.add_argument("--json", action="store_true")
    p.add_argument("--models", type=Path)
    p.add_argument("--emotion-model", default="emotion2vec-plus-large")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--clients", default="1,4,16")
    p.add_argument("--requests", type=int, help="requests per level (default 16; smoke 4); at least 2 x clients")
    p.add_argument("--baseline-runs", type=int, help="default 5; smoke 2")
    p.add_argument("--results", type=Path)
    args = p.parse_args(argv)
    size = "tiny" if args.smoke else "full"
    models = args.models or WORK / f"models-{size}"
    WORK.mkdir(exist_ok=True)
    from e2e import ensure_models  # forging lives in e2e.py

    ensure_models(models, size, sys.executable)
    clip = WORK / "clip_10s_seed7.wav"
    if not clip.is_file():
        gen_call.generate(clip, seed=7, duration_s=10.0)
    os.environ.update({"CALLSENSE_MODEL_DIR": str(models), "CALLSENSE_OFFLINE": "1"})
    for var in common.THREAD_VARS:
        os.environ[var] = str(args.threads)
    levels = [int(c) for c in args.clients.split(",")]
    doc = run(models, clip, emotion_model=args.emotion_model, threads=args.threads, levels=levels,
              requests=args.requests or (4 if args.smoke else 16),
              baseline_runs=args.baseline_runs or (2 if args.smoke else 5))
    command = "python bench/load_api.py " + " ".join(argv if argv is not None else sys.argv[1:])
    meta = {"command": command.strip(), "machine": common.machine_info(), "threads": args.threads,
            "baseline_runs": args.baseline_runs or (2 if args.smoke else 5), "smoke": args.smoke}
    v = verdict(doc)
    (WORK / ("api.smoke.json" if args.smoke else "api.json")).write_text(
        json.dumps({"meta": meta, **doc, **v}, indent=1) + "\n")
    results = args.results or (None if args.smoke else HERE / "RESULTS.md")
    if results:
        common.replace_section(results, "api", render_markdown(doc, meta))
    if args.json:
        sys.stdout.write(json.dumps({"meta": meta, **v, "baseline_s": doc["baseline_s"], "levels": doc["levels"]},
                                    indent=1) + "\n")
    else:
        print(render_markdown(doc, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
