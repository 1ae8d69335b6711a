"""Build callsense's emotion2vec ONNX graph from numpy weights: no torch, the same graph for every source.

:func:`build_model` takes a FunASR ``Emotion2vec`` state dict (numpy arrays, e.g. from
:func:`~callsense.engines.emotion2vec.checkpoint.read_state`) and its ``model_conf`` and writes the
graph with ``onnx.helper``, op for op what :func:`~callsense.engines.emotion2vec.export.make_export_module`
computes in torch (that torch export is the reference the tests compare with):

* in-graph normalisation of each row over its valid samples, padding zeroed;
* the convolutional front-end as strided slices + MatMul, channels last (conv -> LayerNorm -> GELU),
  so onnxruntime runs GEMMs and dynamic int8 quantisation covers the front-end too;
* the positional convolutions with the padding zeroed before each one;
* ALiBi recomputed from the input length (``-|i - j|`` times per-head slopes times the learned scale)
  plus a key-padding bias: any length, and a padded batch equals one segment at a time;
* the prenet and main transformer blocks (post-LN, as emotion2vec+), extra tokens dropped at the end.

Two tensors are named so the engine can cut the graph there (:mod:`~callsense.engines.emotion2vec.split`):
:data:`NORMALISED`, the normalised samples the front-end reads, and :data:`FEATURES`, the front-end's
output before ``project_features``. Between them the graph is local in time (output frame ``k`` reads
samples ``[320k, 320k + 400)`` for wav2vec2's spec), so the engine runs that part over time chunks to keep
a long segment's per-sample buffers small (issue 18, memory); the names change no computation.

The forge (:mod:`callsense.testing.forge_emotion2vec`) builds its torch-free models with this same
function from random weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from callsense.errors import ModelFormatError

OPSET = 17
ENC = "modality_encoders.AUDIO."
NORMALISED = "normalised"
"""Boundary tensor: the samples after the per-row normalisation, padding zeroed, float32 [N, S]."""
FEATURES = "features"
"""Boundary tensor: the convolutional front-end's output before ``project_features``, float32 [N, T, C]."""


