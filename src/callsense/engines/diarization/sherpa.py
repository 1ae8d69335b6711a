"""sherpa-onnx's OfflineSpeakerDiarization and SpeakerEmbeddingExtractor behind small typed classes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from callsense.engines.diarization.formats import validate_embedding, validate_segmentation

log = logging.getLogger("callsense")

SAMPLE_RATE = 16_000
MIN_EMBED_MS = 300  # shorter than this a speaker embedding is noise
MAX_VOICEPRINT_S = 10  # a speaker's voiceprint needs no more audio (3D-Speaker enrols on 3-10 s); more is cost
# Segmentation windows (10 s) advance by this fraction of a window. sherpa-onnx and pyannote default to 0.1:
# every second is segmented 10 times AND, worse, re-embedded ~10 times (one embedding per window and local
# speaker over its speech in the window), which made the stage 10x the cost. Two-party calls need no such
# redundancy: 1.0 embeds each second once (docs/diarization.md, "Speed", for what was measured).
DEFAULT_STEP = 1.0


@dataclass(frozen=True)
class SpeakerTurn:
    speaker: int  # 0, 1, ... in order of first appearance
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class Diarization:
    turns: tuple[SpeakerTurn, ...]  # sorted by start; two speakers' turns overlap where both talk
    overlaps: tuple[tuple[int, int], ...]  # overlapped speech (ms), from the segmentation's 2-speaker frames
    embeddings: dict[int, np.ndarray]  # speaker -> unit-norm voiceprint over its longest turns

    @property
    def speakers(self) -> tuple[int, ...]:
        return tuple(sorted({t.speaker for t in self.turns}))


class VoiceEmbedder:
    """One speaker embedding (unit norm) per clip: for voiceprints and per-speaker matching."""

    def __init__(self, model: str | Path, *, num_threads: int = 1):
        import sherpa_onnx

        self.format = validate_embedding(model)
        config = sherpa_onnx.SpeakerEmbeddingExtractorConfig(model=str(model), num_threads=num_threads)
        self._extractor = sherpa_onnx.SpeakerEmbeddingExtractor(config)

    @property
    def dim(self) -> int:
        return int(self._extractor.dim)

    def embed(self, samples: np.ndarray) -> np.ndarray | None:
        """The clip's unit-norm embedding, or None when it is too short to say anything."""
        samples = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
        if samples.size < MIN_EMBED_MS * SAMPLE_RATE // 1000:
            return None
        stream = self._extractor.create_stream()
        stream.accept_waveform(SAMPLE_RATE, samples)
        stream.input_finished()
        if not self._extractor.is_ready(stream):
            return None
        v = np.asarray(self._extractor.compute(stream), dtype=np.float32)
        norm = float(np.linalg.norm(v))
        return v / norm if norm > 0 else None


class Diarizer:
    """Who spoke when, on one 16 kHz mono track.

    ``threshold`` is the clustering's cosine-distance cut (sherpa-onnx FastClustering, single linkage);
    ``num_speakers`` > 0 forces that many clusters (two for a plain agent/customer call); ``step`` is the
    segmentation window's advance as a fraction of the window (``DEFAULT_STEP``; sherpa-onnx's own is 0.1).
    """

    def __init__(self, segmentation: str | Path, embedding: str | Path, *, num_threads: int = 1,
                 threshold: float = 0.5, num_speakers: int = -1, min_duration_on: float = 0.3,
                 min_duration_off: float = 0.5, step: float = DEFAULT_STEP):
        import sherpa_onnx

        self.segmentation_format = validate_segmentation(segmentation)
        self.embedder = VoiceEmbedder(embedding, num_threads=num_threads)
        config = sherpa_onnx.OfflineSpeakerDiarizationConfig(
            segmentation=sherpa_onnx.OfflineSpeakerSegmentationModelConfig(
                pyannote=sherpa_onnx.OfflineSpeakerSegmentationPyannoteModelConfig(
                    model=str(segmentation), window_shift_ratio=float(step)),
                num_threads=num_threads),
            embedding=sherpa_onnx.SpeakerEmbeddingExtractorConfig(model=str(embedding), num_threads=num_threads),
            clustering=sherpa_onnx.FastClusteringConfig(num_clusters=num_speakers, threshold=threshold),
            min_duration_on=min_duration_on, min_duration_off=min_duration_off,
        )
        if not config.validate():
            from callsense.errors import ModelFormatError

            raise ModelFormatError("sherpa-onnx refused the diarization configuration", source=segmentation)
        self._sd = sherpa_onnx.OfflineSpeakerDiarization(config)
        self.options = {"threshold": threshold, "num_speakers": num_speakers, "min_duration_on": min_duration_on,
                        "min_duration_off": min_duration_off, "step": step}

    def process(self, samples: np.ndarray, *, voiceprints: bool = True) -> Diarization:
        """Speaker turns of ``samples`` (16 kHz mono float32); ``voiceprints=False`` skips the per-speaker
        embeddings (one more pass of the embedding model) when nothing will match them."""
        samples = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)  # no copy for float32 input
        # sherpa-onnx pads short input itself; silence or music gives no segments (never a clustering crash)
        if samples.size < SAMPLE_RATE // 2 or not np.any(samples):
            return Diarization((), (), {})
        raw = self._sd.process(samples).sort_by_start_time()
        order: dict[int, int] = {}
        turns = []
        for seg in raw:
            speaker = order.setdefault(int(seg.speaker), len(order))
            a, b = round(seg.start * 1000), round(seg.end * 1000)
            if b > a:
                turns.append(SpeakerTurn(speaker, a, b))
        turns.sort(key=lambda t: (t.start_ms, t.speaker))
        return Diarization(tuple(turns), overlapped(turns), self._embeddings(samples, turns) if voiceprints else {})

    def _embeddings(self, samples: np.ndarray, turns: list[SpeakerTurn]) -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = {}
        for speaker in {t.speaker for t in turns}:
            mine = sorted((t for t in turns if t.speaker == speaker), key=lambda t: t.end_ms - t.start_ms,
                          reverse=True)[:5]
            clip = np.concatenate([samples[t.start_ms * 16:t.end_ms * 16] for t in mine])[:MAX_VOICEPRINT_S * SAMPLE_RATE]
            v = self.embedder.embed(clip)
            if v is not None:
                out[speaker] = v
        return out


def overlapped(turns: list[SpeakerTurn] | tuple[SpeakerTurn, ...]) -> tuple[tuple[int, int], ...]:
    """Stretches where turns of two different speakers overlap, merged."""
    spans = []
    for i, a in enumerate(turns):
        for b in turns[i + 1:]:
            if b.start_ms >= a.end_ms:
                break
            if a.speaker != b.speaker:
                lo, hi = max(a.start_ms, b.start_ms), min(a.end_ms, b.end_ms)
                if hi > lo:
                    spans.append((lo, hi))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return tuple(merged)
