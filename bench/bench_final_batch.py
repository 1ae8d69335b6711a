"""Does batching the live finals pay? One engine run on a padded batch vs one run per utterance.

    python bench/bench_final_batch.py --models /work/models-full              # large, int8 + fp32, SenseVoice
    python bench/bench_final_batch.py --models /work/models-full --emotion-model base --repeats 5

For each batch size B (default 1, 4, 8) it draws B utterances of 2–8 s (uniform, seeded; the live
finals' range) and times, on ``--threads`` intra-op threads:

* **one by one**: B session runs, one utterance each (what the live server does today);
* **batched**: one session run on the B utterances zero-padded to the longest (``lengths`` masks
  the padding inside the graph; the engines' own batch planning is bypassed so that every B is one run).

for emotion2vec+ (``model.int8.onnx`` — the file the engine picks by default — and ``model.onnx``)
and SenseVoice-Small (sherpa-onnx ``decode_streams`` on B streams vs B ``decode_streams`` of one).
The two ways are interleaved, ``--repeats`` times, and the table gives the median (min–max) of the
seconds per utterance. It also reports how far batched outputs are from one-by-one ones (max |Δ| of
the frame features; whether every SenseVoice text is identical).

Random-weight forged models (speed only). Prints a markdown table; ``--json`` the raw numbers.
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
            t1, singles = timed(lambda: [eng.features([u])[0] for u in utts])
            t2, batched = timed(lambda: eng.features(utts))
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
            t1, singles = timed(lambda: [decode([u])[0] for u in utts])
            t2, batched = timed(lambda: decode(utts))
            one.append(t1 / b)
            batch.append(t2 / b)
            same = same and singles == batched
        rows.append(row("SenseVoice int8", b, utts, one, batch, "texts identical" if same else "texts differ"))
    return rows


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
    p.add_argument("--skip", default="", help="comma-separated: int8,fp32,sensevoice")
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
    load1 = Path("/proc/loadavg").read_text().split()[:3]
    print(f"{common.machine_line(common.machine_info())}; {EMOTION_MODELS[args.emotion_model]}, "
          f"--threads {args.threads}, {args.repeats} repeats; loadavg {' '.join(load0)} → {' '.join(load1)}\n")
    print(common.markdown_table(
        ["engine", "B", "audio s (padded)", "one by one s/utt", "batched s/utt", "speed-up", "outputs"],
        [[r["engine"], r["B"], f"{r['audio_s']} ({r['padded_s']})", cell(r["one_by_one_s_per_utt"]),
          cell(r["batched_s_per_utt"]), f"{r['speedup']:.2f}×", r["note"]] for r in rows]))
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
