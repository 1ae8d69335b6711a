"""``callsense batch SOURCE --ray [ADDRESS]``: the batch as a Ray Data job (extra ``callsense[ray]``).

The driver lists the files and owns the store; Ray does the reading and the models:

1. **Read** (Ray tasks): each file is read and hashed (SHA-256 of its bytes, the batch's identity).
2. **Claim** (driver): the same :func:`callsense.store.work.claim` as the process pool, so already-stored,
   failed-before and busy recordings are skipped exactly as ``docs/batch.md`` says.
3. **Analyse**, split at the pipeline's stages (:mod:`callsense.pipeline.stages`):

   * decode + VAD (+ the diarization plan of a mono call) as Ray tasks, one recording each;
   * SenseVoice in one actor pool (``--asr-actors``) and emotion2vec+ in another (``--emotion-actors``),
     both ``ray.data.ActorPoolStrategy``: each actor loads its one model once and runs it on a
     recording's speech segments, on ``cpus_per_actor`` CPUs and ``gpus_per_actor`` GPUs;
   * assembly (:func:`callsense.pipeline.analyzer.assemble_call`, shared with live calls) and QA on
     the driver, so the result is exactly what :meth:`Analyzer.run` gives.

   An analyzer that is not a :class:`~callsense.pipeline.Analyzer` (a plug-in, a test double) cannot be
   split: it runs whole in one actor pool (``--actors``). Failures come back as values, never as Ray
   task errors, so Ray's retries never re-run a bad file.
4. **Store** (driver): cross-call rules, then one transaction per result through the same
   :func:`callsense.batch.runner.process_item` as the process pool (claims, failures with stage and
   reason, audio copies, deletion after storing). Actors never touch the store.

Killing the driver leaves every call stored or absent; its claims belong to a dead process and are
taken over at once by the re-run, which finishes the rest. Ray is imported only here.
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from callsense.batch import runner
from callsense.batch.runner import AnalyzerFactory, BatchOptions, BatchSummary, ItemOutcome
from callsense.batch.sources import WorkItem
from callsense.errors import DependencyError, ModelError, StoreError

log = logging.getLogger("callsense")


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # an existing cluster ("auto", "ray://host:10001"); None: a local Ray
    num_cpus: int | None = None  # local Ray only; None: the machine's cores
    actors: int = 1  # whole-analyzer actors (an analyzer that cannot be split), and the default below
    asr_actors: int | None = None  # SenseVoice actors (None: ``actors``)
    emotion_actors: int | None = None  # emotion2vec+ actors (None: ``actors``)
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0  # > 0 with --device cuda; fractions share one GPU between actors
    cpus_per_decode: float = 0.5  # a decode + VAD task (Ray's logical CPUs: a reservation, not a pin)

    @property
    def asr_pool(self) -> int:
        return max(1, self.asr_actors or self.actors)

    @property
    def emotion_pool(self) -> int:
        return max(1, self.emotion_actors or self.actors)


def _ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise DependencyError("--ray needs Ray", hint="pip install 'callsense[ray]'") from e
    return ray


def _hash_row(row: dict[str, Any]) -> dict[str, Any]:
    """Ray task: read one file and hash it (errors are left to the driver, which records them)."""
    try:
        return {"i": row["i"], "sha": runner.file_sha256(row["path"])}
    except OSError:
        return {"i": row["i"], "sha": ""}


class _AnalyzeActor:
    """One copy of the models; analyses one recording per call and returns the run, pickled."""

    def __init__(self, factory: AnalyzerFactory):
        self.analyzer = factory()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out: list[bytes] = []
        for path, meta in zip(batch["path"], batch["meta"]):
            t0 = time.perf_counter()
            try:
                run = self.analyzer.run(str(path), metadata=pickle.loads(meta))
                payload: tuple[str, Any] = ("ok", run)
            except Exception as e:  # noqa: BLE001 - every failure goes back to the driver, which records it
                payload = ("error", e)
            try:
                out.append(pickle.dumps((payload, time.perf_counter() - t0)))
            except Exception as e:  # noqa: BLE001 - an unpicklable exception: keep its text
                out.append(pickle.dumps((("error", RuntimeError(f"{type(e).__name__}: {e}")), 0.0)))
        return {"i": batch["i"], "payload": out}


class _Replay:
    """The driver's stand-in analyzer: ``run`` returns (or raises) what the actors produced."""

    def __init__(self, fingerprint: str, analyzer: Any):
        self.fingerprint = fingerprint
        self.analyzer = analyzer
        self.pending: tuple[str, Any] | None = None

    @property
    def ruleset(self) -> Any:
        """The rule set for cross-call rules: the driver analyzer's, loaded by its QA (staged runs)."""
        return getattr(self.analyzer, "ruleset", None)

    def run(self, path: str, metadata: dict[str, Any] | None = None) -> Any:
        kind, value = self.pending or ("error", RuntimeError("no result from the actor"))
        self.pending = None
        if kind == "error":
            raise value
        return value


