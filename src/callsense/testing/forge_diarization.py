"""Forge the two models of sherpa-onnx's speaker diarization with random or fixed weights.

``pyannote-segmentation-3-0/onnx/model.onnx``: input ``x`` float32 ``(N, 1, T)`` at 16 kHz, output
``(N, frames, 7)`` powerset log-probabilities (classes: silence, speaker 0, 1, 2, 0+1, 0+2, 1+2; 160000
samples give 589 frames: receptive field 991 samples, shift 270) and the metadata keys sherpa-onnx's
loader reads (``sample_rate``, ``window_size``, ``receptive_field_size``, ``receptive_field_shift``,
``num_speakers``, ``powerset_max_classes``, ``num_classes``).

``speaker-embedding/onnx/model.onnx``: input ``x`` ``(1, T, 80)`` Kaldi fbank, output ``(1, D)``, metadata
``output_dim``, ``sample_rate``, ``normalize_samples``, ``language``, ``framework``
(+ ``feature_normalize_type`` for 3D-Speaker).

Tiny models are fixed signal processing, not random, so tests can assert a correct split:

* segmentation: speech where the frame level is above ``threshold_db`` (dBFS, default -45); the local
  speaker is chosen by pitch (a cepstrum over a DFT of each frame): pitch below ``split_hz`` (default
  150) is local speaker 1, above it local speaker 0 — two voices of different pitch are told apart;
* embedding: ``[s, 0.1]`` rotated into ``D`` = 64 dimensions, where ``s`` in [-1, 1] is the
  voicing-weighted mean of tanh(low-pitch evidence - high-pitch evidence) over the clip's fbank frames
  (a mel-bin cepstrum): two voices on either side of ``split_hz`` get cosine < 0.

Full-size models have random weights and roughly the real compute: a strided-conv front end + 4
bidirectional LSTM layers (128) for segmentation (pyannote's 1.5 M parameters), a ResNet-style conv
stack to a 192-dim embedding for the speaker model. Their outputs are meaningless.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 16_000
WINDOW_SIZE = 160_000
RECEPTIVE_FIELD_SIZE = 991
RECEPTIVE_FIELD_SHIFT = 270
NUM_CLASSES = 7
SEGMENTATION_FILE = "model.onnx"
EMBEDDING_FILE = "model.onnx"
TINY_DIM = 64
FULL_DIM = 192

SEGMENTATION_METADATA = {
    "model_type": "pyannote-segmentation-3.0", "version": "1", "sample_rate": str(SAMPLE_RATE),
    "window_size": str(WINDOW_SIZE), "receptive_field_size": str(RECEPTIVE_FIELD_SIZE),
    "receptive_field_shift": str(RECEPTIVE_FIELD_SHIFT), "num_speakers": "3", "powerset_max_classes": "2",
    "num_classes": str(NUM_CLASSES), "comment": "callsense forge",
}

_F0 = np.arange(70.0, 400.0, 5.0)  # candidate pitches of the cepstra


def _embedding_metadata(dim: int, framework: str) -> dict[str, str]:
    meta = {"model_type": "forge", "output_dim": str(dim), "sample_rate": str(SAMPLE_RATE),
            "language": "Chinese", "framework": framework, "comment": "callsense forge"}
    if framework == "3d-speaker":
        meta.update(normalize_samples="1", feature_normalize_type="global-mean")
    else:
        meta.update(normalize_samples="0")  # wespeaker: fbank of samples scaled to int16 range
    return meta


def _save(graph, path: Path, metadata: dict[str, str]) -> None:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="callsense-forge")
    model.ir_version = 8
    for k, v in metadata.items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def _t(name: str, a: np.ndarray):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(a, dtype=np.float32) if np.asarray(a).dtype.kind == "f"
                                   else np.asarray(a), name)


# ------------------------------------------------------------------------------------ segmentation
def tiny_segmentation_graph(*, threshold_db: float = -45.0, split_hz: float = 150.0):
    from onnx import TensorProto, helper

    n = helper.make_node
    # 1. decimate to 8 kHz (windowed-sinc low-pass, 16 taps, stride 2)
    taps = np.arange(-7.5, 8.5)
    lp = (np.sinc(taps * 0.475) * 0.475 * np.hamming(16)).astype(np.float32).reshape(1, 1, 16)
    # 2. DFT of each frame: 495 samples at 8 kHz every 135 (= 991 / 270 at 16 kHz), bins up to 2 kHz
    w, hop = 495, 135
    k = int(2000 / (8000 / w))
    freqs = np.arange(1, k + 1) * 8000 / w
    t = np.arange(w)
    win = np.hanning(w)
    basis = np.concatenate([np.cos(2 * np.pi * freqs[:, None] * t / 8000) * win,
                            np.sin(2 * np.pi * freqs[:, None] * t / 8000) * win]).astype(np.float32)
    pair = np.concatenate([np.eye(k), np.eye(k)], axis=0).astype(np.float32)  # cos^2 + sin^2
    ceps = (np.cos(2 * np.pi * freqs[:, None] / _F0[None, :]) / k).astype(np.float32)
    low_idx = np.flatnonzero(_F0 < split_hz).astype(np.int64)
    high_idx = np.flatnonzero(_F0 >= split_hz).astype(np.int64)
    # frame level on the 16 kHz input: mean square over the receptive field
    box = np.full((1, 1, RECEPTIVE_FIELD_SIZE), 1.0 / RECEPTIVE_FIELD_SIZE, dtype=np.float32)
    thr = np.float32(10 ** (threshold_db / 10))
    # logits per class from (a = level evidence, d = low-pitch evidence): silence -a, spk0 a - d, spk1 a + d
    mix = np.array([[-1, 1, 1, 0, 0, 0, 0], [0, -1, 1, 0, 0, 0, 0]], dtype=np.float32) * \
        np.array([[4.0], [12.0]], dtype=np.float32)
    bias = np.array([0, 0, 0, -60, -60, -60, -60], dtype=np.float32)
    inits = [_t("lp", lp), _t("basis", basis.reshape(2 * k, 1, w)), _t("pair", pair), _t("ceps", ceps),
             _t("low_idx", low_idx), _t("high_idx", high_idx), _t("box", box), _t("thr", np.array(thr)),
             _t("eps", np.array(1e-10)), _t("mix", mix), _t("bias", bias), _t("smooth", np.full(
                 (1, 1, 15), 1 / 15, dtype=np.float32)), ]
    nodes = [
        n("Conv", ["x", "lp"], ["x8"], strides=[2]),
        n("Conv", ["x8", "basis"], ["spec"], strides=[hop]),               # (N, 2k, F)
        n("Mul", ["spec", "spec"], ["sq"]),
        n("Transpose", ["sq"], ["sqT"], perm=[0, 2, 1]),                   # (N, F, 2k)
        n("MatMul", ["sqT", "pair"], ["power"]),                           # (N, F, k)
        n("Add", ["power", "eps"], ["power_e"]),
        n("Log", ["power_e"], ["logp"]),
        n("ReduceMean", ["logp"], ["logp_mean"], axes=[2], keepdims=1),
        n("Sub", ["logp", "logp_mean"], ["logp_c"]),
        n("MatMul", ["logp_c", "ceps"], ["cep"]),                          # (N, F, Q)
        n("Gather", ["cep", "low_idx"], ["cep_low"], axis=2),
        n("Gather", ["cep", "high_idx"], ["cep_high"], axis=2),
        n("ReduceMax", ["cep_low"], ["low"], axes=[2], keepdims=1),
        n("ReduceMax", ["cep_high"], ["high"], axes=[2], keepdims=1),
        n("Sub", ["low", "high"], ["d_raw"]),                              # (N, F, 1)
        n("Transpose", ["d_raw"], ["d_t"], perm=[0, 2, 1]),                # (N, 1, F)
        n("Conv", ["d_t", "smooth"], ["d_s"], pads=[7, 7]),                # ~250 ms of smoothing
        n("Transpose", ["d_s"], ["d"], perm=[0, 2, 1]),
        n("Mul", ["x", "x"], ["x2"]),
        n("Conv", ["x2", "box"], ["ms"], strides=[RECEPTIVE_FIELD_SHIFT]),  # (N, 1, F)
        n("Add", ["ms", "eps"], ["ms_e"]),
        n("Div", ["ms_e", "thr"], ["ratio"]),
        n("Log", ["ratio"], ["a_t"]),
        n("Transpose", ["a_t"], ["a"], perm=[0, 2, 1]),                    # (N, F, 1)
        n("Concat", ["a", "d"], ["ad"], axis=2),                            # (N, F, 2)
        n("MatMul", ["ad", "mix"], ["logits0"]),
        n("Add", ["logits0", "bias"], ["logits"]),
        n("LogSoftmax", ["logits"], ["y"], axis=2),
    ]
    graph = helper.make_graph(
        nodes, "segmentation", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, "T"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "frames", NUM_CLASSES])], inits)
    return graph


def full_segmentation_graph(seed: int = 0):
    """Random weights, pyannote-like cost: strided conv front end (frame rate 270 samples), 4 BiLSTM(128)."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    n = helper.make_node
    hidden, feat = 128, 60
    inits, nodes = [], []
    # front end: one conv with the receptive field and shift of the real model, 60 filters
    inits.append(_t("w0", rng.standard_normal((feat, 1, RECEPTIVE_FIELD_SIZE)) * 0.03))
    nodes += [n("Conv", ["x", "w0"], ["c0"], strides=[RECEPTIVE_FIELD_SHIFT]), n("Abs", ["c0"], ["c1"]),
              n("Add", ["c1", "one"], ["c2"]), n("Log", ["c2"], ["c3"]),
              n("Transpose", ["c3"], ["h0"], perm=[2, 0, 1])]  # (F, N, feat)
    inits.append(_t("one", np.array(1.0)))
    prev, dim = "h0", feat
    for layer in range(4):
        inits += [_t(f"W{layer}", rng.standard_normal((2, 4 * hidden, dim)) / np.sqrt(dim)),
                  _t(f"R{layer}", rng.standard_normal((2, 4 * hidden, hidden)) / np.sqrt(hidden)),
                  _t(f"B{layer}", np.zeros((2, 8 * hidden)))]
        nodes += [n("LSTM", [prev, f"W{layer}", f"R{layer}", f"B{layer}"], [f"l{layer}"], direction="bidirectional",
                    hidden_size=hidden),
                  n("Transpose", [f"l{layer}"], [f"t{layer}"], perm=[0, 2, 1, 3]),  # (F, N, 2, H)
                  n("Reshape", [f"t{layer}", "shape_fnh"], [f"h{layer + 1}"])]
        prev, dim = f"h{layer + 1}", 2 * hidden
    inits.append(_t("shape_fnh", np.array([0, 0, 2 * hidden], dtype=np.int64)))
    inits += [_t("Wl1", rng.standard_normal((2 * hidden, 128)) * 0.05), _t("Wl2", rng.standard_normal((128, 7)) * 0.05)]
    nodes += [n("Transpose", [prev], ["hT"], perm=[1, 0, 2]), n("MatMul", ["hT", "Wl1"], ["f1"]),
              n("Relu", ["f1"], ["f2"]), n("MatMul", ["f2", "Wl2"], ["f3"]), n("LogSoftmax", ["f3"], ["y"], axis=2)]
    return helper.make_graph(
        nodes, "segmentation", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, "T"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "frames", NUM_CLASSES])], inits)


