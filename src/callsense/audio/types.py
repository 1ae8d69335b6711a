"""Typed values of the audio edge: options, decoded tracks, speech segments."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from callsense.result.model import Role, SourceInfo

DEFAULT_CHANNEL_MAP: tuple[Role, ...] = ("agent", "customer")
"""Stereo default: channel 0 (left) is the agent, channel 1 (right) the customer. Platforms disagree
(Amazon Connect puts the agent on the right), so ``--channels customer,agent`` swaps it."""


@dataclass(frozen=True)
class AudioOptions:
    channel_map: tuple[Role, ...] | None = None  # None: DEFAULT_CHANNEL_MAP for stereo, ("unknown",) for mono
    max_duration_s: float = 4 * 3600.0  # recordings longer than this are refused
    max_file_mb: float = 1024.0  # files larger than this are refused before decoding


@dataclass(frozen=True)
class Track:
    channel: int
    role: Role
    samples: np.ndarray  # float32 mono 16 kHz in [-1, 1]

    @property
    def duration_ms(self) -> int:
        return int(round(len(self.samples) * 1000 / 16000))


@dataclass(frozen=True)
class DecodedAudio:
    source: SourceInfo
    tracks: tuple[Track, ...]
    channel_map: tuple[Role, ...]
    warnings: tuple[str, ...] = ()  # problems that still left usable audio (truncated file, corrupt packets)

    @property
    def duration_ms(self) -> int:
        return self.source.duration_ms


@dataclass(frozen=True)
class VadOptions:
    threshold: float = 0.5  # speech probability to open a segment
    neg_threshold: float | None = None  # probability to close one (default threshold - 0.15)
    min_speech_ms: int = 250  # shorter bursts are dropped
    min_silence_ms: int = 300  # gaps shorter than this are merged
    speech_pad_ms: int = 60  # added on both sides (clipped at neighbours and file ends)
    max_segment_ms: int = 30_000  # ASR limit: longer segments are split at the quietest point


@dataclass(frozen=True)
class SpeechSpan:
    start_ms: int
    end_ms: int