def run_batch_ray(
    items: Iterable[WorkItem],
    *,
    analyzer_factory: AnalyzerFactory,
    db_url: str | None = None,
    options: BatchOptions = BatchOptions(),
    ray_options: RayOptions = RayOptions(),
    source_label: str = "",
    on_outcome: Callable[[ItemOutcome], None] | None = None,
) -> BatchSummary:
    """:func:`callsense.batch.run_batch` on Ray (see the module docstring); the same summary."""
    ray = _ray()
    from callsense.store.db import open_store
    from callsense.store.work import Owner, claim, finish_run, release_all, start_run

    items = list(items)
    store = open_store(db_url)
    driver_analyzer = analyzer_factory()
    fingerprint = str(driver_analyzer.fingerprint)
    summary = BatchSummary(total=len(items))
    summary.run_id = start_run(store, source=source_label, fingerprint=fingerprint, workers=ray_options.actors,
                               owner=Owner())
    replay = _Replay(fingerprint, driver_analyzer)
    runner._init_worker(store.url, lambda: replay, options, fingerprint, summary.run_id)
    runner._W["analyzer"] = replay
    owner = runner._W["owner"]
    t0 = time.perf_counter()

    def note(outcome: ItemOutcome) -> None:
        summary.add(outcome)
        if on_outcome is not None:
            on_outcome(outcome)

    status = "finished"
    started_ray = False
    try:
        if not ray.is_initialized():
            kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "ignore_reinit_error": True}
            if ray_options.address:
                ray.init(address=ray_options.address, **kw)
            else:
                ray.init(num_cpus=ray_options.num_cpus or _local_cpus(ray_options), **kw)
            started_ray = True
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # callsense's own bar shows done/skipped/failed
        todo = _claim_all(ray, items, store, owner, fingerprint, options, note, claim)
        if todo and _splittable(driver_analyzer):
            _analyse_staged(ray, todo, driver_analyzer, ray_options, replay, note)
        elif todo:
            _analyse(ray, todo, analyzer_factory, ray_options, replay, note)
    except StoreError as e:
        summary.stopped = str(e)
        status = "stopped"
    except KeyboardInterrupt:
        summary.stopped = "interrupted"
        status = "stopped"
    except BaseException:
        status = "stopped"
        raise
    finally:
        summary.wall_s = time.perf_counter() - t0
        try:
            release_all(store, owner)
            finish_run(store, summary.run_id, status=status, done=summary.done,
                       skipped=summary.skipped + summary.busy, failed=summary.failed, audio_ms=summary.audio_ms,
                       wall_s=summary.wall_s)
        except Exception as e:  # noqa: BLE001 - bookkeeping must not hide the real outcome
            log.warning("could not record the end of the batch run: %s", e)
        runner._W["store"].close()
        store.close()
        if started_ray:
            ray.shutdown()
    return summary


def _claim_all(ray: Any, items: list[WorkItem], store: Any, owner: Any, fingerprint: str, options: BatchOptions,
               note: Callable[[ItemOutcome], None], claim: Any) -> list[tuple[int, WorkItem]]:
    """Hash the files in Ray tasks, claim them on the driver; returns the (index, item) pairs to analyse."""
    readable = [(i, it) for i, it in enumerate(items) if it.error is None and it.path]
    shas: dict[int, str] = {}
    if readable:
        ds = ray.data.from_items([{"i": i, "path": it.path} for i, it in readable]).map(_hash_row)
        shas = {int(r["i"]): str(r["sha"]) for r in ds.iter_rows()}
    todo: list[tuple[int, WorkItem]] = []
    for i, item in enumerate(items):
        sha = shas.get(i, "")
        if not sha:  # a source error or an unreadable file: process_item records it as the pool does
            note(runner.process_item(item))
            continue
        state = claim(store, sha, owner, fingerprint=fingerprint, source_key=item.key, force=options.force,
                      retry_failed=options.retry_failed, stale_after_s=options.stale_after_s)
        if state == "claimed":
            todo.append((i, item))
        else:
            reason = {"done": "already analysed with this pipeline", "busy": "being analysed by another worker",
                      "failed_before": "failed before (use --retry-failed)"}[state]
            note(ItemOutcome(item.key, item.path, "busy" if state == "busy" else "skipped", reason))
    return todo


