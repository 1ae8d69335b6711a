"""The analysis pipeline: decode → tracks → VAD → ASR and emotion per segment → CallAnalysis.

``Analyzer.run`` is four phases, each a method that the Ray batch also calls on its own (in a decode
task, a model actor, the driver): ``prepare`` → ``transcribe`` / ``score`` → ``assemble``; what one
phase hands to the next is in :mod:`callsense.pipeline.phases`.

``Analyzer`` loads each engine once (lazily, on first use) and reuses it for every call, so a batch
worker or the web service pays model loading once. Everything is composed here; engines, audio and
QA live in their own packages, and progress/timing are hooks.
"""

from __future__ import annotations

import logging
import threading
import weakref
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
from callsense.errors import HubUnreachableError, ModelNotFoundError, UsageError
from callsense.pipeline import stages
from callsense.pipeline.hooks import Hook, Hooks, StageTimer
from callsense.pipeline.options import AnalyzeOptions
from callsense.pipeline.phases import Piece, Prepared, StageRun
from callsense.result.model import (
    SCHEMA_VERSION,
    CallAnalysis,
    ModelInfo,
    ProcessingLog,
    Separation,
    Skipped,
    TrackInfo,
)

log = logging.getLogger("callsense")

_LOADERS: weakref.WeakSet[threading.Thread] = weakref.WeakSet()  # model loads in flight (Analyzer._spawn)


def finish_loading() -> None:
    """Wait for every model load still running on a background thread (seconds at most). Called by the
    CLI before it exits, so that no loader is inside native code when the interpreter shuts down."""
    for thread in list(_LOADERS):
        thread.join()

