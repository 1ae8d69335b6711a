"""Forge random-weight emotion2vec+ models in the exact on-disk formats of both runtimes.

* ``forge_funasr``: a FunASR checkpoint directory (``config.yaml``, ``model.pt``, ``tokens.txt``) of the
  real ``Emotion2vec`` model class with random weights: ``tiny`` (32-dim, 2 blocks: seconds, a few
  hundred kB) or ``full`` (base 768-dim / large 1024-dim: the real sizes and compute). Needs torch.
* ``forge_onnx``: callsense's ONNX directory (``model.onnx`` [+ ``model.int8.onnx``], ``head.npz``,
  ``tokens.txt``, ``emotion2vec.json``). ``tiny`` is built directly with ``onnx.helper`` (the same
  strided convolutional front-end at 50 frames/s, then two dense layers) and needs no torch;
  ``via="export"`` (and every ``full`` model) exports a forged FunASR checkpoint instead.

Steering: ``label="angry"`` biases the classifier head so that class wins on any input (``margin`` is
the bias in logits), so tests can assert labels. Outputs of forged models mean nothing; the speed and
memory of ``full`` ones are real.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from callsense.engines.emotion2vec.head import CONV_SPEC, FRAME_RATE
from callsense.errors import DependencyError, UsageError
from callsense.labels import EMOTION_NAMES, EMOTIONS

TOKENS = "\n".join(e.zh_model if e.name == "unknown" else f"{e.zh_model}/{e.name}" for e in EMOTIONS) + "\n"
"""The hub's tokens.txt: ``生气/angry`` ... ``<unk>``."""

SIZES = {
    # name: (embed_dim, heads, main depth, prenet depth, conv channels, pos width, pos depth, pos groups, extra)
    "tiny": (32, 4, 1, 1, 32, 6, 2, 4, 2),
    "base": (768, 12, 8, 4, 512, 95, 5, 16, 10),
    "large": (1024, 16, 16, 8, 512, 95, 5, 16, 10),
}


def _arch(size: str, model: str) -> str:
    if size == "tiny":
        return "tiny"
    if size != "full":
        raise UsageError(f"size must be tiny or full, not {size!r}")
    return "large" if "large" in model else "base"


def model_conf(arch: str) -> dict[str, Any]:
    """``model_conf`` of config.yaml, shaped like the hub's emotion2vec+ configs (decoder dropped)."""
    dim, heads, depth, prenet, ch, pos_w, pos_d, pos_g, extra = SIZES[arch]
    spec = f"[({ch}, 10, 5)] + [({ch}, 3, 2)] * 4 + [({ch},2,2)] + [({ch},2,2)]"
    return {
        "loss_beta": 0.0, "loss_scale": None, "depth": depth, "start_drop_path_rate": 0.0,
        "end_drop_path_rate": 0.0, "num_heads": heads, "norm_eps": 1e-05, "norm_affine": True,
        "encoder_dropout": 0.1, "post_mlp_drop": 0.1, "attention_dropout": 0.1, "activation_dropout": 0.0,
        "dropout_input": 0.0, "layerdrop": 0.05, "embed_dim": dim, "mlp_ratio": 4.0, "layer_norm_first": False,
        "average_top_k_layers": depth, "end_of_block_targets": False, "clone_batch": 8, "normalize": True,
        "modalities": {"audio": {
            "type": "AUDIO", "prenet_depth": prenet, "prenet_layerdrop": 0.05, "prenet_dropout": 0.1,
            "start_drop_path_rate": 0.0, "end_drop_path_rate": 0.0, "num_extra_tokens": extra,
            "init_extra_token_zero": False, "mask_noise_std": 0.01, "mask_prob_min": None, "mask_prob": 0.5,
            "inverse_mask": False, "mask_prob_adjust": 0.05, "keep_masked_pct": 0.0, "mask_length": 5,
            "add_masks": False, "remove_masks": False, "mask_dropout": 0.0, "encoder_zero_mask": True,
            "mask_channel_prob": 0.0, "mask_channel_length": 64, "ema_local_encoder": False, "local_grad_mult": 1.0,
            "use_alibi_encoder": True, "alibi_scale": 1.0, "learned_alibi": False, "alibi_max_pos": None,
            "learned_alibi_scale": True, "learned_alibi_scale_per_head": True,
            "learned_alibi_scale_per_layer": False, "num_alibi_heads": heads, "model_depth": depth,
            "decoder": None, "extractor_mode": "layer_norm", "feature_encoder_spec": spec,
            "conv_pos_width": pos_w, "conv_pos_groups": pos_g, "conv_pos_depth": pos_d, "conv_pos_pre_ln": False,
        }},
    }


