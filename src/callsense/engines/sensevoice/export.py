"""Convert a FunASR SenseVoiceSmall checkpoint into the sherpa-onnx format (needs the torch extra).

    export_onnx(Path("~/.cache/modelscope/hub/models/iic/SenseVoiceSmall"), Path("out"))

writes ``out/model.onnx`` (fp32), ``out/model.int8.onnx`` (dynamic int8: MatMul weights as int8,
7-bit where x86 lacks VNNI, see ``engines/quant.py``; checked through sherpa-onnx itself) and ``out/tokens.txt`` (from the checkpoint's
sentencepiece model), with every metadata key sherpa-onnx requires (CMVN from ``am.mvn``). The graph
is FunASR's own model class: the four query embeddings are prepended inside the graph and the output
is the CTC head's logits ``[N, T+4, V]``, as sherpa-onnx expects.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from callsense.engines.sensevoice.formats import (
    FUNASR_TOKENIZER_FILES,
    INPUT_DIM,
    read_am_mvn,
    sherpa_metadata,
    write_tokens,
)
from callsense.engines.sensevoice.validate import validate_funasr_dir, validate_onnx_dir
from callsense.errors import DependencyError, ModelFormatError

log = logging.getLogger("callsense")

OPSET = 17


def _require_torch():
    try:
        import torch  # noqa: F401
        from funasr.models.sense_voice.model import SenseVoiceSmall  # noqa: F401
    except ImportError as e:
        raise DependencyError("exporting SenseVoice needs torch and FunASR",
                              hint="pip install 'callsense[torch]'") from e


def load_funasr_checkpoint(src_dir: Path) -> tuple[Any, list[str]]:
    """FunASR's ``SenseVoiceSmall`` with the checkpoint's weights (strict), and its token pieces."""
    import sentencepiece as spm
    import torch
    import yaml
    from funasr.models.sense_voice.model import SenseVoiceSmall

    validate_funasr_dir(src_dir)
    cfg = yaml.safe_load((src_dir / "config.yaml").read_text(encoding="utf-8"))
    bpe = next(src_dir / n for n in FUNASR_TOKENIZER_FILES if (src_dir / n).is_file())
    sp = spm.SentencePieceProcessor()
    sp.Load(str(bpe))
    pieces = [sp.IdToPiece(i) for i in range(sp.GetPieceSize())]
    frontend = cfg.get("frontend_conf") or {}
    if int(frontend.get("lfr_m", 7)) * int(frontend.get("n_mels", 80)) != INPUT_DIM:
        raise ModelFormatError("frontend_conf is not 80 mel bands x LFR 7", source=src_dir / "config.yaml")
    model = SenseVoiceSmall(encoder=cfg.get("encoder", "SenseVoiceEncoderSmall"), encoder_conf=cfg["encoder_conf"],
                            input_size=INPUT_DIM, vocab_size=len(pieces), **(cfg.get("model_conf") or {}))
    state = torch.load(src_dir / "model.pt", map_location="cpu", weights_only=True)
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelFormatError(f"model.pt does not match config.yaml ({str(e).splitlines()[0]})",
                               source=src_dir / "model.pt") from e
    model.eval()
    return model, pieces


def _wrapper(model):
    import torch

    class SherpaSenseVoice(torch.nn.Module):
        """sherpa-onnx's calling convention around FunASR's model: queries prepended in the graph."""

        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x, x_length, language, text_norm):
            m = self.m
            language_query = m.embed(language.long()).unsqueeze(1)
            text_norm_query = m.embed(text_norm.long()).unsqueeze(1)
            event_emo_query = m.embed(torch.tensor([[1, 2]], dtype=torch.long)).repeat(x.size(0), 1, 1)
            x = torch.cat((language_query, event_emo_query, text_norm_query, x), dim=1)
            encoder_out, _ = m.encoder(x, x_length + 4)
            if isinstance(encoder_out, tuple):
                encoder_out = encoder_out[0]
            return m.ctc.ctc_lo(encoder_out)

    return SherpaSenseVoice(model).eval()


def export_onnx(src_dir: Path, out_dir: Path, *, int8: bool = True, weight_type: str | None = None) -> Path:
    """Export the FunASR checkpoint in ``src_dir`` to ``out_dir`` (created); returns ``out_dir``.

    Writes ``model.onnx`` and ``tokens.txt``, plus ``model.int8.onnx`` when ``int8`` (``weight_type`` as
    :func:`quantize_int8`; ``"QUInt8"`` is sherpa-onnx's published format). Files are built
    in a temporary directory next to ``out_dir`` and moved in at the end, so an interrupted export
    leaves no half-written model behind. The result is validated like any downloaded model.
    """
    _require_torch()
    import onnx
    import torch

    src_dir, out_dir = Path(src_dir).expanduser(), Path(out_dir).expanduser()
    model, pieces = load_funasr_checkpoint(src_dir)
    neg_mean, inv_std = read_am_mvn(src_dir / "am.mvn")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=out_dir.parent) as tmp_name:
        tmp = Path(tmp_name)
        fp32 = tmp / "model.onnx"
        x = torch.randn(2, 40, INPUT_DIM)
        args = (x, torch.tensor([30, 40], dtype=torch.int32), torch.tensor([0, 3], dtype=torch.int32),
                torch.tensor([14, 15], dtype=torch.int32))
        log.info("sensevoice export: tracing %s", src_dir)
        with torch.no_grad():
            torch.onnx.export(
                _wrapper(model), args, str(fp32), opset_version=OPSET, dynamo=False,
                input_names=["x", "x_length", "language", "text_norm"], output_names=["logits"],
                dynamic_axes={"x": {0: "N", 1: "T"}, "x_length": {0: "N"}, "language": {0: "N"},
                              "text_norm": {0: "N"}, "logits": {0: "N", 1: "T"}},
            )
        proto = onnx.load(str(fp32))
        del proto.metadata_props[:]
        meta = sherpa_metadata(neg_mean, inv_std, len(pieces), comment=f"SenseVoiceSmall from {src_dir.name}",
                               model_author="iic", maintainer="callsense")
        for key, value in meta.items():
            proto.metadata_props.add(key=key, value=value)
        onnx.save(proto, str(fp32))
        del proto
        write_tokens(tmp / "tokens.txt", pieces)
        if int8:
            log.info("sensevoice export: quantising to int8")
            quantize_int8(fp32, tmp / "model.int8.onnx", weight_type=weight_type)
        validate_onnx_dir(tmp, "fp32")
        if int8:
            validate_onnx_dir(tmp, "int8")
        out_dir.mkdir(parents=True, exist_ok=True)
        for f in tmp.iterdir():
            shutil.move(str(f), str(out_dir / f.name))
    return out_dir


def quantize_int8(src: Path, dst: Path, *, weight_type: str | None = None,
                  reduce_range: bool | None = None) -> Path:
    """Write ``dst``: the fp32 sherpa-onnx model ``src`` with dynamically quantised MatMul weights.

    ``weight_type``: ``"QInt8"`` or ``"QUInt8"``; by default ``engines.quant.int8_scheme()``
    (signed int8 where the CPU has a VNNI u8 x s8 dot product, 1.3-1.7x faster there; sherpa-onnx's own
    exporter writes QUInt8). The metadata sherpa-onnx reads is kept; no torch needed.
    """
    from callsense.engines.quant import quantize_matmuls

    quantize_matmuls(Path(src), Path(dst), weight_type=weight_type, reduce_range=reduce_range)
    return Path(dst)
