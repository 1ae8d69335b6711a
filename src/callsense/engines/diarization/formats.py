"""The on-disk contracts of the two diarization models, checked before sherpa-onnx sees them.

sherpa-onnx's native loaders read these metadata keys and **exit the whole process** when one is
missing (``SHERPA_ONNX_READ_META_DATA`` → ``exit(-1)``), so callsense reads the ONNX metadata itself,
with onnxruntime, and refuses a bad file with :class:`~callsense.errors.ModelFormatError` naming the
file and the key. Verified against k2-fsa/sherpa-onnx ``csrc/offline-speaker-segmentation-pyannote-model.cc``
and ``csrc/speaker-embedding-extractor-model.cc`` (2.0.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from callsense.errors import ModelFormatError

SEGMENTATION_KEYS = ("sample_rate", "window_size", "receptive_field_size", "receptive_field_shift",
                     "num_speakers", "powerset_max_classes", "num_classes")
EMBEDDING_KEYS = ("output_dim", "sample_rate", "normalize_samples", "language", "framework")
FRAMEWORKS = ("3d-speaker", "wespeaker")
FEATURE_NORMALIZE_TYPES = ("", "global-mean")
SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class SegmentationFormat:
    path: Path
    window_size: int
    receptive_field_size: int
    receptive_field_shift: int
    num_speakers: int
    powerset_max_classes: int
    num_classes: int


@dataclass(frozen=True)
class EmbeddingFormat:
    path: Path
    output_dim: int
    framework: str
    normalize_samples: int
    feature_normalize_type: str


def _read(path: Path) -> tuple[dict[str, str], list, list]:
    import onnxruntime as ort

    if not path.is_file():
        raise ModelFormatError("no such model file", source=path)
    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own types for truncated or non-ONNX files
        raise ModelFormatError(f"not a readable ONNX model ({str(e).splitlines()[0][:160]})",
                               hint="download it again: callsense models pull NAME", source=path) from e
    return dict(sess.get_modelmeta().custom_metadata_map), sess.get_inputs(), sess.get_outputs()


def _int(meta: dict[str, str], key: str, path: Path) -> int:
    if key not in meta:
        raise ModelFormatError(f"metadata key {key!r} is missing (sherpa-onnx needs it)",
                               hint="use a sherpa-onnx export of the model (callsense models pull NAME)", source=path)
    try:
        return int(meta[key])
    except ValueError:
        raise ModelFormatError(f"metadata key {key!r} is {meta[key]!r}, not an integer", source=path) from None


def _expect(path: Path, key: str, value: int, want: int) -> None:
    if value != want:
        raise ModelFormatError(f"metadata key {key!r} is {value}, expected {want}", source=path)


def validate_segmentation(path: str | Path) -> SegmentationFormat:
    """Check a pyannote segmentation-3.0 ONNX export: input ``x`` (N, 1, T), output (N, frames, 7)."""
    path = Path(path)
    meta, inputs, outputs = _read(path)
    v = {k: _int(meta, k, path) for k in SEGMENTATION_KEYS}
    _expect(path, "sample_rate", v["sample_rate"], SAMPLE_RATE)
    if v["window_size"] <= v["receptive_field_size"] or v["receptive_field_shift"] <= 0:
        raise ModelFormatError(f"metadata key 'window_size' ({v['window_size']}) must exceed "
                               f"'receptive_field_size' ({v['receptive_field_size']})", source=path)
    n, k = v["num_speakers"], v["powerset_max_classes"]
    from math import comb

    classes = sum(comb(n, i) for i in range(k + 1))
    _expect(path, "num_classes", v["num_classes"], classes)
    if len(inputs) != 1 or len(inputs[0].shape) != 3:
        raise ModelFormatError(f"expected one input x of shape (N, 1, T), found "
                               f"{[(i.name, i.shape) for i in inputs]}", source=path)
    last = outputs[0].shape[-1] if outputs and outputs[0].shape else None
    if isinstance(last, int) and last != classes:
        raise ModelFormatError(f"output has {last} classes per frame, metadata 'num_classes' says {classes}",
                               source=path)
    return SegmentationFormat(path, v["window_size"], v["receptive_field_size"], v["receptive_field_shift"],
                              n, k, classes)


def validate_embedding(path: str | Path) -> EmbeddingFormat:
    """Check a 3D-Speaker / WeSpeaker ONNX export: input ``x`` (1, T, 80) fbank, output (1, D)."""
    path = Path(path)
    meta, inputs, outputs = _read(path)
    for key in ("language", "framework"):
        if key not in meta:
            raise ModelFormatError(f"metadata key {key!r} is missing (sherpa-onnx needs it)",
                                   hint="use a sherpa-onnx export of the model (callsense models pull NAME)",
                                   source=path)
    dim = _int(meta, "output_dim", path)
    _expect(path, "sample_rate", _int(meta, "sample_rate", path), SAMPLE_RATE)
    norm = _int(meta, "normalize_samples", path)
    if meta["framework"] not in FRAMEWORKS:
        raise ModelFormatError(f"metadata key 'framework' is {meta['framework']!r}, expected one of "
                               f"{', '.join(FRAMEWORKS)}", source=path)
    fnt = meta.get("feature_normalize_type", "")
    if fnt not in FEATURE_NORMALIZE_TYPES:
        raise ModelFormatError(f"metadata key 'feature_normalize_type' is {fnt!r}, expected global-mean "
                               "or absent", source=path)
    shape = inputs[0].shape if len(inputs) == 1 else None
    if shape is None or len(shape) != 3 or (isinstance(shape[2], int) and shape[2] != 80):
        raise ModelFormatError(f"expected one input x of shape (1, T, 80), found "
                               f"{[(i.name, i.shape) for i in inputs]}", source=path)
    out_dim = outputs[0].shape[-1] if outputs and outputs[0].shape else None
    if isinstance(out_dim, int) and out_dim != dim:
        raise ModelFormatError(f"output has {out_dim} dimensions, metadata 'output_dim' says {dim}", source=path)
    return EmbeddingFormat(path, dim, meta["framework"], norm, fnt)


def directory_kind(directory: str | Path) -> str | None:
    """"segmentation" / "speaker-embedding" / None for a model directory, from its ONNX metadata
    (``models import`` tells the two apart: both are a bare ``model.onnx``)."""
    directory = Path(directory)
    if (directory / "tokens.txt").is_file():  # SenseVoice and emotion2vec exports carry tokens.txt
        return None
    import onnx

    for path in sorted(directory.glob("*.onnx")):
        try:
            keys = {p.key for p in onnx.load(str(path), load_external_data=False).metadata_props}
        except Exception:  # noqa: BLE001 - not ONNX: not ours
            continue
        if "receptive_field_size" in keys:
            return "segmentation"
        if "framework" in keys or "output_dim" in keys:
            return "speaker-embedding"
    return None
