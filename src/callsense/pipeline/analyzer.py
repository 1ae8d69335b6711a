"""The analysis pipeline: decode → tracks → VAD → ASR and emotion per segment → CallAnalysis.

``Analyzer`` loads each engine once (lazily, on first use) and reuses it for every call, so a batch
worker or the web service pays model loading once. Everything is composed here; engines, audio and
QA live in their own packages, and progress/timing are hooks.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

import numpy as np

from callsense._version import PIPELINE_VERSION, __version__
from callsense.audio.types import DecodedAudio
from callsense.engines.base import EmotionOutput, SegmentAudio, Transcription
from callsense.engines.manager import ModelManager
from callsense.errors import ModelNotFoundError, UsageError
from callsense.labels import EMOTION_BY_NAME, EMOTION_NAMES, LANGUAGES, SAMPLE_RATE, SENSEVOICE_EMOTION_TO_LABEL
from callsense.pipeline.hooks import Hook, Hooks, StageTimer
from callsense.pipeline.options import AnalyzeOptions
from callsense.result.emotion import CallEmotion, SegmentEmotion, TimelinePoint
from callsense.result.model import (
    SCHEMA_VERSION,
    AudioEvent,
    CallAnalysis,
    ModelInfo,
    ProcessingLog,
    Segment,
    Separation,
    Skipped,
    TokenTime,
    TrackInfo,
)

log = logging.getLogger("callsense")

NON_EVENT_TAGS = frozenset({"Speech", "Event_UNK", "GBG"})


@dataclass(frozen=True)
class CallRun:
    """What one analysis produced: the result, the utterance embeddings and the decoded audio."""

    result: CallAnalysis
    embeddings: np.ndarray | None  # [n, D]; row i belongs to the segment whose emotion.embedding_index == i
    audio: DecodedAudio


class Analyzer:
    """Analyse calls with one set of options and engines loaded once.

    >>> analyzer = Analyzer(AnalyzeOptions())
    >>> run = analyzer.run("call.wav", metadata={"agent_id": "a17"})
    >>> run.result.segments[0].text
    """

    def __init__(self, options: AnalyzeOptions | None = None, *, manager: ModelManager | None = None):
        self.options = options or AnalyzeOptions()
        if self.options.asr.language not in LANGUAGES:
            raise UsageError(f"unknown language {self.options.asr.language!r}; valid: {', '.join(LANGUAGES)}")
        self.manager = manager or ModelManager(allow_download=self.options.allow_download)
        self._asr: Any = None
        self._emotion: Any = None
        self._emotion_skip: Skipped | None = None
        self._ruleset: Any = None
        self._loading: dict[str, Future] = {}  # engines being loaded on a background thread
        self._loading_lock = threading.Lock()

    # ---- engines ---------------------------------------------------------------------------------
    def asr_engine(self) -> Any:
        self._await("asr")
        if self._asr is None:
            self._asr = self._build_asr()
        return self._asr

    def emotion_engine(self) -> Any | None:
        """The emotion engine, or None (with the reason kept) when emotion2vec cannot run here."""
        self._await("emotion")
        if self._emotion is None and self._emotion_skip is None:
            self._emotion, self._emotion_skip = self._build_emotion()
        return self._emotion

    def _build_asr(self) -> Any:
        from callsense.engines import registry

        o = self.options
        located = self.manager.locate(o.asr_model, o.asr_runtime)
        engine = registry.create("asr", o.asr_runtime, located.path, num_threads=o.num_threads, device=o.device)
        prepare = getattr(engine, "prepare", None)  # runtimes that build their session lazily build it now
        if prepare is not None:
            prepare(o.asr)
        return engine

    def _build_emotion(self) -> tuple[Any | None, Skipped | None]:
        from callsense.engines import registry

        o = self.options
        try:
            path = self._locate_emotion()
        except ModelNotFoundError as e:
            log.warning("emotion2vec skipped: %s", e)
            return None, Skipped("emotion2vec", e.message, e.hint)
        return registry.create("emotion", o.emotion_runtime, path, num_threads=o.num_threads, device=o.device), None

    def load_in_background(self) -> None:
        """Start loading the engines this analyzer will need, each on its own thread, and return.

        Loading is mostly single-threaded (model parsing, graph optimisation, weight pre-packing), so on
        a cold start the two models load side by side while the audio is decoded and the VAD runs: on
        2 cores this takes about 0.7 s off the first result (bench/e2e.py). ``asr_engine()`` and
        ``emotion_engine()`` wait for their loader and re-raise its error, so a missing model still fails
        at the stage that needs it, with the same exception.
        """
        o = self.options
        with self._loading_lock:
            if o.run_asr and self._asr is None and "asr" not in self._loading:
                self._loading["asr"] = self._spawn(lambda: setattr(self, "_asr", self._build_asr()))
            if (o.run_emotion and self._emotion is None and self._emotion_skip is None
                    and "emotion" not in self._loading):
                def emotion() -> None:
                    self._emotion, self._emotion_skip = self._build_emotion()
                self._loading["emotion"] = self._spawn(emotion)

    @staticmethod
    def _spawn(fn: Any) -> Future:
        future: Future = Future()

        def target() -> None:
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - handed to the thread that needs the engine
                future.set_exception(e)
            else:
                future.set_result(None)

        threading.Thread(target=target, name="callsense-load", daemon=True).start()
        return future

    @property
    def ruleset(self) -> Any | None:
        """The rule set this analyzer's QA loaded (None before its first QA run): what cross-call rules
        are re-evaluated with before a result is stored."""
        return self._ruleset

    def _ready(self, name: str) -> bool:
        """True when the engine ``name`` is loaded (or failed to load): using it would not wait."""
        with self._loading_lock:
            future = self._loading.get(name)
        if future is not None:
            return future.done()
        return (self._asr if name == "asr" else self._emotion) is not None

    def _first_ready(self, *names: str) -> str:
        """The first of ``names`` whose engine is ready, waiting for the first loader to finish if none is."""
        for name in names:
            if self._ready(name):
                return name
        with self._loading_lock:
            pending = {self._loading[n]: n for n in names if n in self._loading}
        if not pending:
            return names[0]
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        return next(pending[f] for f in pending if f in done)

    def _await(self, name: str) -> None:
        with self._loading_lock:
            future = self._loading.pop(name, None)
        if future is not None:
            future.result()

    def _locate_emotion(self):
        o = self.options
        if o.emotion_runtime == "onnx":
            # No ONNX export of emotion2vec is published: make it once from the checkpoint where torch is here.
            from callsense.engines.emotion2vec import ensure_onnx

            return ensure_onnx(self.manager, o.emotion_model)
        return self.manager.locate(o.emotion_model, o.emotion_runtime).path

    def derive(self, options: AnalyzeOptions) -> Analyzer:
        """An analyzer with other options that reuses this one's loaded engines where they still apply
        (same model, runtime, threads and device): per-request options cost no model load."""
        other = Analyzer(options, manager=self.manager)
        o, n = self.options, options
        same_host = (o.num_threads, o.device) == (n.num_threads, n.device)
        if same_host and n.run_asr and (o.asr_model, o.asr_runtime) == (n.asr_model, n.asr_runtime):
            other._asr = self.asr_engine()  # loaded here, once, and shared
        if same_host and n.run_emotion and (o.emotion_model, o.emotion_runtime) == (n.emotion_model,
                                                                                     n.emotion_runtime):
            other._emotion, other._emotion_skip = self.emotion_engine(), self._emotion_skip
        if o.rules == n.rules:
            other._ruleset = self._ruleset
        return other

    def load(self) -> Analyzer:
        """Load every engine now, side by side (the service warms up with this)."""
        self.load_in_background()
        if self.options.run_asr:
            self.asr_engine()
        if self.options.run_emotion:
            self.emotion_engine()
        return self

    @property
    def fingerprint(self) -> str:
        """Identifies what produced a result: pipeline, models and rules (batch skips on equality)."""
        o = self.options
        parts = [PIPELINE_VERSION, SCHEMA_VERSION, repr(o.to_log())]
        for located in (self._find(o.asr_model, o.asr_runtime), self._find(o.emotion_model, o.emotion_runtime)):
            parts.append(str(located))
        if o.rules:
            try:
                parts.append(hashlib.sha256(o.rules.read_bytes()).hexdigest())
            except OSError:
                parts.append(str(o.rules))
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

    def _find(self, name: str, runtime: str) -> str | None:
        try:
            found = self.manager.find(name, runtime)
        except UsageError:
            return None
        return f"{found.name}/{found.runtime}@{found.path}" if found else None

    # ---- the pipeline ----------------------------------------------------------------------------
    def analyze(self, source: Any, **kwargs: Any) -> CallAnalysis:
        return self.run(source, **kwargs).result

    def run(self, source: Any, *, metadata: dict[str, Any] | None = None, hooks: Sequence[Hook] = (),
            call_id: str | None = None, sample_rate: int | None = None) -> CallRun:
        from callsense.audio.decode import load_audio
        from callsense.audio.vad import detect_speech

        o = self.options
        self.load_in_background()  # cold start: the models load while the audio is decoded (no-op when warm)
        timer = StageTimer()
        h = Hooks([timer, *hooks])
        started = datetime.now(timezone.utc)
        warnings: list[str] = []
        skipped: list[Skipped] = []

        h.start("decode")
        kw = {"sample_rate": sample_rate} if sample_rate else {}
        audio = load_audio(source, o.audio, **kw)
        warnings.extend(getattr(audio, "warnings", ()) or ())
        h.end("decode", audio)

        h.start("vad")
        pieces: list[tuple[int, str, int, int]] = []  # (channel, role, start_ms, end_ms)
        speech_ms: dict[int, int] = {}
        for track in audio.tracks:
            spans = detect_speech(track.samples, o.vad)
            speech_ms[track.channel] = sum(s.end_ms - s.start_ms for s in spans)
            pieces += [(track.channel, track.role, s.start_ms, s.end_ms) for s in spans]
        pieces.sort(key=lambda p: (p[2], p[0]))
        dplan = self._diarize(audio, pieces, h, warnings)  # mono + models installed: pieces per speaker
        if dplan is not None:
            pieces = [(0, "unknown", x.start_ms, x.end_ms) for x in dplan.pieces]
        seg_audio = [
            SegmentAudio(id=f"s{i + 1:04d}", samples=_cut(audio.tracks[_track_index(audio, ch)].samples, a, b),
                         start_ms=a, channel=ch, role=role)
            for i, (ch, role, a, b) in enumerate(pieces)
        ]
        h.end("vad", seg_audio)

        models: list[ModelInfo] = [ModelInfo("vad", "silero-vad", "onnx", options={"threshold": o.vad.threshold})]
        transcripts: list[Transcription | None] = [None] * len(seg_audio)
        emotions: list[EmotionOutput | None] = [None] * len(seg_audio)
        infos: dict[str, ModelInfo] = {}

        def asr_stage() -> None:
            nonlocal transcripts
            h.start("asr")
            engine = self.asr_engine()
            infos["asr"] = engine.info
            if seg_audio:
                transcripts = list(engine.transcribe(seg_audio, o.asr))
            h.end("asr", transcripts)

        def emotion_stage() -> None:
            nonlocal emotions
            engine = self.emotion_engine()
            if engine is None:
                return
            h.start("emotion")
            infos["emotion"] = engine.info
            if seg_audio:
                emotions = list(engine.score(seg_audio, o.emotion))
            h.end("emotion", emotions)

        # The two stages are independent (both read the VAD segments), so the engine that is ready first
        # runs first. On a cold start that is emotion2vec (about 1 s to load against 2+ s for SenseVoice):
        # it scores on the core the SenseVoice loader leaves idle. Warm, ASR goes first.
        stages = [s for s, on in ((asr_stage, o.run_asr), (emotion_stage, o.run_emotion)) if on]
        if len(stages) == 2 and self._first_ready("asr", "emotion") == "emotion":
            stages.reverse()
        for stage in stages:
            stage()
        models += [infos[k] for k in ("asr", "emotion") if k in infos]
        if not o.run_asr:
            skipped.append(Skipped("asr", "disabled by option", "drop --no-asr"))
        if o.run_emotion and self._emotion is None and self._emotion_skip is not None:
            skipped.append(self._emotion_skip)
        elif not o.run_emotion:
            skipped.append(Skipped("emotion2vec", "disabled by option", "drop --no-emotion"))
        emotion_engine = self._emotion if o.run_emotion else None

        separation = None
        if dplan is not None:
            from callsense.pipeline import diarize

            seg_audio, separation = diarize.apply_roles(dplan, seg_audio, transcripts, o, metadata, self.manager)
            models.append(dplan.info)
        segments, embeddings, timeline = _build_segments(seg_audio, transcripts, emotions)
        if dplan is not None:
            segments = tuple(replace(s, speaker=dplan.pieces[i].speaker) for i, s in enumerate(segments))
        events = tuple(
            AudioEvent(type=ev, start_ms=s.start_ms, end_ms=s.end_ms, channel=s.channel, role=s.role,
                       segment_id=s.id)
            for s in segments for ev in s.asr_events
        )
        emotion_model = self.options.emotion_model if emotion_engine is not None else None
        call_emotion = _call_emotion(segments, timeline, emotion_model, o, audio.duration_ms)
        if audio.source.narrowband:
            warnings.append(f"narrowband source ({audio.source.sample_rate} Hz): upsampled to 16 kHz for the models")

        result = CallAnalysis(
            schema_version=SCHEMA_VERSION,
            call_id=call_id or make_call_id(audio.source.sha256, started),
            source=audio.source,
            separation=separation or Separation(
                method="stereo" if len(audio.tracks) > 1 else "mono",
                channel_map=tuple(audio.channel_map),
                confidence=1.0 if len(audio.tracks) > 1 else None,
            ),
            tracks=tuple(
                TrackInfo(channel=t.channel, role=t.role, duration_ms=t.duration_ms,
                          speech_ms=speech_ms.get(t.channel, 0), level_dbfs=_dbfs(t.samples))
                for t in audio.tracks
            ),
            segments=segments,
            events=events,
            emotion=call_emotion,
            processing=ProcessingLog(
                callsense_version=__version__, pipeline_version=PIPELINE_VERSION,
                started_at=started.isoformat(timespec="seconds"), options=o.to_log(), models=tuple(models),
                warnings=tuple(warnings), skipped=tuple(skipped),
            ),
            metadata={**(metadata or {}), **_matched_agent(separation, metadata)},
        )
        if o.run_qa:
            h.start("qa")
            result = self._apply_qa(result)
            h.end("qa", result)
        timings = dict(timer.timings_ms)
        result = replace(result, processing=replace(result.processing, timings_ms=timings))
        return CallRun(result=result, embeddings=embeddings, audio=audio)

    def _diarize(self, audio: DecodedAudio, pieces: list, h: Hooks, warnings: list[str]) -> Any:
        """The diarization plan of a mono call, or None (stereo, disabled, or models not installed)."""
        if len(audio.tracks) != 1 or not self.options.diarize:
            return None
        from callsense.pipeline import diarize

        if not hasattr(self, "_diarizer"):
            self._diarizer = diarize.load_diarizer(self.manager, num_threads=self.options.num_threads)
        if self._diarizer is None:
            return None
        h.start("diarization")
        dplan = diarize.plan(self._diarizer, audio.tracks[0].samples, [(p[2], p[3]) for p in pieces])
        h.end("diarization", dplan)
        if not dplan.diarization.turns:
            warnings.append("diarization found no speaker (silence or music only): call invalid")
        return dplan

    def _apply_qa(self, result: CallAnalysis) -> CallAnalysis:
        from callsense import rules

        if self._ruleset is None:
            self._ruleset = rules.load_ruleset(self.options.rules) if self.options.rules else rules.default_ruleset()
        result = rules.apply_qa(result, ruleset=self._ruleset)
        targets = (*getattr(self._ruleset, "alerts", ()), *parse_webhooks(self.options.webhooks))
        if self.options.send_alerts and targets and result.rule_hits:
            from callsense.rules.alerts import attach_alerts

            result = attach_alerts(result, targets)  # never raises: a dead webhook is recorded, not fatal
        return result


ALERT_FORMATS = ("generic", "wecom", "dingtalk", "feishu", "slack")


def parse_webhooks(specs: Sequence[str]) -> list[Any]:
    """``"[FORMAT:]URL"`` strings -> alert targets (``wecom:https://...``; a bare URL is generic JSON)."""
    from callsense.rules.model import AlertTarget

    targets = []
    for spec in specs:
        fmt, sep, rest = spec.partition(":")
        if sep and fmt in ALERT_FORMATS:
            targets.append(AlertTarget(url=rest, format=fmt))  # type: ignore[arg-type]
        elif spec.startswith(("http://", "https://")):
            targets.append(AlertTarget(url=spec))
        else:
            raise UsageError(f"webhook {spec!r}: expected [FORMAT:]URL with FORMAT one of {', '.join(ALERT_FORMATS)}")
    return targets


def _matched_agent(separation: Separation | None, metadata: dict[str, Any] | None) -> dict[str, Any]:
    """An enrolled agent voiceprint that matched fills ``agent_id`` unless the caller gave one."""
    agent = next((s.agent_id for s in (separation.speakers if separation else ()) if s.agent_id), None)
    return {"agent_id": agent} if agent and not (metadata or {}).get("agent_id") else {}


def make_call_id(sha256: str, when: datetime) -> str:
    """``YYYYMMDD_HHMMSS_<8 hex of content hash>``: sortable by time, distinct per content."""
    return f"{when.astimezone(timezone.utc):%Y%m%d_%H%M%S}_{sha256[:8]}"


def _track_index(audio: DecodedAudio, channel: int) -> int:
    for i, t in enumerate(audio.tracks):
        if t.channel == channel:
            return i
    raise KeyError(channel)


def _cut(samples: np.ndarray, start_ms: int, end_ms: int) -> np.ndarray:
    a = start_ms * SAMPLE_RATE // 1000
    b = end_ms * SAMPLE_RATE // 1000
    return samples[a:b]


_CHUNK = 1 << 20  # samples per block in whole-track arithmetic: a float64 copy of a 10-min track is 77 MB


def _dbfs(samples: np.ndarray) -> float | None:
    if samples.size == 0:
        return None
    x = samples.reshape(-1)
    # block by block: the level of a whole track must not cost a float64 copy of it at the memory peak
    energy = sum(float(np.dot(b, b)) for b in (x[i:i + _CHUNK].astype(np.float64) for i in range(0, x.size, _CHUNK)))
    rms = (energy / x.size) ** 0.5
    return round(20 * np.log10(max(rms, 1e-10)), 2)


def _peak_dbfs(samples: np.ndarray) -> float | None:
    if samples.size == 0:
        return None
    return round(20 * np.log10(max(float(np.max(np.abs(samples))), 1e-10)), 2)


def _sensevoice_emotion(tag: str | None) -> SegmentEmotion | None:
    label = SENSEVOICE_EMOTION_TO_LABEL.get(tag or "")
    if label is None:
        return None
    e = EMOTION_BY_NAME[label]
    scores = tuple(1.0 if name == label else 0.0 for name in EMOTION_NAMES)
    return SegmentEmotion(label=label, label_zh=e.zh, emoji=e.emoji, confidence=1.0, scores=scores,
                          source="sensevoice")


def _segment_emotion(out: EmotionOutput, embedding_index: int | None) -> SegmentEmotion:
    best = int(np.argmax(out.scores))
    e = EMOTION_BY_NAME[EMOTION_NAMES[best]]
    return SegmentEmotion(label=e.name, label_zh=e.zh, emoji=e.emoji, confidence=round(float(out.scores[best]), 6),
                          scores=tuple(round(float(s), 6) for s in out.scores), source="emotion2vec",
                          embedding_index=embedding_index, flags=tuple(out.flags), reason=out.reason)


def _build_segments(seg_audio: Sequence[SegmentAudio], transcripts: Sequence[Transcription | None],
                    emotions: Sequence[EmotionOutput | None]):
    segments = []
    rows: list[np.ndarray] = []
    timeline: list[TimelinePoint] = []
    for sa, tr, em in zip(seg_audio, transcripts, emotions):
        fields: dict[str, Any] = {}
        if tr is not None:
            fields = dict(
                text=tr.text, text_no_itn=tr.text_no_itn, itn=tr.itn, language=tr.language,
                asr_emotion=tr.emotion, asr_events=tuple(e for e in tr.events if e not in NON_EVENT_TAGS),
                raw_tags=tr.raw_tags, tokens=tuple(TokenTime(t.token, t.start_ms) for t in tr.tokens),
                asr_status=tr.status,
            )
        emotion = None
        if em is not None:
            index = None
            if em.embedding is not None:
                index = len(rows)
                rows.append(np.asarray(em.embedding, dtype=np.float32))
            emotion = _segment_emotion(em, index)
            for w in em.windows:
                best = int(np.argmax(w.scores))
                timeline.append(TimelinePoint(start_ms=w.start_ms, end_ms=w.end_ms, segment_id=sa.id, role=sa.role,
                                              channel=sa.channel, scores=tuple(round(float(s), 6) for s in w.scores),
                                              label=EMOTION_NAMES[best]))
        elif tr is not None:
            emotion = _sensevoice_emotion(tr.emotion)
        segments.append(Segment(
            id=sa.id, channel=sa.channel, role=sa.role, start_ms=sa.start_ms,
            end_ms=sa.start_ms + int(round(len(sa.samples) * 1000 / SAMPLE_RATE)),
            emotion=emotion, level_dbfs=_dbfs(sa.samples), peak_dbfs=_peak_dbfs(sa.samples), **fields,
        ))
    embeddings = np.stack(rows) if rows else None
    return tuple(segments), embeddings, tuple(timeline)


def _call_emotion(segments: Sequence[Segment], timeline: Sequence[TimelinePoint], model: str | None,
                  o: AnalyzeOptions, duration_ms: int) -> CallEmotion | None:
    if not any(s.emotion for s in segments):
        return None
    try:
        from callsense.analysis.emotion import role_emotions
    except ImportError:  # aggregates are optional: the timeline and per-segment scores stand alone
        roles: tuple = ()
    else:
        roles = tuple(role_emotions(segments, duration_ms=duration_ms, timeline=timeline))
    return CallEmotion(model=model, labels=EMOTION_NAMES, window_ms=o.emotion.window_ms, hop_ms=o.emotion.hop_ms,
                       timeline=tuple(timeline), roles=roles, masked=tuple(o.emotion.masked))


__all__ = ["Analyzer", "CallRun", "make_call_id"]
