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

Full-size models have random weights and the published models' exact layer shapes, so their parameter
count and compute are the real ones (checked by ``model_cost``): pyannote segmentation-3.0's PyanNet
(SincNet + 4 BiLSTM(128) + 2 Linear(128) + classifier, 1.47 M parameters) and 3D-Speaker's ERes2Net-base
(6.6 M parameters, 192 dims). Their outputs are meaningless.
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
    """Random weights, pyannote segmentation-3.0's exact layer shapes (PyanNet, 1.47 M parameters).

    SincNet (stride 10): 80 band-pass filters of 251 taps, |.|, max-pool 3, instance norm, leaky ReLU;
    Conv1d 80→60 (5), pool 3, norm, leaky ReLU; Conv1d 60→60 (5), pool 3, norm, leaky ReLU → 589 frames of
    60 per 160000 samples (receptive field 991, shift 270); then 4 bidirectional LSTM(128), two Linear(128)
    with leaky ReLU, a 7-class classifier and log-softmax. About 1.32 G multiply-adds per 10 s window.
    """
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    n = helper.make_node
    hidden = 128
    inits = [_t("one1", np.ones(1)), _t("zero1", np.zeros(1))]
    nodes = [n("InstanceNormalization", ["x", "one1", "zero1"], ["xn"])]  # wav_norm1d
    prev = "xn"
    for i, (cout, cin, k, stride) in enumerate(((80, 1, 251, 10), (60, 80, 5, 1), (60, 60, 5, 1))):
        inits += [_t(f"sw{i}", rng.standard_normal((cout, cin, k)) / np.sqrt(cin * k)),
                  _t(f"sb{i}", np.zeros(cout)), _t(f"ng{i}", np.ones(cout)), _t(f"nb{i}", np.zeros(cout))]
        nodes.append(n("Conv", [prev, f"sw{i}", f"sb{i}"], [f"sc{i}"], strides=[stride]))
        out = f"sc{i}"
        if i == 0:
            nodes.append(n("Abs", [out], ["sa0"]))
            out = "sa0"
        nodes += [n("MaxPool", [out], [f"sp{i}"], kernel_shape=[3], strides=[3]),
                  n("InstanceNormalization", [f"sp{i}", f"ng{i}", f"nb{i}"], [f"sn{i}"]),
                  n("LeakyRelu", [f"sn{i}"], [f"sl{i}"], alpha=0.01)]
        prev = f"sl{i}"
    nodes.append(n("Transpose", [prev], ["h0"], perm=[2, 0, 1]))  # (F, N, 60)
    prev, dim = "h0", 60
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
    nodes.append(n("Transpose", [prev], ["f0"], perm=[1, 0, 2]))  # (N, F, 256)
    prev = "f0"
    for i, (cin, cout) in enumerate(((2 * hidden, 128), (128, 128))):
        inits += [_t(f"Wl{i}", rng.standard_normal((cin, cout)) / np.sqrt(cin)), _t(f"bl{i}", np.zeros(cout))]
        nodes += [n("MatMul", [prev, f"Wl{i}"], [f"lm{i}"]), n("Add", [f"lm{i}", f"bl{i}"], [f"la{i}"]),
                  n("LeakyRelu", [f"la{i}"], [f"lr{i}"], alpha=0.01)]
        prev = f"lr{i}"
    inits += [_t("Wc", rng.standard_normal((128, NUM_CLASSES)) / np.sqrt(128)), _t("bc", np.zeros(NUM_CLASSES))]
    nodes += [n("MatMul", [prev, "Wc"], ["cm"]), n("Add", ["cm", "bc"], ["logits"]),
              n("LogSoftmax", ["logits"], ["y"], axis=2)]
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


