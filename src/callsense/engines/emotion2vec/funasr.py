"""emotion2vec+ on FunASR (``funasr.AutoModel``) over the official checkpoint directory, CPU or CUDA.

FunASR returns frame features (``granularity="frame"``); the same numpy head as the ``onnx`` runtime
turns them into the utterance scores, the embedding and the timeline, so both runtimes give the same
typed output. FunASR's own utterance ``scores`` equal ``head(mean of frames)``; tests pin that.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from callsense.engines.base import EmotionOptions, EmotionOutput, SegmentAudio
from callsense.engines.emotion2vec.head import Head, build_output, conditioning, read_tokens, too_short_output
from callsense.errors import DependencyError, ModelFormatError
from callsense.result.model import ModelInfo

log = logging.getLogger("callsense")


class Emotion2vecFunasr:
    """The ``funasr`` runtime of the emotion engine (needs the ``torch`` extra)."""

    def __init__(self, model_dir: Path, *, device: str | None = None, num_threads: int | None = None,
                 name: str | None = None, **_: Any):
        self.model_dir = Path(model_dir)
        self.device = device or "cpu"
        self.num_threads = num_threads
        self.name = name or self.model_dir.parent.name or "emotion2vec"
        self.forward_calls = 0  # one per generate() call (one segment); tests count them
        try:
            import torch  # noqa: F401  (fail early with the install hint, before FunASR's long import)
            from funasr import AutoModel
        except ImportError as e:
            raise DependencyError("the funasr runtime needs torch and funasr",
                                  hint="pip install 'callsense[torch]', or use --emotion-runtime onnx") from e
        kwargs: dict[str, Any] = {"model": str(self.model_dir), "device": self.device, "disable_update": True,
                                  "log_level": "ERROR"}
        if num_threads:
            kwargs["ncpu"] = int(num_threads)
        try:
            with quiet_root_logger():
                self.auto = AutoModel(**kwargs)
        except Exception as e:  # FunASR raises assorted errors for a bad directory
            raise ModelFormatError(f"FunASR cannot load the emotion2vec checkpoint: {e}", source=self.model_dir,
                                   hint="pull it again: callsense models pull NAME --runtime funasr") from e
        proj = getattr(self.auto.model, "proj", None)
        if proj is None:
            raise ModelFormatError("the checkpoint has no classification head", source=self.model_dir,
                                   hint="use emotion2vec_plus_* or emotion2vec_base_finetuned")
        self.head = Head(proj.weight.detach().cpu().numpy().astype(np.float32),
                         proj.bias.detach().cpu().numpy().astype(np.float32),
                         read_tokens(self.model_dir / "tokens.txt"))

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(task="emotion", name=self.name, runtime="funasr", path=str(self.model_dir),
                         options={"device": self.device, "num_threads": self.num_threads, "dim": self.head.dim})

    def generate(self, samples: np.ndarray) -> dict[str, Any]:
        """FunASR's raw result for one segment: ``feats`` [T, D], ``scores``, ``labels`` (one forward pass)."""
        self.forward_calls += 1
        with quiet_root_logger():
            res = self.auto.generate(input=np.asarray(samples, np.float32), granularity="frame",
                                     extract_embedding=True, disable_pbar=True)
        return res[0]

    def features(self, samples: np.ndarray) -> np.ndarray:
        return np.asarray(self.generate(samples)["feats"], np.float32)

    def score(self, segments: Sequence[SegmentAudio], options: EmotionOptions) -> list[EmotionOutput]:
        """One output per segment, in order; one FunASR forward pass per scored segment."""
        self.head.disabled(options.masked)
        out = []
        for seg in segments:
            samples = np.asarray(seg.samples, np.float32)
            flags = conditioning(samples, options)
            if "too_short" in flags:
                out.append(too_short_output(seg, options, flags))
            else:
                out.append(build_output(self.features(samples), self.head, seg, options, flags))
        return out


@contextlib.contextmanager
def quiet_root_logger() -> Iterator[None]:
    """FunASR logs through the root logger at INFO (model paths, key maps); keep callsense's console readable."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)
