"""emotion2vec's graph in three parts, so that its convolutional front-end runs over time chunks.

Why (issue 18, peak RSS of a 10-minute call): in one session run over a whole segment the front-end's
buffers hold every sample's worth of activations at once — the first layers work on [samples / 5 x 512]
fp32 (and their quantised copies), about 65 MB each for a 10 s segment, several alive together — while
the transformer after it sees only 50 frames per second. The front-end is purely local in time (seven
strided convolutions, a LayerNorm per frame, GELU), so it can run over overlapping time chunks whose
output frames are exactly those of the whole run; only the transformer needs the whole segment.

:func:`split_model` cuts a model at the two boundary tensors :mod:`~callsense.engines.emotion2vec.graph`
names (``normalised``, ``features``) into

* ``norm``  — (samples, lengths) -> normalised: the per-row normalisation over each row's valid samples
  (never chunked: its mean and variance are over the whole row);
* ``front`` — normalised -> features: the front-end, run chunk by chunk (:func:`run_front`);
* ``rest``  — (features, lengths) -> frames: project_features, positional convolutions, transformer.

The parts are derived once from the model file and cached beside it as ``<stem>.norm.onnx``,
``<stem>.front.onnx``, ``<stem>.rest.onnx`` (or under a cache folder when the model's folder is
read-only), with a marker that ties them to the model file's size and time: a changed model file is
split again. Deriving streams the weights from file to file (``engines/onnx_parts.py``): about 1 s and
under 100 MB of memory for large int8, where ``onnx.load`` and a copy took 1 GB. The parts take the
model's size again on disk. A model without the boundary names (exported before they existed, or by the
torch reference exporter) is not split; the engine runs it whole. The on-disk model format is unchanged;
``CALLSENSE_E2V_SPLIT=0`` runs every model whole.

Measured (large int8, one 10 s input, 2 threads, peak RSS over the loaded model): whole 224 MB; the
front-end alone 235 MB whole, 40 MB in 2 s chunks (86 MB in 4 s chunks); the rest 67 MB. With 2 s chunks
and the heap trimmed between the front-end and the rest the run peaks at 68-73 MB; CPU time within noise
of the whole run (4 s and 10 s inputs, interleaved). Hence 2 s (:data:`~callsense.engines.emotion2vec.onnx.FRONT_CHUNK_S`).

:class:`SplitSession` runs the three parts behind the one call the engine makes (``run``), so the
engine is the same for a split and a whole model.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from callsense.engines.emotion2vec.graph import FEATURES, NORMALISED

log = logging.getLogger("callsense")

PARTS = ("norm", "front", "rest")
SPLIT_VERSION = 2  # bump when the way parts are cut changes: cached parts are then derived again


@dataclass(frozen=True)
class SplitFiles:
    """The three part files of one model file."""

    norm: Path
    front: Path
    rest: Path


@dataclass(frozen=True)
class FrontGeometry:
    """What the front-end's convolutions imply: output frame ``k`` reads samples ``[stride*k, stride*k + field)``."""

    stride: int
    field: int

    @classmethod
    def of(cls, conv_spec: Sequence[Sequence[int]]) -> FrontGeometry:
        """From (kernel, stride) per layer: total stride = product of strides; receptive field =
        1 + sum of (kernel - 1) x the stride of the layers before it (400 and 320 for wav2vec2's)."""
        stride, field = 1, 1
        for kernel, st in conv_spec:
            field += (int(kernel) - 1) * stride
            stride *= int(st)
        return cls(stride, field)

    def frames(self, n_samples: int) -> int:
        """Frames of ``n_samples`` (equal to ``head.frame_count``: nested floors of exact strides)."""
        return 0 if n_samples < self.field else (n_samples - self.field) // self.stride + 1

    def chunks(self, n_samples: int, chunk_frames: int) -> list[tuple[int, int, int, int]]:
        """``(first frame, end frame, first sample, end sample)`` per chunk, chunks of near-equal length.

        Each chunk's samples are exactly the ones its frames read (neighbours overlap by field - stride
        samples), and every chunk starts at a multiple of the total stride, so each layer's positions line
        up with the whole run's: the chunk's frames are the whole run's frames, not approximations."""
        total = self.frames(n_samples)
        if total <= 0:
            return []
        n = -(-total // max(1, int(chunk_frames)))
        edges = [i * total // n for i in range(n + 1)]  # sizes differ by at most one frame
        return [(a, b, self.stride * a, n_samples if b == total else self.stride * (b - 1) + self.field)
                for a, b in itertools.pairwise(edges)]


# ---- deriving the parts ------------------------------------------------------------------------------------
def split_model(model_file: Path, folder: Path, prefix: str) -> SplitFiles | None:
    """Write the three parts of ``model_file`` into ``folder`` as ``<prefix>.<part>.onnx``; ``None`` when the
    model lacks the boundary tensors or the cut would not separate it (a part would need another part's
    tensors). Streams the weights (``engines/onnx_parts.py``): a few MB of memory for any model size."""
    from onnx import TensorProto

    from callsense.engines.onnx_parts import Part, cut

    files = SplitFiles(*(folder / f"{prefix}.{p}.onnx" for p in PARTS))
    parts = [Part("emotion2vec_norm", ("samples", "lengths"), (NORMALISED,)),
             Part("emotion2vec_front", (NORMALISED,), (FEATURES,)),
             Part("emotion2vec_rest", (FEATURES, "lengths"), ("frames",))]
    types = {NORMALISED: (TensorProto.FLOAT, ["batch", "samples"]),
             FEATURES: (TensorProto.FLOAT, ["batch", "front_frames", "channels"])}
    if not cut(model_file, parts, [files.norm, files.front, files.rest], types):
        return None
    return files


def split_files(model_file: Path, cache_dir: Path | None = None) -> SplitFiles | None:
    """The parts of ``model_file``, derived on first use and reused while the model file keeps its size and
    time (beside it, else under ``cache_dir``); ``None`` when the model cannot be split (run it whole).
    ``CALLSENSE_E2V_SPLIT=0`` turns splitting off."""
    from callsense.engines.memory import release_free_memory

    if os.environ.get("CALLSENSE_E2V_SPLIT", "1").strip() == "0":
        return None
    model_file = Path(model_file)
    st = model_file.stat()
    key = {"source": model_file.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "version": SPLIT_VERSION}
    prefix = model_file.name.removesuffix(".onnx")
    places = [model_file.parent]
    if cache_dir is not None:
        import hashlib

        places.append(Path(cache_dir) / hashlib.sha256(str(model_file.resolve()).encode()).hexdigest()[:16])
    for folder in places:  # derived before (or found not to split)
        try:
            known = json.loads((folder / f"{model_file.name}.split.json").read_text("utf-8"))
        except (OSError, ValueError):
            continue
        if {k: known.get(k) for k in key} == key:
            files = SplitFiles(*(folder / f"{prefix}.{p}.onnx" for p in PARTS))
            if not known.get("split"):
                return None
            if all(f.is_file() for f in (files.norm, files.front, files.rest)):
                return files
    for folder in places:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=folder, prefix=f".{prefix}.split."))
        except OSError:
            continue  # read-only: the next place
        try:
            made = split_model(model_file, tmp, prefix)
            files = None
            if made is not None:
                files = SplitFiles(*(folder / f"{prefix}.{p}.onnx" for p in PARTS))
                for src, dst in zip((made.norm, made.front, made.rest), (files.norm, files.front, files.rest)):
                    os.replace(src, dst)
            (folder / f"{model_file.name}.split.json").write_text(json.dumps({**key, "split": files is not None}),
                                                                  "utf-8")
        except Exception as e:  # noqa: BLE001 - onnx raises its own types; the whole model still runs
            log.warning("emotion2vec: %s not split for chunked running (%s); running it whole", model_file, e)
            return None
        finally:
            for f in tmp.iterdir():
                f.unlink(missing_ok=True)
            tmp.rmdir()
            release_free_memory()  # the loaded model proto
        if files is not None:
            log.info("emotion2vec: %s split into norm/front/rest parts for chunked running", model_file.name)
        return files
    return None


