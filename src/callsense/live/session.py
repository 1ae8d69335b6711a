"""One live call: audio frames in, partials, finals and alerts out, and at the end a ``CallRun``.

:class:`LiveSession` is the state machine of one call after its start message: each binary frame is
decoded (:mod:`~callsense.live.codec`), resampled to 16 kHz, spooled to disk (the stored call's
audio) and pushed per channel through Silero's probabilities (:class:`~callsense.audio.vad.VadStream`)
into the online :class:`~callsense.live.segmenter.Segmenter`. A closed utterance goes through the
same stages as a file's segment (:mod:`callsense.pipeline.stages`) and becomes a ``final``; then the
live rules look at the call so far. While someone speaks, the growing utterance is re-decoded for a
``partial`` at most every ``partial_interval_s``.

Memory is bounded whatever the client's pace: per channel only the open utterance (at most
``max_segment_ms`` plus the silence that closes it) is held; the rest of the audio is on disk. The
caller reads the next frame only after :meth:`feed` returns, so a fast client is slowed by TCP.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from callsense.audio.resample import StreamResampler
from callsense.audio.types import DecodedAudio, Track
from callsense.engines.base import EmotionOutput, SegmentAudio, Transcription
from callsense.errors import LiveProtocolError
from callsense.labels import SAMPLE_RATE
from callsense.live import protocol
from callsense.live.codec import decode_frame
from callsense.live.gate import DecodeGate
from callsense.live.rules import LiveRules
from callsense.live.segmenter import Segmenter, Utterance
from callsense.pipeline import stages
from callsense.pipeline.analyzer import CallRun, assemble_call
from callsense.pipeline.options import AnalyzeOptions
from callsense.result.emotion import TimelinePoint
from callsense.result.model import CallAnalysis, ModelInfo, Segment, SourceInfo, TrackInfo
from callsense.result.qa import RuleHit
from callsense.rules.alerts import SentAlert

log = logging.getLogger("callsense")

MAX_FRAME_S = 2.0  # a binary frame longer than this is refused (the protocol says 20-200 ms)
PARTIAL_INTERVAL_S = 0.5
KEEP_SILENT_MS = 200  # audio kept in front of "now" while nobody speaks (covers the left pad)


@dataclass
class _Channel:
    channel: int
    role: str
    vad: Any  # VadStream
    segmenter: Segmenter
    buf: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    buf_start: int = 0  # sample index (16 kHz) of buf[0]
    heard: int = 0  # samples received so far
    partial_at: float = 0.0  # clock of the last partial
    partial_len: int = 0  # samples of the open utterance at the last partial
    open_id: str | None = None  # segment id announced by partials of the open utterance

    def cut(self, start_ms: int, end_ms: int) -> np.ndarray:
        a = max(start_ms * SAMPLE_RATE // 1000 - self.buf_start, 0)
        b = max(end_ms * SAMPLE_RATE // 1000 - self.buf_start, a)
        return self.buf[a:b]


@dataclass(frozen=True)
class _Piece:
    """What the stored call needs of one final: the engines' outputs and where it lies."""

    id: str
    channel: int
    role: str
    start_ms: int
    end_ms: int
    transcription: Transcription | None
    emotion: EmotionOutput | None


