"""The application service: what the REST API, the web UI and ``callsense serve`` share.

It owns the warm models, admission control, uploads, jobs, the store and the rule versions; the API
and the UI are thin adapters over :class:`Service`.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from callsense.audio.types import AudioOptions
from callsense.engines.base import AsrOptions, EmotionOptions
from callsense.errors import AudioLimitError, CallsenseError, UsageError
from callsense.labels import EMOTION_NAMES
from callsense.service.errors import BadRequestError, NotFoundError, UnavailableError, UploadTooLargeError
from callsense.service.settings import ServiceSettings

log = logging.getLogger("callsense")

Mode = Literal["auto", "sync", "async"]
CHUNK = 1 << 20


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

    def validate(self) -> AnalyzeRequest:
        """Raise :class:`UsageError` for a bad language, granularity or channel map (the option types check)."""
        AsrOptions(language=self.language)
        EmotionOptions(granularity=self.granularity)
        AudioOptions(channel_map=self.channels)  # type: ignore[arg-type]
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"language": self.language, "channels": list(self.channels) if self.channels else None,
                "granularity": self.granularity, "embeddings": self.embeddings,
                "emotion_model": self.emotion_model, "run_emotion": self.run_emotion, "run_qa": self.run_qa,
                "use_itn": self.use_itn}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AnalyzeRequest:
        d = dict(d)
        if d.get("channels"):
            d["channels"] = tuple(d["channels"])
        return cls(**d)


@dataclass(frozen=True)
class Upload:
    path: Path  # server-chosen name under the private uploads folder
    filename: str  # the client's name, sanitised, for display only
    size: int


@dataclass
class AnalyzeOutcome:
    result: Any | None = None  # CallAnalysis when answered inline
    job: Any | None = None  # Job when queued
    folder: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def safe_filename(name: str | None) -> str:
    """A display name from a client's file name: no folders, no control characters, bounded length."""
    base = (name or "upload").replace("\\", "/").rsplit("/", 1)[-1]
    base = re.sub(r"[\x00-\x1f\x7f]", "", base).strip() or "upload"
    return base[:200]