def _analyse(ray: Any, todo: list[tuple[int, WorkItem]], factory: AnalyzerFactory, ro: RayOptions,
             replay: _Replay, note: Callable[[ItemOutcome], None]) -> None:
    by_index = dict(todo)
    rows = [{"i": i, "path": it.path, "meta": pickle.dumps(dict(it.metadata))} for i, it in todo]
    ds = ray.data.from_items(rows).map_batches(
        _AnalyzeActor, fn_constructor_args=(factory,), batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=max(1, ro.actors)),
        num_cpus=ro.cpus_per_actor, num_gpus=ro.gpus_per_actor or None,
    )
    for row in ds.iter_rows():
        item = by_index[int(row["i"])]
        (kind, value), _seconds = pickle.loads(row["payload"])
        if kind == "error" and isinstance(value, ModelError):
            raise value  # a broken model fails every file the same way: stop the batch (exit 4)
        replay.pending = (kind, value)
        note(runner.process_item(item))  # re-claims (same owner), stores or records the failure


# ------------------------------------------------------------------- the staged analysis (an Analyzer)
def _local_cpus(ro: RayOptions) -> int:
    """A local Ray's logical CPUs: the machine's cores, and at least what the pools reserve plus one
    decode task (Ray's CPUs are reservations; two 1-CPU pools on 2 cores must not starve decoding)."""
    import math

    need = (ro.asr_pool + ro.emotion_pool) * ro.cpus_per_actor + ro.cpus_per_decode
    return max(os.cpu_count() or 1, math.ceil(need))


def _splittable(analyzer: Any) -> bool:
    from callsense.pipeline import Analyzer

    return isinstance(analyzer, Analyzer)


def _dumps(value: Any) -> bytes:
    """Pickle a stage's output; an exception that does not pickle goes back as its text."""
    try:
        return pickle.dumps(value)
    except Exception as e:  # noqa: BLE001 - unpicklable exceptions (C extensions) keep their message
        return pickle.dumps(("error", RuntimeError(f"{type(e).__name__}: {e}")))


_DECODERS: dict[bytes, Any] = {}  # per Ray worker process: the analyzer whose diarizer is loaded once


def _decode_row(row: dict[str, Any], *, options_blob: bytes) -> dict[str, Any]:
    """Ray task: decode one recording, VAD on every channel (and a mono call's diarization plan).

    ``front`` (for the driver) holds the audio and where each segment lies; ``segs`` (for the model
    actors) the segments' samples only, so the actors never unpickle the whole call.
    """
    from callsense.audio.decode import load_audio
    from callsense.pipeline import Analyzer, stages
    from callsense.pipeline.hooks import Hooks, StageTimer

    analyzer = _DECODERS.get(options_blob)
    if analyzer is None:
        analyzer = _DECODERS[options_blob] = Analyzer(pickle.loads(options_blob))
    o = analyzer.options
    try:
        started = datetime.now(timezone.utc)
        timer = StageTimer()
        h = Hooks([timer])
        warnings: list[str] = []
        h.start("decode")
        audio = load_audio(str(row["path"]), o.audio)
        warnings.extend(getattr(audio, "warnings", ()) or ())
        h.end("decode", audio)
        h.start("vad")
        pieces: list[tuple[int, int, int]] = []  # (track index, start_ms, end_ms), as Analyzer.run orders them
        speech_ms: dict[int, int] = {}
        for ti, track in enumerate(audio.tracks):
            spans = stages.speech_spans(track, o.vad)
            speech_ms[track.channel] = sum(b - a for a, b in spans)
            pieces += [(ti, a, b) for a, b in spans]
        pieces.sort(key=lambda p: (p[1], audio.tracks[p[0]].channel))
        dplan = analyzer._diarize(audio, [(audio.tracks[ti].channel, audio.tracks[ti].role, a, b)
                                          for ti, a, b in pieces], h, warnings)
        if dplan is not None:
            pieces = [(0, x.start_ms, x.end_ms) for x in dplan.pieces]
        segs = _cut_all(audio, pieces)
        h.end("vad", segs)
        front: Any = ("ok", {"audio": audio, "pieces": pieces, "speech_ms": speech_ms, "warnings": warnings,
                             "dplan": dplan, "started": started, "timings": dict(timer.timings_ms)})
    except Exception as e:  # noqa: BLE001 - recorded by the driver with the file's name
        front, segs = ("error", e), None
    return {"i": row["i"], "front": _dumps(front), "segs": pickle.dumps(segs)}


