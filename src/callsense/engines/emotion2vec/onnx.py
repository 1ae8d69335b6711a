"""emotion2vec+ on onnxruntime: no torch at run time; the linear head runs in numpy (``head.py``).

The model directory is callsense's own ONNX format (see ``export.py``): ``model.onnx`` and/or
``model.int8.onnx``, ``head.npz``, ``tokens.txt``, ``emotion2vec.json``.

Memory (issue 18): on the CPU the model runs as three parts (``split.py``: the normalisation, the
convolutional front-end, the rest), derived once from the model file and cached beside it, so that the
front-end runs over time chunks of at most ``front_chunk_s`` seconds (2 s) while the transformer still sees
the whole segment. In one run over a 10 s segment the front-end's per-sample buffers were most of the
run's activations: emotion2vec+ large int8, peak over the loaded model 224 -> 73 MB (base 233 -> 52 MB),
CPU time unchanged within noise (measured; bench/RESULTS.md "Speed levers", 5. Memory). fp32 frames are
bit-identical to the whole run's; int8 ones differ by the per-chunk activation scales of dynamic
quantisation (mean-frame cosine to fp32 0.99985 chunked and whole, large, 10 s), inside the
int8-vs-fp32 bound the tests hold. A model without the boundary tensors (an older export) runs whole.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from callsense.engines.base import EmotionOptions, EmotionOutput, SegmentAudio
from callsense.engines.emotion2vec.head import (
    CONV_SPEC,
    Head,
    build_output,
    conditioning,
    frame_count,
    too_short_output,
)
from callsense.errors import DependencyError, ModelFormatError
from callsense.result.model import ModelInfo

log = logging.getLogger("callsense")

FACTS_FILE = "emotion2vec.json"
FRONT_CHUNK_S = 2.0
"""Front-end chunk length: chosen by measurement (bench/RESULTS.md; docs/emotion.md "Speed levers")."""


class Emotion2vecOnnx:
    """The ``onnx`` runtime of the emotion engine.

    ``int8``: ``True`` requires ``model.int8.onnx``, ``False`` requires ``model.onnx``, ``None`` (default)
    prefers int8 where present. ``batch_seconds``: segments of similar length are padded into one run of
    up to this much audio (``max_batch=1`` runs one segment at a time); padding is masked inside the
    graph, so a batch gives the same fp32 results as one segment at a time (within float rounding).

    int8 models never batch: dynamic quantisation scales activations per tensor, i.e. over the whole
    batch, so a segment's scores would depend on which other segments shared its batch (differences
    of ~1e-3, measured). One segment per run keeps results reproducible.

    ``front_chunk_s``: on the CPU, the convolutional front-end of a longer input runs over chunks of at
    most this many seconds (module docstring; ``0`` runs the model whole, as on a GPU).
    """

    def __init__(self, model_dir: Path, *, num_threads: int | None = None, int8: bool | None = None,
                 device: str | None = None, max_batch: int = 8, batch_seconds: float = 60.0,
                 max_pad_ratio: float = 1.25, name: str | None = None, front_chunk_s: float = FRONT_CHUNK_S,
                 **_: Any):
        self.model_dir = Path(model_dir)
        facts_path = self.model_dir / FACTS_FILE
        self.facts: dict[str, Any] = {}
        if facts_path.is_file():
            try:
                self.facts = json.loads(facts_path.read_text("utf-8"))
            except ValueError as e:
                raise ModelFormatError(f"not JSON: {e}", source=facts_path, hint="export the model again") from e
        self.conv_spec = tuple(tuple(c) for c in self.facts.get("conv_spec", CONV_SPEC))
        self.head = Head.load(self.model_dir / "head.npz", self.model_dir / "tokens.txt")
        self.model_path = self._pick_file(int8)
        self.max_batch = max(1, int(max_batch))
        self.batch_samples = int(batch_seconds * 16000)
        self.max_pad_ratio = float(max_pad_ratio)
        self.num_threads = num_threads
        self.name = name or self.facts.get("name") or self.model_dir.parent.name or "emotion2vec"
        self.forward_calls = 0  # one per session run (a batch of segments); tests count them
        try:
            import onnxruntime as ort
        except ImportError as e:  # a core dependency, but say so plainly if it is broken
            raise DependencyError("onnxruntime is not installed", hint="pip install onnxruntime") from e
        from callsense.engines.memory import cpu_session_options, release_free_memory

        so = cpu_session_options(ort.SessionOptions())  # activations go after each run (engines/memory.py)
        if num_threads:
            so.intra_op_num_threads = int(num_threads)
            so.inter_op_num_threads = 1
        from callsense.engines.device import ort_providers, require_provider

        providers = ort_providers(device)  # cuda without a CUDA provider: DependencyError (exit 4)
        self.front_chunk_s = float(front_chunk_s) if providers == ["CPUExecutionProvider"] else 0.0
        parts = self._split_files() if self.front_chunk_s > 0 else None

        def load(path: Path) -> Any:
            try:
                return ort.InferenceSession(str(path), so, providers=providers)
            except Exception as e:  # onnxruntime raises its own exception types for bad files
                raise ModelFormatError(f"onnxruntime cannot load the model: {e}", source=self.model_path,
                                       hint="export it again: callsense models export NAME") from e

        if parts is not None:
            from callsense.engines.emotion2vec.split import FrontGeometry, SplitSession

            geometry = FrontGeometry.of(self.conv_spec)
            self.session: Any = SplitSession(load(parts.norm), load(parts.front), load(parts.rest), geometry,
                                             chunk_frames=max(1, round(self.front_chunk_s * 16000 / geometry.stride)))
        else:
            self.front_chunk_s = 0.0
            self.session = load(self.model_path)
        require_provider(self.session, device, source=self.model_path)
        release_free_memory()  # the model proto onnxruntime parsed while loading
        names = [i.name for i in self.session.get_inputs()]
        if names[:1] != ["samples"]:
            raise ModelFormatError(f"inputs are {names}; expected samples [N, S] and lengths [N]",
                                   source=self.model_path, hint="export it again: callsense models export NAME")
        self._has_lengths = "lengths" in names
        if not self._has_lengths or self.model_path.name.endswith(".int8.onnx"):
            # No lengths input: padding cannot be masked. int8: per-batch activation scales (see above).
            self.max_batch = 1

    def _split_files(self) -> Any:
        from callsense.engines.emotion2vec.split import split_files
        from callsense.engines.manager import callsense_home

        return split_files(self.model_path, cache_dir=callsense_home() / "cache" / "emotion2vec")

    def _pick_file(self, int8: bool | None) -> Path:
        fp32, q8 = self.model_dir / "model.onnx", self.model_dir / "model.int8.onnx"
        order = {True: [q8], False: [fp32], None: [q8, fp32]}[int8]
        for path in order:
            if path.is_file():
                return path
        raise ModelFormatError(f"no {' or '.join(p.name for p in order)} in {self.model_dir}",
                               source=self.model_dir,
                               hint="export it: callsense models export NAME" + (" --int8" if int8 else ""))

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(task="emotion", name=self.name, runtime="onnx", path=str(self.model_dir),
                         version=self.facts.get("format_version") and f"onnx-v{self.facts['format_version']}",
                         options={"file": self.model_path.name, "num_threads": self.num_threads,
                                  "max_batch": self.max_batch, "dim": self.head.dim,
                                  "front_chunk_s": self.front_chunk_s or None})

    # ---- forward ----------------------------------------------------------------------------------
    def features(self, batch: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Frame features [T_i, D] for each array of ``batch``, in ONE session run (zero-padded, masked)."""
        lens = [len(a) for a in batch]
        x = np.zeros((len(batch), max(lens)), np.float32)
        for i, a in enumerate(batch):
            x[i, : len(a)] = a
        feeds = {"samples": x}
        if self._has_lengths:
            feeds["lengths"] = np.asarray(lens, np.int64)
        self.forward_calls += 1
        frames = self.session.run(["frames"] if "frames" in self._outputs else None, feeds)[0]
        return [frames[i, : frame_count(n, self.conv_spec)] for i, n in enumerate(lens)]

    @property
    def _outputs(self) -> list[str]:
        return [o.name for o in self.session.get_outputs()]

    def plan_batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices grouped by similar length: sorted, a batch closes at ``max_batch`` rows, at
        ``batch_seconds`` of padded audio, or when the longest would exceed ``max_pad_ratio`` x the shortest."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        batches: list[list[int]] = []
        cur: list[int] = []
        for i in order:
            if cur:
                longest = lengths[i]
                if (len(cur) >= self.max_batch or longest > self.max_pad_ratio * max(lengths[cur[0]], 1)
                        or longest * (len(cur) + 1) > self.batch_samples):
                    batches.append(cur)
                    cur = []
            cur.append(i)
        if cur:
            batches.append(cur)
        return batches

    def score(self, segments: Sequence[SegmentAudio], options: EmotionOptions) -> list[EmotionOutput]:
        """One output per segment, in order. Each scored segment gets exactly one forward pass."""
        from callsense.engines.memory import release_free_memory

        self.head.disabled(options.masked)  # validate the mask before any work
        outputs: list[EmotionOutput | None] = [None] * len(segments)
        flags = [conditioning(np.asarray(s.samples, np.float32), options) for s in segments]
        todo = []
        for i, (seg, fl) in enumerate(zip(segments, flags)):
            if "too_short" in fl:
                outputs[i] = too_short_output(seg, options, fl)
            else:
                todo.append(i)
        for group in self.plan_batches([len(segments[i].samples) for i in todo]):
            idx = [todo[g] for g in group]
            feats = self.features([np.asarray(segments[i].samples, np.float32) for i in idx])
            for i, f in zip(idx, feats):
                outputs[i] = build_output(f, self.head, segments[i], options, flags[i])
            del feats
            # Every run's activations differ in size: without this, the heap's free holes build up over a
            # call's segments (about 200 MB by the end of a 10-minute call, measured) under the longest run.
            release_free_memory()
        return [o for o in outputs if o is not None]
