"""The GPU check's Python part (run by bench/gpu_check.sh): RTF, throughput and GPU memory on --device cuda.

    python bench/gpu_check.py            # full-size forged models, a 10-min stereo call, one GPU
    python bench/gpu_check.py --smoke    # tiny models, a 20 s call, the CUDA path on the CPU provider

Targets (issue 16): >= 300x real time for one 10-minute stereo call with emotion2vec+ large; >= 1,000
audio hours per wall hour for a batch of such calls (``--calls`` calls through ``--streams`` analyzers).
Forged models: the figures are speed and memory only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"


def gpu_memory_mb() -> float | None:
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20).stdout
        return float(out.split()[0])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return None


def has_gpu() -> tuple[bool, str]:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False, f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (no GPU build or no GPU)"
    if gpu_memory_mb() is None:
        return False, "no NVIDIA GPU visible (nvidia-smi missing or failing)"
    return True, "CUDAExecutionProvider"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--duration", type=float)
    p.add_argument("--calls", type=int)
    p.add_argument("--streams", type=int, default=4, help="analyzers sharing the GPU in the batch measurement")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from gen_call import plan_call, render  # bench/gen_call.py

    gpu, why = has_gpu()
    report: dict = {"gpu": gpu, "gpu_reason": why}
    if not gpu:
        if not a.smoke:
            print(json.dumps(report))
            print(f"no GPU: {why}", file=sys.stderr)
            return 4
        os.environ["CALLSENSE_CUDA_ON_CPU"] = "1"  # the CUDA code path on the CPU provider
    size = "tiny" if a.smoke else "full"
    duration = a.duration or (20.0 if a.smoke else 600.0)
    calls = a.calls or (2 if a.smoke else 16)
    models = WORK / f"models-{size}"
    if not (models / "sensevoice-small").is_dir():
        from callsense.testing.forge import forge

        t0 = time.perf_counter()
        forge(models, size=size)
        report["forge_s"] = round(time.perf_counter() - t0, 1)
    os.environ["CALLSENSE_MODEL_DIR"] = str(models)
    audio, _ = render(plan_call(7, duration), 7)
    call = WORK / f"gpu-call-{int(duration)}s.wav"
    call.parent.mkdir(parents=True, exist_ok=True)
    from callsense.testing.audio import write_audio

    write_audio(call, audio.T, 16000)  # render gives [2, n]
    from callsense.pipeline import AnalyzeOptions, Analyzer

    opts = AnalyzeOptions(device="cuda", num_threads=a.threads, allow_download=False)
    analyzer = Analyzer(opts).load()
    analyzer.run(call)  # warm-up: CUDA kernels, arenas
    t0 = time.perf_counter()
    analyzer.run(call)
    wall = time.perf_counter() - t0
    report.update(duration_s=duration, wall_s=round(wall, 3), x_real_time=round(duration / wall, 1))
    analyzers = [analyzer] + [Analyzer(opts).load() for _ in range(max(0, a.streams - 1))]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(len(analyzers)) as pool:  # onnxruntime releases the GIL while it runs
        list(pool.map(lambda i: analyzers[i % len(analyzers)].run(call), range(calls)))
    batch_wall = time.perf_counter() - t0
    report.update(batch_calls=calls, batch_wall_s=round(batch_wall, 2),
                  audio_h_per_h=round(calls * duration / batch_wall, 1), gpu_memory_mb=gpu_memory_mb())
    report["targets"] = {"x_real_time": {"value": report["x_real_time"], "limit": 300,
                                         "met": report["x_real_time"] >= 300},
                         "audio_h_per_h": {"value": report["audio_h_per_h"], "limit": 1000,
                                           "met": report["audio_h_per_h"] >= 1000}}
    if not gpu:
        report["note"] = "no GPU present: the CUDA code path ran on the CPU provider; targets do not apply"
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
