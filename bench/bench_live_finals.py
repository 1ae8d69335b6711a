"""What a live final costs: padded batches vs one run per utterance, and the engines' thread count.

    python bench/bench_live_finals.py --models /work/models-full      # large: int8 + fp32, SenseVoice, threads
    python bench/bench_live_finals.py --models /work/models-full --emotion-model base --repeats 5

**Batching.** For each batch size B (default 1, 4, 8) it draws B utterances of 2–8 s (uniform, seeded;
the live finals' range) and times, on ``--threads`` intra-op threads:

* **one by one**: B session runs, one utterance each (what the live server does);
* **batched**: one session run on the B utterances zero-padded to the longest (``lengths`` masks
  the padding inside the graph; the engines' own batch planning is bypassed so that every B is one run).

for emotion2vec+ (``model.int8.onnx`` — the file the engine picks by default — and ``model.onnx``)
and SenseVoice-Small (sherpa-onnx ``decode_streams`` on B streams vs B ``decode_streams`` of one),
with how far batched outputs are from one-by-one ones (max |Δ| of the frame features; whether every
SenseVoice text is identical).

**Threads.** Four utterances (3.1, 4.4, 2.6, 5.2 s) decoded one by one by each engine built with 2
threads (onnxruntime's pool spinning, as by default), 2 threads with ``CALLSENSE_ORT_SPIN=0``
(emotion2vec only: sherpa-onnx sets its own session options) and 1 thread: wall seconds and CPU
seconds (the process's user + system time) per utterance. The CPU seconds are what N calls' finals
use up together; the wall seconds depend on what else the machine runs (the load average is printed).

Configurations are interleaved, ``--repeats`` times; tables give the median (min–max). Random-weight
forged models (speed only). Writes the ``live-finals`` section of bench/RESULTS.md; ``--json`` prints
the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402

RESULTS = HERE / "RESULTS.md"
EMOTION_MODELS = {"large": "emotion2vec-plus-large", "base": "emotion2vec-plus-base"}


def utterances(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(int(rng.uniform(2.0, 8.0) * 16000)) * 0.1).astype(np.float32) for _ in range(n)]


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench_emotion(model_dir: Path, int8: bool, threads: int, sizes: list[int], repeats: int, seed: int) -> list[dict]:
    from callsense.engines.emotion2vec.onnx import Emotion2vecOnnx

    eng = Emotion2vecOnnx(model_dir, num_threads=threads, int8=int8)
    eng.features([utterances(1, seed)[0]])  # warm-up
    rows = []
    for b in sizes:
        utts = utterances(b, seed + b)
        one, batch, diff = [], [], 0.0
        for _ in range(repeats):
            t1, singles = timed(lambda utts=utts: [eng.features([u])[0] for u in utts])
            t2, batched = timed(lambda utts=utts: eng.features(utts))
            one.append(t1 / b)
            batch.append(t2 / b)
            diff = max(diff, max(float(np.max(np.abs(a - c))) for a, c in zip(singles, batched)))
        rows.append(row("emotion2vec " + ("int8" if int8 else "fp32"), b, utts, one, batch,
                        f"max |Δ| frames {diff:.1e}"))
    return rows


def bench_sensevoice(model_dir: Path, threads: int, sizes: list[int], repeats: int, seed: int) -> list[dict]:
    from callsense.engines.sensevoice.onnx import SenseVoiceOnnx

    eng = SenseVoiceOnnx(model_dir, num_threads=threads)
    rec = eng._recognizer("auto", True)

    def decode(batch: list[np.ndarray]) -> list[str]:
        streams = []
        for u in batch:
            s = rec.create_stream()
            s.accept_waveform(16000, u)
            streams.append(s)
        rec.decode_streams(streams)
        return [s.result.text for s in streams]

    decode([utterances(1, seed)[0]])
    rows = []
    for b in sizes:
        utts = utterances(b, seed + b)
        one, batch, same = [], [], True
        for _ in range(repeats):
            t1, singles = timed(lambda utts=utts: [decode([u])[0] for u in utts])
            t2, batched = timed(lambda utts=utts: decode(utts))
            one.append(t1 / b)
            batch.append(t2 / b)
            same = same and singles == batched
        rows.append(row("SenseVoice int8", b, utts, one, batch, "texts identical" if same else "texts differ"))
    return rows


THREAD_UTTERANCES_S = (3.1, 4.4, 2.6, 5.2)


def bench_threads(models: Path, emotion: str, repeats: int, seed: int) -> list[dict]:
    """Wall and CPU seconds per utterance, one by one, for each engine and thread configuration."""
    import os

    from callsense.engines.emotion2vec.onnx import Emotion2vecOnnx
    from callsense.engines.sensevoice.onnx import SenseVoiceOnnx

    rng = np.random.default_rng(seed)
    utts = [(rng.standard_normal(int(s * 16000)) * 0.1).astype(np.float32) for s in THREAD_UTTERANCES_S]

    def e2v(threads: int, spin: bool):
        os.environ["CALLSENSE_ORT_SPIN"] = "1" if spin else "0"  # read when the session is built
        try:
            eng = Emotion2vecOnnx(models / EMOTION_MODELS[emotion] / "onnx", num_threads=threads)
        finally:
            os.environ.pop("CALLSENSE_ORT_SPIN", None)
        return lambda u: eng.features([u])

    def sv(threads: int):
        rec = SenseVoiceOnnx(models / "sensevoice-small" / "onnx", num_threads=threads)._recognizer("auto", True)

        def decode(u):
            st = rec.create_stream()
            st.accept_waveform(16000, u)
            rec.decode_streams([st])
        return decode

    configs = {("emotion2vec int8", "2 threads, spinning (default)"): e2v(2, True),
               ("emotion2vec int8", "2 threads, CALLSENSE_ORT_SPIN=0"): e2v(2, False),
               ("emotion2vec int8", "1 thread"): e2v(1, True),
               ("SenseVoice int8", "2 threads (sherpa-onnx: spinning)"): sv(2),
               ("SenseVoice int8", "1 thread"): sv(1)}
    for fn in configs.values():
        fn(utts[0])  # warm-up
    wall: dict = {k: [] for k in configs}
    cpu: dict = {k: [] for k in configs}
    for _ in range(repeats):
        for key, fn in configs.items():
            w0, c0 = time.perf_counter(), time.process_time()
            for u in utts:
                fn(u)
            wall[key].append((time.perf_counter() - w0) / len(utts))
            cpu[key].append((time.process_time() - c0) / len(utts))
    return [{"engine": e, "config": c, "wall_s_per_utt": wall[(e, c)], "cpu_s_per_utt": cpu[(e, c)]}
            for e, c in configs]


def row(engine: str, b: int, utts: list[np.ndarray], one: list[float], batch: list[float], note: str) -> dict:
    lens = [len(u) / 16000 for u in utts]
    return {"engine": engine, "B": b, "audio_s": round(sum(lens), 1), "padded_s": round(max(lens) * b, 1),
            "one_by_one_s_per_utt": one, "batched_s_per_utt": batch,
            "speedup": statistics.median(one) / statistics.median(batch), "note": note}


def cell(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=Path, default=HERE / "work" / "models-full")
    p.add_argument("--emotion-model", choices=sorted(EMOTION_MODELS), default="large")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sizes", default="1,4,8")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--skip", default="", help="comma-separated: int8,fp32,sensevoice,threads")
    p.add_argument("--no-results", action="store_true", help="do not write bench/RESULTS.md")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    skip = set(filter(None, args.skip.split(",")))
    load0 = Path("/proc/loadavg").read_text().split()[:3]
    rows: list[dict] = []
    emo = args.models / EMOTION_MODELS[args.emotion_model] / "onnx"
    for int8 in (True, False):
        if ("int8" if int8 else "fp32") not in skip:
            rows += bench_emotion(emo, int8, args.threads, sizes, args.repeats, args.seed)
            print(json.dumps(rows[-1]), file=sys.stderr)
    if "sensevoice" not in skip:
        rows += bench_sensevoice(args.models / "sensevoice-small" / "onnx", args.threads, sizes, args.repeats,
                                 args.seed)
    threads = [] if "threads" in skip else bench_threads(args.models, args.emotion_model, args.repeats, args.seed)
    load1 = Path("/proc/loadavg").read_text().split()[:3]
    head = (f"{common.machine_line(common.machine_info())}. {EMOTION_MODELS[args.emotion_model]}, "
            f"{args.repeats} repeats, loadavg {' '.join(load0)} → {' '.join(load1)}. Command: `python "
            f"bench/bench_live_finals.py {' '.join(argv if argv is not None else sys.argv[1:])}`.")
    batch_table = common.markdown_table(
        ["engine", "B", "audio s (padded)", "one by one s/utt", "batched s/utt", "speed-up", "outputs"],
        [[r["engine"], r["B"], f"{r['audio_s']} ({r['padded_s']})", cell(r["one_by_one_s_per_utt"]),
          cell(r["batched_s_per_utt"]), f"{r['speedup']:.2f}×", r["note"]] for r in rows])
    thread_table = common.markdown_table(
        ["engine", "threads", "wall s per utterance", "CPU s per utterance"],
        [[r["engine"], r["config"], cell(r["wall_s_per_utt"]), cell(r["cpu_s_per_utt"])] for r in threads])
    body = f"## What a live final costs (bench/bench_live_finals.py)\n\n{head}\n"
    if rows:
        body += (f"\nPadded batch vs one run per utterance (2–8 s utterances, --threads {args.threads}):\n\n"
                 f"{batch_table}\n")
    if threads:
        body += (f"\nOne utterance at a time ({', '.join(f'{x:g}' for x in THREAD_UTTERANCES_S)} s), by thread "
                 f"configuration:\n\n{thread_table}\n")
    print(body)
    if not args.no_results:
        common.replace_section(RESULTS, "live-finals", body)
    if args.json:
        print(json.dumps({"batching": rows, "threads": threads}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