def _label_index(label: str | None) -> int | None:
    if label is None:
        return None
    if label not in EMOTION_NAMES:
        raise UsageError(f"unknown emotion label {label!r}; valid: {', '.join(EMOTION_NAMES)}")
    return EMOTION_NAMES.index(label)


def forge_funasr(out_dir: Path, size: str = "tiny", *, model: str = "emotion2vec-plus-large",
                 label: str | None = None, margin: float = 6.0, seed: int = 0, **_: Any) -> Path:
    """A FunASR emotion2vec checkpoint with random weights (needs torch and funasr)."""
    try:
        import torch
        import yaml
        from funasr.models.emotion2vec.model import Emotion2vec
    except ImportError as e:
        raise DependencyError("forging the funasr emotion2vec format needs torch and funasr",
                              hint="pip install 'callsense[torch]'") from e
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    arch = _arch(size, model)
    conf = model_conf(arch)
    torch.manual_seed(seed)
    net = Emotion2vec(model_conf=conf, vocab_size=len(EMOTION_NAMES))
    with torch.no_grad():
        enc = net.modality_encoders["AUDIO"]
        # Random, not the trained ~1.0, so the ALiBi scales differ per head (tests see every head path).
        enc.alibi_scale.uniform_(0.5, 1.5)
        index = _label_index(label)
        if index is not None:
            net.proj.bias.zero_()
            net.proj.bias[index] = margin
    config = {
        "model": "Emotion2vec", "model_conf": conf,
        "tokenizer": "CharTokenizer", "tokenizer_conf": {"unk_symbol": "<unk>", "split_with_space": True},
    }
    (out_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), "utf-8")
    torch.save(net.state_dict(), out_dir / "model.pt")
    (out_dir / "tokens.txt").write_text(TOKENS, "utf-8")
    return out_dir


def forge_onnx(out_dir: Path, size: str = "tiny", *, model: str = "emotion2vec-plus-large",
               label: str | None = None, margin: float = 6.0, seed: int = 0, via: str | None = None,
               int8: bool | None = None, **_: Any) -> Path:
    """callsense's ONNX emotion2vec directory with random weights.

    ``via``: ``"graph"`` (tiny only, no torch), ``"export"`` (forge a FunASR checkpoint, export it), or
    ``None``: graph for tiny, export for full. ``int8`` (default: for ``full``) also writes
    ``model.int8.onnx``, which the engine then prefers.
    """
    out_dir = Path(out_dir)
    int8 = (size == "full") if int8 is None else int8
    via = via or ("graph" if size == "tiny" else "export")
    if via == "graph":
        if size != "tiny":
            raise UsageError("only tiny emotion2vec ONNX models can be built without the real architecture")
        return _forge_graph(out_dir, label=label, margin=margin, seed=seed, int8=int8)
    if via != "export":
        raise UsageError(f"via must be graph or export, not {via!r}")
    if importlib.util.find_spec("torch") is None:
        raise DependencyError(f"forging a {size} emotion2vec ONNX model exports the real architecture: needs torch",
                              hint="pip install 'callsense[torch]'")
    from callsense.engines.emotion2vec.export import export_onnx

    with tempfile.TemporaryDirectory(prefix="forge-e2v-") as tmp:
        ckpt = forge_funasr(Path(tmp) / "funasr", size, model=model, label=label, margin=margin, seed=seed)
        export_onnx(ckpt, Path(tmp) / "onnx", int8=int8)
        out_dir.mkdir(parents=True, exist_ok=True)
        for f in (Path(tmp) / "onnx").iterdir():
            shutil.copy2(f, out_dir / f.name)
    facts = json.loads((out_dir / "emotion2vec.json").read_text("utf-8"))
    facts.update(forged=True, exported_from=f"forge:{size}:{_arch(size, model)}")
    (out_dir / "emotion2vec.json").write_text(json.dumps(facts, indent=2, ensure_ascii=False), "utf-8")
    return out_dir