def alibi_slopes(heads: int) -> list[float]:
    """ALiBi per-head slopes (the geometric sequence of the paper, with its non-power-of-2 rule)."""
    def power_of_2(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(heads).is_integer():
        return power_of_2(heads)
    closest = 2 ** math.floor(math.log2(heads))
    return power_of_2(closest) + alibi_slopes(2 * closest)[0::2][: heads - closest]


def parse_conv_spec(spec: str) -> list[tuple[int, int, int]]:
    """``feature_encoder_spec`` (e.g. ``"[(512, 10, 5)] + [(512, 3, 2)] * 4 + ..."``) without ``eval``."""
    import ast

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return value(node.left) + value(node.right)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            return value(node.left) * value(node.right)
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [value(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        raise ValueError(f"unexpected {ast.dump(node)}")

    try:
        layers = value(ast.parse(str(spec), mode="eval").body)
        return [(int(c), int(k), int(s)) for (c, k, s) in layers]
    except (SyntaxError, ValueError, TypeError) as e:
        raise ModelFormatError(f"unreadable feature_encoder_spec {spec!r}: {e}") from e


class _Graph:
    """A tiny node-list builder: each method adds nodes and returns the output's name."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.names: set[str] = set()
        self.n = 0

    def const(self, arr: Any, name: str | None = None) -> str:
        name = name or f"c{len(self.inits)}"
        if name in self.names:
            return name
        self.names.add(name)
        self.inits.append(self.numpy_helper.from_array(np.asarray(arr), name))
        return name

    def i64(self, *values: int) -> str:
        return self.const(np.array(values, np.int64), "i64_" + "_".join(str(v).replace("-", "m") for v in values))

    def f32(self, value: float) -> str:
        return self.const(np.array(value, np.float32), f"f32_{value!r}".replace("-", "m").replace(".", "p"))

    def op(self, op_type: str, *inputs: str, n_out: int = 1, out_name: str | None = None, **attrs: Any) -> Any:
        self.n += 1
        outs = [out_name] if out_name else [f"{op_type.lower()}{self.n}_{i}" for i in range(n_out)]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), outs, name=f"{op_type}_{self.n}", **attrs))
        return outs[0] if n_out == 1 else outs

    # ---- layers -------------------------------------------------------------------------------------
    def linear(self, x: str, w: np.ndarray, b: np.ndarray | None, name: str) -> str:
        y = self.op("MatMul", x, self.const(np.ascontiguousarray(w.T), f"{name}.weight_t"))
        return self.op("Add", y, self.const(b, f"{name}.bias")) if b is not None else y

    def layer_norm(self, x: str, dim: int, w: np.ndarray | None, b: np.ndarray | None, eps: float, name: str) -> str:
        scale = self.const(w if w is not None else np.ones(dim, np.float32), f"{name}.weight" if w is not None else f"ones{dim}")
        bias = self.const(b if b is not None else np.zeros(dim, np.float32), f"{name}.bias" if b is not None else f"zeros{dim}")
        return self.op("LayerNormalization", x, scale, bias, axis=-1, epsilon=float(eps))

    def gelu(self, x: str, out_name: str | None = None) -> str:  # exact (erf) GELU, torch.nn.GELU's default
        e = self.op("Erf", self.op("Mul", x, self.f32(1 / math.sqrt(2))))  # (Gelu is opset 20)
        return self.op("Mul", self.op("Mul", x, self.f32(0.5)), self.op("Add", e, self.f32(1.0)), out_name=out_name)

    def dim_of(self, x: str, axis: int) -> str:
        """Size of ``x`` along ``axis`` as a 1-element int64 tensor."""
        return self.op("Gather", self.op("Shape", x), self.i64(axis), axis=0)


def _f32(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def build_model(weights: Mapping[str, np.ndarray], model_conf: Mapping[str, Any], *, name: str = "emotion2vec"):
    """The ONNX ``ModelProto``: (samples float32 [N, S], lengths int64 [N]) -> frames float32 [N, T, D].

    Raises :class:`ModelFormatError` when a weight is missing or has an unexpected shape, or the
    configuration uses a variant callsense does not build (learned ALiBi, group-norm front-end).
    """
    from onnx import TensorProto

    audio = dict(model_conf.get("modalities", {}).get("audio", {}))
    if audio.get("learned_alibi"):
        raise ModelFormatError("learned ALiBi biases are not supported by the ONNX conversion")
    if audio.get("extractor_mode", "layer_norm") != "layer_norm":
        raise ModelFormatError(f"front-end mode {audio.get('extractor_mode')!r} is not supported (layer_norm only)")
    dim = int(model_conf["embed_dim"])
    heads = int(model_conf["num_heads"])
    eps = float(model_conf.get("norm_eps", 1e-5) or 1e-5)
    post_ln_first = bool(model_conf.get("layer_norm_first", False))
    conv = parse_conv_spec(audio["feature_encoder_spec"])
    alibi_heads = int(audio.get("num_alibi_heads", heads))
    use_alibi = bool(audio.get("use_alibi_encoder", False))
    num_extra = int(audio.get("num_extra_tokens", 0))
    prenet_depth = int(audio.get("prenet_depth", 0))
    depth = int(model_conf["depth"])
    pos_depth = int(audio["conv_pos_depth"])
    pos_k = max(3, int(audio["conv_pos_width"]) // pos_depth)
    pos_groups = int(audio["conv_pos_groups"])

    def w(key: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
        if key not in weights:
            raise ModelFormatError(f"the checkpoint lacks weight {key}", hint="config.yaml and model.pt do not match")
        arr = _f32(weights[key])
        if shape is not None and tuple(arr.shape) != shape:
            raise ModelFormatError(f"weight {key} has shape {tuple(arr.shape)}, config.yaml implies {shape}",
                                   hint="config.yaml and model.pt do not match")
        return arr

    def opt(key: str) -> np.ndarray | None:
        return _f32(weights[key]) if key in weights else None

    g = _Graph()
    samples, lengths = "samples", "lengths"

    # ---- normalisation over the valid samples, padding zeroed ----------------------------------------
    s_len = g.op("Squeeze", g.dim_of(samples, 1), g.i64(0))
    arange = g.op("Range", g.const(np.array(0, np.int64), "zero_i64"), s_len, g.const(np.array(1, np.int64), "one_i64"))
    svalid = g.op("Cast", g.op("Less", g.op("Unsqueeze", arange, g.i64(0)), g.op("Unsqueeze", lengths, g.i64(1))),
                  to=TensorProto.FLOAT)
    x = samples
    if model_conf.get("normalize", False):
        count = g.op("Unsqueeze", g.op("Cast", lengths, to=TensorProto.FLOAT), g.i64(1))
        mean = g.op("Div", g.op("ReduceSum", g.op("Mul", x, svalid), g.i64(1), keepdims=1), count)
        centred = g.op("Sub", x, mean)
        var = g.op("Div", g.op("ReduceSum", g.op("Mul", g.op("Mul", centred, centred), svalid), g.i64(1), keepdims=1), count)
        x = g.op("Div", centred, g.op("Sqrt", g.op("Add", var, g.f32(1e-5))))
    x = g.op("Mul", x, svalid, out_name=NORMALISED)

    # ---- front-end: conv as strided GEMMs, channels last ---------------------------------------------
    h = g.op("Unsqueeze", x, g.i64(-1))  # [N, S, 1]
    c_in = 1
    for i, (c_out, k, st) in enumerate(conv):
        pre = f"{ENC}local_encoder.conv_layers.{i}."
        kernel = w(pre + "0.weight", (c_out, c_in, k))
        groups = (k - 1) // st + 1
        length = g.dim_of(h, 1)
        t_out = g.op("Add", g.op("Div", g.op("Sub", length, g.i64(k)), g.i64(st)), g.i64(1))
        n_rows = g.op("Mul", g.op("Add", t_out, g.i64(groups - 1)), g.i64(st))
        padded = g.op("Pad", h, g.i64(0, 0, 0, 0, st, 0))  # the last block may reach past the input
        padded = g.op("Slice", padded, g.i64(0), n_rows, g.i64(1))
        blocks = g.op("Reshape", padded, g.i64(0, -1, st * c_in))
        y = None
        for q in range(groups):
            taps = range(q * st, min(k, (q + 1) * st))
            wq = np.concatenate([kernel[:, :, j].T for j in taps], axis=0)  # [len(taps) * C_in, C_out]
            part = g.op("Slice", blocks, g.i64(q, 0), g.op("Concat", g.op("Add", t_out, g.i64(q)),
                                                            g.i64(len(taps) * c_in), axis=0), g.i64(1, 2))
            part = g.op("MatMul", part, g.const(np.ascontiguousarray(wq), f"{pre}0.weight_gemm{q}"))
            y = part if y is None else g.op("Add", y, part)
        y = g.layer_norm(y, c_out, w(pre + "2.1.weight", (c_out,)), w(pre + "2.1.bias", (c_out,)), 1e-5, pre + "2.1")
        h = g.gelu(y, out_name=FEATURES if i == len(conv) - 1 else None)
        c_in = c_out
    pf = f"{ENC}project_features."
    x = g.layer_norm(h, c_in, w(pf + "1.weight", (c_in,)), w(pf + "1.bias", (c_in,)), 1e-5, pf + "1")
    x = g.linear(x, w(pf + "2.weight", (dim, c_in)), w(pf + "2.bias", (dim,)), pf + "2")  # [N, T, D]

    # frame validity from the sample lengths, through the same convolution arithmetic
    flen = lengths
    for _, k, st in conv:
        flen = g.op("Add", g.op("Div", g.op("Sub", flen, g.i64(k)), g.i64(st)), g.i64(1))
    t_len = g.op("Squeeze", g.dim_of(x, 1), g.i64(0))
    t_range = g.op("Range", "zero_i64", t_len, "one_i64")
    valid = g.op("Less", g.op("Unsqueeze", t_range, g.i64(0)), g.op("Unsqueeze", flen, g.i64(1)))  # [N, T]
    vmask = g.op("Unsqueeze", g.op("Cast", valid, to=TensorProto.FLOAT), g.i64(-1))  # [N, T, 1]
    x = g.op("Mul", x, vmask)

    # ---- positional convolutions ---------------------------------------------------------------------
    rp = f"{ENC}relative_positional_encoder."
    y = x
    first = 1
    if audio.get("conv_pos_pre_ln"):
        # Sequential(LayerNorm, Sequential(TransposeLast, *convs, TransposeLast)): the convs move one level down
        y = g.op("Mul", g.layer_norm(y, dim, w(rp + "0.weight", (dim,)), w(rp + "0.bias", (dim,)), 1e-5, rp + "0"), vmask)
        rp = rp + "1."
    for j in range(pos_depth):
        pre = f"{rp}{first + j}.0."
        cw = w(pre + "weight", (dim, dim // pos_groups, pos_k))
        cy = g.op("Conv", g.op("Transpose", y, perm=[0, 2, 1]), g.const(cw, pre + "weight"),
                  g.const(w(pre + "bias", (dim,)), pre + "bias"), group=pos_groups, kernel_shape=[pos_k],
                  pads=[pos_k // 2, pos_k // 2])
        cy = g.op("Transpose", cy, perm=[0, 2, 1])
        if pos_k % 2 == 0:  # SamePad drops the last frame of an even kernel
            cy = g.op("Slice", cy, g.i64(0), g.i64(-1), g.i64(1))
        cy = g.gelu(g.layer_norm(cy, dim, None, None, 1e-5, f"posln{j}"))
        y = g.op("Mul", cy, vmask)
    x = g.op("Add", x, y)

    # ---- attention bias: ALiBi from the length, extra tokens, key padding ----------------------------
    pos = g.op("Cast", t_range, to=TensorProto.FLOAT)
    dist = g.op("Neg", g.op("Abs", g.op("Sub", g.op("Unsqueeze", pos, g.i64(0)), g.op("Unsqueeze", pos, g.i64(1)))))
    dist = g.op("Unsqueeze", dist, g.i64(0, 1))  # [1, 1, T, T]
    slopes = np.array(alibi_slopes(alibi_heads), np.float32).reshape(1, alibi_heads, 1, 1)
    scale = opt(f"{ENC}alibi_scale") if use_alibi else None
    if use_alibi and scale is None:
        raise ModelFormatError(f"the checkpoint lacks weight {ENC}alibi_scale")
    if scale is not None:
        scale = np.clip(scale, 0, None)  # FunASR clamps the learned scale at 0
    if num_extra:
        dist = g.op("Pad", dist, g.i64(0, 0, num_extra, num_extra, 0, 0, 0, 0))
    key_valid = valid
    n_batch = g.dim_of(x, 0)
    if num_extra:
        extra = w(f"{ENC}extra_tokens", (1, num_extra, dim))
        tokens = g.op("Expand", g.const(extra, f"{ENC}extra_tokens"), g.op("Concat", n_batch, g.i64(num_extra, dim), axis=0))
        x = g.op("Concat", tokens, x, axis=1)
        ones = g.op("Expand", g.const(np.ones((1, num_extra), bool), "extra_valid"),
                    g.op("Concat", n_batch, g.i64(num_extra), axis=0))
        key_valid = g.op("Concat", ones, valid, axis=1)
    key_bias = g.op("Where", key_valid, g.f32(0.0), g.f32(float("-inf")))
    key_bias = g.op("Unsqueeze", key_bias, g.i64(1, 2))  # [N, 1, 1, T']

    biases: dict[int, str] = {}

    def layer_bias(index: int) -> str:
        if not use_alibi:
            return key_bias
        per_layer = scale.shape[0] > 1
        slot = index if per_layer else 0
        if slot not in biases:
            s = slopes * (scale[slot].reshape(1, -1, 1, 1) if scale is not None else 1.0)
            biases[slot] = g.op("Add", g.op("Mul", dist, g.const(s.astype(np.float32), f"alibi_slopes{slot}")), key_bias)
        return biases[slot]

    def block(x: str, pre: str, bias: str) -> str:
        def attention(v_in: str) -> str:
            qkv = g.linear(v_in, w(pre + "attn.qkv.weight", (3 * dim, dim)), opt(pre + "attn.qkv.bias"), pre + "attn.qkv")
            qkv = g.op("Transpose", g.op("Reshape", qkv, g.i64(0, 0, 3, heads, dim // heads)), perm=[2, 0, 3, 1, 4])
            q, k, v = (g.op("Squeeze", part, g.i64(0)) for part in g.op("Split", qkv, g.i64(1, 1, 1), axis=0, n_out=3))
            q = g.op("Mul", q, g.f32(float((dim // heads) ** -0.5)))
            scores = g.op("Add", g.op("MatMul", q, g.op("Transpose", k, perm=[0, 1, 3, 2])), bias)
            ctx = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)
            ctx = g.op("Reshape", g.op("Transpose", ctx, perm=[0, 2, 1, 3]), g.i64(0, 0, dim))
            return g.linear(ctx, w(pre + "attn.proj.weight", (dim, dim)), w(pre + "attn.proj.bias", (dim,)), pre + "attn.proj")

        def norm(which: str, v_in: str) -> str:
            return g.layer_norm(v_in, dim, w(f"{pre}{which}.weight", (dim,)), opt(f"{pre}{which}.bias"), eps, pre + which)

        def mlp(v_in: str) -> str:
            hidden = int(dim * float(model_conf.get("mlp_ratio", 4.0)))
            h1 = g.gelu(g.linear(v_in, w(pre + "mlp.fc1.weight", (hidden, dim)), w(pre + "mlp.fc1.bias", (hidden,)),
                                 pre + "mlp.fc1"))
            return g.linear(h1, w(pre + "mlp.fc2.weight", (dim, hidden)), w(pre + "mlp.fc2.bias", (dim,)), pre + "mlp.fc2")

        if post_ln_first:
            x = g.op("Add", x, attention(norm("norm1", x)))
            r = mlp(norm("norm2", x))
            return g.op("Add", r, r)  # AltBlock adds r to itself when layer_norm_first (dropout is identity)
        x = g.op("Add", x, attention(x))
        r = norm("norm1", x)
        return norm("norm2", g.op("Add", r, mlp(r)))

    ctx_norm = f"{ENC}context_encoder.norm."
    if not post_ln_first and f"{ctx_norm}weight" in weights:
        x = g.layer_norm(x, dim, w(ctx_norm + "weight", (dim,)), opt(ctx_norm + "bias"), eps, ctx_norm[:-1])
    for i in range(prenet_depth):
        x = block(x, f"{ENC}context_encoder.blocks.{i}.", layer_bias(i))
    if post_ln_first and f"{ctx_norm}weight" in weights:
        x = g.layer_norm(x, dim, w(ctx_norm + "weight", (dim,)), opt(ctx_norm + "bias"), eps, ctx_norm[:-1])
    for i in range(depth):
        x = block(x, f"blocks.{i}.", layer_bias(prenet_depth + i))
    if post_ln_first and "norm.weight" in weights:
        x = g.layer_norm(x, dim, w("norm.weight", (dim,)), opt("norm.bias"), eps, "norm")
    if num_extra:
        x = g.op("Slice", x, g.i64(num_extra), g.i64(np.iinfo(np.int64).max), g.i64(1))
    g.nodes.append(g.helper.make_node("Identity", [x], ["frames"], name="frames"))

    graph = g.helper.make_graph(
        g.nodes, name,
        [g.helper.make_tensor_value_info("samples", TensorProto.FLOAT, ["batch", "samples"]),
         g.helper.make_tensor_value_info("lengths", TensorProto.INT64, ["batch"])],
        [g.helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["batch", "frames", dim])],
        g.inits,
    )
    model = g.helper.make_model(graph, opset_imports=[g.helper.make_opsetid("", OPSET)], producer_name="callsense")
    model.ir_version = 8
    return model


def head_weights(weights: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The linear classifier (``proj.weight`` [C, D], ``proj.bias`` [C]) of a fine-tuned checkpoint."""
    if "proj.weight" not in weights or "proj.bias" not in weights:
        raise ModelFormatError("the checkpoint has no classification head (a pre-trained, not fine-tuned, model)",
                               hint="use emotion2vec_plus_* or emotion2vec_base_finetuned")
    return _f32(weights["proj.weight"]), _f32(weights["proj.bias"])
