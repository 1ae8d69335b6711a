"""The application service: what the REST API, the web UI and ``callsense serve`` share.

:class:`Service` orchestrates; each job lives in its own module: uploads
(:mod:`~callsense.service.uploads`), admission (:mod:`~callsense.service.admission`: readiness,
duration, worker slots), signed audio links (:mod:`~callsense.service.audio_tokens`), jobs, calls,
rule versions and keys. The API and the UI are thin adapters over it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from callsense.audio.types import AudioOptions
from callsense.engines.base import AsrOptions, EmotionOptions
from callsense.errors import ModelNotFoundError, UsageError
from callsense.labels import EMOTION_NAMES
from callsense.pipeline import AnalyzeOptions, Analyzer, CallRun
from callsense.result.model import CallAnalysis
from callsense.service.admission import Admission
from callsense.service.audio_tokens import AudioTokens
from callsense.service.engines import EnginePool
from callsense.service.errors import NotFoundError
from callsense.service.keys import KeyStore
from callsense.service.metrics import Metrics
from callsense.service.rulesets import RuleVersions
from callsense.service.settings import ServiceSettings
from callsense.service.uploads import Upload, UploadSpool, named_as_uploaded, safe_filename

log = logging.getLogger("callsense")

Mode = Literal["auto", "sync", "async"]
MODES: tuple[Mode, ...] = ("auto", "sync", "async")

__all__ = ["AnalyzeOutcome", "AnalyzeRequest", "Mode", "Service", "Upload", "safe_filename"]


@dataclass(frozen=True)
class AnalyzeRequest:
    """What a caller may choose per analysis (everything else is the server's configuration)."""

    language: str = "auto"
    channels: tuple[str, ...] | None = None  # role per channel, e.g. ("customer", "agent")
    granularity: Literal["utterance", "frame"] = "frame"
    embeddings: bool = True
    emotion_model: str | None = None
    run_emotion: bool = True
    run_qa: bool = True
    use_itn: bool = True
    mood: bool = True  # the answer (inline, or the job's result) adds the metadata customer_id's mood

    def validate(self) -> AnalyzeRequest:
        """Raise :class:`UsageError` for a bad language, granularity, channel map or model (the option types check)."""
        AsrOptions(language=self.language)
        EmotionOptions(granularity=self.granularity)
        AudioOptions(channel_map=self.channels)  # type: ignore[arg-type]
        if self.emotion_model is not None:
            from callsense.engines.catalog import get_spec

            get_spec(self.emotion_model)  # an unknown name is a usage error naming the valid ones
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"language": self.language, "channels": list(self.channels) if self.channels else None,
                "granularity": self.granularity, "embeddings": self.embeddings,
                "emotion_model": self.emotion_model, "run_emotion": self.run_emotion, "run_qa": self.run_qa,
                "use_itn": self.use_itn, "mood": self.mood}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AnalyzeRequest:
        d = dict(d)
        if d.get("channels"):
            d["channels"] = tuple(d["channels"])
        return cls(**d)


@dataclass(frozen=True)
class AnalyzeOutcome:
    result: CallAnalysis | None = None  # when answered inline
    job: Any | None = None  # a service.jobs.Job when queued
    folder: Path | None = None