NON_EVENT_TAGS = stages.NON_EVENT_TAGS


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
        self.options = options or AnalyzeOptions()  # the option types validated themselves
        self.manager = manager or ModelManager(allow_download=self.options.allow_download)
        self._asr: Any = None
        self._emotion: Any = None
        self._emotion_skip: Skipped | None = None
        self._skip_error: Exception | None = None  # why emotion2vec is skipped, until emotion_engine() says it
        self._skip_level = logging.WARNING
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
        error, self._skip_error = self._skip_error, None
        if error is not None:  # once per analyzer, when a stage first asks
            log.log(self._skip_level, "emotion2vec skipped: %s", error)
        return self._emotion

    @property
    def emotion_skip(self) -> Skipped | None:
        """Why emotion2vec cannot run here (model missing ...), once :meth:`emotion_engine` has looked."""
        return self._emotion_skip

    def _build_asr(self) -> Any:
        from callsense.engines import registry

        o = self.options
        from callsense.engines.device import asr_runtime_for

        runtime = asr_runtime_for(o.asr_runtime, o.device)  # sherpa-onnx is CPU-only: "ort" on CUDA
        located = self.manager.locate(o.asr_model, registry.model_format("asr", runtime))
        engine = registry.create("asr", runtime, located.path, num_threads=o.num_threads, device=o.device)
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
            # Offline, the ASR model's error says it all (one message): the result still lists this skip.
            # Said by emotion_engine(), not here: a background load of a run that fails first says nothing.
            self._skip_level = logging.DEBUG if isinstance(e, HubUnreachableError) else logging.WARNING
            self._skip_error = e
            return None, Skipped("emotion2vec", e.message, e.hint)
        from callsense.adapt.engine import with_head  # --emotion-head: the custom head rides on the engine

        engine = registry.create("emotion", o.emotion_runtime, path, num_threads=o.num_threads, device=o.device)
        return with_head(engine, o.emotion_head), None

    def load_in_background(self) -> None:
        """Start loading the engines this analyzer will need, each on its own thread, and return.

        Loading is mostly single-threaded (model parsing, graph optimisation, weight pre-packing), so on
        a cold start the two models load side by side while the audio is decoded and the VAD runs: on
        2 cores this takes about 0.7 s off the first result (bench/e2e.py). ``asr_engine()`` and
        ``emotion_engine()`` wait for their loader and re-raise its error, so a missing model still fails
        at the stage that needs it, with the same exception.
        """
        o = self.options
        if o.diarize:
            from callsense.pipeline import diarize

            diarize.speaker_model()  # a bad CALLSENSE_SPEAKER_MODEL is a usage error before any model loads
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

        # Not a daemon: a daemon thread still inside ONNX Runtime's session creation when the interpreter
        # finalizes is stopped by pthread_exit on its way back for the GIL, and through C++ frames that
        # aborts the process ("terminate called without an active exception"): an error raised while the
        # models load (exit 2 or 3) became a crash. The CLI waits for loads (finish_loading) before exit.
        thread = threading.Thread(target=target, name="callsense-load")
        _LOADERS.add(thread)
        thread.start()
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
            engine = self.emotion_engine()
            if engine is not None and o.emotion_head != n.emotion_head:
                from callsense.adapt.engine import with_head

                engine = with_head(getattr(engine, "inner", engine), n.emotion_head)
            other._emotion, other._emotion_skip = engine, self._emotion_skip
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
        """Identifies what produced a result: pipeline, models, output-shaping options and rule content
        (:func:`callsense.pipeline.fingerprint.analysis_fingerprint`; batch skips on equality)."""
        from callsense.pipeline.fingerprint import analysis_fingerprint

        o = self.options
        models = [self._find(o.asr_model, o.asr_runtime), self._find(o.emotion_model, o.emotion_runtime)]
        return analysis_fingerprint(o, models + self._result_shaping_files())

    def _result_shaping_files(self) -> list[str]:
        """What else changes a result without changing an option: the diarization models a mono call would
        use, the enrolled agents' voiceprints, and the content of the emotion head (retrained under the same
        name). Listed only when present, so a setup without them keeps its fingerprints."""
        import hashlib

        out: list[str] = []
        o = self.options
        if o.diarize:
            from callsense.engines.catalog import DEFAULT_SEGMENTATION_MODEL
            from callsense.pipeline import diarize

            speaker = diarize.speaker_model()
            seg, emb = self.manager.find(DEFAULT_SEGMENTATION_MODEL, "onnx"), self.manager.find(speaker, "onnx")
            if seg is not None and emb is not None:
                out += [f"{m.name}/{m.runtime}@{m.path}" for m in (seg, emb)]
                prints = diarize.voiceprint_folder(self.manager.home, speaker)
                digest = hashlib.sha256()
                for path in sorted(prints.glob("*.npy")) if prints.is_dir() else ():
                    digest.update(path.name.encode() + b"\0" + path.read_bytes())
                out.append(f"voiceprints:{digest.hexdigest()[:16]}")
        if o.emotion_head:
            from callsense.adapt.head import head_path

            try:
                out.append(f"head:{o.emotion_head}:{hashlib.sha256(head_path(o.emotion_head).read_bytes()).hexdigest()}")
            except OSError:
                out.append(f"head:{o.emotion_head}")
        return out

    def _find(self, name: str, runtime: str) -> str | None:
        try:
            from callsense.engines.registry import model_format

            found = self.manager.find(name, model_format("asr", runtime))
        except UsageError:
            return None
        return f"{found.name}/{found.runtime}@{found.path}" if found else None

    # ---- the pipeline ----------------------------------------------------------------------------
    def analyze(self, source: Any, **kwargs: Any) -> CallAnalysis:
        return self.run(source, **kwargs).result

    def run(self, source: Any, *, metadata: dict[str, Any] | None = None, hooks: Sequence[Hook] = (),
            call_id: str | None = None, sample_rate: int | None = None) -> CallRun:
        """The four phases (:mod:`callsense.pipeline.phases`) in this process: prepare, then ASR and emotion
        on the speech segments (whichever engine is ready first runs first), then assemble."""
        o = self.options
        self.load_in_background()  # cold start: the models load while the audio is decoded (no-op when warm)
        prepared = self.prepare(source, hooks=hooks, sample_rate=sample_rate)
        segs = prepared.segments()
        # The two stages are independent (both read the VAD segments), so the engine that is ready first
        # runs first. On a cold start that is emotion2vec (about 1 s to load against 2+ s for SenseVoice):
        # it scores on the core the SenseVoice loader leaves idle. Warm, ASR goes first.
        order = [s for s, on in ((self.transcribe, o.run_asr), (self.score, o.run_emotion)) if on]
        if len(order) == 2 and self._first_ready("asr", "emotion") == "emotion":
            order.reverse()
        runs = [stage(segs, hooks=hooks) for stage in order]
        return self.assemble(prepared, runs, metadata=metadata, call_id=call_id, hooks=hooks)

    # ---- the phases (callsense.pipeline.phases): run here by run(), in separate processes by the Ray batch
    def prepare(self, source: Any, *, hooks: Sequence[Hook] = (), sample_rate: int | None = None) -> Prepared:
        """Phase 1: decode, VAD on every channel and, for a mono call, the diarization plan. Loads no
        ASR or emotion model (a Ray decode task runs this alone)."""
        from callsense.audio.decode import load_audio

        o = self.options
        timer = StageTimer()
        h = Hooks([timer, *hooks])
        started = datetime.now(timezone.utc)
        h.start("decode")
        audio = load_audio(source, o.audio, **({"sample_rate": sample_rate} if sample_rate else {}))
        warnings: list[str] = list(getattr(audio, "warnings", ()) or ())
        h.end("decode", audio)

        h.start("vad")
        pieces: list[Piece] = []
        speech_ms: dict[int, int] = {}
        for ti, track in enumerate(audio.tracks):
            spans = stages.speech_spans(track, o.vad)
            speech_ms[track.channel] = sum(b - a for a, b in spans)
            pieces += [(ti, a, b) for a, b in spans]
        pieces.sort(key=lambda p: (p[1], audio.tracks[p[0]].channel))
        dplan = self._diarize(audio, [(audio.tracks[ti].channel, audio.tracks[ti].role, a, b) for ti, a, b in pieces],
                              h, warnings)  # mono + models installed: pieces per speaker
        if dplan is not None:
            pieces = [(0, x.start_ms, x.end_ms) for x in dplan.pieces]
        prepared = Prepared(audio=audio, pieces=tuple(pieces), speech_ms=speech_ms, started=started,
                            warnings=tuple(warnings), dplan=dplan)
        h.end("vad", prepared.segments())
        return replace(prepared, timings_ms=dict(timer.timings_ms))

    def transcribe(self, segments: Sequence[SegmentAudio], *, hooks: Sequence[Hook] = ()) -> StageRun:
        """Phase 2: SenseVoice on the speech segments (loads it on first use)."""
        timer = StageTimer()
        h = Hooks([timer, *hooks])
        h.start("asr")
        engine = self.asr_engine()
        transcripts = stages.transcribe_segments(engine, segments, self.options.asr)
        h.end("asr", transcripts)
        return StageRun("asr", tuple(transcripts), engine.info, timer.timings_ms.get("asr"))

    def score(self, segments: Sequence[SegmentAudio], *, hooks: Sequence[Hook] = ()) -> StageRun:
        """Phase 3: emotion2vec+ on the speech segments; a skipped run (with the reason) when it cannot
        run here (model not installed)."""
        engine = self.emotion_engine()
        if engine is None:
            return StageRun("emotion", None, skipped=self._emotion_skip)
        timer = StageTimer()
        h = Hooks([timer, *hooks])
        h.start("emotion")
        emotions = stages.score_emotions(engine, segments, self._with_rule_weights(self.options).emotion)
        h.end("emotion", emotions)
        return StageRun("emotion", tuple(emotions), engine.info, timer.timings_ms.get("emotion"))

    def assemble(self, prepared: Prepared, runs: Sequence[StageRun], *, metadata: dict[str, Any] | None = None,
                 call_id: str | None = None, hooks: Sequence[Hook] = ()) -> CallRun:
        """Phase 4: the result from the prepared call and the stages' runs (in the order they ran): the
        diarized roles of a mono call, :func:`assemble_call`, QA, and every phase's timings."""
        o = self._with_rule_weights(self.options)  # the weights the emotion phase applied are recorded
        seg_audio = prepared.segments()
        by_stage = {r.stage: r for r in runs}
        asr, emo = by_stage.get("asr"), by_stage.get("emotion")
        transcripts = list(asr.outputs) if asr is not None and asr.ran else [None] * len(seg_audio)
        emotions = list(emo.outputs) if emo is not None and emo.ran else [None] * len(seg_audio)
        models = [ModelInfo("vad", "silero-vad", "onnx", options={"threshold": o.vad.threshold})]
        models += [r.info for r in (asr, emo) if r is not None and r.ran and r.info is not None]
        skipped: list[Skipped] = []
        if not o.run_asr:
            skipped.append(Skipped("asr", "disabled by option", "drop --no-asr"))
        if not o.run_emotion:
            skipped.append(Skipped("emotion2vec", "disabled by option", "drop --no-emotion"))
        elif emo is not None and not emo.ran and emo.skipped is not None:
            skipped.append(emo.skipped)
        separation = speakers = None
        dplan = prepared.dplan
        if dplan is not None:
            from callsense.pipeline import diarize

            seg_audio, separation = diarize.apply_roles(dplan, seg_audio, transcripts, o, metadata, self.manager)
            models.append(dplan.info)
            speakers = [p.speaker for p in dplan.pieces]
        audio = prepared.audio
        result, embeddings = assemble_call(
            audio, seg_audio, transcripts, emotions, prepared.speech_ms, options=o,
            emotion_model=o.emotion_model if emo is not None and emo.ran else None,
            call_id=call_id or make_call_id(audio.source.sha256, prepared.started), started=prepared.started,
            models=models, warnings=prepared.warnings, skipped=skipped,
            metadata={**(metadata or {}), **_matched_agent(separation, metadata)},
            separation=separation, speakers=speakers)
        timer = StageTimer()
        if o.run_qa:
            h = Hooks([timer, *hooks])
            h.start("qa")
            result = self._apply_qa(result)
            h.end("qa", result)
        timings = {**prepared.timings_ms, **{r.stage: r.ms for r in runs if r.ms is not None}, **timer.timings_ms}
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

    def _with_rule_weights(self, o: AnalyzeOptions) -> AnalyzeOptions:
        """``o`` with the rule file's ``emotion_weights`` under its own (an explicit weight wins per class), when
        this run applies a rule file (QA on); the weights used are what the result records."""
        if not (o.run_qa and o.rules and o.run_emotion):
            return o
        from callsense import rules

        if self._ruleset is None:
            self._ruleset = rules.load_ruleset(o.rules)
        from_rules = getattr(self._ruleset, "emotion_weights", ())
        if not from_rules:
            return o
        merged = {**dict(from_rules), **dict(o.emotion.weights)}
        return o.replace(emotion=replace(o.emotion, weights=tuple(merged.items())))

    def _apply_qa(self, result: CallAnalysis) -> CallAnalysis:
        from callsense import rules

        if self._ruleset is None:
            self._ruleset = rules.load_ruleset(self.options.rules) if self.options.rules else rules.default_ruleset()
        # Alerts are not sent here: whoever keeps the result sends them once it is kept (the store's
        # outbox for batch and service, callsense analyze after writing its folder), so a webhook that
        # hangs never holds an analysis and a re-analysis never re-sends (docs/rules.md, Alerts).
        return rules.apply_qa(result, ruleset=self._ruleset)

    def alert_targets(self) -> tuple[Any, ...]:
        """Where this analyzer's alerting hits go: the rule file's ``alerts`` and ``options.webhooks``
        (none with ``send_alerts=False``, or before QA has loaded the rule set and no webhook is given)."""
        if not self.options.send_alerts:
            return ()
        return (*getattr(self._ruleset, "alerts", ()), *parse_webhooks(self.options.webhooks))


