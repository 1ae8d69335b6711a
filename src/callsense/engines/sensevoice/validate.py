"""Check a SenseVoice model directory before a runtime touches it.

sherpa-onnx ends the whole process (``exit(-1)``, no Python exception) on a missing metadata key or
an unreadable ``tokens.txt``; FunASR fails deep inside its loader. These checks turn every such case
into one :class:`ModelFormatError` that names the file and the missing piece.

The ONNX check reads only the protobuf's top level (metadata and graph inputs/outputs) through a
memory map, skipping the weights, so it costs milliseconds even on the 900 MB fp32 export.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path

from callsense.engines.onnx_parts import read_varint as _varint  # the one protobuf varint decoder
from callsense.engines.sensevoice.formats import (
    FUNASR_TOKENIZER_FILES,
    INPUT_DIM,
    INT_METADATA,
    ONNX_MODEL_FILES,
    REQUIRED_METADATA,
    TOKENS,
    read_am_mvn,
    read_tokens,
)
from callsense.errors import ModelFormatError

_HINT_ONNX = ("re-download it with `callsense models pull sensevoice-small --runtime onnx`, or make it from "
              "the FunASR checkpoint with `callsense models export sensevoice-small`")
_HINT_FUNASR = "re-download it with `callsense models pull sensevoice-small --runtime funasr`"

# ONNX TensorProto element types
_FLOAT, _INT32 = 1, 6


@dataclass(frozen=True)
class OnnxHeader:
    metadata: dict[str, str]
    inputs: tuple[tuple[str, int], ...]  # (name, element type) in order
    outputs: tuple[tuple[str, int], ...]


# ---- a minimal protobuf walker (only what ModelProto's header needs) ---------------------------

def _fields(buf, start: int, end: int):
    """Yield (field number, wire type, value-or-(start, end)) for one message."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield field, wire, value
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > end:
                raise ValueError("truncated field")
            yield field, wire, (pos, pos + length)
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")


def _string(buf, span: tuple[int, int]) -> str:
    return bytes(buf[span[0]:span[1]]).decode("utf-8", errors="replace")


def _value_info(buf, span: tuple[int, int]) -> tuple[str, int]:
    name, elem = "", 0
    for f, w, v in _fields(buf, *span):
        if f == 1 and w == 2:
            name = _string(buf, v)
        elif f == 2 and w == 2:  # TypeProto
            for f2, w2, v2 in _fields(buf, *v):
                if f2 == 1 and w2 == 2:  # tensor_type
                    for f3, w3, v3 in _fields(buf, *v2):
                        if f3 == 1 and w3 == 0:
                            elem = v3
    return name, elem


