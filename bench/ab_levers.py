"""Interleaved A/B timings of the speed levers (issue 18) on raw onnxruntime sessions.

    python bench/ab_levers.py e2v-qint8  --models DIR [--model emotion2vec-plus-large] [--pairs 7]
    python bench/ab_levers.py sv-qint8   --models DIR [--pairs 7]
    python bench/ab_levers.py sv-signed  --models DIR [--pairs 7]
    python bench/ab_levers.py e2v-fused  --models DIR [--pairs 7]
    python bench/ab_levers.py schedule   --models DIR [--pairs 5]

``DIR`` holds full-size forged models (``python -m callsense.testing.forge --size full --runtimes onnx
DIR``). Each lever loads both variants in one process with the same session options and thread
count, warms each once, then times them alternately (A, B, A, B, ...) so that background load falls
on both alike; it prints the median and range of each, the median of the per-pair ratios A/B, the
parity figures of B against the fp32 model, and the load average before and after (``/proc/loadavg``).
The variants a lever needs are written once next to the model (``*.ab-*.onnx``) and reused.

* ``e2v-qint8``: emotion2vec+ ``model.int8.onnx`` as shipped before (QUInt8 weights) vs the same fp32
  graph quantised with QInt8 weights (``export.quantize_int8``); 10 s input.
* ``sv-qint8``: SenseVoice-Small ``model.int8.onnx`` with QUInt8 vs QInt8 weights
  (``sensevoice.export.quantize_int8``); 10 s of features; parity: greedy CTC tokens against fp32.
* ``sv-signed``: SenseVoice QUInt8 vs the same file with its weights shifted to int8 losslessly
  (``engines.quant.signed_weights``: what a published QUInt8 export can be turned into).
* ``sv-sherpa``: the SenseVoice variants above decoded by sherpa-onnx (its own onnxruntime build) on a
  10 s synthetic voiced clip: tokens and tags against the fp32 model, and decode times.
* ``e2v-fused``: int8 quantisation of the plain graph vs of the graph after the fusions of
  ``onnxruntime.transformers.optimizer`` (model type bert, python passes only), both with this CPU's scheme.
* ``schedule``: SenseVoice (10 s of features) and emotion2vec+ (10 s) one after the other with two
  threads each, vs both at once in two threads with one intra-op thread each.

Forged weights are random: speed is real, outputs are meaningless beyond their parity to fp32.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def session(path: Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def interleave(*fns, pairs: int) -> dict:
    """Time ``fns`` round-robin, ``pairs`` rounds after one warm-up each; ratios are against the first."""
    for fn in fns:
        fn()  # warm-up: arena, kernels
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(pairs):
        for fn, ts in zip(fns, times):
            ts.append(timed(fn))
    res: dict = {"pairs": pairs}
    for key, ts in zip("abcdefg", times):
        res[f"{key}_median_s"] = statistics.median(ts)
        res[f"{key}_range_s"] = [min(ts), max(ts)]
        if key != "a":
            ratios = [x / y for x, y in zip(times[0], ts)]
            res[f"a_over_{key}_median"] = statistics.median(ratios)
            res[f"a_over_{key}_range"] = [min(ratios), max(ratios)]
    return res


def cosine(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x.ravel().astype(np.float64), y.ravel().astype(np.float64)
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


def e2v_inputs(seconds: float = 10.0):
    rng = np.random.default_rng(0)
    n = int(seconds * 16000)
    return {"samples": (rng.standard_normal((1, n)) * 0.1).astype(np.float32), "lengths": np.array([n], np.int64)}


def sv_inputs(seconds: float = 10.0):
    rng = np.random.default_rng(0)
    t = int(seconds * 100 / 6)  # LFR frames: 60 ms each
    return {"x": rng.normal(0, 1, (1, t, 560)).astype(np.float32), "x_length": np.array([t], np.int32),
            "language": np.array([0], np.int32), "text_norm": np.array([14], np.int32)}


def variant(path: Path, tag: str, make) -> Path:
    out = path.with_name(f"{path.stem}.ab-{tag}.onnx")
    if not out.exists():
        t = time.perf_counter()
        make(out)
        print(f"made {out.name} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return out


def e2v_parity(fp32, sess, feeds) -> dict:
    ref = fp32.run(None, feeds)[0][0]
    got = sess.run(None, feeds)[0][0]
    return {"mean_frame_cosine": cosine(ref.mean(0), got.mean(0)), "frames_cosine": cosine(ref, got)}


def lever_e2v_qint8(args) -> dict:
    from callsense.engines.emotion2vec.export import quantize_int8

    d = args.models / args.model / "onnx"
    qu8 = variant(d / "model.onnx", "qu8", lambda o: quantize_int8(d / "model.onnx", o, weight_type="QUInt8"))
    qs8 = variant(d / "model.onnx", "qs8", lambda o: quantize_int8(d / "model.onnx", o, weight_type="QInt8"))
    rr = variant(d / "model.onnx", "qs8rr", lambda o: quantize_int8(d / "model.onnx", o, weight_type="QInt8",
                                                                     reduce_range=True))
    feeds = e2v_inputs()
    a, b, c = session(qu8, args.threads), session(qs8, args.threads), session(rr, args.threads)
    res = interleave(lambda: a.run(None, feeds), lambda: b.run(None, feeds), lambda: c.run(None, feeds), pairs=args.pairs)
    fp32 = session(d / "model.onnx", args.threads)
    res["parity_a_quint8"] = e2v_parity(fp32, a, feeds)
    res["parity_b_qint8"] = e2v_parity(fp32, b, feeds)
    res["parity_c_qint8_reduce_range"] = e2v_parity(fp32, c, feeds)
    return res


def _greedy(logits: np.ndarray) -> list[int]:
    ids = logits.argmax(-1)
    out, prev = [], -1
    for i in ids:
        if i != prev and i != 0:
            out.append(int(i))
        prev = i
    return out


def sv_parity(fp32, sess, feeds) -> dict:
    ref = fp32.run(None, feeds)[0][0]
    got = sess.run(None, feeds)[0][0]
    return {"argmax_agreement": float(np.mean(ref.argmax(-1) == got.argmax(-1))),
            "tags_equal": _greedy(ref[:4]) == _greedy(got[:4]), "logits_cosine": cosine(ref, got)}


def lever_sv_qint8(args) -> dict:
    from callsense.engines.sensevoice.export import quantize_int8

    d = args.models / "sensevoice-small" / "onnx"
    qu8 = variant(d / "model.onnx", "qu8", lambda o: quantize_int8(d / "model.onnx", o, weight_type="QUInt8"))
    qs8 = variant(d / "model.onnx", "qs8", lambda o: quantize_int8(d / "model.onnx", o, weight_type="QInt8"))
    rr = variant(d / "model.onnx", "qs8rr", lambda o: quantize_int8(d / "model.onnx", o, weight_type="QInt8",
                                                                     reduce_range=True))
    feeds = sv_inputs()
    a, b, c = session(qu8, args.threads), session(qs8, args.threads), session(rr, args.threads)
    res = interleave(lambda: a.run(None, feeds), lambda: b.run(None, feeds), lambda: c.run(None, feeds), pairs=args.pairs)
    fp32 = session(d / "model.onnx", args.threads)
    res["parity_a_quint8"] = sv_parity(fp32, a, feeds)
    res["parity_b_qint8"] = sv_parity(fp32, b, feeds)
    res["parity_c_qint8_reduce_range"] = sv_parity(fp32, c, feeds)
    return res


def lever_sv_signed(args) -> dict:
    from callsense.engines.quant import signed_weights

    d = args.models / "sensevoice-small" / "onnx"
    qu8 = variant(d / "model.onnx", "qu8", lambda o: __import__("callsense.engines.sensevoice.export", fromlist=["x"])
                  .quantize_int8(d / "model.onnx", o, weight_type="QUInt8"))
    shifted = variant(d / "model.onnx", "qu8-signed", lambda o: signed_weights(qu8, o))
    feeds = sv_inputs()
    a, b = session(qu8, args.threads), session(shifted, args.threads)
    res = interleave(lambda: a.run(None, feeds), lambda: b.run(None, feeds), pairs=args.pairs)
    ya, yb = a.run(None, feeds)[0], b.run(None, feeds)[0]
    res["b_vs_a_max_abs_diff"] = float(np.abs(ya - yb).max())
    res["b_vs_a_argmax_agreement"] = float(np.mean(ya.argmax(-1) == yb.argmax(-1)))
    return res


def lever_sv_sherpa(args) -> dict:
    """The int8 variants decoded through sherpa-onnx itself (its own onnxruntime build), not raw sessions."""
    import sherpa_onnx

    d = args.models / "sensevoice-small" / "onnx"
    files = {"fp32": d / "model.onnx", "quint8": d / "model.ab-qu8.onnx", "qint8": d / "model.ab-qs8.onnx",
             "qint8_reduce_range": d / "model.ab-qs8rr.onnx",
             "quint8_signed": d / "model.ab-qu8-signed.onnx"}  # sv-signed's lossless shift of quint8
    files = {k: v for k, v in files.items() if v.exists()}
    rng = np.random.default_rng(3)
    t = np.arange(16000 * 10) / 16000
    # a voiced-like signal: harmonics with a moving pitch and noise, so fbank frames vary
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.3 * t)
    wave = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / 16000) / k for k in range(1, 8))
    wave = (0.1 * wave + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    recs = {k: sherpa_onnx.OfflineRecognizer.from_sense_voice(model=str(v), tokens=str(d / "tokens.txt"),
                                                              num_threads=args.threads, language="auto",
                                                              use_itn=True) for k, v in files.items()}

    def decode(rec):
        st = rec.create_stream()
        st.accept_waveform(16000, wave)
        rec.decode_stream(st)
        return st.result

    out = {"files": {k: str(v.name) for k, v in files.items()}}
    names = [k for k in files if k != "fp32"]
    timing = interleave(*[(lambda r=recs[k]: decode(r)) for k in names], pairs=args.pairs)
    out["timing"] = {k: timing[f"{key}_median_s"] for k, key in zip(names, "abcdefg")}
    out["timing_ratio_vs_first"] = {k: timing.get(f"a_over_{key}_median", 1.0) for k, key in zip(names, "abcdefg")}
    ref = decode(recs["fp32"])
    for k in names:
        got = decode(recs[k])
        same = sum(x == y for x, y in zip(ref.tokens, got.tokens))
        out[k] = {"tokens_equal_to_fp32": list(ref.tokens) == list(got.tokens),
                  "token_agreement": same / max(len(ref.tokens), len(got.tokens), 1),
                  "lang_emotion_event_equal": (ref.lang, ref.emotion, ref.event) == (got.lang, got.emotion, got.event),
                  "n_tokens": len(got.tokens)}
    out["fp32_tags"] = [ref.lang, ref.emotion, ref.event, len(ref.tokens)]
    return out


def optimize_offline(src: Path, dst: Path) -> dict:
    """onnxruntime.transformers' fusions (LayerNorm, SkipLayerNorm, Gelu, Attention where its pattern
    matches), python passes only (``opt_level=0``), written to disk so that they can be quantised."""
    from onnxruntime.transformers.optimizer import optimize_model

    opt = optimize_model(str(src), model_type="bert", num_heads=0, hidden_size=0, opt_level=0)
    stats = opt.get_fused_operator_statistics()
    opt.save_model_to_file(str(dst))
    dst.with_suffix(".stats.json").write_text(json.dumps(stats))
    return stats


def lever_e2v_fused(args) -> dict:
    from callsense.engines.emotion2vec.export import quantize_int8

    d = args.models / args.model / "onnx"
    plain = variant(d / "model.onnx", "q", lambda o: quantize_int8(d / "model.onnx", o))
    fused32 = variant(d / "model.onnx", "fused", lambda o: optimize_offline(d / "model.onnx", o))
    fused8 = variant(d / "model.onnx", "fused-q", lambda o: quantize_int8(fused32, o))
    feeds = e2v_inputs()
    fp32 = session(d / "model.onnx", args.threads)
    f32 = session(fused32, args.threads)
    res = {"fused_fp32_vs_fp32": e2v_parity(fp32, f32, feeds),
           "fusions": json.loads(fused32.with_suffix(".stats.json").read_text())}
    del f32
    a, b = session(plain, args.threads), session(fused8, args.threads)
    res.update(interleave(lambda: a.run(None, feeds), lambda: b.run(None, feeds), pairs=args.pairs))
    res["parity_a_plain"] = e2v_parity(fp32, a, feeds)
    res["parity_b_fused"] = e2v_parity(fp32, b, feeds)
    import onnx

    def ops(p):
        m = onnx.load(str(p), load_external_data=False)
        counts: dict[str, int] = {}
        for n in m.graph.node:
            counts[n.op_type] = counts.get(n.op_type, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1])[:12])

    res["ops_plain"], res["ops_fused"] = ops(plain), ops(fused8)
    return res


def lever_schedule(args) -> dict:
    sv_dir = args.models / "sensevoice-small" / "onnx"
    e_dir = args.models / args.model / "onnx"
    sv_model = sv_dir / "model.int8.onnx"
    e_model = e_dir / "model.int8.onnx"
    sv_f, e_f = sv_inputs(), e2v_inputs()
    sv2, e2 = session(sv_model, 2), session(e_model, 2)
    sv1, e1 = session(sv_model, 1), session(e_model, 1)

    def sequential():
        sv2.run(None, sv_f)
        e2.run(None, e_f)

    def concurrent():
        t = threading.Thread(target=lambda: sv1.run(None, sv_f))
        t.start()
        e1.run(None, e_f)
        t.join()

    res = interleave(sequential, concurrent, pairs=args.pairs)
    res["a"], res["b"] = "sequential, 2 threads each", "concurrent, 1 thread each"
    return res


LEVERS = {"e2v-qint8": lever_e2v_qint8, "sv-qint8": lever_sv_qint8, "sv-signed": lever_sv_signed,
          "sv-sherpa": lever_sv_sherpa, "e2v-fused": lever_e2v_fused,
          "schedule": lever_schedule}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("lever", choices=sorted(LEVERS))
    p.add_argument("--models", type=Path, required=True)
    p.add_argument("--model", default="emotion2vec-plus-large")
    p.add_argument("--pairs", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    before = loadavg()
    res = LEVERS[args.lever](args)
    res.update(lever=args.lever, model=args.model, threads=args.threads, loadavg_before=before,
               loadavg_after=loadavg())
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
