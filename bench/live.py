"""Live-call benchmark: N concurrent stereo calls at real-time pace against one ``callsense serve``.

    python bench/live.py --calls 1,2 --duration 60            # full-size forged models, writes bench/RESULTS.md
    python bench/live.py --calls 1,2,4,6 --emotion-model base  # capacity with emotion2vec+ base
    python bench/live.py --smoke --json                         # tests: tiny models, one short call, seconds

For each N, one server (fresh process, ``--threads`` intra-op threads per model) receives N copies of
the generated call (bench/gen_call.py: 16 kHz PCM16 stereo with ground-truth speech intervals), each
streamed through ``callsense.live.client`` in 20 ms frames at ``--speed`` (1 = real time), all started
together. Measured per N:

* **final latency**: arrival of an utterance's ``final`` minus the moment its last sample was sent,
  where the utterance's end is the ground truth (truth intervals merged over gaps < 300 ms, as the
  VAD's ``min_silence_ms`` merges them) — so it includes the VAD's closing silence (≈ 0.3 s) and
  decoding, and the queueing behind the other calls;
* **alert latency**: arrival of an ``alert`` minus the truth end of the utterance whose ``final``
  triggered it. The rules are counting rules (``segment_count above k`` for k = 0..9 per role): on
  random-weight models words and emotions mean nothing, but every rule is evaluated after every final
  exactly as a real rule pack would be, and each fires once, at a known utterance;
* **partial interval**: time between consecutive ``partial`` messages of one utterance;
* the server's **CPU** (cores used on average: process-tree CPU time / wall) and **peak RSS**.

Models are random-weight full-size forgeries of the real architectures (``callsense.testing.forge``):
the figures are speed and memory only. Writes the ``live`` section of bench/RESULTS.md (not with
``--smoke`` unless ``--results``) and bench/work/live.json.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402
import gen_call  # noqa: E402

WORK = HERE / "work"
RESULTS = HERE / "RESULTS.md"
EMOTION_MODELS = {"large": "emotion2vec-plus-large", "base": "emotion2vec-plus-base"}
COUNT_RULES = 10  # segment_count rules per role: alerts at the 1st..10th utterance of each side
TARGETS = "issue 15: >= 6 concurrent stereo calls with large (>= 10 with base), final p95 <= 1.5 s, alert p95 <= 2 s"


def rules_yaml() -> str:
    rules = []
    for role in ("agent", "customer"):
        for k in range(COUNT_RULES):
            rules.append(f"""  - id: bench.{role}_{k + 1}
    name: {role} utterance {k + 1}
    scope: {{role: {role}}}
    conditions:
      1: {{type: segment_count, above: {k}}}
    consequence: {{severity: info}}
""")
    return 'ruleset:\n  id: bench-live\n  version: "1"\n  name: live benchmark\nrules:\n' + "".join(rules)


# ----------------------------------------------------------------------------------------------- setup
def ensure_models(models: Path, size: str, emotion: str, python: str) -> None:
    need = [models / m / "onnx" for m in ("sensevoice-small", EMOTION_MODELS[emotion])]
    if all(d.is_dir() and any(d.iterdir()) for d in need):
        return
    print(f"forging {size} models into {models} ...", file=sys.stderr)
    subprocess.run([python, "-m", "callsense.testing.forge", "--size", size, str(models), "--models",
                    f"sensevoice-small,{EMOTION_MODELS[emotion]}", "--runtimes", "onnx"], check=True,
                   stdout=subprocess.DEVNULL)


def truth_utterances(truth: dict) -> list[tuple[int, int, int]]:
    """(channel, start_ms, end_ms): what the VAD should close, from the generator's ground truth."""
    return common.segments_from_truth(truth)


