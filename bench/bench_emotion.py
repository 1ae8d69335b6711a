"""Emotion-stage benchmark: emotion2vec+ base and large on both runtimes, on a call's speech segments.

    python bench/bench_emotion.py                      # full-size forged models, 10-min stereo call
    python bench/bench_emotion.py --smoke              # tiny models, 30 s call: seconds (checks the script)
    python bench/bench_emotion.py --configs onnx-int8-large,onnx-int8-base --runs 3

The segments are the generated call's ground-truth speech intervals per channel (bench/gen_call.py),
merged across gaps under 300 ms and cut at 30 s, as the VAD would; so the figures are the emotion
stage alone, independent of VAD and ASR. Each configuration runs in a fresh process pinned to
``--threads`` CPUs with every thread pool capped to the same number. Reported per configuration:

* ``rtf``: scoring time / seconds of speech scored (model load and one warm-up segment excluded);
* ``load_s``: engine creation; ``peak_rss_mb``: the process tree's peak resident memory;
* ``forward_calls``: session runs (batches) for the onnx runtime.

Configurations: ``<runtime>-<size>`` with runtime ``funasr`` (torch), ``onnx-fp32`` (batched, padding
masked), ``onnx-fp32-nobatch``, ``onnx-int8`` (one segment per run; see onnx.py why int8 never
batches) and size ``base`` or ``large``. Targets (issue 4): large via onnx int8 RTF <= 0.20, base
<= 0.08, peak memory <= 1 GB. Writes ``bench/work/emotion.json`` and the ``emotion`` section of
``bench/RESULTS.md`` (not for --smoke unless --results is given). Forged weights are random: speed and
memory are real, outputs are meaningless.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common
import gen_call

WORK = HERE / "work"
RESULTS = HERE / "RESULTS.md"
MODELS = {"large": "emotion2vec-plus-large", "base": "emotion2vec-plus-base"}
RUNTIMES = ("onnx-int8", "onnx-fp32", "onnx-fp32-nobatch", "funasr")
ALL_CONFIGS = tuple(f"{rt}-{size}" for size in ("large", "base") for rt in RUNTIMES)
TARGETS = {"onnx-int8-large": 0.20, "onnx-int8-base": 0.08}
PEAK_MB = 1024.0


def ensure_models(models: Path, size: str, python: str) -> None:
    need = [models / m / rt for m in MODELS.values() for rt in ("onnx", "funasr")]
    if not all(d.is_dir() and any(d.iterdir()) for d in need):
        print(f"forging {size} emotion2vec models into {models} (full: minutes) ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        subprocess.run([python, "-m", "callsense.testing.forge", "--size", size, str(models), "--models",
                        ",".join(MODELS.values()), "--runtimes", "onnx,funasr"], check=True,
                       stdout=subprocess.DEVNULL)
        print(f"  forged in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    from callsense.engines.emotion2vec.export import quantize_int8

    for name in MODELS.values():  # forges made before int8 was part of them (and tiny ones) lack it
        d = models / name / "onnx"
        if not (d / "model.int8.onnx").is_file():
            quantize_int8(d / "model.onnx", d / "model.int8.onnx")


# ---- child: one configuration in a fresh process ----------------------------------------------------------
def child(args: argparse.Namespace) -> int:
    from callsense.engines import registry
    from callsense.engines.base import EmotionOptions, SegmentAudio

    truth = json.loads(gen_call.truth_path(args.call).read_text("utf-8"))
    segs = common.load_call_segments(args.call, truth)
    rt, _, size = args.config.rpartition("-")
    name = MODELS[size]
    runtime = "funasr" if rt == "funasr" else "onnx"
    opts: dict = {"num_threads": args.threads, "device": "cpu", "name": name}
    if runtime == "onnx":
        opts["int8"] = rt == "onnx-int8"
        if rt == "onnx-fp32-nobatch":
            opts["max_batch"] = 1
    t0 = time.perf_counter()
    engine = registry.create("emotion", runtime, args.models / name / runtime, **opts)
    load_s = time.perf_counter() - t0
    options = EmotionOptions(granularity="frame")
    engine.score([SegmentAudio("warm", segs[0].samples[:16000], 0)], options)
    calls0 = getattr(engine, "forward_calls", 0)
    t0 = time.perf_counter()
    outs = engine.score(segs, options)
    score_s = time.perf_counter() - t0
    speech_s = sum(len(s.samples) for s in segs) / 16000
    print(json.dumps({"config": args.config, "load_s": load_s, "score_s": score_s, "speech_s": speech_s,
                      "segments": len(segs), "windows": sum(len(o.windows) for o in outs),
                      "forward_calls": getattr(engine, "forward_calls", 0) - calls0,
                      "model_file": engine.info.options.get("file")}))
    return 0


# ---- parent -----------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny models, 30 s call, 1 run")
    p.add_argument("--runs", type=int, help="runs per configuration (default 2; smoke 1)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--configs", default=",".join(ALL_CONFIGS), help=f"subset of {','.join(ALL_CONFIGS)}")
    p.add_argument("--models", type=Path, help="forge root (default bench/work/models-{full,tiny}; forged if missing)")
    p.add_argument("--call", type=Path, help="stereo 16 kHz WAV with a gen_call truth file (default: generated)")
    p.add_argument("--duration", type=float, help="generated call length, s (default 600; smoke 30)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--results", type=Path, help="markdown file to update (default bench/RESULTS.md; smoke: none)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        args.config = args.child
        return child(args)

    size = "tiny" if args.smoke else "full"
    runs = args.runs or (1 if args.smoke else 2)
    duration = args.duration or (30.0 if args.smoke else 600.0)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    bad = [c for c in configs if c not in ALL_CONFIGS]
    if bad:
        p.error(f"unknown configuration {bad}; valid: {', '.join(ALL_CONFIGS)}")
    WORK.mkdir(exist_ok=True)
    # full: shared with e2e.py (the same forgeries); tiny: our own, since we add int8 files to it
    models = args.models or WORK / ("models-full" if size == "full" else "models-emotion-tiny")
    ensure_models(models, size, sys.executable)
    call = args.call or WORK / f"call_{duration:.0f}s_seed{args.seed}.wav"
    if not call.is_file() or not gen_call.truth_path(call).is_file():
        gen_call.generate(call, seed=args.seed, duration_s=duration, voice="synth")

    raw: dict[str, list[dict]] = {c: [] for c in configs}
    for i in range(runs):  # round-robin: background load spreads over all configurations alike
        for name in configs:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--models", str(models),
                   "--call", str(call), "--threads", str(args.threads)]
            m = common.run_measured(cmd, env=common.pinned_env(args.threads), cpus=args.threads)
            if m.rc != 0:
                print(f"{name} failed:\n{m.stderr[-2000:]}", file=sys.stderr)
                return 1
            r = json.loads(m.stdout.strip().splitlines()[-1])
            r.update(wall_s=m.wall_s, peak_rss_mb=m.peak_rss_mb, rtf=r["score_s"] / r["speech_s"])
            raw[name].append(r)
            print(f"run {i + 1}/{runs} {name}: RTF {r['rtf']:.3f}, load {r['load_s']:.1f} s, "
                  f"{r['peak_rss_mb']:.0f} MB", file=sys.stderr, flush=True)

    rows, summary = [], {}
    for name, rs in raw.items():
        rtf = common.summarize(r["rtf"] for r in rs)
        rss = common.summarize(r["peak_rss_mb"] for r in rs)
        load = common.summarize(r["load_s"] for r in rs)
        target = TARGETS.get(name) if size == "full" else None  # tiny models say nothing about targets
        met = None if target is None else (rtf.median <= target and rss.median <= PEAK_MB)
        summary[name] = {"rtf": rtf.to_dict(), "peak_rss_mb": rss.to_dict(), "load_s": load.to_dict(),
                         "segments": rs[0]["segments"], "speech_s": rs[0]["speech_s"],
                         "forward_calls": rs[0]["forward_calls"], "target_rtf": target, "met": met}
        rows.append([name, rtf.fmt(3), rss.fmt(0, " MB"), load.fmt(1, " s"), rs[0]["forward_calls"],
                     "" if target is None else f"≤ {target} / ≤ {PEAK_MB:.0f} MB: {'met' if met else 'NOT met'}"])
    info = common.machine_info()
    speech = next(iter(raw.values()))[0]
    doc = {"machine": info, "size": size, "call": str(call), "threads": args.threads, "runs": runs,
           "speech_s": speech["speech_s"], "segments": speech["segments"], "configs": summary, "raw": raw}
    out_json = WORK / ("emotion.smoke.json" if args.smoke else "emotion.json")
    out_json.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    body = "\n".join([
        "## Emotion stage (bench/bench_emotion.py)",
        "",
        (f"{common.machine_line(info)}. {args.threads} threads, {runs} runs (median, range), {size} forged models, "
         f"{speech['segments']} segments / {speech['speech_s']:.0f} s of speech from a {duration:.0f} s stereo call."),
        "RTF = scoring time / speech scored (load and warm-up excluded); frame granularity (timeline on).",
        "",
        common.markdown_table(["configuration", "RTF", "peak RSS", "load", "runs of the model", "target"], rows),
    ])
    print(body)
    results = args.results or (None if args.smoke else RESULTS)
    if results:
        common.replace_section(results, "emotion", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
