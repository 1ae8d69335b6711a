"""End-to-end benchmark: the seeds' way and callsense, side by side, on the same synthetic call.

    python bench/e2e.py                 # full: 10-min stereo call, full-size forged models, 3 runs each
    python bench/e2e.py --json          # the same, and a JSON verdict (speed-ups, targets) on stdout
    python bench/e2e.py --smoke --json  # CI: tiny models, a 20 s call, 1 run each; seconds

Every configuration runs as a fresh process (process start to result on disk), pinned to ``--threads``
CPUs (affinity) with every thread pool capped to the same number, ``--runs`` times, interleaved
round-robin so that background load spreads over all configurations alike. For each: median and
min–max wall time, real-time factor (wall / audio duration), peak resident memory of the process
tree, and per-stage times (callsense: ``processing.timings_ms`` of result.json; the seeds' way: its
own stage clock, see seeds_way.py).

Configurations: ``seeds`` (FunASR AutoModel: SenseVoice + fsmn-vad merged, emotion2vec+ large per
VAD segment) and ``callsense-<runtime>-<size>`` for runtime onnx|funasr and emotion size large|base.
Then time to first result: ``callsense analyze`` of a 10 s clip from a cold process (and the seeds'
way on the same clip).

Writes the ``e2e`` section of ``bench/RESULTS.md`` (full runs; ``--smoke`` only with ``--results``),
``bench/work/e2e.json`` (all raw measurements), and with ``--json`` prints::

    {"speedup": {"callsense-onnx-large": 3.1, ...}, "targets": {"rtf_large": {"value": .., "limit": 0.25,
     "met": true}, ...}, "all_met": true, ...}

Models are random-weight full-size forgeries of the real architectures: figures are speed and memory only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common
import gen_call

WORK = HERE / "work"
RESULTS = HERE / "RESULTS.md"
TARGETS = {  # issue 8; the memory limits are issue 18's (1500 MB for large before it)
    "rtf_large": ("callsense-onnx-large", "rtf", 0.25),
    "rtf_base": ("callsense-onnx-base", "rtf", 0.12),
    "peak_rss_mb": ("callsense-onnx-large", "peak_rss_mb", 1000.0),
    "peak_rss_base_mb": ("callsense-onnx-base", "peak_rss_mb", 800.0),
    "first_result_s": ("first-result-callsense", "wall_s", 5.0),
}
EMOTION_MODELS = {"large": "emotion2vec-plus-large", "base": "emotion2vec-plus-base"}
ALL_CONFIGS = ("seeds", "callsense-onnx-large", "callsense-onnx-base", "callsense-funasr-large",
               "callsense-funasr-base")


@dataclass(frozen=True)
class Setup:
    python: str
    models: Path
    call: Path
    clip: Path
    threads: int
    audio_s: float
    clip_s: float
    qa: bool


# ----------------------------------------------------------------------------------------------- setup


def ensure_models(models: Path, size: str, python: str) -> None:
    """Forge what is missing under ``models`` (sensevoice + both emotion sizes, onnx + funasr, fsmn-vad)."""
    need = [models / m / rt for m in ("sensevoice-small", *EMOTION_MODELS.values()) for rt in ("onnx", "funasr")]
    if not all(d.is_dir() and any(d.iterdir()) for d in need):
        print(f"forging {size} models into {models} ...", file=sys.stderr)
        started = time.perf_counter()
        subprocess.run([python, "-m", "callsense.testing.forge", "--size", size, str(models), "--models",
                        ",".join(("sensevoice-small", *EMOTION_MODELS.values())), "--runtimes", "onnx,funasr"],
                       check=True, stdout=subprocess.DEVNULL)
        print(f"  forged in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    if not (models / "fsmn-vad" / "funasr" / "model.pt").is_file():
        subprocess.run([python, str(HERE / "seeds_way.py"), "-", "--models", str(models), "--forge-vad-only"],
                       check=True, stdout=subprocess.DEVNULL)


def ensure_call(path: Path, seed: int, duration_s: float) -> Path:
    if not path.is_file() or not gen_call.truth_path(path).is_file():
        gen_call.generate(path, seed=seed, duration_s=duration_s, voice="synth")
    return path


# ----------------------------------------------------------------------------------------------- runs


def callsense_cmd(s: Setup, audio: Path, out: Path, runtime: str, size: str) -> list[str]:
    cmd = [s.python, "-m", "callsense", "analyze", str(audio), "--out", str(out), "--offline",
           "--asr-runtime", runtime, "--emotion-runtime", runtime, "--emotion-model", EMOTION_MODELS[size],
           "--threads", str(s.threads)]
    return cmd if s.qa else [*cmd, "--no-qa"]


def run_callsense(s: Setup, audio: Path, runtime: str, size: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        out = Path(tmp) / "out"
        env = common.pinned_env(s.threads)
        env["CALLSENSE_MODEL_DIR"] = str(s.models)
        env["CALLSENSE_OFFLINE"] = "1"
        m = common.run_measured(callsense_cmd(s, audio, out, runtime, size), env=env, cpus=s.threads,
                                watch=out, watch_glob="outputs_*/result.json")
        if m.rc != 0:
            raise RuntimeError(f"callsense failed (exit {m.rc}): {' '.join(m.cmd)}\n{m.stderr[-3000:]}")
        result = json.loads(next(out.glob("outputs_*/result.json")).read_text(encoding="utf-8"))
    stages = {k: v / 1000 for k, v in result["processing"].get("timings_ms", {}).items()}
    speech_s = sum(t.get("speech_ms", 0) for t in result.get("tracks", [])) / 1000
    return {"wall_s": m.wall_s, "first_file_s": m.first_file_s, "peak_rss_mb": m.peak_rss_mb, "stages": stages,
            "speech_s": speech_s, "segments": len(result.get("segments", []))}


def run_seeds(s: Setup, audio: Path, size: str = "large") -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-seeds-") as tmp:
        doc_path = Path(tmp) / "seeds.json"
        cmd = [s.python, str(HERE / "seeds_way.py"), str(audio), "--models", str(s.models), "--emotion-model",
               EMOTION_MODELS[size], "--threads", str(s.threads), "--json-out", str(doc_path)]
        m = common.run_measured(cmd, env=common.pinned_env(s.threads), cpus=s.threads,
                                watch=Path(tmp), watch_glob="seeds.json")
        if m.rc != 0:
            raise RuntimeError(f"seeds' way failed (exit {m.rc}): {' '.join(cmd)}\n{m.stderr[-3000:]}")
        doc = json.loads(doc_path.read_text(encoding="utf-8"))
    stages = {k: v for k, v in doc["timings_s"].items() if k not in ("run", "process")}
    return {"wall_s": m.wall_s, "first_file_s": m.first_file_s, "peak_rss_mb": m.peak_rss_mb, "stages": stages,
            "speech_s": sum(c["speech_s"] for c in doc["per_channel"]),
            "asr_decoded_s": sum(c["asr_decoded_s"] for c in doc["per_channel"]),
            "segments": doc["emotion_segments"], "vad_substitution": doc.get("vad_substitution")}


def run_config(s: Setup, name: str, audio: Path) -> dict:
    if name == "seeds":
        return run_seeds(s, audio)
    _, runtime, size = name.split("-")
    return run_callsense(s, audio, runtime, size)


def summarise(name: str, runs: list[dict], audio_s: float) -> dict:
    walls = [r["wall_s"] for r in runs]
    stage_names = list(dict.fromkeys(k for r in runs for k in r["stages"]))
    summary = {
        "config": name, "runs": len(runs), "audio_s": audio_s,
        "wall_s": common.summarize(walls).to_dict(),
        "rtf": common.summarize(w / audio_s for w in walls).to_dict(),
        "peak_rss_mb": common.summarize(r["peak_rss_mb"] for r in runs).to_dict(),
        "stages_s": {k: common.summarize(r["stages"].get(k) for r in runs).to_dict() for k in stage_names},
        "other_s": common.summarize(r["wall_s"] - sum(r["stages"].values()) for r in runs).to_dict(),
        "speech_s": runs[0].get("speech_s"), "segments": runs[0].get("segments"),
    }
    if "asr_decoded_s" in runs[0]:
        summary["asr_decoded_s"] = runs[0]["asr_decoded_s"]
    return summary


# ----------------------------------------------------------------------------------------------- report


def verdict(summaries: dict[str, dict], first: dict[str, dict]) -> dict:
    seeds = summaries.get("seeds")
    speedup = {}
    rss_ratio = {}
    if seeds:
        for name, s in summaries.items():
            if name != "seeds":
                speedup[name] = round(seeds["wall_s"]["median"] / s["wall_s"]["median"], 2)
                rss_ratio[name] = round(s["peak_rss_mb"]["median"] / seeds["peak_rss_mb"]["median"], 3)
    table = {**summaries, **first}
    targets = {}
    for key, (config, metric, limit) in TARGETS.items():
        if config in table:
            value = table[config][metric]["median"]
            targets[key] = {"config": config, "value": round(value, 4), "limit": limit, "met": value <= limit}
    return {"speedup": speedup, "rss_vs_seeds": rss_ratio, "targets": targets,
            "all_met": bool(targets) and all(t["met"] for t in targets.values())}


def stage_floor_rows(summaries: dict[str, dict], floor: dict | None) -> list[list[str]]:
    """Each model stage against its compute floor (floor.py): achieved time / floor time for the same audio."""
    if not floor:
        return []
    per_s = {m["name"]: m for m in floor.get("models", [])}
    rows = []
    for name, s in summaries.items():
        for stage, model in (("asr", "sensevoice-small"),
                             ("emotion", "emotion2vec-plus-base" if name.endswith("-base")
                              else "emotion2vec-plus-large")):
            if stage not in s["stages_s"] or model not in per_s:
                continue
            # What the stage had to process: speech only (callsense), merged VAD spans for the seeds' ASR.
            audio = s.get("asr_decoded_s") if (name == "seeds" and stage == "asr") else s.get("speech_s")
            if not audio:
                continue
            t = s["stages_s"][stage]["median"]
            f32 = per_s[model]["floor_s_per_audio_s_fp32"] * audio
            i8 = per_s[model]["floor_s_per_audio_s_int8"] * audio
            rows.append([name, stage, f"{audio:.0f}", f"{t:.1f}", f"{f32:.1f}", f"{t / f32:.2f}×",
                         f"{i8:.1f}", f"{t / i8:.2f}×"])
    return rows


def render_markdown(meta: dict, summaries: dict[str, dict], first: dict[str, dict], v: dict,
                    floor: dict | None) -> str:
    lines = [
        "## End to end (bench/e2e.py)",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {common.machine_line(meta['machine'])}  ",
        (f"Date: {meta['date']}; {meta['runs']} runs per configuration (median, min–max), {meta['threads']} threads "
         f"pinned; call: {meta['call']} ({meta['audio_s']:.0f} s stereo, {meta['speech_s']:.0f} s of VAD speech "
         "over both channels).  "
         + (f"The seeds' way's runs are those measured on {meta['seeds_reused_from']} (`--reuse-seeds`): "
            "same call, models and machine.  " if meta.get("seeds_reused_from") else "")),
        "Weights are random full-size models of the real architectures" if not meta["smoke"]
        else "SMOKE RUN: tiny models, figures mean nothing",
        "(forged by callsense.testing.forge): the figures are speed and memory only, never accuracy.",
        "",
    ]
    stage_names = list(dict.fromkeys(k for s in summaries.values() for k in s["stages_s"]))
    headers = ["configuration", "wall s", "RTF", "peak RSS MB", *[f"{k} s" for k in stage_names], "other s",
               "speed-up"]
    rows = []
    for name, s in summaries.items():
        rows.append([name, s["wall_s"] and common.Summary(**_sargs(s["wall_s"])).fmt(1),
                     common.Summary(**_sargs(s["rtf"])).fmt(3), common.Summary(**_sargs(s["peak_rss_mb"])).fmt(0),
                     *[common.Summary(**_sargs(s["stages_s"][k])).fmt(1) if s["stages_s"].get(k) else "–"
                       for k in stage_names],
                     common.Summary(**_sargs(s["other_s"])).fmt(1),
                     f"{v['speedup'][name]:.2f}×" if name in v["speedup"]
                     else ("1×" if name == "seeds" else "– (seeds' way not run)")])
    lines += [common.markdown_table(headers, rows), ""]
    lines.append("`other` = process wall time not in a stage: interpreter start, imports, writing outputs "
                 "(callsense loads models inside its asr/emotion stages; the seeds' way reports import and "
                 "load as stages).")
    seeds = summaries.get("seeds")
    if seeds and seeds.get("asr_decoded_s"):
        lines.append(f"The seeds' ASR decoded {seeds['asr_decoded_s']:.0f} s of merged audio for "
                     f"{seeds['speech_s']:.0f} s of VAD speech (merge_vad, 15 s).")
    if first:
        lines += ["", "Time to first result, 10 s clip, cold process (start to result on disk):", ""]
        lines.append(common.markdown_table(
            ["runner", "seconds", "peak RSS MB"],
            [[n, common.Summary(**_sargs(f["wall_s"])).fmt(2), common.Summary(**_sargs(f["peak_rss_mb"])).fmt(0)]
             for n, f in first.items()]))
    if v["targets"]:
        lines += ["", "Targets (issue 8):", ""]
        lines.append(common.markdown_table(
            ["target", "configuration", "measured", "limit", "met"],
            [[k, t["config"], t["value"], t["limit"], "yes" if t["met"] else "**no**"] for k, t in v["targets"].items()]))
    rows = stage_floor_rows(summaries, floor)
    if rows:
        lines += ["", ("Model stages against the compute floor (bench/floor.py; floor = FLOPs of the audio the "
                       "stage processed / this CPU's measured GEMM rate on the same threads):"), ""]
        lines.append(common.markdown_table(
            ["configuration", "stage", "audio s", "measured s", "fp32 floor s", "× fp32 floor", "int8 floor s",
             "× int8 floor"], rows))
    return "\n".join(lines) + "\n"


def _sargs(d: dict) -> dict:
    return {"median": d["median"], "low": d["min"], "high": d["max"], "n": d["n"]}


# ----------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print the verdict (speed-ups, targets) as JSON")
    p.add_argument("--smoke", action="store_true", help="tiny models, 20 s call, 1 run (CI)")
    p.add_argument("--runs", type=int, help="runs per configuration (default 3; smoke 1)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--configs", default=",".join(ALL_CONFIGS), help=f"subset of {','.join(ALL_CONFIGS)}")
    p.add_argument("--no-first-result", action="store_true", help="skip the 10 s cold-start measurement")
    p.add_argument("--models", type=Path, help="forge root (default bench/work/models-{full,tiny}; forged if missing)")
    p.add_argument("--call", type=Path, help="a stereo 16 kHz WAV (default: generated, seed --seed)")
    p.add_argument("--duration", type=float, help="generated call length, s (default 600; smoke 20)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--no-qa", action="store_true", help="pass --no-qa to callsense")
    p.add_argument("--reuse-seeds", action="store_true",
                   help="take the seeds' way's runs from the last bench/work/e2e.json (same call and models) "
                        "instead of re-running it (~16 min); RESULTS.md says so")
    p.add_argument("--results", type=Path, help="markdown file to update (default bench/RESULTS.md; smoke: none)")
    p.add_argument("--floor", type=Path, default=WORK / "floor.json", help="floor.py output to compare with")
    args = p.parse_args(argv)

    size = "tiny" if args.smoke else "full"
    runs = args.runs or (1 if args.smoke else 3)
    duration = args.duration or (20.0 if args.smoke else 600.0)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    bad = [c for c in configs if c not in ALL_CONFIGS]
    if bad:
        p.error(f"unknown configuration {bad}; valid: {', '.join(ALL_CONFIGS)}")
    python = sys.executable
    WORK.mkdir(exist_ok=True)
    models = args.models or WORK / f"models-{size}"
    ensure_models(models, size, python)
    call = args.call or ensure_call(WORK / f"call_{duration:.0f}s_seed{args.seed}.wav", args.seed, duration)
    clip = ensure_call(WORK / f"clip_10s_seed{args.seed}.wav", args.seed, 10.0)
    import wave

    with wave.open(str(call), "rb") as f:
        audio_s = f.getnframes() / f.getframerate()
    setup = Setup(python, models, call, clip, args.threads, audio_s, 10.0, qa=not args.no_qa)
    machine = common.machine_info()

    reused: dict = {}
    if args.reuse_seeds:
        # The seeds' way does not change when callsense does: re-measuring it costs 5 min a run.
        prev = json.loads((WORK / "e2e.json").read_text()) if (WORK / "e2e.json").is_file() else {}
        pm = prev.get("meta", {})
        if "seeds" not in prev.get("raw", {}) or (pm.get("call"), pm.get("model_size")) != (call.name, size):
            p.error("--reuse-seeds: bench/work/e2e.json holds no seeds' way runs on this call and model size")
        reused = {"raw": prev["raw"]["seeds"], "first": prev.get("first_result", {}).get("first-result-seeds"),
                  "date": pm.get("date")}
        configs = [c for c in configs if c != "seeds"]
    raw: dict[str, list[dict]] = {c: [] for c in configs}
    if reused:
        raw = {"seeds": reused["raw"], **raw}
    for i in range(runs):
        for name in configs:
            print(f"run {i + 1}/{runs} {name} ...", file=sys.stderr, flush=True)
            r = run_config(setup, name, call)
            print(f"  {r['wall_s']:.1f} s, RTF {r['wall_s'] / audio_s:.3f}, {r['peak_rss_mb']:.0f} MB",
                  file=sys.stderr, flush=True)
            raw[name].append(r)
    summaries = {name: summarise(name, rs, audio_s) for name, rs in raw.items()}

    first: dict[str, dict] = {}
    if not args.no_first_result:
        fr: dict[str, list[dict]] = {"first-result-callsense": [], "first-result-seeds": []}
        for i in range(runs):
            print(f"first result {i + 1}/{runs} ...", file=sys.stderr, flush=True)
            fr["first-result-callsense"].append(run_callsense(setup, clip, "onnx", "large"))
            if "seeds" in configs:
                fr["first-result-seeds"].append(run_seeds(setup, clip))
        for name, rs in fr.items():
            if rs:
                # Result on disk: the moment result.json appeared (the process may still be exiting).
                walls = [r["first_file_s"] or r["wall_s"] for r in rs]
                first[name] = {"wall_s": common.summarize(walls).to_dict(),
                               "exit_s": common.summarize(r["wall_s"] for r in rs).to_dict(),
                               "peak_rss_mb": common.summarize(r["peak_rss_mb"] for r in rs).to_dict()}
        if reused.get("first"):
            first["first-result-seeds"] = reused["first"]

    v = verdict(summaries, first)
    floor = json.loads(args.floor.read_text()) if args.floor.is_file() and not args.smoke else None
    speech = next((s["speech_s"] for n, s in summaries.items() if n != "seeds" and s.get("speech_s")), 0.0) or 0.0
    command = "python bench/e2e.py " + " ".join(argv if argv is not None else sys.argv[1:])
    meta = {"command": command.strip(), "machine": machine, "date": time.strftime("%Y-%m-%d %H:%M"), "runs": runs,
            "threads": args.threads, "call": call.name, "audio_s": audio_s, "speech_s": speech,
            "smoke": args.smoke, "models": str(models), "model_size": size,
            "seeds_reused_from": reused.get("date")}
    # Targets are about full-size models; on tiny ones they are computed (the check path is exercised) but void.
    v["targets_apply"] = not args.smoke
    doc = {"meta": meta, **v, "summaries": summaries, "first_result": first, "raw": raw}
    (WORK / ("e2e.smoke.json" if args.smoke else "e2e.json")).write_text(json.dumps(doc, indent=1) + "\n")
    results = args.results or (None if args.smoke else RESULTS)
    if results is not None:
        common.replace_section(results, "e2e", render_markdown(meta, summaries, first, v, floor))
    if args.json:
        sys.stdout.write(json.dumps({"meta": {k: meta[k] for k in ("command", "date", "runs", "threads", "audio_s",
                                                                   "speech_s", "smoke", "model_size")},
                                     "machine": machine, **v,
                                     "rtf": {n: s["rtf"]["median"] for n, s in summaries.items()},
                                     "peak_rss_mb": {n: s["peak_rss_mb"]["median"] for n, s in summaries.items()},
                                     "first_result_s": {n: f["wall_s"]["median"] for n, f in first.items()}},
                                    indent=1) + "\n")
    else:
        print(render_markdown(meta, summaries, first, v, floor))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