# --------------------------------------------------------------------------------------- embedding
def _mel_centres(num_bins: int = 80, low: float = 20.0, high: float = 7600.0) -> np.ndarray:
    mel = lambda f: 1127.0 * np.log(1 + f / 700.0)  # noqa: E731 - Kaldi's mel scale
    pts = np.linspace(mel(low), mel(high), num_bins + 2)[1:-1]
    return 700.0 * (np.exp(pts / 1127.0) - 1)


def tiny_embedding_graph(*, split_hz: float = 150.0, dim: int = TINY_DIM, seed: int = 0):
    from onnx import TensorProto, helper

    n = helper.make_node
    fc = _mel_centres()
    nb = int((fc < 1200).sum())
    ceps = (np.cos(2 * np.pi * fc[:nb, None] / _F0[None, :]) / nb).astype(np.float32)
    low_idx = np.flatnonzero(_F0 < split_hz).astype(np.int64)
    high_idx = np.flatnonzero(_F0 >= split_hz).astype(np.int64)
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, 2)))
    rot = q.T.astype(np.float32)  # (2, dim), orthonormal rows: cosines are kept
    inits = [_t("ceps", ceps), _t("low_idx", low_idx), _t("high_idx", high_idx), _t("rot", rot),
             _t("starts", np.array([0], dtype=np.int64)), _t("ends", np.array([nb], dtype=np.int64)),
             _t("axes", np.array([2], dtype=np.int64)), _t("gain", np.array(20.0)), _t("floor_db", np.array(15.0)),
             _t("eps", np.array(1e-6)), _t("c", np.array([[0.1]])),
             _t("axis1", np.array([1], dtype=np.int64))]
    nodes = [
        n("Slice", ["x", "starts", "ends", "axes"], ["low_bins"]),           # (1, T, nb)
        n("ReduceMean", ["low_bins"], ["lb_mean"], axes=[2], keepdims=1),
        n("Sub", ["low_bins", "lb_mean"], ["lb_c"]),
        n("MatMul", ["lb_c", "ceps"], ["cep"]),                               # (1, T, Q)
        n("Gather", ["cep", "low_idx"], ["cl"], axis=2),
        n("Gather", ["cep", "high_idx"], ["ch"], axis=2),
        n("ReduceMax", ["cl"], ["lo"], axes=[2], keepdims=0),                 # (1, T)
        n("ReduceMax", ["ch"], ["hi"], axes=[2], keepdims=0),
        n("Sub", ["lo", "hi"], ["d"]),
        n("Mul", ["d", "gain"], ["dg"]),
        n("Tanh", ["dg"], ["vote"]),
        n("Max", ["lo", "hi"], ["voicing0"]),
        n("Relu", ["voicing0"], ["voicing"]),
        n("ReduceMean", ["x"], ["level"], axes=[2], keepdims=0),             # (1, T)
        n("ReduceMax", ["level"], ["level_max"], axes=[1], keepdims=1),
        n("Sub", ["level_max", "floor_db"], ["level_floor"]),
        n("Sub", ["level", "level_floor"], ["level_rel"]),
        n("Sigmoid", ["level_rel"], ["loud"]),
        n("Mul", ["loud", "voicing"], ["wt"]),
        n("Mul", ["wt", "vote"], ["wv"]),
        n("ReduceSum", ["wv", "axis1"], ["num"], keepdims=1),               # (1, 1)
        n("ReduceSum", ["wt", "axis1"], ["den0"], keepdims=1),
        n("Add", ["den0", "eps"], ["den"]),
        n("Div", ["num", "den"], ["s"]),
        n("Concat", ["s", "c"], ["sc"], axis=1),                              # (1, 2)
        n("MatMul", ["sc", "rot"], ["embedding"]),
    ]
    return helper.make_graph(
        nodes, "embedding", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "T", 80])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, dim])], inits)


