"""Clip preprocessing before a clip is scored whole (``callsense emotion``, ``/v1/emotion``, training).

* **Trimming**: leading and trailing silence is cut with the VAD (Silero, ``audio/vad.py``): the clip is
  kept from the first speech span's start to the last one's end (the VAD's own 60 ms padding included).
  A clip in which the VAD finds no speech at all is kept whole (tones, music: nothing to trim *to*), so
  trimming never empties a clip. The result says how much was cut (``trim``).
* **Too quiet**: a clip whose RMS level (after trimming) is under :data:`MIN_CLIP_DBFS` is refused with
  :class:`~callsense.errors.AudioTooQuietError` (HTTP 422, exit 3): at that level emotion2vec's scores
  say nothing about the speaker (3 s of digital silence scored "angry 0.97"). Digital silence measures
  -120 dBFS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from callsense.engines.emotion2vec.head import level_dbfs
from callsense.errors import AudioTooQuietError
from callsense.labels import SAMPLE_RATE

MIN_CLIP_DBFS = -60.0
"""Clips quieter than this (RMS, dB relative to full scale) are refused: normal speech on a phone line
sits around -30 to -15 dBFS; -60 dBFS is line noise."""


@dataclass(frozen=True)
class ClipTrim:
    start_ms: int  # silence cut at the start
    end_ms: int  # silence cut at the end
    kept_ms: int  # what was scored

    @property
    def trimmed_ms(self) -> int:
        return self.start_ms + self.end_ms


@dataclass(frozen=True)
class PreparedClip:
    samples: np.ndarray  # float32 mono 16 kHz, trimmed
    trim: ClipTrim
    level_dbfs: float  # of the trimmed clip


def mono(tracks: list[np.ndarray]) -> np.ndarray:
    """The mean of the channels (cut to the shortest), float32."""
    if len(tracks) == 1:
        return np.asarray(tracks[0], np.float32)
    n = min(len(t) for t in tracks)
    return np.mean([t[:n] for t in tracks], axis=0).astype(np.float32)


def trim_silence(samples: np.ndarray) -> tuple[np.ndarray, ClipTrim]:
    """``samples`` from the first speech to the last (the whole clip when the VAD finds none)."""
    from callsense.audio.vad import detect_speech

    total = round(len(samples) * 1000 / SAMPLE_RATE)
    spans = detect_speech(np.asarray(samples, np.float32)) if len(samples) else []
    if not spans:
        return samples, ClipTrim(0, 0, total)
    a, b = spans[0].start_ms, min(spans[-1].end_ms, total)
    cut = samples[a * SAMPLE_RATE // 1000: b * SAMPLE_RATE // 1000]
    return cut, ClipTrim(a, total - b, b - a)


def prepare_clip(samples: np.ndarray, *, trim: bool = True, min_dbfs: float | None = MIN_CLIP_DBFS,
                 source: str | Path | None = None) -> PreparedClip:
    """Trim (``trim``) and refuse a clip under ``min_dbfs`` (``None``: never refuse)."""
    samples = np.asarray(samples, np.float32)
    if trim:
        samples, info = trim_silence(samples)
    else:
        info = ClipTrim(0, 0, round(len(samples) * 1000 / SAMPLE_RATE))
    level = level_dbfs(samples)
    if min_dbfs is not None and level < min_dbfs:
        raise AudioTooQuietError(
            f"音量过低 / audio too quiet: {level:.1f} dBFS, under the {min_dbfs:.0f} dBFS needed to judge emotion",
            source=source, hint="record closer to the microphone or check the line; the level is the RMS of the clip")
    return PreparedClip(samples, info, level)
