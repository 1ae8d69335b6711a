"""Forge random-weight emotion2vec+ models in the exact on-disk formats of both runtimes.

* ``forge_funasr``: a FunASR checkpoint directory (``config.yaml``, ``model.pt``, ``tokens.txt``) of the
  real ``Emotion2vec`` model class with random weights: ``tiny`` (32-dim, 2 blocks: seconds, a few
  hundred kB) or ``full`` (base 768-dim / large 1024-dim: the real sizes and compute). Needs torch.
* ``forge_onnx``: callsense's ONNX directory (``model.onnx`` [+ ``model.int8.onnx``], ``head.npz``,
  ``tokens.txt``, ``emotion2vec.json``): random weights of the real architecture (:func:`random_weights`)
  through the same graph builder that converts published checkpoints
  (:mod:`callsense.engines.emotion2vec.graph`), no torch, tiny or full; ``via="export"`` forges a FunASR
  checkpoint and exports it with torch instead (the reference).

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

from callsense.engines.emotion2vec.head import read_tokens
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


def random_weights(conf: dict[str, Any], *, n_labels: int = len(EMOTION_NAMES), label: str | None = None,
                   margin: float = 6.0, seed: int = 0) -> dict[str, np.ndarray]:
    """A random state dict of FunASR's ``Emotion2vec`` for ``conf`` (same keys and shapes), without torch.

    Linear and convolution weights follow torch's default initialisation scale; the ALiBi scales are
    random in [0.5, 1.5] so every head path differs; ``label`` steers the head as in :func:`forge_funasr`.
    """
    from callsense.engines.emotion2vec.graph import ENC, parse_conv_spec

    rng = np.random.default_rng(seed)
    audio = conf["modalities"]["audio"]
    dim, heads = int(conf["embed_dim"]), int(conf["num_heads"])
    out: dict[str, np.ndarray] = {}

    def uniform(shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        bound = 1.0 / np.sqrt(fan_in)
        return rng.uniform(-bound, bound, shape).astype(np.float32)

    def linear(key: str, n_out: int, n_in: int) -> None:
        out[key + ".weight"], out[key + ".bias"] = uniform((n_out, n_in), n_in), uniform((n_out,), n_in)

    def norm(key: str, n: int) -> None:
        out[key + ".weight"] = (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)
        out[key + ".bias"] = (0.1 * rng.standard_normal(n)).astype(np.float32)

    def block(pre: str) -> None:
        norm(pre + "norm1", dim)
        linear(pre + "attn.qkv", 3 * dim, dim)
        linear(pre + "attn.proj", dim, dim)
        norm(pre + "norm2", dim)
        hidden = int(dim * float(conf.get("mlp_ratio", 4.0)))
        linear(pre + "mlp.fc1", hidden, dim)
        linear(pre + "mlp.fc2", dim, hidden)

    extra = int(audio.get("num_extra_tokens", 0))
    if extra:
        out[ENC + "extra_tokens"] = rng.standard_normal((1, extra, dim)).astype(np.float32)
    out[ENC + "alibi_scale"] = rng.uniform(0.5, 1.5, (1, 1, int(audio.get("num_alibi_heads", heads)), 1, 1)
                                           ).astype(np.float32)
    c_in = 1
    for i, (c, k, _) in enumerate(parse_conv_spec(audio["feature_encoder_spec"])):
        pre = f"{ENC}local_encoder.conv_layers.{i}."
        out[pre + "0.weight"] = (rng.standard_normal((c, c_in, k)) * np.sqrt(2.0 / (c_in * k))).astype(np.float32)
        norm(pre + "2.1", c)
        c_in = c
    norm(f"{ENC}project_features.1", c_in)
    linear(f"{ENC}project_features.2", dim, c_in)
    depth = int(audio["conv_pos_depth"])
    k = max(3, int(audio["conv_pos_width"]) // depth)
    groups = int(audio["conv_pos_groups"])
    for j in range(depth):
        pre = f"{ENC}relative_positional_encoder.{j + 1}.0."
        out[pre + "weight"] = uniform((dim, dim // groups, k), dim // groups * k)
        out[pre + "bias"] = uniform((dim,), dim // groups * k)
    for i in range(int(audio.get("prenet_depth", 0))):
        block(f"{ENC}context_encoder.blocks.{i}.")
    norm(f"{ENC}context_encoder.norm", dim)
    for i in range(int(conf["depth"])):
        block(f"blocks.{i}.")
    out["proj.weight"] = uniform((n_labels, dim), dim)
    out["proj.bias"] = np.zeros(n_labels, np.float32)
    index = _label_index(label)
    if index is not None:
        out["proj.bias"][index] = margin
    else:
        out["proj.bias"] = uniform((n_labels,), dim)
    return out


def forge_onnx(out_dir: Path, size: str = "tiny", *, model: str = "emotion2vec-plus-large",
               label: str | None = None, margin: float = 6.0, seed: int = 0, via: str | None = None,
               int8: bool | None = None, **_: Any) -> Path:
    """callsense's ONNX emotion2vec directory with random weights of the real architecture.

    ``via``: ``"build"`` (default; random weights through the graph builder the checkpoint converter
    uses, no torch) or ``"export"`` (forge a FunASR checkpoint with torch and export it with torch, the
    reference path). ``int8`` (default: for ``full``) also writes ``model.int8.onnx``, which the engine
    then prefers.
    """
    out_dir = Path(out_dir)
    int8 = (size == "full") if int8 is None else int8
    via = via or "build"
    if via in ("build", "graph"):
        return _forge_built(out_dir, size, model=model, label=label, margin=margin, seed=seed, int8=int8)
    if via != "export":
        raise UsageError(f"via must be build or export, not {via!r}")
    if importlib.util.find_spec("torch") is None:
        raise DependencyError("forging via the torch export needs torch", hint="pip install 'callsense[torch]'")
    from callsense.engines.emotion2vec.export import export_onnx

    with tempfile.TemporaryDirectory(prefix="forge-e2v-") as tmp:
        ckpt = forge_funasr(Path(tmp) / "funasr", size, model=model, label=label, margin=margin, seed=seed)
        export_onnx(ckpt, Path(tmp) / "onnx", int8=int8)
        out_dir.mkdir(parents=True, exist_ok=True)
        for f in (Path(tmp) / "onnx").iterdir():
            shutil.copy2(f, out_dir / f.name)
    _mark_forged(out_dir, f"forge:{size}:{_arch(size, model)}:export")
    return out_dir


def _mark_forged(out_dir: Path, origin: str) -> None:
    facts = json.loads((out_dir / "emotion2vec.json").read_text("utf-8"))
    facts.update(forged=True, exported_from=origin)
    (out_dir / "emotion2vec.json").write_text(json.dumps(facts, indent=2, ensure_ascii=False), "utf-8")


def _forge_built(out_dir: Path, size: str, *, model: str, label: str | None, margin: float, seed: int,
                 int8: bool) -> Path:
    from callsense.engines.emotion2vec.convert import write_onnx_dir
    from callsense.engines.emotion2vec.graph import build_model, head_weights

    conf = model_conf(_arch(size, model))
    weights = random_weights(conf, label=label, margin=margin, seed=seed)
    built = build_model(weights, conf, name=f"emotion2vec_forged_{size}")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="forge-e2v-") as tmp:
        tokens = Path(tmp) / "tokens.txt"
        tokens.write_text(TOKENS, "utf-8")
        write_onnx_dir(out_dir, built, head_weights(weights), read_tokens(tokens), conf, tokens, int8=int8,
                       fp32=True, facts={})
    _mark_forged(out_dir, f"forge:{size}:{_arch(size, model)}:build")
    return out_dir