def full_embedding_graph(seed: int = 0, dim: int = FULL_DIM):
    """Random weights with ERes2Net-base-like cost: 2-D conv stack on the fbank, stats pooling, linear."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    n = helper.make_node
    inits = [_t("unsq", np.array([1], dtype=np.int64))]
    nodes = [n("Unsqueeze", ["x", "unsq"], ["h0"])]  # (1, 1, T, 80)
    chans, prev, cin = (32, 32, 64, 64, 128, 128, 256, 256), "h0", 1
    for i, cout in enumerate(chans):
        stride = 2 if i in (2, 4, 6) else 1
        inits.append(_t(f"k{i}", rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2 / (9 * cin))))
        nodes += [n("Conv", [prev, f"k{i}"], [f"c{i}"], pads=[1, 1, 1, 1], strides=[stride, stride]),
                  n("Relu", [f"c{i}"], [f"r{i}"])]
        prev, cin = f"r{i}", cout
    inits += [_t("wl", rng.standard_normal((2 * 256 * 10, dim)) * 0.01),
              _t("shape", np.array([1, 256 * 10, -1], dtype=np.int64))]
    nodes += [n("Transpose", [prev], ["p0"], perm=[0, 1, 3, 2]), n("Reshape", ["p0", "shape"], ["p1"]),
              n("ReduceMean", ["p1"], ["mu"], axes=[2], keepdims=0),
              n("Mul", ["p1", "p1"], ["p2"]), n("ReduceMean", ["p2"], ["m2"], axes=[2], keepdims=0),
              n("Concat", ["mu", "m2"], ["stats"], axis=1), n("MatMul", ["stats", "wl"], ["embedding"])]
    return helper.make_graph(
        nodes, "embedding", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "T", 80])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, dim])], inits)


# ----------------------------------------------------------------------------------------- forgers
def forge_segmentation(out_dir: Path, size: str = "tiny", model: str = "pyannote-segmentation-3-0",
                       **steer: Any) -> None:
    """Write ``model.onnx`` (and ``model.int8.onnx`` for full size) into ``out_dir``."""
    out_dir = Path(out_dir)
    if size == "tiny":
        graph = tiny_segmentation_graph(threshold_db=float(steer.get("threshold_db", -45.0)),
                                        split_hz=float(steer.get("split_hz", 150.0)))
        _save(graph, out_dir / SEGMENTATION_FILE, SEGMENTATION_METADATA)
        return
    _save(full_segmentation_graph(), out_dir / SEGMENTATION_FILE, SEGMENTATION_METADATA)
    _quantize(out_dir / SEGMENTATION_FILE, out_dir / "model.int8.onnx")


def forge_embedding(out_dir: Path, size: str = "tiny", model: str = "speaker-embedding", **steer: Any) -> None:
    out_dir = Path(out_dir)
    if size == "tiny":
        graph = tiny_embedding_graph(split_hz=float(steer.get("split_hz", 150.0)))
        _save(graph, out_dir / EMBEDDING_FILE, _embedding_metadata(TINY_DIM, "wespeaker"))
        return
    _save(full_embedding_graph(), out_dir / EMBEDDING_FILE, _embedding_metadata(FULL_DIM, "3d-speaker"))
    _quantize(out_dir / EMBEDDING_FILE, out_dir / "model.int8.onnx")


def _quantize(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)


__all__ = ["forge_embedding", "forge_segmentation"]
