"""SenseVoice on sherpa-onnx: the default, torch-free runtime.

sherpa-onnx fixes the language and ITN mode when a recognizer is built, so one recognizer is kept
per ``(language, itn)`` and created on first use. Segments are decoded in batches with
``decode_streams`` (sorted by length so a batch pads little), and the model directory is validated
before sherpa-onnx sees it, because sherpa-onnx ends the process on a malformed model.

Memory: a batch's activations are dominated by the CTC logits (25 055 classes x 16.7 frames/s of audio,
about 2.5 MB per padded second, kept at their high-water mark by onnxruntime's arena). A batch therefore
closes at ``batch_size`` segments or at ``batch_seconds`` of padded audio, whichever comes first. Measured
with the full-size model (bench/bench_sensevoice.py, 10-min call, 2 threads): 8 x 30 s segments in one
batch peak at 930 MB resident; budgets of 60, 30 and 15 s peak at 646, 541 and 483 MB at the same speed
(RTF 0.022): on CPU, batches wider than ~15 s of audio buy nothing.

ITN: SenseVoice decodes one ITN mode per pass (the mode is an input query). With
``AsrOptions.both_itn`` the segments are decoded twice, the second pass without ITN, into
``text_no_itn``; tags and timestamps come from the first pass.

``ban_emo_unk`` cannot be applied here (sherpa-onnx has no logit mask); an ``EMO_UNKNOWN`` stays.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from callsense.engines.base import AsrOptions, SegmentAudio, Transcription
from callsense.engines.sensevoice.result import to_transcription, too_short
from callsense.engines.sensevoice.tags import MIN_SAMPLES, merge_pieces, rebuild_raw, validate_language
from callsense.engines.sensevoice.validate import validate_onnx_dir
from callsense.errors import DependencyError
from callsense.labels import SAMPLE_RATE
from callsense.result.model import ModelInfo

log = logging.getLogger("callsense")


class SenseVoiceOnnx:
    """``AsrEngine`` on sherpa-onnx. ``precision``: ``"int8"`` (default) or ``"fp32"`` if both exist."""

    runtime = "onnx"

    def __init__(self, model_dir: Path, *, num_threads: int = 2, batch_size: int = 8, precision: str = "int8",
                 name: str = "sensevoice-small", provider: str = "cpu", batch_seconds: float = 15.0, **_: Any):
        self.model_dir = Path(model_dir)
        self.model_file, self.tokens_file, header = validate_onnx_dir(self.model_dir, precision)
        # The published model's uint8 weights run as their exact int8 twin where that kernel is faster
        # (engines/quant.py); info and fingerprints keep naming the file the user installed.
        self.source_file = self.model_file
        if provider == "cpu" and precision == "int8":
            from callsense.engines.manager import callsense_home
            from callsense.engines.quant import fast_int8_file

            self.model_file = fast_int8_file(self.model_file, cache_dir=callsense_home() / "cache" / "int8")
        self.num_threads = int(num_threads)
        self.batch_size = max(1, int(batch_size))
        self.batch_samples = max(1, int(batch_seconds * SAMPLE_RATE))
        self.provider = provider
        self._name = name
        self._meta = header.metadata
        self._recognizers: dict[tuple[str, bool], Any] = {}
        self._warned_ban = False

    @property
    def info(self) -> ModelInfo:
        st = self.source_file.stat()
        version = hashlib.sha256(f"{self.source_file.name}:{st.st_size}:{self._meta.get('comment', '')}"
                                 .encode()).hexdigest()[:12]
        return ModelInfo(task="asr", name=self._name, runtime=self.runtime, path=str(self.source_file),
                         version=version,
                         options={"num_threads": self.num_threads, "batch_size": self.batch_size,
                                  "batch_seconds": self.batch_samples / SAMPLE_RATE,
                                  "model_file": self.source_file.name, **self._info_options()})

    def _info_options(self) -> dict[str, Any]:
        """What a runtime adds to :attr:`info`'s options (the onnxruntime runtime: its device)."""
        return {}

    def _recognizer(self, language: str, itn: bool):
        key = (language, itn)
        if key not in self._recognizers:
            try:
                import sherpa_onnx
            except ImportError as e:  # pragma: no cover - a core dependency
                raise DependencyError("sherpa-onnx is not installed", hint="pip install sherpa-onnx") from e
            log.debug("sensevoice/onnx: building recognizer language=%s itn=%s", language, itn)
            self._recognizers[key] = sherpa_onnx.OfflineRecognizer.from_sense_voice(
                model=str(self.model_file), tokens=str(self.tokens_file), num_threads=self.num_threads,
                language="" if language == "auto" else language, use_itn=itn, provider=self.provider,
            )
            from callsense.engines.memory import release_free_memory

            release_free_memory()  # sherpa-onnx's copy of the file and the parsed proto: ~85 MB (int8)
        return self._recognizers[key]

    def _decode(self, segments: Sequence[SegmentAudio], language: str, itn: bool) -> list[Any]:
        """sherpa-onnx results, in the order of ``segments``."""
        rec = self._recognizer(language, itn)
        results: list[Any] = [None] * len(segments)
        for idx in self.plan_batches([len(s.samples) for s in segments]):
            streams = []
            for i in idx:
                s = rec.create_stream()
                s.accept_waveform(SAMPLE_RATE, np.ascontiguousarray(segments[i].samples, dtype=np.float32))
                streams.append(s)
            rec.decode_streams(streams)
            for i, s in zip(idx, streams):
                results[i] = s.result
        return results

    def prepare(self, options: AsrOptions) -> None:
        """Build the recognizer ``options`` will use now (about 2 s for the int8 model) instead of at the
        first ``transcribe``: the pipeline loads engines in the background while it decodes audio."""
        self._recognizer(validate_language(options.language), options.use_itn)

    def plan_batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices sorted by length, cut into batches of at most ``batch_size`` segments and at most
        ``batch_samples`` of padded audio (count x longest); a segment longer than the budget runs alone."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        batches: list[list[int]] = []
        for i in order:
            cur = batches[-1] if batches else None
            # ascending order: the newcomer is the longest, so it sets the padded size
            if cur and len(cur) < self.batch_size and lengths[i] * (len(cur) + 1) <= self.batch_samples:
                cur.append(i)
            else:
                batches.append([i])
        return batches

    def transcribe(self, segments: Sequence[SegmentAudio], options: AsrOptions) -> list[Transcription]:
        language = validate_language(options.language)
        if options.ban_emo_unk and not self._warned_ban:
            log.info("sensevoice/onnx: ban_emo_unk is not supported by sherpa-onnx; EMO_UNKNOWN may appear")
            self._warned_ban = True
        out: list[Transcription | None] = [None] * len(segments)
        todo = [i for i, s in enumerate(segments) if len(s.samples) < MIN_SAMPLES]
        for i in todo:
            out[i] = too_short(options.use_itn)
        live = [i for i in range(len(segments)) if out[i] is None]
        if not live:
            return [t for t in out if t is not None]
        main = self._decode([segments[i] for i in live], language, options.use_itn)
        second: list[Any] | None = None
        if options.both_itn and options.use_itn:
            second = self._decode([segments[i] for i in live], language, False)
        for k, i in enumerate(live):
            r = main[k]
            raw = rebuild_raw(r.lang, r.emotion, r.event, options.use_itn, r.text)
            starts = [round(t * 1000) + segments[i].start_ms for t in r.timestamps]
            words = merge_pieces(list(r.tokens), starts)
            no_itn = None
            if second is not None:
                r2 = second[k]
                no_itn = rebuild_raw(r2.lang, r2.emotion, r2.event, False, r2.text)
            elif options.both_itn:
                no_itn = raw
            out[i] = to_transcription(raw, words, options.use_itn, no_itn)
        del main, second
        from callsense.engines.memory import release_free_memory

        release_free_memory()  # the stage's buffers, before the next stage runs (engines/memory.py)
        return [t for t in out if t is not None]
