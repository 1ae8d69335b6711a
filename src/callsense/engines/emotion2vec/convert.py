"""Convert a published FunASR emotion2vec checkpoint to callsense's ONNX format, without torch.

The hubs publish emotion2vec+ only as FunASR checkpoints (``config.yaml``, ``model.pt``,
``tokens.txt``). :func:`convert_checkpoint` reads ``model.pt`` with the safe reader
(:mod:`~callsense.engines.emotion2vec.checkpoint`), builds the graph with
:func:`~callsense.engines.emotion2vec.graph.build_model` (the builder the forge uses too), writes the
directory described in :mod:`~callsense.engines.emotion2vec.export` (fp32 and dynamic int8) and checks
the result before keeping it:

* the graph passes ``onnx.checker`` and runs in onnxruntime at several lengths;
* every length gives the frame count the front-end implies, finite values, and a padded batch gives
  the same frames as one segment at a time (the padding masks work);
* the int8 model keeps the time-averaged features of the fp32 one (cosine >= 0.99).

The torch export (``export.export_onnx``) stays as the reference: the tests compare both.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from callsense.engines.emotion2vec.head import CONV_SPEC, FRAME_RATE, frame_count, read_tokens
from callsense.errors import ModelFormatError

log = logging.getLogger("callsense")

FACTS_FILE = "emotion2vec.json"
FORMAT_VERSION = 1
PULL_HINT = "pull the checkpoint again: callsense models pull NAME --runtime funasr"


def read_config(funasr_dir: Path) -> dict[str, Any]:
    """``model_conf`` of an emotion2vec ``config.yaml`` (checked to describe an Emotion2vec model)."""
    import yaml

    path = Path(funasr_dir) / "config.yaml"
    try:
        config = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise ModelFormatError(f"cannot read config.yaml: {e}", source=path, hint=PULL_HINT) from e
    if not isinstance(config, dict) or "motion2vec" not in str(config.get("model", "")):
        raise ModelFormatError("config.yaml does not describe an Emotion2vec model", source=path)
    conf = config.get("model_conf")
    if not isinstance(conf, dict) or "modalities" not in conf:
        raise ModelFormatError("config.yaml has no model_conf.modalities", source=path, hint=PULL_HINT)
    return conf


def write_onnx_dir(tmp: Path, model: Any, head: tuple[np.ndarray, np.ndarray], labels: tuple[str, ...],
                   conf: dict[str, Any], tokens_src: Path, *, int8: bool, fp32: bool,
                   facts: dict[str, Any]) -> dict[str, Any]:
    """Write model.onnx (+ model.int8.onnx), head.npz, tokens.txt and emotion2vec.json into ``tmp``."""
    import onnx

    from callsense.engines.emotion2vec.export import int8_facts, quantize_int8
    from callsense.engines.emotion2vec.graph import parse_conv_spec

    weight, bias = head
    if weight.shape[0] != len(labels):
        raise ModelFormatError(f"the head has {weight.shape[0]} classes but tokens.txt lists {len(labels)}",
                               source=tokens_src, hint="config.yaml, model.pt and tokens.txt do not match")
    onnx.checker.check_model(model)
    onnx.save(model, str(tmp / "model.onnx"))
    np.savez(tmp / "head.npz", weight=weight, bias=bias)
    shutil.copyfile(tokens_src, tmp / "tokens.txt")
    conv_spec = [(k, s) for (_, k, s) in parse_conv_spec(conf["modalities"]["audio"]["feature_encoder_spec"])]
    if [tuple(c) for c in conv_spec] != [tuple(c) for c in CONV_SPEC]:
        log.warning("emotion2vec front-end %s differs from the standard one; frame counts follow the model", conv_spec)
    out = {
        "format": "callsense-emotion2vec-onnx", "format_version": FORMAT_VERSION, "dim": int(weight.shape[1]),
        "frame_rate": FRAME_RATE, "sample_rate": 16000, "conv_spec": [list(c) for c in conv_spec],
        "inputs": ["samples", "lengths"], "outputs": ["frames"],
        "normalize": "in-graph" if conf.get("normalize") else "none", "labels": list(labels), **facts,
    }
    check_onnx(tmp / "model.onnx", conv_spec)
    if int8:
        quantize_int8(tmp / "model.onnx", tmp / "model.int8.onnx")
        check_int8(tmp / "model.onnx", tmp / "model.int8.onnx")
        out["int8"] = int8_facts()
    if not fp32:
        (tmp / "model.onnx").unlink()
    (tmp / FACTS_FILE).write_text(json.dumps(out, indent=2, ensure_ascii=False), encoding="utf-8")
    return out


def convert_checkpoint(funasr_dir: Path, out_dir: Path, *, int8: bool = True, fp32: bool = True) -> Path:
    """Convert ``funasr_dir`` (config.yaml, model.pt, tokens.txt) into ``out_dir``; no torch needed.

    The directory appears whole or not at all (written beside it, then renamed). Returns ``out_dir``.
    Raises :class:`ModelFormatError` naming the file when the checkpoint is unreadable, does not match
    its config, or the converted model fails its checks.
    """
    from callsense.engines.emotion2vec.checkpoint import read_state
    from callsense.engines.emotion2vec.graph import build_model, head_weights

    funasr_dir, out_dir = Path(funasr_dir), Path(out_dir)
    conf = read_config(funasr_dir)
    labels = read_tokens(funasr_dir / "tokens.txt")
    state = read_state(funasr_dir / "model.pt")
    try:
        model = build_model(state, conf)
        head = head_weights(state)
    except ModelFormatError as e:
        raise ModelFormatError(e.message, source=funasr_dir / "model.pt", hint=e.hint) from e
    del state
    tmp = out_dir.with_name(out_dir.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        write_onnx_dir(tmp, model, head, labels, conf, funasr_dir / "tokens.txt", int8=int8, fp32=fp32,
                       facts={"converted_from": str(funasr_dir), "converter": "callsense (numpy, no torch)"})
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    log.info("converted %s -> %s", funasr_dir, out_dir)
    return out_dir


def _probe(n_samples: list[int]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    batch = np.zeros((len(n_samples), max(n_samples)), np.float32)
    for i, n in enumerate(n_samples):
        batch[i, :n] = rng.standard_normal(n).astype(np.float32) * 0.1
    return batch, np.array(n_samples, np.int64)


def check_onnx(path: Path, conv_spec: list[tuple[int, int]], lengths_s: tuple[float, ...] = (0.7, 1.9, 4.3),
               tol: float = 1e-4) -> None:
    """Run the model at several lengths: right frame counts, finite values, batch == one by one."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    lens = [int(s * 16000) for s in lengths_s]
    batch, lengths = _probe(lens)
    got = sess.run(None, {"samples": batch, "lengths": lengths})[0]
    for i, n in enumerate(lens):
        one = sess.run(None, {"samples": batch[i:i + 1, :n], "lengths": lengths[i:i + 1]})[0][0]
        frames = frame_count(n, conv_spec)
        if one.shape[0] != frames or not np.isfinite(one).all():
            raise ModelFormatError(f"the converted model gives {one.shape[0]} frames (expected {frames}) or "
                                   f"non-finite values at {n / 16000:.2f} s", source=path,
                                   hint="report this with the checkpoint's config.yaml")
        diff = float(np.abs(got[i, :frames] - one).max())
        if diff > tol:
            raise ModelFormatError(f"padded batch differs from one segment by {diff:.2e} at {n / 16000:.2f} s",
                                   source=path, hint="report this with the checkpoint's config.yaml")


def check_int8(fp32_path: Path, int8_path: Path, min_cosine: float = 0.99) -> None:
    """The int8 model keeps the time-averaged features (what the head and the embeddings use)."""
    import onnxruntime as ort

    batch, lengths = _probe([int(1.9 * 16000)])
    a = ort.InferenceSession(str(fp32_path), providers=["CPUExecutionProvider"]).run(
        None, {"samples": batch, "lengths": lengths})[0][0].mean(0)
    b = ort.InferenceSession(str(int8_path), providers=["CPUExecutionProvider"]).run(
        None, {"samples": batch, "lengths": lengths})[0][0].mean(0)
    cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
    if not cos >= min_cosine:
        raise ModelFormatError(f"the int8 model drifts from fp32 (cosine {cos:.4f})", source=int8_path,
                               hint="use the fp32 model: callsense models import DIR --fp32")