# ----------------------------------------------------------------------------------------------- server
class Server:
    """``callsense serve --no-ui`` on a free port, its process tree sampled for CPU time and RSS."""

    def __init__(self, python: str, models: Path, data: Path, threads: int, emotion: str, max_calls: int):
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = common.pinned_env(threads)
        env.update({"CALLSENSE_MODEL_DIR": str(models), "CALLSENSE_OFFLINE": "1",
                    "CALLSENSE_DATABASE_URL": f"sqlite:///{data / 'store.db'}",
                    "CALLSENSE_MAX_LIVE_CALLS": str(max_calls), "GRADIO_ANALYTICS_ENABLED": "False"})
        self.log = (data / "serve.log").open("wb")
        self.proc = subprocess.Popen(
            [python, "-m", "callsense", "serve", "--no-ui", "--host", "127.0.0.1", "--port", str(self.port),
             "--data-dir", str(data), "--threads", str(threads), "--emotion-model", EMOTION_MODELS[emotion],
             "--log-level", "warning"], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.peak_rss_mb = 0.0
        self._stop = threading.Event()

    def wait_ready(self, timeout: float = 600) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise TimeoutError("server not ready")

    def put_rules(self, text: str) -> None:
        import httpx

        r = httpx.put(f"http://127.0.0.1:{self.port}/v1/rules", json={"yaml": text}, timeout=60)
        r.raise_for_status()

    def cpu_s(self) -> float:
        """utime + stime of the server and its children so far (seconds)."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in [self.proc.pid, *common._children(self.proc.pid)]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (OSError, IndexError, ValueError):
                pass
        return total / tick

    def sample_rss(self) -> threading.Thread:
        def loop() -> None:
            while not self._stop.wait(0.2):
                self.peak_rss_mb = max(self.peak_rss_mb, common.tree_rss_mb(self.proc.pid))

        self._stop.clear()
        t = threading.Thread(target=loop, daemon=True)
        t.start()
        return t

    def stop(self) -> None:
        self._stop.set()
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


# ----------------------------------------------------------------------------------------------- calls
async def one_call(url: str, recording, speed: float, index: int) -> list[dict]:
    from callsense.live.client import stream

    return [m async for m in stream(url, recording, speed=speed, frame_ms=20, call_id=f"bench_live_{index}")]


def warmup(recording):
    """The first 3 s of the recording, sent as fast as the server reads."""
    return dataclasses.replace(recording, data=recording.data[:recording.bytes_per_second * 3])


def measure_call(messages: list[dict], truth: list[tuple[int, int, int]], speed: float) -> dict:
    """Latencies of one call's messages against the truth (seconds of wall clock)."""
    finals, alerts, partial_gaps = [], [], []
    last_partial: dict[str, float] = {}
    trigger_end: float | None = None
    for m in messages:
        if m["type"] == "partial":
            sid = m["segment_id"]
            if sid in last_partial:
                partial_gaps.append(m["_t"] - last_partial[sid])
            last_partial[sid] = m["_t"]
        elif m["type"] == "final":
            seg = m["segment"]
            ends = [e for ch, s, e in truth if ch == seg["channel"] and s < seg["end_ms"] and e > seg["start_ms"]]
            trigger_end = max(ends) / 1000 / speed if ends else None
            if trigger_end is not None:
                finals.append(m["_t"] - trigger_end)
        elif m["type"] == "alert" and trigger_end is not None:
            alerts.append(m["_t"] - trigger_end)
    kinds = [m["type"] for m in messages]
    return {"finals": finals, "alerts": alerts, "partial_gaps": partial_gaps,
            "ok": bool(kinds) and kinds[-1] == "stopped", "last": messages[-1] if messages else None}


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    import numpy as np

    return float(np.percentile(values, q))


def run_n(n: int, *, python: str, models: Path, call: Path, truth: dict, threads: int, emotion: str,
          speed: float) -> dict:
    from callsense.live.client import read_recording

    recording = read_recording(call)
    utterances = truth_utterances(truth)
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        srv = Server(python, models, Path(tmp), threads, emotion, max_calls=max(n, 1))
        try:
            srv.wait_ready()
            srv.put_rules(rules_yaml())
            url = f"ws://127.0.0.1:{srv.port}/v1/live"
            # a warm-up call: the first live call loads the engines, which a running service did long ago
            asyncio.run(one_call(url, warmup(recording), 0, -1))
            sampler = srv.sample_rss()
            load_before = Path("/proc/loadavg").read_text().split()[:3]
            cpu0, t0 = srv.cpu_s(), time.monotonic()

            async def all_calls() -> list[list[dict]]:
                return await asyncio.gather(*(one_call(url, recording, speed, i) for i in range(n)))

            per_call = asyncio.run(all_calls())
            wall = time.monotonic() - t0
            cpu = srv.cpu_s() - cpu0
            load_after = Path("/proc/loadavg").read_text().split()[:3]
            sampler.join(0)
        finally:
            srv.stop()
    measured = [measure_call(msgs, utterances, speed) for msgs in per_call]
    finals = [x for m in measured for x in m["finals"]]
    alerts = [x for m in measured for x in m["alerts"]]
    gaps = [x for m in measured for x in m["partial_gaps"]]
    return {
        "calls": n, "completed": sum(m["ok"] for m in measured), "audio_s": truth["duration_ms"] / 1000,
        "wall_s": round(wall, 1), "finals": len(finals), "alerts": len(alerts),
        "final_p50_s": pct(finals, 50), "final_p95_s": pct(finals, 95), "final_max_s": max(finals, default=None),
        "alert_p50_s": pct(alerts, 50), "alert_p95_s": pct(alerts, 95),
        "partial_interval_p50_s": pct(gaps, 50), "partial_interval_p95_s": pct(gaps, 95),
        "cpu_cores": round(cpu / wall, 2) if wall else None, "peak_rss_mb": round(srv.peak_rss_mb, 0),
        "loadavg_before": " ".join(load_before), "loadavg_after": " ".join(load_after),
        "errors": [m["last"] for m in measured if not m["ok"]],
    }


# ----------------------------------------------------------------------------------------------- report
def fmt(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def table(rows: list[dict]) -> str:
    return common.markdown_table(
        ["calls", "completed", "finals", "final p50 / p95 / max s", "alerts", "alert p50 / p95 s",
         "partial interval p50 / p95 s", "server CPU cores", "peak RSS MB", "loadavg before → after"],
        [[r["calls"], r["completed"], r["finals"],
          f"{fmt(r['final_p50_s'])} / {fmt(r['final_p95_s'])} / {fmt(r['final_max_s'])}", r["alerts"],
          f"{fmt(r['alert_p50_s'])} / {fmt(r['alert_p95_s'])}",
          f"{fmt(r['partial_interval_p50_s'])} / {fmt(r['partial_interval_p95_s'])}", fmt(r["cpu_cores"]),
          fmt(r["peak_rss_mb"], 0), f"{r['loadavg_before']} → {r['loadavg_after']}"] for r in rows])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", default="1,2", help="comma-separated numbers of concurrent calls (default 1,2)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of the generated call (default 60)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--speed", type=float, default=1.0, help="1 = real time (default)")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads per model (default 2)")
    p.add_argument("--emotion-model", choices=sorted(EMOTION_MODELS), default="large")
    p.add_argument("--models", type=Path, help="forge root (default bench/work/models-{full,tiny}; forged if missing)")
    p.add_argument("--smoke", action="store_true", help="tiny models, a 10 s call, 1 call at 2x: seconds")
    p.add_argument("--results", action="store_true", help="write bench/RESULTS.md even with --smoke")
    p.add_argument("--json", action="store_true", help="print the measurements as JSON")
    args = p.parse_args(argv)

    size = "tiny" if args.smoke else "full"
    if args.smoke:
        args.duration, args.speed, args.calls = min(args.duration, 10.0), 2.0, "1"
    python = sys.executable
    models = args.models or WORK / f"models-{size}"
    ensure_models(models, size, args.emotion_model, python)
    call = WORK / f"call_{args.duration:.0f}s_seed{args.seed}.wav"
    if not call.is_file() or not gen_call.truth_path(call).is_file():
        gen_call.generate(call, seed=args.seed, duration_s=args.duration, voice="synth")
    truth = json.loads(gen_call.truth_path(call).read_text(encoding="utf-8"))

    rows = []
    for n in (int(x) for x in args.calls.split(",")):
        print(f"{n} concurrent call(s) of {args.duration:.0f} s at {args.speed:g}x ...", file=sys.stderr)
        row = run_n(n, python=python, models=models, call=call, truth=truth, threads=args.threads,
                    emotion=args.emotion_model, speed=args.speed)
        print(f"  final p95 {fmt(row['final_p95_s'])} s, alert p95 {fmt(row['alert_p95_s'])} s, "
              f"CPU {fmt(row['cpu_cores'])} cores, RSS {fmt(row['peak_rss_mb'], 0)} MB", file=sys.stderr)
        rows.append(row)

    doc = {"size": size, "emotion_model": EMOTION_MODELS[args.emotion_model], "duration_s": args.duration,
           "speed": args.speed, "threads": args.threads, "machine": common.machine_info(), "rows": rows}
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / ("live.smoke.json" if args.smoke else "live.json")).write_text(json.dumps(doc, indent=1) + "\n")
    if not args.smoke or args.results:
        body = (f"## Live calls (bench/live.py)\n\n{common.machine_line(doc['machine'])}\n\n"
                f"{size}-size forged models (random weights: speed only), SenseVoice-Small + "
                f"{doc['emotion_model']} on onnx, --threads {args.threads}; a {args.duration:.0f} s generated "
                f"stereo call streamed in 20 ms frames at {args.speed:g}x, N copies at once; "
                f"{COUNT_RULES * 2} counting rules. Latencies from the utterance's true end (see the script's "
                f"docstring). Targets ({TARGETS}): a run on a shared, loaded machine (loadavg in the table) "
                f"does not establish or refute them.\n\n{table(rows)}\n")
        common.replace_section(RESULTS, "live", body)
    if args.json:
        print(json.dumps(doc, indent=1))
    return 0 if all(r["completed"] == r["calls"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
