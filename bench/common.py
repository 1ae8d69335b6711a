"""Shared benchmark helpers: run a measured subprocess, summarise repeats, describe the machine, write tables.

    from common import run_measured, summarize, machine_info, markdown_table, pinned_env

    m = run_measured(["callsense", "analyze", "call.wav"], env=pinned_env(2), cpus=2,
                     watch=Path("out"), watch_glob="outputs_*/result.json")
    m.wall_s, m.peak_rss_mb, m.first_file_s

Peak memory is the largest of (a) the child's own high-water mark (``os.wait4`` rusage ``ru_maxrss``,
exact for a single process) and (b) the sum of ``VmRSS`` over the child's process tree sampled every
``sample_s`` (catches helpers that the child spawns). Wall time counts from just before ``fork`` to the
child's exit: "process start to result on disk" includes interpreter start-up and imports.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS")


@dataclass(frozen=True)
class Measured:
    """One measured process run."""

    cmd: tuple[str, ...]
    rc: int
    wall_s: float  # fork to exit
    peak_rss_mb: float  # max(own high-water mark, sampled tree RSS)
    first_file_s: float | None  # fork to the first file matching watch_glob (None: never / not watched)
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Summary:
    """Median and range of repeated measurements."""

    median: float
    low: float
    high: float
    n: int
    values: tuple[float, ...] = field(default=())

    def fmt(self, digits: int = 2, unit: str = "") -> str:
        if self.n == 1:
            return f"{self.median:.{digits}f}{unit}"
        return f"{self.median:.{digits}f}{unit} ({self.low:.{digits}f}–{self.high:.{digits}f})"

    def to_dict(self) -> dict:
        return {"median": self.median, "min": self.low, "max": self.high, "n": self.n, "values": list(self.values)}


def summarize(values: Iterable[float | None]) -> Summary | None:
    vals = tuple(float(v) for v in values if v is not None)
    if not vals:
        return None
    return Summary(statistics.median(vals), min(vals), max(vals), len(vals), vals)


def pinned_env(threads: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment with every BLAS/OpenMP pool capped at ``threads`` (torch and ORT read OMP_NUM_THREADS)."""
    env = dict(os.environ if base is None else base)
    for var in THREAD_VARS:
        env[var] = str(threads)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def cpu_set(count: int) -> set[int]:
    """The first ``count`` CPUs this process may run on (the whole set when it has fewer)."""
    allowed = sorted(os.sched_getaffinity(0))
    return set(allowed[:count]) if count > 0 else set(allowed)


