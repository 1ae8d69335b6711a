"""Batch throughput: ``callsense batch`` on a folder of 10-minute calls with 1 and 2 worker processes.

    python bench/bench_batch.py                          # full-size forged models, 4 calls x 600 s, workers 1,2
    python bench/bench_batch.py --size tiny --calls 2 --duration 60 --workers 1,2   # smoke: seconds
    python bench/bench_batch.py --ray --calls 4 --duration 600                       # + Ray, interleaved

With ``--ray`` every worker count N also runs as ``callsense batch --ray --actors N`` (N SenseVoice and
N emotion2vec+ actors, decode tasks), right after the process pool with N workers and on the same
N x threads CPUs, so both see the same machine load, twice: with the local Ray the batch starts and
stops itself ("ray"), and against a long-lived Ray started once by this script (``ray start --head``
on the same CPUs, ``--ray-address``: "ray, running cluster"), which is how a cluster runs and leaves
out Ray's start. The table gives the Ray overhead (1 - Ray throughput / pool throughput) and the peak
resident memory of each kind of process (each SenseVoice actor, emotion2vec+ actor, decode task, the
driver; reported by the processes themselves, ``getrusage``, in the batch's ``--json`` summary) and
of all processes together (sampled from /proc every 0.2 s). The load average is read before and
after every run.

Each configuration is one fresh ``callsense batch`` process (a new SQLite store, so nothing is skipped),
pinned to ``workers x threads`` CPUs with every thread pool capped at ``--threads`` per worker. It
measures wall time (process start to exit: start-up, model loading in each worker, analysis, storing),
audio hours per wall hour (throughput), the real-time factor, and the peak resident memory.

Writes the ``batch`` section of ``bench/RESULTS.md`` (``batch-ray`` with ``--ray``; full runs, tiny
ones only with ``--results``) and ``bench/work/batch.json``. Models are random-weight forgeries of the
real architectures (speed and memory only, never accuracy).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common
import gen_call

WORK = HERE / "work"
RESULTS = HERE / "RESULTS.md"
MODELS = ("sensevoice-small", "emotion2vec-plus-large")


def ensure_models(models: Path, size: str, python: str) -> None:
    need = [models / m / "onnx" for m in MODELS]
    if all(d.is_dir() and any(d.iterdir()) for d in need):
        return
    print(f"forging {size} models into {models} ...", file=sys.stderr)
    subprocess.run([python, "-m", "callsense.testing.forge", "--size", size, str(models), "--models",
                    ",".join(MODELS), "--runtimes", "onnx"], check=True, stdout=subprocess.DEVNULL)


def ensure_calls(folder: Path, n: int, duration_s: float) -> list[Path]:
    """``n`` different calls (seeds 1..n): distinct content, so the batch analyses every one."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(1, n + 1):
        p = folder / f"call_{int(duration_s)}s_seed{seed}.wav"
        if not p.is_file():
            gen_call.generate(p, seed=seed, duration_s=duration_s, voice="synth")
        paths.append(p)
    return paths


def run_batch(python: str, folder: Path, models: Path, workers: int, threads: int, runner: str = "pool",
              address: str | None = None, extra_pids: tuple[int, ...] = ()) -> dict:
    """One measured ``callsense batch`` run (``runner``: pool, ray, ray-warm with ``address``): wall time,
    summary, peak RSS per kind of process (the summary's) and of the process tree (sampled, with
    ``extra_pids``' trees: a long-lived Ray's)."""
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        env = common.pinned_env(threads)
        env.update(CALLSENSE_MODEL_DIR=str(models), CALLSENSE_OFFLINE="1",
                   CALLSENSE_DATABASE_URL=f"sqlite:///{Path(tmp) / 'store.db'}")
        cmd = [python, "-m", "callsense", "batch", str(folder), "--workers", str(workers), "--threads", str(threads),
               "--offline", "--json", "--no-progress", "--ext", "wav"]
        if runner != "pool":
            cmd[cmd.index("--workers"):cmd.index("--workers") + 2] = ["--ray", "--actors", str(workers)]
            env.update(RAY_DEDUP_LOGS="0", RAY_USAGE_STATS_ENABLED="0")
            if address:
                cmd += ["--ray-address", address]
                env.update(RAY_HEAD_ENV)
        cpus = common.cpu_set(workers * threads)
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: os.sched_setaffinity(0, cpus))  # noqa: PLW1509
        peaks: dict[int, float] = {}
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                for root in (proc.pid, *extra_pids):
                    for pid in [root, *common._children(root)]:
                        rss = common._rss_kb(pid) / 1024
                        if rss:
                            peaks[pid] = max(peaks.get(pid, 0.0), rss)
                done.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out, err = proc.communicate()
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"callsense batch failed (exit {proc.returncode}):\n{err[-3000:]}")
    summary = json.loads(out)
    by_kind = summary.get("peak_rss_mb") or {}
    audio_h = summary["audio_hours"]
    return {
        "runner": runner, "by_kind_peak_mb": by_kind,
        "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
        "workers": workers, "threads": threads, "wall_s": wall, "done": summary["done"], "failed": summary["failed"],
        "audio_hours": audio_h, "throughput": audio_h / (wall / 3600) if wall else None,
        "rtf": wall / (audio_h * 3600) if audio_h else None, "batch_wall_s": summary["wall_s"],
        "peak_rss_parent_mb": peaks.get(proc.pid, 0.0),
        "peak_rss_worker_mb": by_kind.get("worker", max(peaks.values(), default=0.0)),
        "peak_rss_total_mb": sum(peaks.values()),
    }


