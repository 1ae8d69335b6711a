"""Diarization benchmark: the diarization stage on a 10-minute mono call, and mono against stereo end to end.

    python bench/bench_diarization.py                    # stage only: 600 s mono call, full-size forged models,
                                                         # fp32 and int8, --runs 1 each
    python bench/bench_diarization.py --e2e              # also `callsense analyze` of the mono mix against the
                                                         # stereo call (emotion2vec+ large, onnx)
    python bench/bench_diarization.py --smoke --json     # CI: tiny models, a 20 s call; seconds

The call is bench/gen_call.py's stereo call (seed 7) summed to one channel: the same two voices, turns and
overlaps, on one track. Each configuration runs as a fresh process pinned to ``--threads`` CPUs with every
thread pool capped to the same number (bench/common.py).

* stage (``diarization-fp32``, ``diarization-int8``): a worker process loads sherpa-onnx's
  OfflineSpeakerDiarization with the forged pyannote segmentation-3.0 and 3D-Speaker embedding models (what
  callsense's Diarizer does), diarizes the whole call once and reports its own clock. RTF = diarization
  seconds / audio seconds (model load excluded, reported apart); peak RSS is the worker's whole process.
* end to end (``--e2e``): ``callsense analyze`` of the mono mix (diarization models installed) and of the
  stereo call, same models otherwise; the ratio of their wall times is the issue's "within 1.2×" target.

Writes the ``diarization`` section of bench/RESULTS.md (full runs; ``--smoke`` only with ``--results``) and
bench/work/diarization.json. Targets (issue 14): diarization RTF ≤ 0.05, mono ≤ 1.2 × stereo.

Models are random-weight forgeries with roughly the real compute: figures are speed and memory only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import wave
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common
import gen_call

WORK = HERE / "work"
RESULTS = HERE / "RESULTS.md"
SEG, EMB = "pyannote-segmentation-3-0", "eres2net-base-3dspeaker"
E2E_MODELS = ("sensevoice-small", "emotion2vec-plus-large")
TARGETS = {"diarization_rtf": 0.05, "mono_over_stereo": 1.2}


# ----------------------------------------------------------------------------------------------- setup
def ensure_models(models: Path, size: str, python: str, names: tuple[str, ...]) -> None:
    missing = [n for n in names if not (models / n / "onnx").is_dir() or not any((models / n / "onnx").iterdir())]
    if missing:
        print(f"forging {size} {','.join(missing)} into {models} ...", file=sys.stderr)
        subprocess.run([python, "-m", "callsense.testing.forge", "--size", size, str(models), "--models",
                        ",".join(missing), "--runtimes", "onnx"], check=True, stdout=subprocess.DEVNULL)


def ensure_calls(stereo: Path, seed: int, duration_s: float) -> Path:
    """The stereo call (gen_call.py) and its mono mix next to it; returns the mono path."""
    if not stereo.is_file() or not gen_call.truth_path(stereo).is_file():
        gen_call.generate(stereo, seed=seed, duration_s=duration_s, voice="synth")
    mono = stereo.with_name(stereo.stem + ".mono.wav")
    if not mono.is_file():
        import numpy as np

        with wave.open(str(stereo), "rb") as f:
            pcm = np.frombuffer(f.readframes(f.getnframes()), "<i2").reshape(-1, f.getnchannels()).astype(np.int32)
        mixed = np.clip(pcm.sum(axis=1), -32768, 32767).astype("<i2")  # gen_call leaves 0.6 peak headroom
        with wave.open(str(mono), "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(16000)
            f.writeframes(mixed.tobytes())
    return mono


def model_files(models: Path, precision: str) -> tuple[Path, Path]:
    name = "model.int8.onnx" if precision == "int8" else "model.onnx"
    return models / SEG / "onnx" / name, models / EMB / "onnx" / name


# ----------------------------------------------------------------------------------------------- worker
def worker(seg: str, emb: str, wav: str, threads: int, step: float) -> None:
    """In the measured child: load the Diarizer, diarize the call once, print its clock as JSON."""
    import numpy as np

    started = time.perf_counter()
    from callsense.engines.diarization import Diarizer

    diarizer = Diarizer(seg, emb, num_threads=threads, step=step)
    loaded = time.perf_counter()
    with wave.open(wav, "rb") as f:
        samples = np.frombuffer(f.readframes(f.getnframes()), "<i2").astype(np.float32) / 32768
    t0, c0 = time.perf_counter(), time.process_time()
    d = diarizer.process(samples, voiceprints=False)  # as in a call with no enrolled agent
    done, cpu = time.perf_counter(), time.process_time() - c0
    print(json.dumps({"load_s": loaded - started, "process_s": done - t0, "audio_s": samples.size / 16000,
                      "cpu_s": cpu, "speakers": len(d.speakers), "turns": len(d.turns), "overlaps": len(d.overlaps)}))


def run_stage(python: str, seg: Path, emb: Path, wav: Path, threads: int, step: float) -> dict:
    cmd = [python, str(Path(__file__).resolve()), "--worker", str(seg), str(emb), str(wav), "--threads", str(threads),
           "--steps", str(step)]
    load_before = os.getloadavg()[0]
    m = common.run_measured(cmd, env=common.pinned_env(threads), cpus=threads)
    if m.rc != 0:
        raise RuntimeError(f"diarization worker failed (exit {m.rc}):\n{m.stderr[-3000:]}")
    doc = json.loads(m.stdout.strip().splitlines()[-1])
    return {**doc, "wall_s": m.wall_s, "peak_rss_mb": m.peak_rss_mb, "rtf": doc["process_s"] / doc["audio_s"],
            "step": step, "load1": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def run_analyze(python: str, models: Path, wav: Path, threads: int, diarize: bool) -> dict:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-diar-") as tmp:
        out = Path(tmp) / "out"
        env = common.pinned_env(threads)
        env.update(CALLSENSE_MODEL_DIR=str(models), CALLSENSE_OFFLINE="1", CALLSENSE_HOME=str(Path(tmp) / "home"))
        cmd = [python, "-m", "callsense", "analyze", str(wav), "--out", str(out), "--offline", "--asr-runtime",
               "onnx", "--emotion-runtime", "onnx", "--emotion-model", "emotion2vec-plus-large", "--threads",
               str(threads), *([] if diarize else ["--no-diarize"])]
        m = common.run_measured(cmd, env=env, cpus=threads)
        if m.rc != 0:
            raise RuntimeError(f"callsense failed (exit {m.rc}): {' '.join(cmd)}\n{m.stderr[-3000:]}")
        result = json.loads(next(out.glob("outputs_*/result.json")).read_text(encoding="utf-8"))
    stages = {k: v / 1000 for k, v in result["processing"].get("timings_ms", {}).items()}
    return {"wall_s": m.wall_s, "peak_rss_mb": m.peak_rss_mb, "stages": stages,
            "separation": result["separation"]["method"], "segments": len(result["segments"]),
            "speech_s": sum(t.get("speech_ms", 0) for t in result.get("tracks", [])) / 1000}


# ----------------------------------------------------------------------------------------------- report
def render(meta: dict, stage: dict, e2e: dict, verdict: dict) -> str:
    lines = ["## Diarization (bench/bench_diarization.py)", "",
             f"Command: `{meta['command']}`  ",
             f"Machine: {common.machine_line(meta['machine'])}  ",
             (f"Date: {meta['date']}; {meta['runs']} run per configuration, {meta['threads']} threads pinned; call: "
              f"{meta['call']} ({meta['audio_s']:.0f} s, the stereo benchmark call summed to mono).  "),
             ("Random-weight full-size forgeries with the published layer shapes (pyannote segmentation-3.0 PyanNet, "
              "1.32 GMAC per 10 s window; 3D-Speaker ERes2Net-base, 1.70 GMAC per audio second): speed and memory only."), ""]
    if meta.get("loaded_note"):
        lines += [meta["loaded_note"], ""]
    rows = [[name, r.get("step", 0.1), f"{r['process_s']:.1f}", f"{r['rtf']:.4f}", f"{r['load_s']:.2f}",
             f"{r['peak_rss_mb']:.0f}", f"{r['wall_s']:.1f}", f"{r.get('cpu_s', 0):.1f}", r["speakers"], r["turns"],
             "→".join(str(x) for x in r.get("load1", []))] for name, r in stage.items()]
    lines += [common.markdown_table(["configuration", "step", "diarization s", "RTF", "load s", "peak RSS MB",
                                     "process wall s", "CPU s", "speakers", "turns", "loadavg 1 min before→after"], rows), ""]
    if e2e:
        rows = [[name, f"{r['wall_s']:.1f}", f"{r['wall_s'] / meta['e2e_audio_s']:.3f}", f"{r['peak_rss_mb']:.0f}",
                 r["separation"], " ".join(f"{k} {v:.1f}" for k, v in r["stages"].items())] for name, r in e2e.items()]
        lines += [f"Whole analysis, `callsense analyze` (onnx, emotion2vec+ large), {meta['e2e_call']}:", "",
                  common.markdown_table(["call", "wall s", "RTF", "peak RSS MB", "separation", "stages s"], rows), ""]
    rows = [[k, f"{t['value']:.4f}" if t["value"] is not None else "not measured", t["limit"],
             {True: "yes", False: "no", None: "–"}[t["met"]]] for k, t in verdict["targets"].items()]
    lines += ["Targets (issue 14):", "", common.markdown_table(["target", "measured", "limit", "met"], rows)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", nargs=3, metavar=("SEG", "EMB", "WAV"), help=argparse.SUPPRESS)
    ap.add_argument("--smoke", action="store_true", help="tiny models and a 20 s call (CI)")
    ap.add_argument("--e2e", action="store_true", help="also callsense analyze, mono mix against stereo")
    ap.add_argument("--e2e-duration", type=float, default=600.0, help="seconds of the end-to-end call (600)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--precisions", default="fp32,int8")
    ap.add_argument("--steps", default="1.0", help="segmentation window steps to compare, e.g. 1.0,0.1")
    ap.add_argument("--configs", default="", help="PRECISION@STEP list instead of precisions x steps, "
                    "e.g. fp32@1.0,int8@1.0,fp32@0.1")
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of the stage's call (600)")
    ap.add_argument("--models", type=Path, default=None)
    ap.add_argument("--results", action="store_true", help="write RESULTS.md even with --smoke")
    ap.add_argument("--note", default="", help="a line for RESULTS.md (e.g. the machine was loaded)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.worker:
        worker(*a.worker, threads=a.threads, step=float(a.steps))
        return 0

    python = sys.executable
    size = "tiny" if a.smoke else "full"
    models = a.models or WORK / f"models-{size}"
    duration = 20.0 if a.smoke else a.duration
    precisions = ["fp32"] if a.smoke else [p for p in a.precisions.split(",") if p]
    steps = [float(x) for x in a.steps.split(",") if x]
    configs = ([(c.split("@")[0], float(c.split("@")[1])) for c in a.configs.split(",") if c] if a.configs
               else [(p, st) for st in steps for p in precisions])
    ensure_models(models, size, python, (SEG, EMB))
    mono = ensure_calls(WORK / f"call_{duration:.0f}s_seed7.wav", 7, duration)
    machine = common.machine_info()

    stage: dict[str, dict] = {}
    for i in range(a.runs):
        for p, step in configs:  # configurations interleaved within each run: load drifts hit them alike
            seg, emb = model_files(models, p)
            key = f"diarization-{p}" + ("" if len(steps) == 1 and not a.configs else f"-step{step:g}")
            r = run_stage(python, seg, emb, mono, a.threads, step)
            print(f"run {i + 1}/{a.runs} {key}: {r['process_s']:.1f} s, RTF {r['rtf']:.4f}, "
                  f"peak {r['peak_rss_mb']:.0f} MB, load {r['load1']}", file=sys.stderr)
            prev = stage.get(key)
            if prev is None or r["process_s"] < prev["process_s"]:
                stage[key] = r  # the best of --runs: the run least disturbed by other load

    e2e: dict[str, dict] = {}
    e2e_audio = 0.0
    e2e_call = ""
    if a.e2e:
        ensure_models(models, size, python, E2E_MODELS)
        e2e_duration = 20.0 if a.smoke else a.e2e_duration
        stereo = WORK / f"call_{e2e_duration:.0f}s_seed7.wav"
        e2e_mono = ensure_calls(stereo, 7, e2e_duration)
        e2e_audio, e2e_call = e2e_duration, stereo.name
        for name, wav, diarize in (("stereo", stereo, False), ("mono (diarized)", e2e_mono, True)):
            e2e[name] = run_analyze(python, models, wav, a.threads, diarize)
            print(f"e2e {name}: {e2e[name]['wall_s']:.1f} s", file=sys.stderr)

    best_rtf = min((r["rtf"] for r in stage.values()), default=None)
    ratio = e2e["mono (diarized)"]["wall_s"] / e2e["stereo"]["wall_s"] if e2e else None
    verdict = {"targets": {
        "diarization_rtf": {"value": best_rtf, "limit": TARGETS["diarization_rtf"],
                            "met": None if best_rtf is None else best_rtf <= TARGETS["diarization_rtf"]},
        "mono_over_stereo": {"value": ratio, "limit": TARGETS["mono_over_stereo"],
                             "met": None if ratio is None else ratio <= TARGETS["mono_over_stereo"]}}}
    meta = {"command": "python bench/bench_diarization.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "machine": machine, "date": time.strftime("%Y-%m-%d %H:%M"), "runs": a.runs, "threads": a.threads,
            "call": mono.name, "audio_s": duration, "e2e_call": e2e_call, "e2e_audio_s": e2e_audio,
            "loaded_note": a.note}
    WORK.mkdir(exist_ok=True)
    (WORK / ("diarization.smoke.json" if a.smoke else "diarization.json")).write_text(
        json.dumps({"meta": meta, "stage": stage, "e2e": e2e, "verdict": verdict}, indent=2), encoding="utf-8")
    if not a.smoke or a.results:
        common.replace_section(RESULTS, "diarization", render(meta, stage, e2e, verdict))
    if a.json:
        print(json.dumps(verdict))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
