"""Export an emotion2vec checkpoint (FunASR layout) to callsense's ONNX format with torch: the reference.

No ONNX export of emotion2vec is published, so callsense makes its own. Everyday use needs no torch:
``callsense models pull`` / ``models import`` convert the checkpoint with
:mod:`~callsense.engines.emotion2vec.convert` (numpy + ``onnx.helper``). This module traces FunASR's own
model class instead (``callsense models export NAME --torch``, the ``torch`` extra) and is what the
tests compare the conversion with.

The ONNX directory holds:

* ``model.onnx`` (and/or ``model.int8.onnx``): inputs ``samples`` float32 [N, S] (raw 16 kHz audio,
  zero-padded) and ``lengths`` int64 [N] (valid samples per row); output ``frames`` float32 [N, T, D],
  the backbone's features at 50 frames/s. Rows are normalised inside the graph over their valid samples
  (as FunASR does for the whole input) and padding is masked (the positional convolutions and the
  attention never see it), so a padded batch gives the same frames as one segment at a time;
* ``head.npz``: the linear classifier (``weight`` [9, D], ``bias`` [9]) applied outside the graph;
* ``tokens.txt``: the class labels (``生气/angry`` ...), copied from the checkpoint;
* ``emotion2vec.json``: facts (dim, frame rate, conv spec, inputs) the engine checks.

The trap this module avoids: FunASR caches its ALiBi attention bias per sequence length
(``get_alibi_bias``); traced as is, the bias of the tracing length is frozen into the graph and every
other length fails ("Reshape ... requested {1,16,709,709}"). The exported forward recomputes the bias
from the traced length (``-|i - j|`` times the per-head slopes), so the graph takes any length.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from callsense.engines.emotion2vec.graph import alibi_slopes
from callsense.engines.emotion2vec.head import CONV_SPEC, FRAME_RATE, read_tokens
from callsense.errors import DependencyError, ModelFormatError

log = logging.getLogger("callsense")

FACTS_FILE = "emotion2vec.json"
FORMAT_VERSION = 1
OPSET = 17
TORCH_HINT = "pip install 'callsense[torch]'"


def _torch():
    try:
        import torch
    except ImportError as e:
        raise DependencyError("exporting emotion2vec to ONNX needs torch and funasr", hint=TORCH_HINT) from e
    return torch


def load_checkpoint(funasr_dir: Path) -> tuple[Any, dict[str, Any], tuple[str, ...]]:
    """Build FunASR's ``Emotion2vec`` from a checkpoint directory without ``AutoModel`` (no hub, no VAD).

    Returns ``(model in eval mode, model_conf, labels)``.
    """
    torch = _torch()
    import yaml

    funasr_dir = Path(funasr_dir)
    try:
        config = yaml.safe_load((funasr_dir / "config.yaml").read_text("utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise ModelFormatError(f"cannot read config.yaml: {e}", source=funasr_dir,
                               hint="pull the checkpoint again: callsense models pull NAME --runtime funasr") from e
    if not isinstance(config, dict) or "motion2vec" not in str(config.get("model", "")):
        raise ModelFormatError("config.yaml does not describe an Emotion2vec model", source=funasr_dir / "config.yaml")
    labels = read_tokens(funasr_dir / "tokens.txt")
    try:
        from funasr.models.emotion2vec.model import Emotion2vec
    except ImportError as e:
        raise DependencyError("the FunASR package is not installed", hint=TORCH_HINT) from e
    model = Emotion2vec(model_conf=config["model_conf"], vocab_size=len(labels))
    try:
        state = torch.load(funasr_dir / "model.pt", map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises many types for a bad pickle
        raise ModelFormatError(f"cannot load model.pt: {e}", source=funasr_dir / "model.pt",
                               hint="the download is incomplete or corrupt; pull it again") from e
    for key in ("state_dict", "model_state_dict", "model"):  # where FunASR's own loader looks
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    # Official checkpoints may carry pre-training leftovers (EMA, decoder) or a DDP "module." prefix; only
    # the backbone and the head matter for inference.
    own = model.state_dict()
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if k in own}
    missing = [k for k in own if k not in state and ".decoder." not in k]
    if missing:
        raise ModelFormatError(f"model.pt lacks {len(missing)} weights, e.g. {missing[:3]}",
                               source=funasr_dir / "model.pt", hint="config.yaml and model.pt do not match")
    model.load_state_dict(state, strict=False)
    model.eval()
    return model, dict(config["model_conf"]), labels


def make_export_module(model: Any, model_conf: dict[str, Any]):
    """A ``torch.nn.Module``: (samples [N, S], lengths [N]) -> frames [N, T, D], padding-safe, any length."""
    torch = _torch()
    import torch.nn.functional as F

    enc = model.modality_encoders["AUDIO"]
    audio_cfg = model_conf["modalities"]["audio"]
    normalize = bool(model_conf.get("normalize", False))
    conv_spec = [(k, s) for (_, k, s) in enc.feature_enc_layers]
    heads = int(audio_cfg.get("num_alibi_heads", model_conf.get("num_heads")))
    use_alibi = enc.get_alibi_bias is not None
    if use_alibi and audio_cfg.get("learned_alibi"):
        raise ModelFormatError("learned ALiBi biases are not supported by the ONNX export")
    num_extra = int(audio_cfg.get("num_extra_tokens", 0))
    prenet_depth = int(audio_cfg.get("prenet_depth", 0))

    # relative_positional_encoder = Sequential(TransposeLast, [LayerNorm?], *conv layers, TransposeLast)
    pos_layers = [m for m in enc.relative_positional_encoder.modules()
                  if isinstance(m, torch.nn.Sequential) and any(isinstance(c, torch.nn.Conv1d) for c in m.children())]
    pre_ln = bool(audio_cfg.get("conv_pos_pre_ln", False))

    layer_norm_frontend = audio_cfg.get("extractor_mode") == "layer_norm" and all(
        blk[0].bias is None for blk in enc.local_encoder.conv_layers)

    def frontend_channels_last(samples):
        """The convolutional front-end as strided slices + MatMul, channels last: [N, S] -> [N, T, C].

        Same arithmetic as FunASR's Conv1d stack (conv -> LayerNorm over channels -> GELU), but as GEMMs:
        onnxruntime runs them faster than its 1-D convolutions, no transposes are needed around the
        per-frame LayerNorms, and dynamic int8 quantisation then covers the front-end too.
        """
        h = samples.unsqueeze(-1)  # [N, S, 1]
        for blk in enc.local_encoder.conv_layers:
            conv, ln, act = blk[0], blk[2][1], blk[3]
            k, st = conv.kernel_size[0], conv.stride[0]
            w = conv.weight  # [C_out, C_in, k]
            c_in = w.shape[1]
            t_out = torch.div(h.shape[1] - k, st, rounding_mode="floor") + 1
            # Rows grouped in blocks of `st` (a free reshape): output t reads blocks t, t+1, ...; tap j of
            # the kernel is row j % st of block t + j // st. One GEMM per block offset.
            groups = (k - 1) // st + 1
            n_rows = (t_out + groups - 1) * st
            h = F.pad(h, (0, 0, 0, st))[:, :n_rows]  # the last block may reach past the input: unused taps
            blocks = h.reshape(h.shape[0], -1, st * c_in)
            y = None
            for q in range(groups):
                taps = range(q * st, min(k, (q + 1) * st))
                wq = torch.cat([w[:, :, j].t() for j in taps], dim=0)  # [len(taps) * C_in, C_out]
                part = blocks[:, q:][:, :t_out, : len(taps) * c_in] @ wq
                y = part if y is None else y + part
            h = act(F.layer_norm(y, ln.normalized_shape, ln.weight, ln.bias, ln.eps))
        return h

    def block_forward(blk, x, bias):
        """AltBlock with an additive attention bias (ALiBi + key padding) instead of data-dependent masking."""
        attn = blk.attn
        b, n, c = x.shape
        h = attn.num_heads

        def attention(y):
            qkv = attn.qkv(y).reshape(b, n, 3, h, c // h).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0] * attn.scale, qkv[1], qkv[2]
            scores = q @ k.transpose(-2, -1) + bias
            probs = scores.softmax(dim=-1)
            return attn.proj((probs @ v).transpose(1, 2).reshape(b, n, c))

        if blk.layer_norm_first:
            x = x + attention(blk.norm1(x))
            r = blk.mlp(blk.norm2(x))
            return r + r  # post_mlp_dropout is identity at inference; AltBlock adds r to itself here
        x = x + attention(x)
        r = blk.norm1(x)
        return blk.norm2(r + blk.mlp(r))

    class Emotion2vecExport(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.register_buffer("slopes", torch.tensor(alibi_slopes(heads), dtype=torch.float32).view(1, heads, 1, 1))

        def forward(self, samples, lengths):
            n, s = samples.shape
            sample_valid = (torch.arange(s, device=samples.device).unsqueeze(0) < lengths.unsqueeze(1)).to(samples.dtype)
            if normalize:
                count = lengths.to(samples.dtype).unsqueeze(1)
                mean = (samples * sample_valid).sum(1, keepdim=True) / count
                var = (((samples - mean) * sample_valid) ** 2).sum(1, keepdim=True) / count
                samples = (samples - mean) / torch.sqrt(var + 1e-5)
            samples = samples * sample_valid

            if layer_norm_frontend:  # project_features = (TransposeLast, LayerNorm, Linear)
                x = enc.project_features[2](enc.project_features[1](frontend_channels_last(samples)))
            else:
                x = enc.project_features(enc.local_encoder(samples))  # [N, T, D]
            t = x.shape[1]
            flen = lengths
            for k, st in conv_spec:
                flen = torch.div(flen - k, st, rounding_mode="floor") + 1
            valid = (torch.arange(t, device=x.device).unsqueeze(0) < flen.unsqueeze(1))  # [N, T]
            vmask = valid.to(x.dtype).unsqueeze(-1)
            x = x * vmask

            # Positional convolutions: zero the padding before each one, as a lone segment's zero padding is.
            y = x
            if pre_ln:
                y = enc.relative_positional_encoder[0](y) * vmask
            y = y.transpose(1, 2)
            for layer in pos_layers:
                y = layer(y) * vmask.transpose(1, 2)
            x = x + y.transpose(1, 2)

            # ALiBi recomputed from the traced length (never FunASR's per-length cache) + key padding.
            pos = torch.arange(t, device=x.device, dtype=x.dtype)
            bias = -(pos.unsqueeze(0) - pos.unsqueeze(1)).abs().unsqueeze(0).unsqueeze(0) * self.slopes
            if not use_alibi:
                bias = bias * 0.0
            scale = enc.alibi_scale.clamp_min(0) if (use_alibi and enc.alibi_scale is not None) else None
            per_layer = None
            if scale is not None:
                if scale.size(0) == 1:
                    bias = bias * scale.squeeze(0)
                else:
                    per_layer = scale
            if enc.extra_tokens is not None:
                x = torch.cat([enc.extra_tokens.expand(n, -1, -1), x], dim=1)
                bias = F.pad(bias, (num_extra, 0, num_extra, 0))
                valid = F.pad(valid, (num_extra, 0), value=True)
            key_bias = torch.zeros_like(valid, dtype=x.dtype).masked_fill(~valid, float("-inf"))
            key_bias = key_bias.unsqueeze(1).unsqueeze(2)  # [N, 1, 1, T']

            ctx = enc.context_encoder
            if ctx.norm is not None and not ctx.layer_norm_first:
                x = ctx.norm(x)
            for i, blk in enumerate(ctx.blocks):
                ab = bias * per_layer[i] if per_layer is not None else bias
                x = block_forward(blk, x, ab + key_bias)
            if ctx.norm is not None and ctx.layer_norm_first:
                x = ctx.norm(x)
            for i, blk in enumerate(model.blocks):
                ab = bias * per_layer[prenet_depth + i] if per_layer is not None else bias
                x = block_forward(blk, x, ab + key_bias)
            if model.norm is not None:
                x = model.norm(x)
            return x[:, num_extra:]

    return Emotion2vecExport().eval(), conv_spec


def export_onnx(funasr_dir: Path, out_dir: Path, *, int8: bool = False, fp32: bool = True,
                check_lengths: tuple[float, ...] = (0.7, 1.9, 4.3)) -> Path:
    """Export a FunASR emotion2vec checkpoint directory to ``out_dir`` (callsense's ONNX format).

    Writes ``model.onnx`` (fp32) and, with ``int8``, ``model.int8.onnx`` (dynamic int8 MatMul weights).
    The export is checked against torch at several input lengths (seconds in ``check_lengths``) before
    it is kept; a mismatch raises :class:`ModelFormatError`. Returns ``out_dir``.
    """
    torch = _torch()
    funasr_dir, out_dir = Path(funasr_dir), Path(out_dir)
    model, conf, labels = load_checkpoint(funasr_dir)
    if model.proj is None:
        raise ModelFormatError("the checkpoint has no classification head (a pre-trained, not fine-tuned, model)",
                               source=funasr_dir, hint="use emotion2vec_plus_* or emotion2vec_base_finetuned")
    module, conv_spec = make_export_module(model, conf)
    if [tuple(c) for c in conv_spec] != [tuple(c) for c in CONV_SPEC]:
        log.warning("emotion2vec front-end %s differs from the standard one; frame counts follow the model", conv_spec)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    fp32_path = tmp / "model.onnx"
    # Trace with a padded batch of two so the padding path is what the graph records.
    dummy = torch.randn(2, 16000 * 2) * 0.1
    dummy_len = torch.tensor([16000 * 2, 16000 + 3210], dtype=torch.int64)
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter warns about every shape it traces; the check below is what counts.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (dummy, dummy_len), str(fp32_path), input_names=["samples", "lengths"],
            output_names=["frames"], opset_version=OPSET, dynamo=False, do_constant_folding=True,
            dynamic_axes={"samples": {0: "batch", 1: "samples"}, "lengths": {0: "batch"},
                          "frames": {0: "batch", 1: "frames"}},
        )
    np.savez(tmp / "head.npz", weight=model.proj.weight.detach().numpy().astype(np.float32),
             bias=model.proj.bias.detach().numpy().astype(np.float32))
    shutil.copyfile(funasr_dir / "tokens.txt", tmp / "tokens.txt")
    facts = {
        "format": "callsense-emotion2vec-onnx", "format_version": FORMAT_VERSION,
        "dim": int(model.proj.weight.shape[1]), "frame_rate": FRAME_RATE, "sample_rate": 16000,
        "conv_spec": [list(c) for c in conv_spec], "inputs": ["samples", "lengths"], "outputs": ["frames"],
        "normalize": "in-graph" if conf.get("normalize") else "none", "labels": list(labels),
        "exported_from": str(funasr_dir), "torch": torch.__version__,
    }
    _check(module, fp32_path, check_lengths)
    if int8:
        quantize_int8(fp32_path, tmp / "model.int8.onnx")
        facts["int8"] = int8_facts()
    if not fp32:
        fp32_path.unlink()
    (tmp / FACTS_FILE).write_text(json.dumps(facts, indent=2, ensure_ascii=False), encoding="utf-8")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)  # appears whole or not at all
    log.info("exported %s -> %s", funasr_dir, out_dir)
    return out_dir


def int8_facts() -> str:
    """How ``model.int8.onnx`` was quantised, for ``emotion2vec.json``."""
    from callsense.engines.quant import describe, int8_scheme

    return describe(int8_scheme())


def quantize_int8(src: Path, dst: Path, *, weight_type: str | None = None,
                  reduce_range: bool | None = None) -> Path:
    """Dynamic int8 quantisation of the MatMul weights (activations are quantised on the fly).

    ``weight_type``: ``"QInt8"`` or ``"QUInt8"``; by default ``engines.quant.int8_scheme()``
    (signed int8 where the CPU has a VNNI u8 x s8 dot product). The front-end's first layer (a 10-sample
    window of raw audio, K <= 16) stays fp32: it costs little and raw waveforms are where 8-bit
    resolution would hurt most.
    """
    import onnx
    from onnx import numpy_helper

    from callsense.engines.quant import quantize_matmuls

    model = onnx.load(str(src), load_external_data=False)
    shapes = {i.name: tuple(i.dims) for i in model.graph.initializer}
    consts = {n.output[0]: tuple(numpy_helper.to_array(a.t).shape) for n in model.graph.node if n.op_type == "Constant"
              for a in n.attribute if a.name == "value"}
    shapes.update(consts)
    exclude = [n.name for n in model.graph.node if n.op_type == "MatMul" and len(n.input) > 1
               and len(shapes.get(n.input[1], ())) == 2 and shapes[n.input[1]][0] <= 16]
    del model
    quantize_matmuls(src, dst, weight_type=weight_type, nodes_to_exclude=exclude, reduce_range=reduce_range)
    return dst


def _check(module: Any, onnx_path: Path, lengths_s: tuple[float, ...], tol: float = 1e-3) -> None:
    """Run the export at several lengths (one padded batch) and compare with torch."""
    import onnxruntime as ort

    torch = _torch()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    lens = [int(s * 16000) for s in lengths_s]
    batch = np.zeros((len(lens), max(lens)), np.float32)
    for i, n in enumerate(lens):
        batch[i, :n] = rng.standard_normal(n).astype(np.float32) * 0.1
    got = sess.run(None, {"samples": batch, "lengths": np.array(lens, np.int64)})[0]
    with torch.no_grad():
        for i, n in enumerate(lens):
            ref = module(torch.from_numpy(batch[i:i + 1, :n]), torch.tensor([n])).numpy()[0]
            diff = float(np.abs(got[i, : ref.shape[0]] - ref).max())
            if diff > tol:
                raise ModelFormatError(f"ONNX export differs from torch by {diff:.2e} at {n / 16000:.2f} s",
                                       source=onnx_path, hint="report this with your torch version")