def _cut_all(audio: Any, pieces: list[tuple[int, int, int]]) -> list[Any]:
    from callsense.pipeline import stages

    return [stages.cut_segment(audio.tracks[ti], a, b, f"s{n + 1:04d}") for n, (ti, a, b) in enumerate(pieces)]


class _StageActor:
    """One model loaded once per actor, run on each recording's segments; the output goes in ``column``.

    A model that fails to load does not kill the actor (Ray would restart it and fail again): every
    row gets the error, and the driver stops the batch with it (exit 4), as the process pool does.
    """

    column = ""

    def __init__(self, options_blob: bytes):
        from callsense.pipeline import Analyzer

        self.options = pickle.loads(options_blob)
        self.analyzer = Analyzer(self.options)
        self.error: BaseException | None = None
        try:
            self.engine = self.load()
        except Exception as e:  # noqa: BLE001 - handed to the driver with every row
            self.engine, self.error = None, e

    def load(self) -> Any:
        raise NotImplementedError

    def compute(self, segs: list[Any]) -> tuple[Any, ...]:
        raise NotImplementedError

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out: list[bytes] = []
        for blob in batch["segs"]:
            segs = pickle.loads(blob)
            if segs is None:  # decoding failed: nothing to run
                out.append(pickle.dumps(None))
                continue
            t0 = time.perf_counter()
            try:
                if self.error is not None:
                    raise self.error
                payload: tuple[Any, ...] = self.compute(segs)
            except Exception as e:  # noqa: BLE001 - every failure goes back to the driver, which records it
                payload = ("error", e)
            out.append(_dumps((*payload, round((time.perf_counter() - t0) * 1000, 1))))
        return {**batch, self.column: out}


class _AsrActor(_StageActor):
    column = "asr"

    def load(self) -> Any:
        return self.analyzer.asr_engine()

    def compute(self, segs: list[Any]) -> tuple[Any, ...]:
        from callsense.pipeline import stages

        return ("ok", stages.transcribe_segments(self.engine, segs, self.options.asr), self.engine.info)


class _EmotionActor(_StageActor):
    column = "emotion"

    def load(self) -> Any:
        return self.analyzer.emotion_engine()  # None, with the reason kept, when emotion2vec cannot run

    def compute(self, segs: list[Any]) -> tuple[Any, ...]:
        from callsense.pipeline import stages

        if self.engine is None:
            return ("skipped", self.analyzer.emotion_skip, None)
        return ("ok", stages.score_emotions(self.engine, segs, self.options.emotion), self.engine.info)


def _check_resources(ray: Any, ro: RayOptions, *, pools: int) -> None:
    """Fail with a clear message where Ray would wait for ever: pools that reserve every CPU (or more
    GPUs than there are) leave nothing for the decode tasks, and the job would never start."""
    from callsense.errors import UsageError

    have = ray.cluster_resources()
    need_cpu = pools * ro.cpus_per_actor + ro.cpus_per_decode
    need_gpu = pools * ro.gpus_per_actor
    if have.get("CPU", 0.0) + 1e-9 < need_cpu:
        raise UsageError(f"the Ray cluster has {have.get('CPU', 0.0):g} CPUs; {pools} model actors at "
                         f"{ro.cpus_per_actor:g} CPUs and a decode task at {ro.cpus_per_decode:g} need {need_cpu:g}",
                         hint="lower --cpus-per-actor or --asr-actors/--emotion-actors, or add nodes")
    if need_gpu and have.get("GPU", 0.0) + 1e-9 < need_gpu:
        raise UsageError(f"the Ray cluster has {have.get('GPU', 0.0):g} GPUs; {pools} model actors at "
                         f"{ro.gpus_per_actor:g} GPUs need {need_gpu:g}",
                         hint="use --gpus-per-actor 0.5 to share a GPU between two actors, or add GPU nodes")