def _forge_graph(out_dir: Path, *, label: str | None, margin: float, seed: int, int8: bool) -> Path:
    """A tiny emotion2vec-shaped ONNX graph: conv front-end (stride 320 -> 50 fps) + two dense layers."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    ch, dim = 16, 32
    inits, nodes = [], []

    def const(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    nodes.append(helper.make_node("Unsqueeze", ["samples", const("axis1", np.array([1], np.int64))], ["x0"]))
    prev, c_in = "x0", 1
    for i, (k, s) in enumerate(CONV_SPEC):
        w = rng.standard_normal((ch, c_in, k)).astype(np.float32) * np.float32(2.0 / np.sqrt(c_in * k))
        nodes.append(helper.make_node("Conv", [prev, const(f"conv{i}.w", w)], [f"c{i}"], strides=[s], kernel_shape=[k]))
        nodes.append(helper.make_node("Tanh", [f"c{i}"], [f"a{i}"]))
        prev, c_in = f"a{i}", ch
    nodes.append(helper.make_node("Transpose", [prev], ["t"], perm=[0, 2, 1]))
    w1 = rng.standard_normal((ch, dim)).astype(np.float32) / np.float32(np.sqrt(ch))
    w2 = rng.standard_normal((dim, dim)).astype(np.float32) / np.float32(np.sqrt(dim))
    nodes += [
        helper.make_node("MatMul", ["t", const("fc1.w", w1)], ["h1"]),
        helper.make_node("Add", ["h1", const("fc1.b", rng.standard_normal(dim).astype(np.float32) * 0.1)], ["h1b"]),
        helper.make_node("Tanh", ["h1b"], ["h1a"]),
        helper.make_node("MatMul", ["h1a", const("fc2.w", w2)], ["h2"]),
        helper.make_node("Add", ["h2", const("fc2.b", rng.standard_normal(dim).astype(np.float32) * 0.1)], ["h2b"]),
        helper.make_node("Tanh", ["h2b"], ["frames"]),
    ]
    graph = helper.make_graph(
        nodes, "emotion2vec_forged_tiny",
        [helper.make_tensor_value_info("samples", TensorProto.FLOAT, ["batch", "samples"]),
         helper.make_tensor_value_info("lengths", TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["batch", "frames", dim])],
        inits,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="callsense-forge")
    m.ir_version = 8
    onnx.checker.check_model(m)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(out_dir / "model.onnx"))
    # Each frame depends only on its own samples, so padding needs no mask: ``lengths`` is accepted
    # (the format's contract) and the engine cuts each row at its own frame count.
    weight = (rng.standard_normal((len(EMOTION_NAMES), dim)) / np.sqrt(dim)).astype(np.float32)
    bias = np.zeros(len(EMOTION_NAMES), np.float32)
    index = _label_index(label)
    if index is not None:
        bias[index] = margin
    np.savez(out_dir / "head.npz", weight=weight, bias=bias)
    (out_dir / "tokens.txt").write_text(TOKENS, "utf-8")
    if int8:
        from callsense.engines.emotion2vec.export import quantize_int8

        quantize_int8(out_dir / "model.onnx", out_dir / "model.int8.onnx")
    facts = {"format": "callsense-emotion2vec-onnx", "format_version": 1, "dim": dim, "frame_rate": FRAME_RATE,
             "sample_rate": 16000, "conv_spec": [list(c) for c in CONV_SPEC], "inputs": ["samples", "lengths"],
             "outputs": ["frames"], "normalize": "none", "labels": list(EMOTION_NAMES), "forged": True,
             "exported_from": "forge:tiny:graph"}
    (out_dir / "emotion2vec.json").write_text(json.dumps(facts, indent=2, ensure_ascii=False), "utf-8")
    return out_dir
