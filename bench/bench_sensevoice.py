"""SenseVoice-stage benchmark: both runtimes on the speech segments of a two-channel call.

    python bench/bench_sensevoice.py                   # full-size forged models, 10-min stereo call
    python bench/bench_sensevoice.py --smoke           # tiny models, 30 s call: seconds (checks the script)
    python bench/bench_sensevoice.py --configs onnx-int8,funasr --runs 3

The segments are the generated call's ground-truth speech intervals per channel (bench/gen_call.py),
merged across gaps under 300 ms and cut at 30 s, as the VAD would; so the figures are the ASR stage
alone. Each configuration runs in a fresh process pinned to ``--threads`` CPUs with every thread pool
capped to the same number. Reported per configuration:

* ``rtf``: decoding time / seconds of speech decoded (model load and one warm-up segment excluded);
* ``load_s``: engine creation plus the first decode (sherpa-onnx builds its recognizer lazily, FunASR
  imports itself lazily); ``peak_rss_mb``: the process tree's peak resident memory.

Configurations: ``onnx-int8`` (sherpa-onnx, ``model.int8.onnx``, the default), ``onnx-fp32``
(``model.onnx``), ``funasr`` (torch on CPU). Targets (issue 3): onnx-int8 RTF <= 0.05 and <= 600 MB,
at least 2x faster than funasr. Writes ``bench/work/sensevoice.json`` and the ``sensevoice`` section
of ``bench/RESULTS.md`` (not for --smoke unless --results is given). Forged weights are random: speed
and memory are real, transcripts are meaningless.
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
MODEL = "sensevoice-small"
ALL_CONFIGS = ("onnx-int8", "onnx-fp32", "funasr")
TARGET_RTF = 0.05
PEAK_MB = 600.0
MIN_SPEEDUP = 2.0


def ensure_models(models: Path, size: str, python: str) -> None:
    need = [models / MODEL / rt for rt in ("onnx", "funasr")]
    if not all(d.is_dir() and any(d.iterdir()) for d in need):
        print(f"forging {size} {MODEL} into {models} (full: minutes, ~3 GB RAM) ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        subprocess.run([python, "-m", "callsense.testing.forge", "--size", size, str(models), "--models", MODEL,
                        "--runtimes", "onnx,funasr"], check=True, stdout=subprocess.DEVNULL)
        print(f"  forged in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)


# ---- child: one configuration in a fresh process ----------------------------------------------------------
def child(args: argparse.Namespace) -> int:
    from callsense.engines import registry
    from callsense.engines.base import AsrOptions, SegmentAudio

    truth = json.loads(gen_call.truth_path(args.call).read_text("utf-8"))
    segs = common.load_call_segments(args.call, truth)
    runtime = "funasr" if args.config == "funasr" else "onnx"
    opts: dict = {"num_threads": args.threads, "device": "cpu", "name": MODEL}
    if runtime == "onnx":
        opts["precision"] = "fp32" if args.config == "onnx-fp32" else "int8"
        if args.batch_seconds:
            opts["batch_seconds"] = args.batch_seconds
    options = AsrOptions(language="auto", use_itn=True)
    t0 = time.perf_counter()
    engine = registry.create("asr", runtime, args.models / MODEL / runtime, **opts)
    engine.transcribe([SegmentAudio("warm", segs[0].samples[:16000], 0)], options)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    outs = engine.transcribe(segs, options)
    decode_s = time.perf_counter() - t0
    speech_s = sum(len(s.samples) for s in segs) / 16000
    print(json.dumps({"config": args.config, "load_s": load_s, "decode_s": decode_s, "speech_s": speech_s,
                      "segments": len(segs), "tokens": sum(len(o.tokens) for o in outs),
                      "model_file": engine.info.options.get("model_file", "model.pt")}))
    return 0


# ---- parent -----------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny models, 30 s call, 1 run")
    p.add_argument("--runs", type=int, help="runs per configuration (default 2; smoke 1)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--configs", default=",".join(ALL_CONFIGS), help=f"subset of {','.join(ALL_CONFIGS)}")
    p.add_argument("--models", type=Path, help="forge root (default bench/work/models-{full,sensevoice-tiny}; "
                                               "forged if missing)")
    p.add_argument("--call", type=Path, help="stereo 16 kHz WAV with a gen_call truth file (default: generated)")
    p.add_argument("--duration", type=float, help="generated call length, s (default 600; smoke 30)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--batch-seconds", type=float, help="onnx runtime: audio budget per batch (engine default)")
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
    models = args.models or WORK / ("models-full" if size == "full" else "models-sensevoice-tiny")
    ensure_models(models, size, sys.executable)
    if "onnx-fp32" in configs and not (models / MODEL / "onnx" / "model.onnx").is_file():
        print("onnx-fp32: no model.onnx in this forge (tiny forges have only the int8 name); skipped",
              file=sys.stderr)
        configs.remove("onnx-fp32")
    call = args.call or WORK / f"call_{duration:.0f}s_seed{args.seed}.wav"
    if not call.is_file() or not gen_call.truth_path(call).is_file():
        gen_call.generate(call, seed=args.seed, duration_s=duration, voice="synth")

    raw: dict[str, list[dict]] = {c: [] for c in configs}
    for i in range(runs):  # round-robin: background load spreads over all configurations alike
        for name in configs:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--models", str(models),
                   "--call", str(call), "--threads", str(args.threads)]
            if args.batch_seconds:
                cmd += ["--batch-seconds", str(args.batch_seconds)]
            m = common.run_measured(cmd, env=common.pinned_env(args.threads), cpus=args.threads)
            if m.rc != 0:
                print(f"{name} failed:\n{m.stderr[-2000:]}", file=sys.stderr)
                return 1
            r = json.loads(m.stdout.strip().splitlines()[-1])
            r.update(wall_s=m.wall_s, peak_rss_mb=m.peak_rss_mb, rtf=r["decode_s"] / r["speech_s"])
            raw[name].append(r)
            print(f"run {i + 1}/{runs} {name}: RTF {r['rtf']:.4f}, load {r['load_s']:.1f} s, "
                  f"{r['peak_rss_mb']:.0f} MB", file=sys.stderr, flush=True)

    rtfs = {name: common.summarize(r["rtf"] for r in rs) for name, rs in raw.items()}
    rows, summary = [], {}
    for name, rs in raw.items():
        rtf = rtfs[name]
        rss = common.summarize(r["peak_rss_mb"] for r in rs)
        load = common.summarize(r["load_s"] for r in rs)
        speedup = rtfs["funasr"].median / rtf.median if "funasr" in rtfs and name != "funasr" else None
        met = None
        target = ""
        if name == "onnx-int8":
            met = rtf.median <= TARGET_RTF and rss.median <= PEAK_MB and (speedup is None or speedup >= MIN_SPEEDUP)
            target = (f"RTF ≤ {TARGET_RTF}, ≤ {PEAK_MB:.0f} MB, ≥ {MIN_SPEEDUP:.0f}x funasr: "
                      f"{'met' if met else 'NOT met'}")
        summary[name] = {"rtf": rtf.to_dict(), "peak_rss_mb": rss.to_dict(), "load_s": load.to_dict(),
                         "speedup_vs_funasr": speedup, "segments": rs[0]["segments"], "speech_s": rs[0]["speech_s"],
                         "met": met}
        rows.append([name, rtf.fmt(4), rss.fmt(0, " MB"), load.fmt(1, " s"),
                     "" if speedup is None else f"{speedup:.1f}x", target])
    info = common.machine_info()
    first = next(iter(raw.values()))[0]
    doc = {"machine": info, "size": size, "call": str(call), "threads": args.threads, "runs": runs,
           "speech_s": first["speech_s"], "segments": first["segments"], "configs": summary, "raw": raw}
    out_json = WORK / ("sensevoice.smoke.json" if args.smoke else "sensevoice.json")
    out_json.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    body = "\n".join([
        "## SenseVoice stage (bench/bench_sensevoice.py)",
        "",
        (f"{common.machine_line(info)}. {args.threads} threads, {runs} runs (median, range), {size} forged models, "
        f"{first['segments']} segments / {first['speech_s']:.0f} s of speech from a {duration:.0f} s stereo call."),
        "RTF = decoding time / speech decoded (load and warm-up excluded); language auto, ITN on.",
        "",
        common.markdown_table(["configuration", "RTF", "peak RSS", "load + first decode", "vs funasr", "target"],
                              rows),
    ])
    print(body)
    results = args.results or (None if args.smoke else RESULTS)
    if results:
        common.replace_section(results, "sensevoice", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
