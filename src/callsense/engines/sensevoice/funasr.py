"""SenseVoice on FunASR (torch): the official checkpoint directory, on CPU or CUDA.

FunASR is imported on first use (``from funasr import AutoModel`` takes 10+ s). The model is always
loaded from a local, validated directory with ``disable_update=True`` and never with
``trust_remote_code`` (which would pip-install a model's requirements).

Differences from FunASR's defaults, on purpose:

* the front-end's dither is set to 0 so a segment decodes the same way every time (FunASR adds
  random noise by default; sherpa-onnx adds none);
* the raw tag string is parsed and stored; FunASR's emoji post-processing is never applied.

ITN: like the onnx runtime, ``both_itn`` runs a second pass without ITN into ``text_no_itn``.
Timestamps are FunASR's own (``output_timestamp=True``: CTC forced alignment, word level), moved to
the call's time line.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from callsense.engines.base import AsrOptions, SegmentAudio, Transcription
from callsense.engines.sensevoice.result import to_transcription, too_short
from callsense.engines.sensevoice.tags import MIN_SAMPLES, validate_language
from callsense.engines.sensevoice.validate import validate_funasr_dir
from callsense.errors import DependencyError, ModelFormatError, UsageError
from callsense.result.model import ModelInfo

log = logging.getLogger("callsense")


class SenseVoiceFunasr:
    """``AsrEngine`` on ``funasr.AutoModel``. ``device``: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``."""

    runtime = "funasr"

    def __init__(self, model_dir: Path, *, device: str = "cpu", num_threads: int = 2, batch_size: int = 8,
                 name: str = "sensevoice-small", **_: Any):
        self.model_dir = Path(model_dir)
        validate_funasr_dir(self.model_dir)
        self.device = str(device)
        self.num_threads = int(num_threads)
        self.batch_size = max(1, int(batch_size))
        self._name = name
        self._model: Any = None

    @property
    def info(self) -> ModelInfo:
        st = (self.model_dir / "model.pt").stat()
        version = hashlib.sha256(f"model.pt:{st.st_size}".encode()).hexdigest()[:12]
        return ModelInfo(task="asr", name=self._name, runtime=self.runtime, path=str(self.model_dir),
                         version=version, options={"device": self.device, "num_threads": self.num_threads})

    def prepare(self, options: AsrOptions) -> None:
        """Import FunASR and load the checkpoint now rather than at the first ``transcribe``."""
        self._load()

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        try:
            import torch
            from funasr import AutoModel
        except ImportError as e:
            raise DependencyError("the funasr runtime needs torch and FunASR",
                                  hint="pip install 'callsense[torch]', or use --runtime onnx") from e
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            # FunASR would silently fall back to the CPU; say so instead.
            raise UsageError(f"device {self.device!r} requested but CUDA is not available",
                             hint="use --device cpu, or install a CUDA build of torch")
        log.info("sensevoice/funasr: loading %s on %s", self.model_dir, self.device)
        try:
            with _quiet_root_logger(logging.ERROR):  # also its "trust_remote_code: False" warning
                model = AutoModel(model=str(self.model_dir), disable_update=True, device=self.device,
                                  ncpu=self.num_threads, batch_size=self.batch_size, log_level="ERROR",
                                  disable_pbar=True, disable_log=True, trust_remote_code=False)
        except Exception as e:  # FunASR raises assorted errors for a bad checkpoint
            raise ModelFormatError(f"FunASR cannot load the SenseVoice checkpoint: {e}", source=self.model_dir,
                                   hint="pull it again: callsense models pull sensevoice-small --runtime funasr") from e
        frontend = model.kwargs.get("frontend")
        if frontend is not None and hasattr(frontend, "dither"):
            frontend.dither = 0.0
        self._model = model
        return model

    def _generate(self, arrays: list[np.ndarray], language: str, itn: bool, ban_emo_unk: bool) -> list[dict]:
        model = self._load()
        with _quiet_root_logger():
            res = model.generate(input=arrays, language=language, use_itn=itn, ban_emo_unk=ban_emo_unk,
                                 output_timestamp=True, batch_size=self.batch_size, disable_pbar=True)
        if len(res) != len(arrays):  # FunASR keys results per input; a mismatch would misalign segments
            raise RuntimeError(f"FunASR returned {len(res)} results for {len(arrays)} segments")
        return res

    def transcribe(self, segments: Sequence[SegmentAudio], options: AsrOptions) -> list[Transcription]:
        language = validate_language(options.language)
        out: list[Transcription | None] = [too_short(options.use_itn) if len(s.samples) < MIN_SAMPLES else None
                                           for s in segments]
        live = [i for i, t in enumerate(out) if t is None]
        if not live:
            return [t for t in out if t is not None]
        arrays = [np.ascontiguousarray(segments[i].samples, dtype=np.float32) for i in live]
        main = self._generate(arrays, language, options.use_itn, options.ban_emo_unk)
        second = None
        if options.both_itn and options.use_itn:
            second = self._generate(arrays, language, False, options.ban_emo_unk)
        for k, i in enumerate(live):
            r = main[k]
            words = [(str(w).lstrip("\u2581 "), int(ts[0]) + segments[i].start_ms)
                     for w, ts in zip(r.get("words", ()), r.get("timestamp", ()))]
            words = [(w, s) for w, s in words if w]
            no_itn = second[k]["text"] if second is not None else (r["text"] if options.both_itn else None)
            out[i] = to_transcription(r["text"], words, options.use_itn, no_itn)
        return [t for t in out if t is not None]


@contextlib.contextmanager
def _quiet_root_logger(threshold: int = logging.WARNING) -> Iterator[None]:
    """FunASR logs through the root logger at INFO (paths, key maps); keep callsense's console readable."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, threshold))
    try:
        yield
    finally:
        root.setLevel(level)