def assemble_call(audio: DecodedAudio, seg_audio: Sequence[Any], transcripts: Sequence[Transcription | None],
                  emotions: Sequence[EmotionOutput | None], speech_ms: dict[int, int], *, options: AnalyzeOptions,
                  emotion_model: str | None, call_id: str, started: datetime, models: Sequence[ModelInfo],
                  warnings: Sequence[str] = (), skipped: Sequence[Skipped] = (),
                  metadata: dict[str, Any] | None = None, separation: Separation | None = None,
                  speakers: Sequence[str | None] | None = None) -> tuple[CallAnalysis, np.ndarray | None]:
    """The call's result (before QA) from its audio and the stages' outputs per segment: what a file's
    run and a live call (segments arriving one by one, ``callsense.live``) both end with. A diarized
    mono call passes its ``separation`` and each segment's diarized ``speakers``."""
    o = options
    warnings = list(warnings)
    segments, embeddings, timeline = stages.build_segments(seg_audio, transcripts, emotions)
    if speakers is not None:
        segments = tuple(replace(s, speaker=sp) for s, sp in zip(segments, speakers))
    events = tuple(sorted((*stages.audio_events(segments), *stages.tone_events(audio.tracks)),
                          key=lambda e: (e.start_ms, e.end_ms, e.type)))
    call_emotion = stages.call_emotion(segments, timeline, emotion_model, o.emotion, audio.duration_ms,
                                       head=o.emotion_head if emotion_model is not None else None)
    if audio.source.narrowband:
        warnings.append(f"narrowband source ({audio.source.sample_rate} Hz): upsampled to 16 kHz for the models")
    result = CallAnalysis(
        schema_version=SCHEMA_VERSION,
        call_id=call_id,
        source=audio.source,
        separation=separation or Separation(
            method="stereo" if len(audio.tracks) > 1 else "mono",
            channel_map=tuple(audio.channel_map),
            confidence=1.0 if len(audio.tracks) > 1 else None,
        ),
        tracks=tuple(
            TrackInfo(channel=t.channel, role=t.role, duration_ms=t.duration_ms,
                      speech_ms=speech_ms.get(t.channel, 0), level_dbfs=stages.dbfs(t.samples))
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
        metadata=dict(metadata or {}),
    )
    return result, embeddings


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


__all__ = ["Analyzer", "CallRun", "assemble_call", "make_call_id"]
