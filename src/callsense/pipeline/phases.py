"""What each phase of :meth:`Analyzer.run <callsense.pipeline.Analyzer.run>` hands to the next.

A file's analysis is four phases, each a method of :class:`~callsense.pipeline.Analyzer`::

    prepared = analyzer.prepare(path)                      # decode, VAD per channel, a mono call's diarization plan
    segs = prepared.segments()                             # the speech segments (engine inputs)
    asr = analyzer.transcribe(segs)                        # SenseVoice on them
    emo = analyzer.score(segs)                             # emotion2vec+ on them (independent of the ASR)
    run = analyzer.assemble(prepared, [asr, emo], metadata={...})  # result, diarized roles, QA

``Analyzer.run`` is exactly these calls in one process. The Ray batch (``callsense.batch.ray_runner``)
makes the same calls in different processes: ``prepare`` in a decode task, ``transcribe`` and ``score``
in their model actors, ``assemble`` on the driver. So everything a phase produces is here, small,
frozen and picklable, and carries its own stage timings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from callsense.audio.types import DecodedAudio
from callsense.engines.base import SegmentAudio
from callsense.result.model import ModelInfo, Skipped

Piece = tuple[int, int, int]
"""One speech segment: (track index, start_ms, end_ms)."""


@dataclass(frozen=True)
class Prepared:
    """Phase 1 (``prepare``): the decoded call, where its speech lies, and what that took."""

    audio: DecodedAudio
    pieces: tuple[Piece, ...]  # in call order (start, then channel); a diarized mono call: per speaker turn
    speech_ms: dict[int, int]  # per channel
    started: datetime
    warnings: tuple[str, ...] = ()
    dplan: Any = None  # a mono call's diarization plan (``pipeline.diarize``), or None
    timings_ms: dict[str, float] = field(default_factory=dict)  # decode, vad (, diarization)

    def segments(self) -> list[SegmentAudio]:
        """The engine inputs (ids ``s0001``...): views of the tracks, made again wherever needed."""
        from callsense.pipeline import stages

        return [stages.cut_segment(self.audio.tracks[ti], a, b, f"s{n + 1:04d}")
                for n, (ti, a, b) in enumerate(self.pieces)]


@dataclass(frozen=True)
class StageRun:
    """Phases 2 and 3 (``transcribe``, ``score``): one model's output per segment.

    ``outputs`` is None when the stage did not run (``skipped`` says why, e.g. emotion2vec missing).
    """

    stage: Literal["asr", "emotion"]
    outputs: tuple[Any, ...] | None
    info: ModelInfo | None = None
    ms: float | None = None
    skipped: Skipped | None = None

    @property
    def ran(self) -> bool:
        return self.outputs is not None


__all__ = ["Piece", "Prepared", "StageRun"]