def read_onnx_header(path: Path) -> OnnxHeader:
    """Metadata and graph inputs/outputs of an ONNX file without loading its weights."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        meta: dict[str, str] = {}
        inputs: list[tuple[str, int]] = []
        outputs: list[tuple[str, int]] = []
        for field, wire, value in _fields(buf, 0, len(buf)):
            if field == 14 and wire == 2:  # metadata_props
                key = val = ""
                for f, w, v in _fields(buf, *value):
                    if f == 1 and w == 2:
                        key = _string(buf, v)
                    elif f == 2 and w == 2:
                        val = _string(buf, v)
                meta[key] = val
            elif field == 7 and wire == 2:  # graph
                for f, w, v in _fields(buf, *value):
                    if f == 11 and w == 2:
                        inputs.append(_value_info(buf, v))
                    elif f == 12 and w == 2:
                        outputs.append(_value_info(buf, v))
        return OnnxHeader(meta, tuple(inputs), tuple(outputs))


# ---- the checks ---------------------------------------------------------------------------------

def onnx_model_file(model_dir: Path, precision: str = "int8") -> Path:
    """The model file to load: ``model.int8.onnx`` first (``precision="fp32"``: ``model.onnx`` first)."""
    order = ONNX_MODEL_FILES if precision == "int8" else tuple(reversed(ONNX_MODEL_FILES))
    for name in order:
        if (model_dir / name).is_file():
            return model_dir / name
    raise ModelFormatError(f"no SenseVoice ONNX model file ({' or '.join(ONNX_MODEL_FILES)})",
                           source=model_dir, hint=_HINT_ONNX)


def validate_onnx_dir(model_dir: Path, precision: str = "int8") -> tuple[Path, Path, OnnxHeader]:
    """Everything sherpa-onnx would abort on; returns (model file, tokens file, header)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelFormatError("model directory does not exist", source=model_dir, hint=_HINT_ONNX)
    model = onnx_model_file(model_dir, precision)
    tokens = model_dir / TOKENS
    if not tokens.is_file():
        raise ModelFormatError(f"missing {TOKENS} (the symbol table sherpa-onnx needs)", source=model_dir,
                               hint=_HINT_ONNX)
    try:
        header = read_onnx_header(model)
    except (ValueError, IndexError, OSError) as e:
        raise ModelFormatError(f"not a readable ONNX file ({e})", source=model, hint=_HINT_ONNX) from e
    if not header.inputs:
        raise ModelFormatError("not an ONNX model (no graph inputs)", source=model, hint=_HINT_ONNX)
    meta = header.metadata
    missing = [k for k in REQUIRED_METADATA if k not in meta]
    if missing:
        raise ModelFormatError(f"metadata key {missing[0]!r} missing"
                               + (f" (and {len(missing) - 1} more: {', '.join(missing[1:])})" if missing[1:] else ""),
                               source=model, hint=_HINT_ONNX)
    if "Nano" in meta.get("comment", ""):
        raise ModelFormatError("metadata 'comment' contains 'Nano': sherpa-onnx would load it as FunASR-Nano, "
                               "not SenseVoice", source=model, hint=_HINT_ONNX)
    for key in INT_METADATA + (("blank_id",) if "blank_id" in meta else ()):
        try:
            int(meta[key])
        except ValueError as e:
            raise ModelFormatError(f"metadata {key!r} is not an integer: {meta[key][:40]!r}", source=model,
                                   hint=_HINT_ONNX) from e
    window = int(meta["lfr_window_size"])
    dim = 80 * window
    for key in ("neg_mean", "inv_stddev"):
        try:
            n = len([float(v) for v in meta[key].split(",")])
        except ValueError as e:
            raise ModelFormatError(f"metadata {key!r} is not a list of numbers", source=model,
                                   hint=_HINT_ONNX) from e
        if n != dim:
            raise ModelFormatError(f"metadata {key!r} has {n} values, expected {dim}", source=model,
                                   hint=_HINT_ONNX)
    types = [t for _, t in header.inputs]
    if len(types) != 4 or types[0] != _FLOAT or any(t != _INT32 for t in types[1:]):
        raise ModelFormatError(f"graph inputs {[n for n, _ in header.inputs]} do not match SenseVoice "
                               "(x float32, x_length, language, text_norm int32)", source=model, hint=_HINT_ONNX)
    if not header.outputs:
        raise ModelFormatError("graph has no output", source=model, hint=_HINT_ONNX)
    try:
        symbols = read_tokens(tokens)
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelFormatError(f"{TOKENS} is malformed: {e}", source=tokens, hint=_HINT_ONNX) from e
    vocab = int(meta["vocab_size"])
    if len(symbols) != vocab:
        raise ModelFormatError(f"{TOKENS} has {len(symbols)} tokens but the model's vocab_size is {vocab}",
                               source=tokens, hint="the tokens file belongs to another model; " + _HINT_ONNX)
    return model, tokens, header


def validate_funasr_dir(model_dir: Path) -> None:
    """A FunASR SenseVoiceSmall checkpoint: config, weights, CMVN, tokenizer; no sherpa tokens.txt."""
    import yaml

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelFormatError("model directory does not exist", source=model_dir, hint=_HINT_FUNASR)
    for name in ("config.yaml", "model.pt", "am.mvn"):
        if not (model_dir / name).is_file():
            raise ModelFormatError(f"missing {name}", source=model_dir, hint=_HINT_FUNASR)
    if not any((model_dir / n).is_file() for n in FUNASR_TOKENIZER_FILES):
        raise ModelFormatError(f"missing the sentencepiece model ({' or '.join(FUNASR_TOKENIZER_FILES)})",
                               source=model_dir, hint=_HINT_FUNASR)
    if (model_dir / TOKENS).is_file():
        raise ModelFormatError(f"{TOKENS} found in a FunASR checkpoint directory: FunASR would use it instead "
                               "of the sentencepiece model and fail", source=model_dir / TOKENS,
                               hint="remove it (it belongs to the onnx format's directory)")
    try:
        cfg = yaml.safe_load((model_dir / "config.yaml").read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ModelFormatError(f"config.yaml is not valid YAML ({e})", source=model_dir / "config.yaml",
                               hint=_HINT_FUNASR) from e
    if not isinstance(cfg, dict) or cfg.get("model") != "SenseVoiceSmall":
        got = cfg.get("model") if isinstance(cfg, dict) else None
        raise ModelFormatError(f"config.yaml names model {got!r}, not SenseVoiceSmall",
                               source=model_dir / "config.yaml", hint=_HINT_FUNASR)
    try:
        neg_mean, inv_std = read_am_mvn(model_dir / "am.mvn")
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelFormatError(f"am.mvn is malformed ({e})", source=model_dir / "am.mvn", hint=_HINT_FUNASR) from e
    if len(neg_mean) != INPUT_DIM or len(inv_std) != INPUT_DIM:
        raise ModelFormatError(f"am.mvn has {len(neg_mean)}/{len(inv_std)} values, expected {INPUT_DIM}",
                               source=model_dir / "am.mvn", hint=_HINT_FUNASR)