# ---- running them --------------------------------------------------------------------------------------------
def run_front(session: Any, x: np.ndarray, geometry: FrontGeometry, chunk_frames: int) -> np.ndarray:
    """The front-end's features [N, T, C] of the normalised samples ``x`` [N, S], over time chunks of at
    most ``chunk_frames`` frames (one run when the input is that short), concatenated."""
    spans = geometry.chunks(x.shape[1], chunk_frames)
    if len(spans) <= 1:
        return session.run([FEATURES], {NORMALISED: x})[0]
    out: np.ndarray | None = None
    for a, b, s0, s1 in spans:
        y = session.run([FEATURES], {NORMALISED: np.ascontiguousarray(x[:, s0:s1])})[0]
        if y.shape[1] != b - a:  # the geometry is the model's own; a mismatch is a bug, not bad input
            raise RuntimeError(f"front-end chunk gave {y.shape[1]} frames, expected {b - a}")
        if out is None:
            out = np.empty((x.shape[0], spans[-1][1], y.shape[2]), np.float32)
        out[:, a:b] = y
        del y
    assert out is not None
    return out


class SplitSession:
    """The three part sessions behind ``run(output_names, feeds)`` of one whole-model session.

    ``chunk_frames``: the front-end runs over chunks of at most this many output frames (50 per second).
    """

    def __init__(self, norm: Any, front: Any, rest: Any, geometry: FrontGeometry, chunk_frames: int):
        self.norm, self.front, self.rest = norm, front, rest
        self.geometry, self.chunk_frames = geometry, int(chunk_frames)

    def run(self, output_names: Sequence[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        from callsense.engines.memory import release_free_memory

        normalised = self.norm.run([NORMALISED], feeds)[0]
        features = run_front(self.front, normalised, self.geometry, self.chunk_frames)
        if normalised.shape[1] > self.geometry.stride * self.chunk_frames:
            # the chunks' freed buffers would otherwise sit in the heap under the transformer's
            # (large int8, 10 s: +110 -> +68 MB over the loaded model, measured)
            release_free_memory()
        del normalised
        rest_feeds = {FEATURES: features, "lengths": feeds["lengths"]}
        return self.rest.run(list(output_names) if output_names else None, rest_feeds)

    def get_inputs(self) -> list[Any]:
        return self.norm.get_inputs()

    def get_outputs(self) -> list[Any]:
        return self.rest.get_outputs()

    def get_session_options(self) -> Any:
        return self.rest.get_session_options()

    def get_providers(self) -> list[str]:
        return self.rest.get_providers()