def _children(pid: int) -> list[int]:
    """Direct and indirect children of ``pid`` (from /proc/*/stat)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def tree_rss_mb(pid: int) -> float:
    return sum(_rss_kb(p) for p in [pid, *_children(pid)]) / 1024


def run_measured(cmd: Sequence[str], *, env: dict[str, str] | None = None, cpus: int = 0,
                 cwd: Path | None = None, watch: Path | None = None, watch_glob: str = "*",
                 timeout_s: float = 3600.0, sample_s: float = 0.05) -> Measured:
    """Run ``cmd`` to completion, pinned to ``cpus`` CPUs (0: no pinning); measure time and peak memory."""
    affinity = cpu_set(cpus) if cpus else None

    def pin() -> None:  # runs in the child between fork and exec
        if affinity:
            os.sched_setaffinity(0, affinity)

    peak_tree = [0.0]
    first_file: list[float | None] = [None]
    done = threading.Event()
    start = time.perf_counter()
    proc = subprocess.Popen(list(cmd), env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=pin)  # noqa: PLW1509 - pin() is one syscall, takes no locks

    def sample() -> None:
        tick = 0
        while not done.is_set():
            # The tree walk reads all of /proc: do it every 10th tick, the own RSS every tick.
            rss = tree_rss_mb(proc.pid) if tick % 10 == 0 else _rss_kb(proc.pid) / 1024
            peak_tree[0] = max(peak_tree[0], rss)
            if watch is not None and first_file[0] is None and any(watch.glob(watch_glob)):
                first_file[0] = time.perf_counter() - start
            tick += 1
            done.wait(sample_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out_chunks: dict[str, str] = {}

    def drain(name: str, stream) -> None:
        out_chunks[name] = stream.read()

    readers = [threading.Thread(target=drain, args=(n, s), daemon=True)
               for n, s in (("out", proc.stdout), ("err", proc.stderr))]
    for r in readers:
        r.start()
    deadline = start + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.005)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    sampler.join()
    for r in readers:
        r.join()
    if watch is not None and first_file[0] is None and any(watch.glob(watch_glob)):
        first_file[0] = wall  # written in the last sampling interval
    own_peak = usage.ru_maxrss / 1024  # Linux: KiB
    return Measured(tuple(cmd), proc.returncode, wall, max(own_peak, peak_tree[0]), first_file[0],
                    out_chunks.get("out", ""), out_chunks.get("err", ""))


def machine_info() -> dict:
    """CPU model, cores, memory and versions: the header of every results table."""
    info: dict = {"platform": platform.platform(), "python": platform.python_version(),
                  "cpus_online": os.cpu_count(), "cpus_allowed": len(os.sched_getaffinity(0))}
    try:
        out = subprocess.run(["lscpu"], check=False, capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("Model name", "Thread(s) per core", "Core(s) per socket", "Socket(s)", "Flags"):
                value = value.strip()
                if key.strip() == "Flags":  # only what matters for GEMM kernels
                    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "fma")
                    value = " ".join(f for f in value.split() if f in wanted)
                info[key.strip().lower().replace("(s)", "s").replace(" ", "_")] = value
    except (OSError, subprocess.SubprocessError):
        info["model_name"] = platform.processor() or "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["ram_gb"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        info["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    for mod in ("numpy", "onnxruntime", "sherpa_onnx", "torch", "funasr"):
        try:
            from importlib.metadata import version

            info[f"{mod}_version"] = version(mod.replace("_", "-"))
        except Exception:  # noqa: BLE001, S110 - a missing package is just not listed
            pass
    return info


def machine_line(info: dict) -> str:
    return (f"{info.get('model_name', '?')}, {info.get('cpus_allowed')} CPUs allowed of {info.get('cpus_online')}, "
            f"{info.get('ram_gb', '?')} GB RAM, {info.get('flags', '')}; load {info.get('load_avg', '?')}")


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join("" if c is None else str(c) for c in row) + " |")
    return "\n".join(lines)


def replace_section(path: Path, name: str, body: str) -> None:
    """Write ``body`` between ``<!-- name:start -->`` and ``<!-- name:end -->`` in ``path`` (appended if absent).

    Each script owns its section, so e2e.py, floor.py and load_api.py can each rewrite theirs in RESULTS.md.
    """
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        head, _, rest = text.partition(start)
        _, _, tail = rest.partition(end)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


# ---- the speech segments of a generated call (shared by the stage benchmarks) ---------------------------
MERGE_GAP_MS = 300
MAX_SEGMENT_MS = 30_000


def segments_from_truth(truth: dict) -> list[tuple[int, int, int]]:
    """(channel, start_ms, end_ms) speech segments: truth intervals merged over short gaps, cut at 30 s."""
    out: list[tuple[int, int, int]] = []
    by_channel = {c["channel"]: [(iv["start_ms"], iv["end_ms"]) for iv in c["intervals"]] for c in truth["channels"]}
    for ch, ivs in sorted(by_channel.items()):
        cur: list[int] | None = None
        for s, e in sorted(ivs):
            if cur and s - cur[1] < MERGE_GAP_MS and e - cur[0] <= MAX_SEGMENT_MS:
                cur[1] = e
            else:
                if cur:
                    out.append((ch, cur[0], cur[1]))
                cur = [s, e]
        if cur:
            out.append((ch, cur[0], cur[1]))
    return out


def load_call_segments(call: Path, truth: dict) -> list:
    """The call's truth segments as ``SegmentAudio`` (16 kHz PCM16 WAV in, one channel per track)."""
    import wave

    import numpy as np

    from callsense.engines.base import SegmentAudio

    with wave.open(str(call), "rb") as f:
        pcm = np.frombuffer(f.readframes(f.getnframes()), "<i2").reshape(-1, f.getnchannels())
    audio = pcm.astype(np.float32) / 32768.0
    return [SegmentAudio(f"s{i}", np.ascontiguousarray(audio[s * 16: e * 16, ch]), s, ch)
            for i, (ch, s, e) in enumerate(segments_from_truth(truth))]