class Service:
    """One per process. ``start()`` warms the models and starts the job workers; ``stop()`` ends them."""

    def __init__(self, settings: ServiceSettings | None = None):
        from callsense.pipeline import AnalyzeOptions
        from callsense.service.engines import EnginePool
        from callsense.service.keys import KeyStore
        from callsense.service.limits import Limiter
        from callsense.service.metrics import Metrics
        from callsense.service.rulesets import RuleVersions

        self.settings = s = (settings or ServiceSettings()).validate()
        for d in (s.root, s.uploads_dir, s.calls_dir):
            d.mkdir(parents=True, exist_ok=True)
        try:
            s.uploads_dir.chmod(0o700)  # uploads are private to the service's user
        except OSError:
            pass
        self.keys = KeyStore(s.keys_path)
        self.limiter = Limiter(s.workers, s.max_queue, retry_after=s.retry_after_s)
        self.metrics = Metrics()
        self.rules = RuleVersions(s.rules_dir)
        base = AnalyzeOptions(num_threads=s.num_threads, asr_runtime=s.asr_runtime, emotion_runtime=s.emotion_runtime,
                              run_emotion=s.run_emotion, device=s.device)
        if s.emotion_model:
            base = base.replace(emotion_model=s.emotion_model)

        base = base.replace(audio=AudioOptions(max_duration_s=s.max_duration_s, max_file_mb=s.max_upload_mb))
        self.engines = EnginePool(base)
        self._store: Any = None
        self._jobs: Any = None
        self._store_lock = threading.Lock()
        self._started = False
        self._secret = __import__("os").urandom(32)  # signs audio links; they die with the process

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Service:
        if self._started:
            return self
        self._started = True
        self.jobs.start()
        if self.settings.warm:
            threading.Thread(target=self.engines.warm, name="callsense-warm", daemon=True).start()
        else:
            self.engines.state = "ready"
        return self

    def stop(self) -> None:
        if self._jobs is not None:
            self._jobs.stop()
        self._started = False

    @property
    def ready(self) -> bool:
        return self.engines.state == "ready"

    def readiness(self) -> dict[str, Any]:
        e = self.engines
        out: dict[str, Any] = {"ready": self.ready, "state": e.state, "models": e.loaded,
                               "load_seconds": e.load_seconds}
        if e.error is not None:
            out["error"] = e.error.to_dict()
        return out

    def require_ready(self) -> None:
        if self.engines.state == "failed" and self.engines.error is not None:
            raise self.engines.error
        if not self.ready:
            raise UnavailableError("models are still loading", hint="retry shortly; GET /readyz says when ready",
                                   retry_after=self.settings.retry_after_s)

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

            self._jobs = JobQueue(self.store.engine, self._run_job, workers=self.settings.workers)
        return self._jobs

    # ---- uploads -------------------------------------------------------------------------------
    def save_upload(self, stream: BinaryIO, filename: str | None) -> Upload:
        """Copy an upload under a server-chosen name, refusing it (413) as soon as it exceeds the limit."""
        limit = self.settings.max_upload_bytes
        path = self.settings.uploads_dir / f"{uuid.uuid4().hex}.upload"
        size = 0
        try:
            with open(path, "wb") as out:
                while chunk := stream.read(CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise UploadTooLargeError(
                            f"upload larger than the limit of {self.settings.max_upload_mb:g} MB",
                            hint="send a shorter recording or raise --max-upload-mb")
                    out.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        if size == 0:
            path.unlink(missing_ok=True)
            raise BadRequestError("the uploaded file is empty", source=safe_filename(filename),
                                  hint="send an audio file (WAV, MP3, M4A, FLAC, OGG, ...)")
        return Upload(path=path, filename=safe_filename(filename), size=size)

    def save_path(self, path: str | Path) -> Upload:
        """Copy a local file (UI uploads, examples) into the private uploads folder."""
        p = Path(path)
        with open(p, "rb") as f:
            return self.save_upload(f, p.name)

    def discard(self, upload: Upload) -> None:
        upload.path.unlink(missing_ok=True)

    def probe_duration(self, path: Path) -> float | None:
        """Seconds of audio from the container header, or None when the header does not say."""
        try:
            import av

            with av.open(str(path), metadata_errors="ignore") as c:
                if c.duration:
                    return c.duration / 1_000_000
                stream = next(iter(c.streams.audio), None)
                if stream is not None and stream.duration and stream.time_base:
                    return float(stream.duration * stream.time_base)
        except Exception:  # noqa: BLE001 (not decodable: the analysis itself will say why, 415)
            return None
        return None

    # ---- analysis ------------------------------------------------------------------------------
    def analyze(self, upload: Upload, request: AnalyzeRequest, metadata: dict[str, Any] | None = None,
                mode: Mode = "auto") -> AnalyzeOutcome:
        """Analyse inline (short recordings) or queue a job (long ones, or ``mode="async"``)."""
        request.validate()
        if mode not in ("auto", "sync", "async"):
            upload.path.unlink(missing_ok=True)
            raise UsageError(f"mode must be auto, sync or async, not {mode!r}")
        metadata = dict(metadata or {})
        duration = self.probe_duration(upload.path)
        if duration is not None and duration > self.settings.max_duration_s:
            self.discard(upload)
            raise AudioLimitError(f"recording is {duration:.0f} s long; the limit is "
                                  f"{self.settings.max_duration_s:.0f} s", source=upload.filename)
        if mode == "async" or (mode == "auto" and duration is not None and duration > self.settings.sync_max_s):
            if self.engines.state == "failed" and self.engines.error is not None:
                self.discard(upload)
                raise self.engines.error
            job = self.jobs.submit(str(upload.path), filename=upload.filename, options=request.to_dict(),
                                   metadata=metadata)
            return AnalyzeOutcome(job=job)
        try:
            self.require_ready()
            with self.limiter.slot(timeout=self.settings.sync_wait_s):
                call_id, folder, result = self._analyze_file(upload.path, upload.filename, request, metadata,
                                                             endpoint="analyze")
        finally:
            self.discard(upload)
        return AnalyzeOutcome(result=result, folder=folder, extra={"call_id": call_id})

    def _analyze_file(self, path: Path, filename: str, request: AnalyzeRequest, metadata: dict[str, Any], *,
                      endpoint: str) -> tuple[str, Path, Any]:
        analyzer = self.engines.analyzer(**self._changes(request))
        metadata = {"filename": filename, **metadata}
        try:
            run = analyzer.run(path, metadata=metadata)
        except CallsenseError as e:
            self.metrics.analyses.labels(endpoint, e.code).inc()
            if e.source and str(path) in e.source:  # never show server paths; name the client's file
                e.source = filename
            raise
        self.metrics.analyses.labels(endpoint, "ok").inc()
        self.metrics.audio_seconds.labels(endpoint).inc(run.result.duration_ms / 1000)
        run = self._with_history(analyzer, run, request)
        folder = self._persist(run)
        return run.result.call_id, folder, run.result

    def _with_history(self, analyzer: Any, run: Any, request: AnalyzeRequest) -> Any:
        """``run`` with its QA re-run against the agent's and customer's stored calls when the rule set
        has cross-call (``history``) conditions, exactly as ``callsense batch`` does before storing: a
        call gets the same rule hits whichever way it was analysed. Unchanged when QA did not run."""
        ruleset = analyzer.ruleset  # the one this analysis loaded for its QA (the active version)
        if not request.run_qa or ruleset is None:
            return run
        import dataclasses

        from callsense.store.history import apply_history_rules

        result = apply_history_rules(self.store, run.result, ruleset)
        return run if result is run.result else dataclasses.replace(run, result=result)

    def _changes(self, request: AnalyzeRequest) -> dict[str, Any]:
        import dataclasses

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

    def _persist(self, run: Any) -> Path:
        from callsense.pipeline.outputs import write_call_folder

        folder = write_call_folder(run, self.settings.calls_dir, audio=True)
        self.calls.save(run, folder)
        return folder

    def _run_job(self, job: Any) -> str:
        path = Path(job.upload_path)
        if not path.is_file():
            raise NotFoundError("the job's upload is gone (deleted before the job ran)",
                                hint="submit the recording again")
        self._wait_until_ready()
        with self.limiter.slot(admit=False):
            call_id, _, _ = self._analyze_file(path, job.filename or "upload", AnalyzeRequest.from_dict(job.options),
                                               job.metadata, endpoint="job")
        path.unlink(missing_ok=True)
        return call_id

    def _wait_until_ready(self) -> None:
        import time

        while self.engines.state in ("idle", "loading"):
            time.sleep(0.2)
        if self.engines.state == "failed" and self.engines.error is not None:
            raise self.engines.error

    # ---- single-clip endpoints -------------------------------------------------------------------
    def emotion(self, upload: Upload, *, granularity: str = "utterance", embedding: bool = False,
                emotion_model: str | None = None) -> dict[str, Any]:
        """One clip → label, confidence, distribution, timeline (frame granularity) and embedding."""
        import numpy as np

        from callsense.analysis.emotion import segment_emotion, timeline_points
        from callsense.audio.decode import load_audio
        from callsense.engines.base import SegmentAudio

        try:
            opts = EmotionOptions(granularity=granularity, embeddings=embedding)  # type: ignore[arg-type]
        except UsageError:
            self.discard(upload)
            raise
        try:
            self.require_ready()
            with self.limiter.slot(timeout=self.settings.sync_wait_s):
                base = self.engines.analyzer(**({"emotion_model": emotion_model} if emotion_model else {}))
                engine = base.emotion_engine()
                if engine is None:
                    skip = base._emotion_skip
                    from callsense.errors import ModelNotFoundError

                    raise ModelNotFoundError(skip.reason if skip else "no emotion model is installed",
                                             hint=skip.hint if skip else None)
                audio = self._load(upload, base.options.audio, load_audio)
                samples = np.mean(np.stack([t.samples for t in audio.tracks]), axis=0).astype(np.float32)
                out = engine.score([SegmentAudio(id="clip", samples=samples, start_ms=0)], opts)[0]
        finally:
            self.discard(upload)
        self.metrics.audio_seconds.labels("emotion").inc(audio.duration_ms / 1000)
        clip = segment_emotion(out)
        return {
            "label": clip.label, "label_zh": clip.label_zh, "emoji": clip.emoji, "confidence": clip.confidence,
            "distribution": dict(zip(EMOTION_NAMES, clip.scores)),
            "ranked": [name for _, name in sorted(zip(out.scores, EMOTION_NAMES), key=lambda x: -x[0])][:3],
            "timeline": [{"start_ms": p.start_ms, "end_ms": p.end_ms, "label": p.label, "scores": list(p.scores)}
                         for p in timeline_points(out, segment_id="clip")] if granularity == "frame" else [],
            "embedding": [float(x) for x in out.embedding] if embedding and out.embedding is not None else None,
            "duration_ms": audio.duration_ms, "flags": list(out.flags), "reason": out.reason,
            "model": engine.info.name,
        }

    def _load(self, upload: Upload, audio_options: Any, load_audio: Any) -> Any:
        try:
            return load_audio(upload.path, audio_options)
        except CallsenseError as e:
            if e.source and str(upload.path) in e.source:
                e.source = upload.filename
            raise

    def transcribe(self, upload: Upload, *, language: str = "auto") -> Any:
        """ASR only (SenseVoice tags included): the result is not stored."""
        try:
            AsrOptions(language=language)
        except UsageError:
            self.discard(upload)
            raise
        try:
            self.require_ready()
            with self.limiter.slot(timeout=self.settings.sync_wait_s):
                request = AnalyzeRequest(language=language, run_emotion=False, run_qa=False, embeddings=False)
                analyzer = self.engines.analyzer(**self._changes(request))
                try:
                    run = analyzer.run(upload.path, metadata={"filename": upload.filename})
                except CallsenseError as e:
                    if e.source and str(upload.path) in e.source:
                        e.source = upload.filename
                    raise
        finally:
            self.discard(upload)
        self.metrics.audio_seconds.labels("transcriptions").inc(run.result.duration_ms / 1000)
        return run.result

    # ---- calls -----------------------------------------------------------------------------------
    @property
    def calls(self) -> Any:
        from callsense.service.calls import CallRepository

        if not hasattr(self, "_calls"):
            self._calls = CallRepository(self)
        return self._calls

    def sign_audio(self, call_id: str, ttl_s: int = 6 * 3600) -> str:
        """A short-lived token that lets a browser's <audio> element fetch one call's audio without a key."""
        import hashlib
        import hmac
        import time

        expires = int(time.time()) + ttl_s
        mac = hmac.new(self._secret, f"{call_id}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]
        return f"{expires}.{mac}"

    def check_audio_token(self, call_id: str, token: str) -> bool:
        import hashlib
        import hmac
        import time

        expires, _, mac = token.partition(".")
        if not expires.isdigit() or int(expires) < time.time():
            return False
        want = hmac.new(self._secret, f"{call_id}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]
        return hmac.compare_digest(want, mac)

    def purge(self, call_id: str) -> None:
        folder = self.calls.folder(call_id)
        self.calls.delete(call_id)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