def _analyse_staged(ray: Any, todo: list[tuple[int, WorkItem]], analyzer: Any, ro: RayOptions, replay: _Replay,
                    note: Callable[[ItemOutcome], None]) -> None:
    o = analyzer.options
    _check_resources(ray, ro, pools=int(o.run_asr) * ro.asr_pool + int(o.run_emotion) * ro.emotion_pool)
    blob = pickle.dumps(o)
    by_index = dict(todo)
    ds = ray.data.from_items([{"i": i, "path": it.path} for i, it in todo]).map(
        _decode_row, fn_kwargs={"options_blob": blob}, num_cpus=ro.cpus_per_decode)
    pools = [(cls, n) for cls, n, on in ((_AsrActor, ro.asr_pool, o.run_asr),
                                         (_EmotionActor, ro.emotion_pool, o.run_emotion)) if on]
    for cls, n in pools:
        ds = ds.map_batches(cls, fn_constructor_args=(blob,), batch_size=1,
                            compute=ray.data.ActorPoolStrategy(size=n), num_cpus=ro.cpus_per_actor,
                            num_gpus=ro.gpus_per_actor or None)
    for row in ds.iter_rows():
        item = by_index[int(row["i"])]
        outputs = {k: pickle.loads(row[k]) for k in ("front", "asr", "emotion") if k in row}
        for value in outputs.values():
            if value is not None and value[0] == "error" and isinstance(value[1], ModelError):
                raise value[1]  # a broken model fails every file the same way: stop the batch (exit 4)
        try:
            replay.pending = ("ok", _assemble(analyzer, item, outputs))
        except Exception as e:  # noqa: BLE001 - a stage's failure, recorded by process_item as "analyze"
            replay.pending = ("error", e)
        note(runner.process_item(item))


def _assemble(analyzer: Any, item: WorkItem, outputs: dict[str, Any]) -> Any:
    """The CallRun :meth:`Analyzer.run` would give, from the stages' outputs (driver side)."""
    from callsense.pipeline.analyzer import CallRun, _matched_agent, assemble_call, make_call_id
    from callsense.result.model import ModelInfo, Skipped

    kind, front = outputs["front"]
    if kind == "error":
        raise front
    o = analyzer.options
    audio = front["audio"]
    seg_audio = _cut_all(audio, front["pieces"])
    timings = dict(front["timings"])
    warnings, skipped = list(front["warnings"]), []
    models = [ModelInfo("vad", "silero-vad", "onnx", options={"threshold": o.vad.threshold})]
    transcripts: list[Any] = [None] * len(seg_audio)
    emotions: list[Any] = [None] * len(seg_audio)
    emotion_ran = False
    for stage, key in (("asr", "asr"), ("emotion", "emotion")):
        if key not in outputs:
            continue
        out = outputs[key]
        if out[0] == "error":
            raise out[1]
        if out[0] == "skipped":
            skipped.append(out[1])
            continue
        _, value, info, ms = out
        models.append(info)
        timings[stage] = ms
        if stage == "asr":
            transcripts = value if seg_audio else transcripts
        else:
            emotion_ran = True
            emotions = value if seg_audio else emotions
    if not o.run_asr:
        skipped.insert(0, Skipped("asr", "disabled by option", "drop --no-asr"))
    if not o.run_emotion:
        skipped.append(Skipped("emotion2vec", "disabled by option", "drop --no-emotion"))
    metadata = dict(item.metadata)
    separation = speakers = None
    dplan = front["dplan"]
    if dplan is not None:
        from callsense.pipeline import diarize

        seg_audio, separation = diarize.apply_roles(dplan, seg_audio, transcripts, o, metadata, analyzer.manager)
        models.append(dplan.info)
        speakers = [p.speaker for p in dplan.pieces]
    result, embeddings = assemble_call(
        audio, seg_audio, transcripts, emotions, front["speech_ms"], options=o,
        emotion_model=o.emotion_model if emotion_ran else None,
        call_id=make_call_id(audio.source.sha256, front["started"]), started=front["started"], models=models,
        warnings=warnings, skipped=skipped, metadata={**metadata, **_matched_agent(separation, metadata)},
        separation=separation, speakers=speakers)
    if o.run_qa:
        t0 = time.perf_counter()
        result = analyzer._apply_qa(result)  # the driver's analyzer: its rule set also serves cross-call rules
        timings["qa"] = round((time.perf_counter() - t0) * 1000, 1)
    result = replace(result, processing=replace(result.processing, timings_ms=timings))
    return CallRun(result=result, embeddings=embeddings, audio=audio)