class LiveSession:
    def __init__(self, start: protocol.StartMessage, *, call_id: str, options: AnalyzeOptions, asr: Any,
                 emotion: Any | None, live_rules: LiveRules | None, vad_model: Any, spool_dir: Path,
                 max_duration_s: float, partial_interval_s: float = PARTIAL_INTERVAL_S,
                 send_webhooks: Callable[[CallAnalysis, RuleHit], Sequence[SentAlert]] | None = None,
                 gate: DecodeGate | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.start = start
        self.call_id = call_id
        self.options = options
        self.asr, self.emotion = asr, emotion
        self.rules = live_rules
        self.max_samples = int(max_duration_s * SAMPLE_RATE)
        self.partial_interval_s = partial_interval_s
        self.send_webhooks = send_webhooks
        self.gate = gate or DecodeGate(0)  # shared by the server's live calls: finals first
        self.clock = clock
        self.started_at = datetime.now(timezone.utc)
        self.channels = [_Channel(i, role, vad_model.stream(), Segmenter(options.vad))
                         for i, role in enumerate(start.roles)]
        self.resampler = StreamResampler(start.sample_rate, start.channels)
        spool_dir.mkdir(parents=True, exist_ok=True)
        self._spool = tempfile.NamedTemporaryFile(dir=spool_dir, prefix=f".live-{call_id}.", suffix=".f32",
                                                  delete=False)  # noqa: SIM115 - closed in close()
        self._hash = hashlib.sha256()
        self._raw_bytes = 0
        self.pieces: list[_Piece] = []
        self.segments: list[Segment] = []
        self.timeline: list[TimelinePoint] = []
        self.hits: list[RuleHit] = []
        self.sent_alerts: list[SentAlert] = []  # webhook messages tried as their rules fired
        self._records_lock = threading.Lock()
        self._webhook_threads: list[threading.Thread] = []
        self._next_id = 1
        self.partials_skipped = 0  # partials given up because the shared gate was busy
        self.last_text: dict[int, str] = {}  # for the UI: the latest words per channel
        self.current_emotion: dict[int, str] = {}
        self.closed = False
        self.finished = False  # finish() ran

    # ---- input --------------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """One binary frame: the messages it causes (finals, partials, alerts), in order."""
        if not data or len(data) % self.start.bytes_per_frame:
            raise LiveProtocolError(
                "bad_frame", f"a binary frame of {len(data)} bytes is not a whole number of "
                f"{self.start.bytes_per_frame}-byte sample frames ({self.start.encoding}, {self.start.channels} ch)",
                hint="send interleaved samples in the encoding and channel count of the start message")
        if len(data) > MAX_FRAME_S * self.start.sample_rate * self.start.bytes_per_frame:
            raise LiveProtocolError("bad_frame", f"a binary frame of {len(data)} bytes is longer than {MAX_FRAME_S:g} s",
                                    hint="send frames of 20-200 ms")
        self._hash.update(data)
        self._raw_bytes += len(data)
        x = self.resampler.process(decode_frame(data, self.start.encoding, self.start.channels))
        return self._push(x)

    def finish(self) -> list[dict[str, Any]]:
        """End of audio (stop, or the client went away): close every open utterance."""
        if self.finished:
            return []
        self.finished = True
        out = self._push(self.resampler.flush())
        for ch in self.channels:
            probs = ch.vad.flush()
            utts = ch.segmenter.push(probs) + ch.segmenter.flush()
            out += self._finals(ch, utts)
        return out

    def _push(self, x: np.ndarray) -> list[dict[str, Any]]:
        if len(x) == 0:
            return []
        if self.channels[0].heard + len(x) > self.max_samples:
            raise LiveProtocolError("call_too_long", f"the call is longer than the "
                                    f"{self.max_samples / SAMPLE_RATE:.0f} s limit",
                                    hint="stop and start a new call, or raise --max-duration-s")
        self._spool.write(np.ascontiguousarray(x, dtype=np.float32).tobytes())
        out: list[dict[str, Any]] = []
        for ch in self.channels:
            samples = np.ascontiguousarray(x[:, ch.channel])
            ch.buf = np.concatenate([ch.buf, samples])
            ch.heard += len(samples)
            out += self._finals(ch, ch.segmenter.push(ch.vad.push(samples)))
            out += self._partial(ch)
            self._trim(ch)
        return out

    # ---- utterances ---------------------------------------------------------------------------
    def _new_id(self) -> str:
        sid = f"s{self._next_id:04d}"
        self._next_id += 1
        return sid

    def _finals(self, ch: _Channel, utts: list[Utterance]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        heard_ms = ch.heard * 1000 // SAMPLE_RATE
        for u in utts:
            end = min(u.end_ms, heard_ms)
            if end <= u.start_ms:
                continue
            sid = ch.open_id or self._new_id()
            ch.open_id, ch.partial_len = None, 0
            sa = SegmentAudio(id=sid, samples=ch.cut(u.start_ms, end), start_ms=u.start_ms, channel=ch.channel,
                              role=ch.role)
            with self.gate.final():
                tr = (stages.transcribe_segments(self.asr, [sa], self.options.asr)[0] if self.options.run_asr
                      else None)
                em = (stages.score_emotions(self.emotion, [sa], self.options.emotion)[0]
                      if self.emotion is not None else None)
            segment, points = stages.build_segment(sa, tr, em, embedding_index=None)
            self.pieces.append(_Piece(sid, ch.channel, ch.role, segment.start_ms, segment.end_ms, tr, em))
            self.segments.append(segment)
            self.timeline += points
            self.last_text[ch.channel] = segment.text or ""
            if segment.emotion is not None:
                self.current_emotion[ch.channel] = segment.emotion.label
            out.append(protocol.final(segment))
            out += self._check_rules()
        return out

    def _partial(self, ch: _Channel) -> list[dict[str, Any]]:
        start = ch.segmenter.open_start_ms
        if start is None or not self.options.run_asr:
            return []
        begin = max(0, start - self.options.vad.speech_pad_ms)
        length = ch.heard - begin * SAMPLE_RATE // 1000
        now = self.clock()
        interval = int(self.partial_interval_s * SAMPLE_RATE)
        if now - ch.partial_at < self.partial_interval_s or length - ch.partial_len < interval:
            return []
        if not self.gate.try_partial():
            self.partials_skipped += 1
            return []  # a final (or another partial) is being decoded: this one waits for its next frame
        try:
            ch.partial_at, ch.partial_len = now, length
            if ch.open_id is None:
                ch.open_id = self._new_id()
            sa = SegmentAudio(id=ch.open_id, samples=ch.cut(begin, ch.heard * 1000 // SAMPLE_RATE), start_ms=begin,
                              channel=ch.channel, role=ch.role)
            tr = stages.transcribe_segments(self.asr, [sa], self.options.asr)[0]
        finally:
            self.gate.partial_done()
        text = tr.text if tr is not None else ""
        self.last_text[ch.channel] = text
        return [protocol.partial(ch.channel, ch.role, ch.open_id, begin, text)]

    def _trim(self, ch: _Channel) -> None:
        start = ch.segmenter.open_start_ms
        if start is not None:
            keep_ms = max(0, start - self.options.vad.speech_pad_ms)
        else:
            keep_ms = max(0, ch.heard * 1000 // SAMPLE_RATE - KEEP_SILENT_MS)
        drop = keep_ms * SAMPLE_RATE // 1000 - ch.buf_start
        if drop > 0:
            ch.buf = ch.buf[drop:].copy()
            ch.buf_start += drop

    # ---- rules --------------------------------------------------------------------------------
    def heard_ms(self) -> int:
        return self.channels[0].heard * 1000 // SAMPLE_RATE

    def so_far(self) -> CallAnalysis:
        """The call as heard until now, as a result (no audio levels): what the live rules see."""
        segs = tuple(sorted(self.segments, key=lambda s: (s.start_ms, s.channel)))
        heard = self.heard_ms()
        source = self._source(heard)
        audio = DecodedAudio(source=source, tracks=(), channel_map=tuple(self.start.roles))  # type: ignore[arg-type]
        result, _ = assemble_call(audio, [], [], [], {}, options=self.options, emotion_model=None,
                                  call_id=self.call_id, started=self.started_at, models=(),
                                  metadata=self.start.metadata)
        speech = {c.channel: sum(s.end_ms - s.start_ms for s in segs if s.channel == c.channel) for c in self.channels}
        return dataclasses.replace(
            result, segments=segs, events=stages.audio_events(segs),
            emotion=stages.call_emotion(segs, self.timeline, self.options.emotion_model, self.options.emotion, heard,
                                        head=self.options.emotion_head if self.emotion is not None else None),
            tracks=tuple(TrackInfo(c.channel, c.role, heard, speech[c.channel]) for c in self.channels))  # type: ignore[arg-type]

    def _check_rules(self) -> list[dict[str, Any]]:
        if self.rules is None:
            return []
        so_far = self.so_far()
        out = []
        for hit in self.rules.check(so_far):
            self.hits.append(hit)
            out.append(protocol.alert(hit))
            if self.send_webhooks is not None:  # on its own thread: a slow webhook never holds the call
                t = threading.Thread(target=self._webhook, args=(so_far, hit), name="callsense-live-alert",
                                     daemon=True)
                self._webhook_threads.append(t)
                t.start()
        return out

    def _webhook(self, so_far: CallAnalysis, hit: RuleHit) -> None:
        sent = self.send_webhooks(so_far, hit) if self.send_webhooks else ()  # never raises
        with self._records_lock:
            self.sent_alerts.extend(sent)

    def wait_for_webhooks(self, timeout_s: float) -> list[SentAlert]:
        """The webhook messages tried so far, after waiting up to ``timeout_s`` for those in flight."""
        deadline = time.monotonic() + timeout_s
        for t in self._webhook_threads:
            t.join(max(0.0, deadline - time.monotonic()))
        with self._records_lock:
            return list(self.sent_alerts)

    # ---- the stored call ----------------------------------------------------------------------
    def _source(self, duration_ms: int) -> SourceInfo:
        return SourceInfo(name=f"live:{self.call_id}", path=None, sha256=self._hash.hexdigest(),
                          size_bytes=self._raw_bytes, container="live", codec=self.start.encoding,
                          sample_rate=self.start.sample_rate, channels=self.start.channels, duration_ms=duration_ms,
                          narrowband=self.start.sample_rate <= 8000)

    def build_run(self, *, interrupted: bool, models: tuple[ModelInfo, ...]) -> CallRun:
        """The call as it would come out of a file's analysis (before QA): audio from the spool, the
        finals re-cut from it on the call's time line, in call order."""
        self._spool.flush()
        n = len(self.start.roles)
        data = np.fromfile(self._spool.name, dtype=np.float32).reshape(-1, n)
        tracks = tuple(Track(channel=c.channel, role=c.role, samples=np.ascontiguousarray(data[:, c.channel]))  # type: ignore[arg-type]
                       for c in self.channels)
        audio = DecodedAudio(source=self._source(round(len(data) * 1000 / SAMPLE_RATE)), tracks=tracks,
                             channel_map=tuple(self.start.roles))  # type: ignore[arg-type]
        pieces = sorted(self.pieces, key=lambda p: (p.start_ms, p.channel))
        seg_audio = [stages.cut_segment(tracks[p.channel], p.start_ms, p.end_ms, p.id) for p in pieces]
        speech_ms = {c.channel: sum(p.end_ms - p.start_ms for p in pieces if p.channel == c.channel)
                     for c in self.channels}
        warnings = ["interrupted: the client went away before stop; stored as far as heard"] if interrupted else []
        metadata = {**self.start.metadata, "live_status": "interrupted" if interrupted else "complete"}
        result, embeddings = assemble_call(
            audio, seg_audio, [p.transcription for p in pieces], [p.emotion for p in pieces], speech_ms,
            options=self.options, emotion_model=self.options.emotion_model if self.emotion is not None else None,
            call_id=self.call_id, started=self.started_at, models=models, warnings=warnings, metadata=metadata)
        return CallRun(result=result, embeddings=embeddings, audio=audio)

    def close(self) -> None:
        """Remove the spool (after the call is stored, or when it never will be)."""
        if not self.closed:
            self.closed = True
            self._spool.close()
            Path(self._spool.name).unlink(missing_ok=True)
