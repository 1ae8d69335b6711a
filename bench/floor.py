"""Compute floor: FLOPs per second of audio of each model, and what this CPU's GEMM achieves.

    python bench/floor.py                 # ~20 s: counts + GEMM rates on --threads 2; writes RESULTS.md "floor"
    python bench/floor.py --quick --json  # ~2 s, smaller GEMMs (tests)

The floor of a model stage is ``FLOPs(audio) / GEMM rate``: the time its matrix multiplications would
take if they ran at the speed this CPU reaches on a large, well-shaped GEMM, with nothing else
(feature extraction, softmax, layer norms, memory traffic, framework overhead) costing anything. No
runtime reaches it; the distance to it says how much a stage could still gain.

FLOPs are counted analytically from the real architectures (the hyper-parameters the forge uses,
which are those of the published configs); 1 multiply-add = 2 FLOPs. Parameter counts are
recomputed from the same formulas and printed next to the published ones as a check of the count.

* SenseVoice-Small: LFR frames at 1/0.06 s; 70 SAN-M blocks (width 512, FFN 2048, 4 heads,
  depthwise FSMN kernel 11): QKV + output projections, FFN, attention scores and values over a
  segment of ``--segment-s`` seconds, FSMN memory; the first block maps 560 -> 512; CTC head to 25055.
* emotion2vec+ base/large: the wav2vec2-style convolutional feature encoder on raw 16 kHz samples
  (512 channels; kernel/stride (10,5), (3,2)x4, (2,2)x2: 320x down to 50 frames/s), projection
  512 -> D, the 5-layer grouped positional convolution, and 12 / 24 transformer blocks
  (D = 768 / 1024, FFN 4D) with attention over ``--segment-s``.

GEMM rates: onnxruntime ``MatMul`` (fp32) and ``MatMulInteger`` (uint8 x int8 -> int32, what dynamic
quantisation runs) on a [M, K] x [K, N] product with an initializer weight, ``--threads`` intra-op
threads, sequential execution; numpy fp32 ``@`` on the same shape for reference. The best fp32 rate
is the fp32 floor's denominator, the MatMulInteger rate the int8 one's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SAMPLE_RATE = 16_000
PUBLISHED_PARAMS_M = {"sensevoice-small": 234, "emotion2vec-plus-base": 94, "emotion2vec-plus-large": 313}

# Real hyper-parameters (fallbacks; the forge's own tables are used when importable).
SENSEVOICE = {"output_size": 512, "attention_heads": 4, "linear_units": 2048, "num_blocks": 50, "tp_blocks": 20,
              "kernel_size": 11}
SENSEVOICE_IN = 560  # 80 mel x 7 stacked frames
SENSEVOICE_FPS = 1 / 0.060
SENSEVOICE_VOCAB = 25055
E2V = {"base": (768, 12, 8, 4, 512, 95, 5, 16), "large": (1024, 16, 16, 8, 512, 95, 5, 16)}
E2V_CONV = ((10, 5),) + ((3, 2),) * 4 + ((2, 2),) * 2


def _forge_tables() -> None:
    """Prefer the forge's hyper-parameters so that the count follows what is benchmarked."""
    try:
        from callsense.testing.forge_sensevoice import FULL_ENCODER

        SENSEVOICE.update({k: FULL_ENCODER[k] for k in SENSEVOICE})
    except (ImportError, KeyError):
        pass
    try:
        from callsense.testing.forge_emotion2vec import SIZES

        for arch in E2V:
            E2V[arch] = tuple(SIZES[arch][:8])
    except (ImportError, KeyError):
        pass


def sensevoice_flops(segment_s: float) -> tuple[float, float]:
    """(FLOPs per second of audio, parameters) of SenseVoice-Small."""
    d, ffn = SENSEVOICE["output_size"], SENSEVOICE["linear_units"]
    blocks = SENSEVOICE["num_blocks"] + SENSEVOICE["tp_blocks"]
    k = SENSEVOICE["kernel_size"]
    t = segment_s * SENSEVOICE_FPS + 4  # frames in a segment, with the 4 query tokens
    first_in = SENSEVOICE_IN
    macs_frame = 0.0
    params = 0.0
    for b in range(blocks):
        din = first_in if b == 0 else d
        # QKV from din (SAN-M projects q,k,v together), output proj, FFN, FSMN depthwise, attention.
        p = din * 3 * d + d * d + 2 * d * ffn + k * d
        params += p
        macs_frame += p + 2 * t * d
    params += d * SENSEVOICE_VOCAB
    macs_frame += d * SENSEVOICE_VOCAB
    return 2 * macs_frame * SENSEVOICE_FPS, params


