"""Custom-head benchmark (issue 20): time to train on 500 clips' embeddings, and what a head adds per segment.

    python bench/bench_adapt.py                 # dim 1024 (emotion2vec+ large), 500 clips, 4 labels, 25 speakers
    python bench/bench_adapt.py --dim 768 --json

The embeddings are synthetic (one Gaussian cluster per label, a speaker offset each), so the figures are
time only: the embedding cost itself is one emotion2vec+ forward pass per clip (bench_emotion.py) and is
cached by audio hash, so re-training costs only what is measured here. Training = grouped 5-fold
cross-validation plus the final fit plus the ONNX conversion, as ``callsense adapt train`` does.
The per-segment cost is onnxruntime on the saved head: one segment at a time (``callsense emotion``,
``/v1/emotion``) and a call's segments in one batch (``analyze``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def data(n: int, dim: int, labels: int, speakers: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (labels, dim))
    offsets = rng.normal(0, 0.5, (speakers, dim))
    y = np.arange(n) % labels
    g = rng.integers(0, speakers, n)
    x = centres[y] + offsets[g] + rng.normal(0, 2.0, (n, dim))
    return x.astype(np.float32), [f"l{k}" for k in y], [f"s{k}" for k in g]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=500)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--labels", type=int, default=4)
    ap.add_argument("--speakers", type=int, default=25)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import tempfile

    from callsense.adapt.head import META_KEY, CustomHead
    from callsense.adapt.train import train_head

    x, y, g = data(args.clips, args.dim, args.labels, args.speakers)
    out: dict = {"clips": args.clips, "dim": args.dim, "labels": args.labels, "speakers": args.speakers}
    for kind in ("logreg", "mlp"):
        t0 = time.perf_counter()
        trained = train_head(x, y, g, kind)
        train_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "h.onnx"
            entry = trained.onnx_model.metadata_props.add()
            entry.key, entry.value = META_KEY, json.dumps({"labels": list(trained.labels), "dim": args.dim,
                                                           "emotion_model": "bench", "emotion_model_checksum": "0"})
            path.write_bytes(trained.onnx_model.SerializeToString())
            head = CustomHead(path)
            head.predict(x[:1])
            reps = 300
            t0 = time.perf_counter()
            for i in range(reps):
                head.predict(x[i % len(x): i % len(x) + 1])
            one_ms = (time.perf_counter() - t0) / reps * 1000
            t0 = time.perf_counter()
            for _ in range(30):
                head.predict(x[:64])
            batch_ms = (time.perf_counter() - t0) / 30 / 64 * 1000
        out[kind] = {"train_s": round(train_s, 2), "cv_ua": trained.metrics.ua, "per_segment_ms_single": round(one_ms, 3),
                     "per_segment_ms_batch64": round(batch_ms, 4)}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for kind in ("logreg", "mlp"):
            r = out[kind]
            print(f"{kind:7s} train {r['train_s']:.2f} s on {args.clips} x {args.dim}; head "
                  f"{r['per_segment_ms_single']:.3f} ms/segment alone, {r['per_segment_ms_batch64']:.4f} ms in a batch "
                  f"of 64 (CV UA {r['cv_ua']:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