class _Graph:
    """A tiny ONNX graph builder for the ERes2Net forgery (BatchNorm folded into conv biases, as exported)."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list = []
        self.inits: list = []
        self._i = 0

    def name(self, stem: str) -> str:
        self._i += 1
        return f"{stem}{self._i}"

    def op(self, op: str, inputs: list[str], **attrs) -> str:
        from onnx import helper

        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def const(self, a: np.ndarray, stem: str = "c") -> str:
        name = self.name(stem)
        self.inits.append(_t(name, a))
        return name

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int = 1, bias: bool = True) -> str:
        w = self.const(self.rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k)), "w")
        ins = [x, w] + ([self.const(np.zeros(cout), "b")] if bias else [])
        return self.op("Conv", ins, kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4)

    def relu(self, x: str) -> str:  # 3D-Speaker's ReLU is Hardtanh(0, 20)
        return self.op("Clip", [x, self.const(np.array(0.0), "lo"), self.const(np.array(20.0), "hi")])

    def aff(self, x: str, y: str, c: int) -> str:
        """Attentional feature fusion: att = 1 + tanh(conv(silu(conv(cat(x, y))))); x*att + y*(2-att)."""
        xa = self.op("Concat", [x, y], axis=1)
        a = self.conv(xa, 2 * c, c // 4, 1)
        a = self.op("Mul", [a, self.op("Sigmoid", [a])])
        a = self.conv(a, c // 4, c, 1)
        att = self.op("Add", [self.op("Tanh", [a]), self.const(np.array(1.0), "one")])
        return self.op("Add", [self.op("Mul", [x, att]),
                               self.op("Mul", [y, self.op("Sub", [self.const(np.array(2.0), "two"), att])])])

    def block(self, x: str, cin: int, planes: int, stride: int, fuse: bool) -> str:
        width, out_c = planes // 2, planes * 2  # baseWidth 32 of 64, scale 2, expansion 2
        h = self.relu(self.conv(x, cin, 2 * width, 1, stride))
        from onnx import helper

        first, second = self.name("half"), self.name("half")
        self.nodes.append(helper.make_node(
            "Split", [h, self.const(np.array([width, width], dtype=np.int64), "split")], [first, second], axis=1))
        sp = self.relu(self.conv(first, width, width, 3))
        mixed = self.aff(sp, second, width) if fuse else self.op("Add", [sp, second])
        sp2 = self.relu(self.conv(mixed, width, width, 3))
        h = self.conv(self.op("Concat", [sp, sp2], axis=1), 2 * width, out_c, 1)
        short = self.conv(x, cin, out_c, 1, stride) if (stride != 1 or cin != out_c) else x
        return self.relu(self.op("Add", [h, short]))


def full_embedding_graph(seed: int = 0, dim: int = FULL_DIM):
    """Random weights, 3D-Speaker ERes2Net-base's exact layer shapes (speakerlab/models/eres2net/ERes2Net.py:
    m_channels 32, blocks [3, 4, 6, 3], AFF fusion in layers 3-4 and bottom-up, TSTP pooling, 192 dims);
    6.6 M parameters, about 1.4 G multiply-adds per second of audio."""
    from onnx import TensorProto, helper

    g = _Graph(seed)
    x = g.op("Unsqueeze", [g.op("Transpose", ["x"], perm=[0, 2, 1]), g.const(np.array([1], dtype=np.int64), "ax")])
    h = g.relu(g.conv(x, 1, 32, 3))  # (1, 32, 80, T)
    cin, outs = 32, []
    for planes, blocks, stride, fuse in ((32, 3, 1, False), (64, 4, 2, False), (128, 6, 2, True), (256, 3, 2, True)):
        for b in range(blocks):
            h = g.block(h, cin, planes, stride if b == 0 else 1, fuse)
            cin = planes * 2
        outs.append((h, cin))
    fused, fc = outs[0]
    for out, c in outs[1:]:  # bottom-up fusion: downsample the fused map and merge with the next layer
        fused = g.aff(out, g.conv(fused, fc, c, 3, 2, bias=False), c)
        fc = c
    # TSTP: mean and std over time of (1, 512, 10, T/8) -> 10240 -> Linear -> 192
    flat = g.op("Reshape", [fused, g.const(np.array([1, fc * 10, -1], dtype=np.int64), "shape")])
    mu = g.op("ReduceMean", [flat], axes=[2], keepdims=1)
    centred = g.op("Sub", [flat, mu])
    var = g.op("ReduceMean", [g.op("Mul", [centred, centred])], axes=[2], keepdims=0)
    std = g.op("Sqrt", [g.op("Add", [var, g.const(np.array(1e-8), "eps")])])
    mu2 = g.op("Squeeze", [mu, g.const(np.array([2], dtype=np.int64), "ax")])
    stats = g.op("Concat", [mu2, std], axis=1)
    w = g.const(g.rng.standard_normal((2 * fc * 10, dim)) / np.sqrt(2 * fc * 10), "wl")
    emb = g.op("Add", [g.op("MatMul", [stats, w]), g.const(np.zeros(dim), "bl")])
    g.nodes.append(helper.make_node("Identity", [emb], ["embedding"]))
    return helper.make_graph(
        g.nodes, "embedding", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "T", 80])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, dim])], g.inits)


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


def model_cost(path: Path, input_shape: tuple[int, ...]) -> dict[str, float]:
    """Parameters and multiply-adds of an ONNX model (Conv, MatMul/Gemm, LSTM) for one input shape.

    Used to check the full-size forgeries against the published models' sizes (docs/diarization.md)."""
    import onnx
    from onnx import numpy_helper, shape_inference

    model = onnx.load(str(path))
    params = sum(int(np.prod(numpy_helper.to_array(t).shape)) for t in model.graph.initializer
                 if t.data_type == onnx.TensorProto.FLOAT)
    inp = model.graph.input[0].type.tensor_type.shape
    for d, v in zip(inp.dim, input_shape):
        d.ClearField("dim_param")
        d.dim_value = v
    inferred = shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)}
    shapes.update({t.name: list(t.dims) for t in model.graph.initializer})
    macs = 0
    for node in inferred.graph.node:
        out = shapes.get(node.output[0])
        if node.op_type == "Conv" and out:
            w = shapes[node.input[1]]
            macs += int(np.prod(out)) * int(np.prod(w[1:]))
        elif node.op_type in ("MatMul", "Gemm") and out:
            macs += int(np.prod(out)) * shapes[node.input[1]][0]
        elif node.op_type == "LSTM":
            seq, batch = shapes[node.input[0]][:2]
            dirs, four_h, in_dim = shapes[node.input[1]]
            macs += seq * batch * dirs * four_h * (in_dim + four_h // 4)
    return {"params": float(params), "macs": float(macs)}


def _quantize(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)


__all__ = ["forge_embedding", "forge_segmentation", "model_cost"]
