"""Typed values of the audio edge: options, decoded tracks, speech segments."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from callsense.errors import UsageError
from callsense.labels import ROLES
from callsense.result.model import Role, SourceInfo

DEFAULT_CHANNEL_MAP: tuple[Role, ...] = ("agent", "customer")
"""Stereo default: channel 0 (left) is the agent, channel 1 (right) the customer. Platforms disagree
(Amazon Connect puts the agent on the right), so ``--channels customer,agent`` swaps it."""


@dataclass(frozen=True)
class AudioOptions:
    channel_map: tuple[Role, ...] | None = None  # None: DEFAULT_CHANNEL_MAP for stereo, ("unknown",) for mono
    max_duration_s: float = 4 * 3600.0  # recordings longer than this are refused
    max_file_mb: float = 1024.0  # files larger than this are refused before decoding

    def __post_init__(self) -> None:  # the one check of the channel map and limits, wherever they come from
        if self.channel_map is not None:
            object.__setattr__(self, "channel_map", parse_channel_map(self.channel_map))
        if not self.max_duration_s > 0:
            raise UsageError(f"the duration limit must be > 0 s, not {self.max_duration_s:g}")
        if not self.max_file_mb > 0:
            raise UsageError(f"the size limit must be > 0 MB, not {self.max_file_mb:g}")


def parse_channel_map(spec: str | Sequence[str]) -> tuple[Role, ...]:
    """``"agent,customer"`` (or a sequence of names) -> ``("agent", "customer")``: the role of channel 0, 1, ...

    Roles may repeat (two agent channels of a conference bridge) and ``unknown`` marks a channel whose
    speaker is not known. Raises :class:`UsageError` naming the valid roles.
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    roles = tuple(str(item).strip().lower() for item in items)
    bad = [r for r in roles if r not in ROLES]
    if not roles or bad or any(not r for r in roles):
        what = f"unknown role(s) {', '.join(repr(b) for b in bad)}" if bad else "empty role"
        raise UsageError(
            f"bad channel map {spec if isinstance(spec, str) else ','.join(map(str, spec))!r}: {what}",
            hint=f"give one role per channel, comma-separated, from {', '.join(ROLES)} (e.g. agent,customer)",
        )
    return roles  # type: ignore[return-value]


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