def emotion2vec_flops(arch: str, segment_s: float) -> tuple[float, float, float]:
    """(FLOPs per second of audio, of which the conv feature encoder, parameters) of emotion2vec+ ``arch``."""
    dim, _heads, depth, prenet, ch, pos_w, pos_d, pos_g = E2V[arch]
    rate = float(SAMPLE_RATE)
    cin = 1
    conv_macs = 0.0
    params = 0.0
    for kernel, stride in E2V_CONV:
        rate /= stride
        conv_macs += rate * ch * cin * kernel
        params += ch * cin * kernel
        cin = ch
    fps = rate  # 50 frames per second
    t = segment_s * fps
    proj = ch * dim
    pos_k = max(3, pos_w // pos_d)
    pos = pos_d * dim * (dim // pos_g) * pos_k
    block = 4 * dim * dim + 2 * dim * 4 * dim
    blocks = depth + prenet
    macs = conv_macs + fps * (proj + pos + blocks * (block + 2 * t * dim))
    params += proj + pos + blocks * block + dim * 9
    return 2 * macs, 2 * conv_macs, params


def model_counts(segment_s: float) -> list[dict]:
    _forge_tables()
    sv, sv_p = sensevoice_flops(segment_s)
    rows = [{"name": "sensevoice-small", "gflop_per_audio_s": sv / 1e9, "params_m": sv_p / 1e6}]
    for arch in ("base", "large"):
        f, conv, p = emotion2vec_flops(arch, segment_s)
        rows.append({"name": f"emotion2vec-plus-{arch}", "gflop_per_audio_s": f / 1e9,
                     "conv_gflop_per_audio_s": conv / 1e9, "params_m": p / 1e6})
    for r in rows:
        r["published_params_m"] = PUBLISHED_PARAMS_M[r["name"]]
    return rows


# ---------------------------------------------------------------------------------------------- GEMM rates


def _matmul_model(m: int, k: int, n: int, int8: bool):
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if int8:
        w = numpy_helper.from_array(rng.integers(-127, 128, (k, n), dtype=np.int8), "W")
        a = helper.make_tensor_value_info("A", TensorProto.UINT8, [m, k])
        y = helper.make_tensor_value_info("Y", TensorProto.INT32, [m, n])
        azp = numpy_helper.from_array(np.array(128, np.uint8), "azp")
        wzp = numpy_helper.from_array(np.array(0, np.int8), "wzp")
        node = helper.make_node("MatMulInteger", ["A", "W", "azp", "wzp"], ["Y"])
        graph = helper.make_graph([node], "mmi", [a], [y], [w, azp, wzp])
    else:
        w = numpy_helper.from_array(rng.standard_normal((k, n), dtype=np.float32), "W")
        a = helper.make_tensor_value_info("A", TensorProto.FLOAT, [m, k])
        y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [m, n])
        graph = helper.make_graph([helper.make_node("MatMul", ["A", "W"], ["Y"])], "mm", [a], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # what every onnxruntime since 1.10 reads (newer onnx writes a newer default)
    return model.SerializeToString()


def _time_best(fn, min_time_s: float, min_reps: int = 3) -> float:
    fn()  # warm-up (packing, thread pool start)
    best = float("inf")
    reps = 0
    started = time.perf_counter()
    while reps < min_reps or time.perf_counter() - started < min_time_s:
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
        reps += 1
    return best


def gemm_rates(threads: int, shape: tuple[int, int, int], min_time_s: float) -> dict:
    """Achieved GFLOP/s of fp32 and int8 GEMM on ``threads`` threads for [M,K]x[K,N] = ``shape``."""
    import numpy as np
    import onnxruntime as ort

    m, k, n = shape
    flops = 2.0 * m * k * n
    out = {"shape_mkn": list(shape), "threads": threads}
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    rng = np.random.default_rng(1)
    for label, int8 in (("ort_fp32", False), ("ort_int8", True)):
        sess = ort.InferenceSession(_matmul_model(m, k, n, int8), opts, providers=["CPUExecutionProvider"])
        a = rng.integers(0, 256, (m, k), dtype=np.uint8) if int8 else rng.standard_normal((m, k), dtype=np.float32)
        best = _time_best(lambda sess=sess, a=a: sess.run(None, {"A": a}), min_time_s)
        out[f"{label}_gflops"] = flops / best / 1e9
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    best = _time_best(lambda: a @ b, min_time_s)  # numpy's BLAS threads: capped by the env set in main()
    out["numpy_fp32_gflops"] = flops / best / 1e9
    out["fp32_gflops"] = max(out["ort_fp32_gflops"], out["numpy_fp32_gflops"])
    out["int8_gflops"] = out["ort_int8_gflops"]
    return out


def floor_document(threads: int, segment_s: float, quick: bool) -> dict:
    shape = (256, 512, 1024) if quick else (500, 1024, 4096)  # large: a 10 s segment through an FFN layer
    rates = gemm_rates(threads, shape, 0.3 if quick else 2.0)
    models = model_counts(segment_s)
    for r in models:
        r["floor_s_per_audio_s_fp32"] = r["gflop_per_audio_s"] / rates["fp32_gflops"]
        r["floor_s_per_audio_s_int8"] = r["gflop_per_audio_s"] / rates["int8_gflops"]
    from common import machine_info

    return {"segment_s": segment_s, "gemm": rates, "models": models, "machine": machine_info(), "quick": quick}


def render_markdown(doc: dict, command: str) -> str:
    from common import machine_line, markdown_table

    g = doc["gemm"]
    lines = [
        "## Compute floor (bench/floor.py)", "",
        f"Command: `{command}`  ",
        f"Machine: {machine_line(doc['machine'])}  ",
        (f"GEMM [{' x '.join(map(str, g['shape_mkn']))}] on {g['threads']} threads: onnxruntime MatMul fp32 "
         f"{g['ort_fp32_gflops']:.0f} GFLOP/s, numpy fp32 {g['numpy_fp32_gflops']:.0f} GFLOP/s, onnxruntime "
         f"MatMulInteger u8s8 {g['ort_int8_gflops']:.0f} GOP/s.  "),
        (f"FLOPs counted analytically from the real architectures, attention over {doc['segment_s']:.0f} s "
         "segments; floor = FLOPs / GEMM rate (nothing but GEMMs, at peak)."), "",
    ]
    rows = [[r["name"], f"{r['params_m']:.0f} M ({r['published_params_m']} M)", f"{r['gflop_per_audio_s']:.1f}",
             f"{r.get('conv_gflop_per_audio_s', 0):.1f}" if "conv_gflop_per_audio_s" in r else "–",
             f"{r['floor_s_per_audio_s_fp32']:.3f}", f"{r['floor_s_per_audio_s_int8']:.3f}"]
            for r in doc["models"]]
    lines.append(markdown_table(["model", "params counted (published)", "GFLOP per audio s",
                                 "of which conv front-end", "floor s per speech s, fp32",
                                 "floor s per speech s, int8"], rows))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--segment-s", type=float, default=10.0, help="segment length for attention cost")
    p.add_argument("--quick", action="store_true", help="small GEMMs, short timing (tests)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", type=Path, help="JSON output (default bench/work/floor.json; --quick: none)")
    p.add_argument("--results", type=Path, help="markdown to update (default bench/RESULTS.md; --quick: none)")
    args = p.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # before numpy loads its BLAS
    allowed = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, set(allowed[: args.threads]))
    doc = floor_document(args.threads, args.segment_s, args.quick)
    command = "python bench/floor.py " + " ".join(argv if argv is not None else sys.argv[1:])
    out = args.out or (None if args.quick else HERE / "work" / "floor.json")
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    results = args.results or (None if args.quick else HERE / "RESULTS.md")
    if results:
        from common import replace_section

        replace_section(results, "floor", render_markdown(doc, command.strip()))
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=1) + "\n")
    else:
        print(render_markdown(doc, command.strip()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