RAY_HEAD_ENV = {"RAY_AUTH_MODE": "disabled"}
"""The benchmark's own head listens on loopback for a minute: no token (Ray 2.5x's token files are per
session and a `ray start` head's is not found by its clients)."""


@contextlib.contextmanager
def ray_head(workers: int, threads: int, temp: Path) -> Iterator[tuple[str, int]]:
    """A long-lived local Ray (``ray start --head --block``) on the CPUs of ``workers`` x ``threads``, with
    the logical CPUs ``callsense batch --ray --actors N`` would give a local Ray; yields (address, pid).
    Stopped by signalling the process group this script started (never ``ray stop``: it would stop
    every Ray of this user on the machine)."""
    import math
    import signal
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cpus = common.cpu_set(workers * threads)
    logical = max(os.cpu_count() or 1, math.ceil(2 * workers + 0.5))  # ray_runner._local_cpus
    env = common.pinned_env(threads)
    env.update(RAY_USAGE_STATS_ENABLED="0", **RAY_HEAD_ENV)
    ray_bin = str(Path(sys.executable).with_name("ray"))
    log = temp / "head.log"
    with log.open("w") as out:
        head = subprocess.Popen([ray_bin, "start", "--head", "--block", f"--port={port}",
                                 "--node-ip-address=127.0.0.1", f"--num-cpus={logical}", "--include-dashboard=false",
                                 "--disable-usage-stats", f"--temp-dir={temp}"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=lambda: os.sched_setaffinity(0, cpus))  # noqa: PLW1509
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in log.read_text(errors="replace"):
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray start --head did not come up:\n{log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", head.pid
    finally:
        for sig, wait_s in ((signal.SIGTERM, 3), (signal.SIGKILL, 10)):  # SIGTERM alone drains for 30 s
            try:
                os.killpg(head.pid, sig)
                head.wait(timeout=wait_s)
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue


LABELS = {"pool": "pool", "ray": "ray (local Ray started by the batch)", "ray-warm": "ray (running Ray)"}
MEMORY_KINDS = (("asr-actor", "ASR actor"), ("emotion-actor", "emotion actor"), ("decode-task", "decode task"),
                ("driver", "driver"), ("worker", "worker"))


def render_ray(meta: dict, runs: list[dict]) -> str:
    """The Ray vs process-pool table (``--ray``)."""
    pool = {r["workers"]: r for r in runs if r["runner"] == "pool"}
    rows = []
    for r in runs:
        base = pool.get(r["workers"])
        overhead = ""
        if r["runner"] != "pool" and base and base["throughput"] and r["throughput"]:
            overhead = f"{(1 - r['throughput'] / base['throughput']) * 100:+.0f} %"
        kinds = r["by_kind_peak_mb"]
        mem = " / ".join(f"{label} {kinds[k]:.0f}" for k, label in MEMORY_KINDS if kinds.get(k)) or "–"
        n = f"{r['workers']} actor(s) per pool" if r["runner"] != "pool" else f"{r['workers']} worker(s)"
        rows.append([LABELS[r["runner"]], n, r["done"], f"{r['audio_hours']:.3f}", f"{r['wall_s']:.1f}",
                     f"{r['throughput']:.1f}", overhead, mem, f"{r['peak_rss_total_mb']:.0f}",
                     f"{r['load_before']} → {r['load_after']}"])
    table = common.markdown_table(["runner", "parallelism", "calls", "audio h", "wall s", "audio h / wall h",
                                   "Ray overhead", "peak RSS per process MB", "all processes MB",
                                   "load avg (1 min)"], rows)
    return (f"## Batch on Ray vs the process pool (`bench/bench_batch.py --ray`)\n\n"
            f"{meta['calls']} calls × {meta['duration_s']:.0f} s, {meta['size']} forged models, QA on, SQLite "
            f"store; configurations interleaved (pool N, Ray N, Ray N on a running Ray), each pinned to "
            f"N × {meta['threads']} CPUs. Wall time is process start to exit: for \"local Ray\" it includes "
            f"starting and stopping Ray; a running Ray (a cluster) is started once, before. Peak RSS per "
            f"process: the highest of each kind (each process's own getrusage); all processes: the sum of "
            f"sampled peaks (with Ray's own). The load average column is /proc/loadavg before → after each run.\n"
            f"Machine: {common.machine_line(meta['machine'])}\n\n{table}\n")


def render(meta: dict, runs: list[dict]) -> str:
    base = next((r for r in runs if r["workers"] == 1), None)
    rows = []
    for r in runs:
        scale = f"{r['throughput'] / base['throughput']:.2f}×" if base and base["throughput"] else ""
        rows.append([r["workers"], r["threads"], r["done"], f"{r['audio_hours']:.3f}", f"{r['wall_s']:.1f}",
                     f"{r['throughput']:.1f}", scale, f"{r['rtf']:.3f}", f"{r['peak_rss_worker_mb']:.0f}",
                     f"{r['peak_rss_parent_mb']:.0f}"])
    table = common.markdown_table(["workers", "threads/worker", "calls", "audio h", "wall s", "audio h / wall h",
                                   "vs 1 worker", "RTF", "peak RSS per worker MB", "peak RSS parent MB"], rows)
    return (f"## Batch throughput (`bench/bench_batch.py`)\n\n{meta['calls']} calls × {meta['duration_s']:.0f} s, "
            f"{meta['size']} forged models (SenseVoice-Small + emotion2vec+ large, onnx), QA on, SQLite store. "
            f"Wall time includes start-up and model loading in every worker.\n"
            f"Machine: {common.machine_line(meta['machine'])}\n\n{table}\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=("full", "tiny"), default="full")
    p.add_argument("--calls", type=int, default=4)
    p.add_argument("--duration", type=float, default=600.0, help="seconds per call")
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    p.add_argument("--threads", type=int, default=1, help="threads per model in each worker")
    p.add_argument("--models", type=Path, default=None, help="forged models (default bench/work/models-<size>)")
    p.add_argument("--results", action="store_true", help="write RESULTS.md even for a tiny run")
    p.add_argument("--ray", action="store_true",
                   help="also run each worker count as --ray --actors N (local Ray, and a running Ray)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    python = sys.executable
    models = args.models or WORK / f"models-{args.size}"
    ensure_models(models, args.size, python)
    folder = ensure_calls(WORK / f"batch-{int(args.duration)}s", args.calls, args.duration)[0].parent
    runs = []
    for w in (int(x) for x in args.workers.split(",")):  # interleaved: pool N then Ray N see the same load
        runs.append(run_batch(python, folder, models, w, args.threads))
        if args.ray:
            runs.append(run_batch(python, folder, models, w, args.threads, runner="ray"))
            with tempfile.TemporaryDirectory(prefix="bench-ray-") as temp, \
                    ray_head(w, args.threads, Path(temp)) as (address, pid):
                runs.append(run_batch(python, folder, models, w, args.threads, runner="ray-warm", address=address,
                                      extra_pids=(pid,)))
    meta = {"size": args.size, "calls": args.calls, "duration_s": args.duration, "threads": args.threads,
            "machine": common.machine_info()}
    WORK.mkdir(exist_ok=True)
    (WORK / "batch.json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=2), encoding="utf-8")
    pool_runs = [r for r in runs if r["runner"] == "pool"]
    text = render_ray(meta, runs) if args.ray else render(meta, pool_runs)
    if args.size == "full" or args.results:
        if args.ray:
            common.replace_section(RESULTS, "batch-ray", text)
        else:
            common.replace_section(RESULTS, "batch", text)
    if args.json:
        print(json.dumps({"meta": meta, "runs": runs}, indent=2))
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