class Service:
    """One per process. ``start()`` warms the models and starts the job workers; ``stop()`` ends them."""

    def __init__(self, settings: ServiceSettings | None = None):
        from callsense.audio.types import AudioOptions

        self.settings = s = (settings or ServiceSettings()).validate()
        for d in (s.root, s.uploads_dir, s.calls_dir):
            d.mkdir(parents=True, exist_ok=True)
        try:
            s.uploads_dir.chmod(0o700)  # uploads are private to the service's user
        except OSError:
            pass
        self.keys = KeyStore(s.keys_path)
        self.metrics = Metrics()
        self.rules = RuleVersions(s.rules_dir)
        self.uploads = UploadSpool(s.uploads_dir, s.max_upload_bytes, s.max_upload_mb)
        self.audio_tokens = AudioTokens()
        from callsense.pipeline.diarize import read_lexicon

        base = AnalyzeOptions(num_threads=s.num_threads, asr_runtime=s.asr_runtime, emotion_runtime=s.emotion_runtime,
                              run_emotion=s.run_emotion, device=s.device,
                              agent_lexicon=read_lexicon())  # $CALLSENSE_AGENT_LEXICON (docs/diarization.md)
        if s.emotion_model:
            base = base.replace(emotion_model=s.emotion_model)
        if s.emotion_head or s.emotion_weights:  # docs/adapt.md: the service's head and weights
            base = base.replace(emotion_head=s.emotion_head,
                                emotion=dataclasses.replace(base.emotion, weights=tuple(s.emotion_weights)))
        from callsense.adapt.reply import load_policy

        self.reply_policy = load_policy(s.reply_config)

        base = base.replace(audio=AudioOptions(max_duration_s=s.max_duration_s, max_file_mb=s.max_upload_mb))
        self.engines = EnginePool(base)
        self.admission = Admission(s, self.engines)
        self._store: Any = None
        self._jobs: Any = None
        self._calls: Any = None
        self._store_lock = threading.Lock()
        self._courier: Any = None  # store.outbox.Courier while started
        self._started = False

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Service:
        if self._started:
            return self
        self._started = True
        self.jobs.start()
        from callsense.service.retention import Housekeeper

        self._housekeeper = Housekeeper(self)  # retention and the sweep of orphaned files
        self._housekeeper.start()
        from callsense.store.outbox import Courier

        self._courier = Courier(self.store).start()  # alerts, sent after storing, outside any analysis slot
        threading.Thread(target=self._warm_similarity, name="callsense-ann-warm").start()  # native: no daemon (store/ann.py)
        if self.settings.warm:
            threading.Thread(target=self.engines.warm, name="callsense-warm", daemon=True).start()
        else:
            self.engines.state = "ready"
        return self

    def _warm_similarity(self) -> None:
        """Similarity indexes loaded (or built: minutes at millions of vectors) before the first search
        asks, and retrained at growth in the background from now on (store/ann.py)."""
        from callsense.store import ann

        ann.rebuild_in_background(True)
        try:
            ann.warm(self.store)
        except Exception:  # noqa: BLE001 - a search builds the index itself; the service runs regardless
            log.warning("warming the similarity indexes failed", exc_info=True)

    def stop(self) -> None:
        if self._jobs is not None:
            self._jobs.stop()
        if getattr(self, "_housekeeper", None) is not None:
            self._housekeeper.stop()
        if self._courier is not None:
            self._courier.stop()
            self._courier = None
        self._started = False

    @property
    def limiter(self) -> Any:
        return self.admission.limiter

    @property
    def ready(self) -> bool:
        return self.admission.ready

    def readiness(self) -> dict[str, Any]:
        e = self.engines
        out: dict[str, Any] = {"ready": self.ready, "state": e.state, "models": e.loaded,
                               "load_seconds": e.load_seconds}
        if e.error is not None:
            out["error"] = e.error.to_dict()
        return out

    def require_ready(self) -> None:
        self.admission.require_ready()

    @property
    def store(self) -> Any:
        with self._store_lock:
            if self._store is None:
                from callsense.store.db import open_store

                self._store = open_store(self.settings.database_url)
            return self._store

    @property
    def jobs(self) -> Any:
        if self._jobs is None:
            from callsense.service.jobs import JobQueue

            self._jobs = JobQueue(self.store.engine, self._run_job, workers=self.settings.workers,
                                  lease_s=self.settings.job_lease_s)
        return self._jobs

    @property
    def mood(self) -> Any:
        """Mood histories of users, sessions and customers (service/mood.py)."""
        from callsense.service.mood import MoodBook

        return MoodBook(self)

    @property
    def calls(self) -> Any:
        if self._calls is None:
            from callsense.service.calls import CallRepository

            self._calls = CallRepository(self)
        return self._calls

    # ---- uploads (see service.uploads) ---------------------------------------------------------
    def save_upload(self, stream: BinaryIO, filename: str | None) -> Upload:
        return self.uploads.save(stream, filename)

    def save_path(self, path: str | Path) -> Upload:
        return self.uploads.save_path(path)

    def discard(self, upload: Upload) -> None:
        self.uploads.discard(upload)

    # ---- analysis ------------------------------------------------------------------------------
    def analyze(self, upload: Upload, request: AnalyzeRequest, metadata: dict[str, Any] | None = None,
                mode: Mode = "auto") -> AnalyzeOutcome:
        """Analyse inline (short recordings) or queue a job (long ones, or ``mode="async"``)."""
        queued = False
        try:
            request.validate()
            if mode not in MODES:
                raise UsageError(f"mode must be auto, sync or async, not {mode!r}")
            metadata = dict(metadata or {})
            self.calls.validate_metadata(metadata)  # refused before any work: nothing is written
            duration = self.admission.duration(upload)
            if mode == "async" or (mode == "auto" and duration is not None and duration > self.settings.sync_max_s):
                if self.engines.state == "failed" and self.engines.error is not None:
                    raise self.engines.error
                job = self.jobs.submit(str(upload.path), filename=upload.filename, options=request.to_dict(),
                                       metadata=dict(metadata or {}))
                queued = True
                return AnalyzeOutcome(job=job)
            self.admission.require_ready()
            with self.admission.slot():
                folder, result = self._analyze_file(upload, request, dict(metadata or {}), endpoint="analyze")
            return AnalyzeOutcome(result=result, folder=folder)
        finally:
            if not queued:
                self.discard(upload)

    def _analyze_file(self, upload: Upload, request: AnalyzeRequest, metadata: dict[str, Any], *,
                      endpoint: str) -> tuple[Path, CallAnalysis]:
        analyzer = self.engines.analyzer(**self._changes(request))
        with named_as_uploaded(upload, count=lambda code: self.metrics.analyses.labels(endpoint, code).inc()):
            run = analyzer.run(upload.path, metadata={"filename": upload.filename, **metadata})
        self.metrics.analyses.labels(endpoint, "ok").inc()
        self.metrics.audio_seconds.labels(endpoint).inc(run.result.duration_ms / 1000)
        from callsense.store.repo import keep_identity  # the stored call's id (a re-analysis keeps it)

        run = self._as_uploaded(run, upload)
        run = dataclasses.replace(run, result=keep_identity(self.store, run.result))
        run = self._with_history(analyzer, run, request)
        folder, result = self.calls.persist(run, fingerprint=analyzer.fingerprint,  # redacted there when --redact
                                            alert_targets=analyzer.alert_targets())
        self.wake_courier()
        return folder, result

    def wake_courier(self) -> None:
        """The alerts just queued with a result go out now, on the courier's thread."""
        if self._courier is not None:
            self._courier.wake()

    @staticmethod
    def _as_uploaded(run: CallRun, upload: Upload) -> CallRun:
        """The result as the client sent it: its file name, no server path."""
        source = dataclasses.replace(run.result.source, name=upload.filename, path=None)
        return dataclasses.replace(run, result=dataclasses.replace(run.result, source=source))

    def _with_history(self, analyzer: Analyzer, run: CallRun, request: AnalyzeRequest) -> CallRun:
        """``run`` with its QA re-run against the store — the agent's and customer's stored calls
        (``history`` conditions) and the segments' stored outlier scores (``outlier``) — when the rule set
        has such conditions, exactly as ``callsense batch`` does before storing: a call gets the same rule
        hits whichever way it was analysed. Unchanged when QA did not run."""
        ruleset = analyzer.ruleset  # the one this analysis loaded for its QA (the active version)
        if not request.run_qa or ruleset is None:
            return run
        from callsense.store.history import apply_store_rules

        result = apply_store_rules(self.store, run.result, ruleset)
        return run if result is run.result else dataclasses.replace(run, result=result)

    def _changes(self, request: AnalyzeRequest) -> dict[str, Any]:
        base = self.engines.base_options
        audio = base.audio if request.channels is None else dataclasses.replace(base.audio,
                                                                              channel_map=tuple(request.channels))
        changes: dict[str, Any] = {
            "audio": audio,
            "asr": dataclasses.replace(base.asr, language=request.language, use_itn=request.use_itn),
            "emotion": dataclasses.replace(base.emotion, granularity=request.granularity,
                                           embeddings=request.embeddings),
            "run_emotion": request.run_emotion and base.run_emotion,
            "run_qa": request.run_qa,
            "rules": self.rules.active_path(),
        }
        if request.emotion_model:
            from callsense.engines.catalog import get_spec

            changes["emotion_model"] = get_spec(request.emotion_model).name
        return changes

    def _run_job(self, job: Any) -> str:
        path = Path(job.upload_path)
        if not path.is_file():
            raise NotFoundError("the job's upload is gone (deleted before the job ran)",
                                hint="submit the recording again")
        upload = Upload(path=path, filename=job.filename or "upload", size=path.stat().st_size)
        self.admission.wait_until_ready()
        with self.admission.slot(inline=False):
            _, result = self._analyze_file(upload, AnalyzeRequest.from_dict(job.options), job.metadata,
                                           endpoint="job")
        self.discard(upload)
        return result.call_id

    # ---- single-clip endpoints -------------------------------------------------------------------
    def emotion(self, upload: Upload, *, granularity: str = "utterance", embedding: bool = False,
                emotion_model: str | None = None, user_id: str | None = None,
                session_id: str | None = None) -> dict[str, Any]:
        """One clip → label, confidence, distribution, timeline (frame granularity) and embedding; the clip is
        trimmed and refused when too quiet, and the answer carries the head's label, fallback and reply style
        (docs/adapt.md). With ``user_id`` (or ``session_id``) the answer is kept in that subject's mood
        history and the answer adds ``mood`` and ``alert`` (service/mood.py)."""
        from callsense.adapt.clip import mono, prepare_clip
        from callsense.analysis.emotion import segment_emotion, timeline_points
        from callsense.audio.decode import load_audio
        from callsense.engines.base import SegmentAudio
        from callsense.service.mood import subject_of

        try:
            subject = subject_of(user_id, session_id)
            opts = EmotionOptions(granularity=granularity,  # type: ignore[arg-type]
                                  embeddings=embedding or subject is not None,  # the history keeps embeddings
                                  weights=self._emotion_weights())
        except UsageError:
            self.discard(upload)
            raise
        try:
            if emotion_model is not None:
                from callsense.engines.catalog import get_spec

                get_spec(emotion_model)
            self.admission.duration(upload)
            self.admission.require_ready()
            with self.admission.slot():
                base = self.engines.analyzer(**({"emotion_model": emotion_model} if emotion_model else {}))
                engine = base.emotion_engine()
                if engine is None:
                    skip = base.emotion_skip
                    raise ModelNotFoundError(skip.reason if skip else "no emotion model is installed",
                                             hint=skip.hint if skip else None)
                with named_as_uploaded(upload):
                    audio = load_audio(upload.path, base.options.audio)
                clip_in = prepare_clip(mono([t.samples for t in audio.tracks]), source=upload.filename)
                samples = clip_in.samples
                out = engine.score([SegmentAudio(id="clip", samples=samples, start_ms=0)], opts)[0]
        finally:
            self.discard(upload)
        self.metrics.audio_seconds.labels("emotion").inc(audio.duration_ms / 1000)
        clip = segment_emotion(out)
        mood: dict[str, Any] = {}
        if subject is not None and out.embedding is not None:
            mood = self.mood.add(subject, label=clip.label, confidence=clip.confidence,
                                 distribution=list(clip.scores), embedding=out.embedding, model=engine.info.name)
        return {
            "label": clip.label, "label_zh": clip.label_zh, "emoji": clip.emoji, "confidence": clip.confidence,
            "distribution": dict(zip(EMOTION_NAMES, clip.scores)),
            "ranked": [name for _, name in sorted(zip(out.scores, EMOTION_NAMES), key=lambda x: -x[0])][:3],
            "timeline": [{"start_ms": p.start_ms, "end_ms": p.end_ms, "label": p.label, "scores": list(p.scores)}
                         for p in timeline_points(out, segment_id="clip")] if granularity == "frame" else [],
            "embedding": [float(x) for x in out.embedding] if embedding and out.embedding is not None else None,
            "duration_ms": audio.duration_ms, "flags": list(out.flags), "reason": out.reason,
            "model": engine.info.name,
            "custom": dataclasses.asdict(clip.custom) if clip.custom is not None else None,
            "weights": dict(opts.weights),
            "trim": {"start_ms": clip_in.trim.start_ms, "end_ms": clip_in.trim.end_ms,
                     "kept_ms": clip_in.trim.kept_ms},
            **self.reply_policy.answer(clip.label, clip.confidence, clip.reason),
            **({"mood": mood["mood"], "alert": mood["alert"]} if mood else {}),
        }

    def _emotion_weights(self) -> tuple[tuple[str, float], ...]:
        """The service's weights over the active rule file's ``emotion_weights`` (the setting wins per class)."""
        path = self.rules.active_path()
        from_rules: tuple[tuple[str, float], ...] = ()
        if path is not None:
            from callsense.rules import load_ruleset

            from_rules = load_ruleset(path).emotion_weights
        from callsense.adapt.weights import merged

        return merged(from_rules, self.settings.emotion_weights)

    def transcribe(self, upload: Upload, *, language: str = "auto") -> CallAnalysis:
        """ASR only (SenseVoice tags included): the result is not stored."""
        try:
            AsrOptions(language=language)
        except UsageError:
            self.discard(upload)
            raise
        try:
            self.admission.duration(upload)
            self.admission.require_ready()
            with self.admission.slot():
                request = AnalyzeRequest(language=language, run_emotion=False, run_qa=False, embeddings=False)
                analyzer = self.engines.analyzer(**self._changes(request))
                with named_as_uploaded(upload):
                    run = analyzer.run(upload.path, metadata={"filename": upload.filename})
        finally:
            self.discard(upload)
        self.metrics.audio_seconds.labels("transcriptions").inc(run.result.duration_ms / 1000)
        return self._as_uploaded(run, upload).result

    # ---- calls -----------------------------------------------------------------------------------
    def sign_audio(self, call_id: str, ttl_s: int = 6 * 3600) -> str:
        """A short-lived token that lets a browser's <audio> element fetch one call's audio without a key."""
        return self.audio_tokens.sign(call_id, ttl_s)

    def check_audio_token(self, call_id: str, token: str) -> bool:
        return self.audio_tokens.check(call_id, token)

    # ---- reviewers' corrections (store/corrections.py) -------------------------------------------
    def label_segment(self, call_id: str, segment_id: str, label: Any, *, reviewer: str,
                      note: str | None = None) -> dict[str, Any]:
        """Store a reviewer's label for a segment of a stored call (who and when are recorded)."""
        from callsense.store.corrections import add_correction

        return add_correction(self.store, call_id, segment_id, label, reviewer=reviewer, note=note).to_dict()

    def segment_labels(self, call_id: str) -> list[dict[str, Any]]:
        """Every correction of one call, oldest first (404 for an unknown call)."""
        from callsense.store.corrections import list_corrections

        self.calls.get(call_id)  # an unknown call: 404
        return [c.to_dict() for c in list_corrections(self.store, call_id=call_id)]

    def purge(self, call_id: str) -> None:
        """Delete the call everywhere (docs/privacy.md): from then on every route answers 404."""
        self.calls.delete(call_id)
