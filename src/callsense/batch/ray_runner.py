"""``callsense batch SOURCE --ray [ADDRESS]``: the batch as a Ray Data job (extra ``callsense[ray]``).

The driver lists the files and owns the store; Ray does the decoding and the models:

1. **Claim** (driver): each file is hashed (SHA-256 of its bytes, the batch's identity; the driver reads
   every file once anyway, to store it) and claimed with the same :func:`callsense.store.work.claim` as
   the process pool, so already-stored, failed-before and busy recordings are skipped exactly as
   ``docs/batch.md`` says, before any of them is decoded.
2. **Analyse**: the phases of :meth:`Analyzer.run <callsense.pipeline.Analyzer.run>`
   (:mod:`callsense.pipeline.phases`), each where it runs best, with the very same methods:

   * ``Analyzer.prepare`` (decode, VAD, a mono call's diarization plan) as Ray tasks, one recording each;
   * ``Analyzer.transcribe`` (SenseVoice) in one actor pool (``--asr-actors``) and ``Analyzer.score``
     (emotion2vec+) in another (``--emotion-actors``), both ``ray.data.ActorPoolStrategy``: each actor
     loads its one model once and runs it on a recording's speech segments (not the whole call), on
     ``cpus_per_actor`` CPUs and ``gpus_per_actor`` GPUs;
   * ``Analyzer.assemble`` (result, diarized roles, QA) on the driver, so the result is exactly what
     ``Analyzer.run`` gives.

   An analyzer that is not a :class:`~callsense.pipeline.Analyzer` (a plug-in, a test double) cannot be
   split: it runs whole in one actor pool (``--actors``). Failures come back as values, never as Ray
   task errors, so Ray's retries never re-run a bad file.
3. **Store** (driver): :func:`callsense.batch.runner.record_run` around it all (the run row, alert
   delivery, claims released at the end) and one transaction per result through the same
   :func:`callsense.batch.runner.process_item` as the process pool (cross-call rules, failures with
   stage and reason, audio copies, deletion after storing). Actors never touch the store.

Killing the driver leaves every call stored or absent; its claims belong to a dead process and are
taken over at once by the re-run, which finishes the rest. A Ray this process already runs (a test's,
a notebook's) is used and left running; otherwise one is started (``ADDRESS``: connected to) and shut
down at the end. Ray is imported only here. Each model actor and decode task reports its peak resident
memory (``summary.peak_rss_mb``, per kind of process).
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from callsense.batch import runner
from callsense.batch.runner import AnalyzerFactory, BatchOptions, BatchSummary, ItemOutcome
from callsense.batch.sources import WorkItem
from callsense.errors import DependencyError, ModelError

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


class _AnalyzeActor:
    """One copy of the models; analyses one recording per call and returns the run, pickled."""

    def __init__(self, factory: AnalyzerFactory):
        self.analyzer = factory()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out: list[bytes] = []
        for path, meta in zip(batch["path"], batch["meta"]):
            try:
                payload: tuple[str, Any] = ("ok", self.analyzer.run(str(path), metadata=pickle.loads(meta)))
            except Exception as e:  # noqa: BLE001 - every failure goes back to the driver, which records it
                payload = ("error", e)
            out.append(_dumps(payload))
        return {"i": batch["i"], "payload": out, "rss": [runner.peak_rss_mb()] * len(out)}


class _Replay:
    """The driver's stand-in analyzer: ``run`` returns (or raises) what the actors produced."""

    def __init__(self, analyzer: Any, fingerprint: str):
        self.analyzer = analyzer
        self.fingerprint = fingerprint
        self.pending: tuple[str, Any] | None = None

    @property
    def ruleset(self) -> Any:
        """The rule set for cross-call rules: the driver analyzer's, loaded by its QA (staged runs)."""
        return getattr(self.analyzer, "ruleset", None)

    def alert_targets(self) -> tuple[Any, ...]:
        """Where alerting hits go (queued with each result): the driver analyzer's targets."""
        return tuple(getattr(self.analyzer, "alert_targets", tuple)())

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

    items = list(items)
    store = open_store(db_url)
    try:
        driver_analyzer = analyzer_factory()
        fingerprint = str(driver_analyzer.fingerprint)
        replay = _Replay(driver_analyzer, fingerprint)
        peaks: dict[str, float] = {}

        def analyse(run_id: int, note: Callable[[ItemOutcome], None]) -> None:
            runner._init_worker(store.url, lambda: replay, options, fingerprint, run_id)
            runner._W["analyzer"] = replay
            try:
                todo = _claim_all(items, store, options, note)  # nothing to analyse: Ray is not even started
                if todo:
                    with _session(ray, ray_options):
                        if _splittable(driver_analyzer):
                            _analyse_staged(ray, todo, driver_analyzer, ray_options, replay, note, peaks)
                        else:
                            _analyse(ray, todo, analyzer_factory, ray_options, replay, note, peaks)
            finally:
                runner._W["store"].close()

        summary = runner.record_run(store, analyse, total=len(items), fingerprint=fingerprint,
                                    workers=ray_options.actors, options=options, source_label=source_label,
                                    on_outcome=on_outcome)
        summary.peak_rss_mb.pop("worker", None)  # process_item ran on the driver: the driver's peak, below
        for kind, mb in {**peaks, "driver": runner.peak_rss_mb()}.items():
            summary.peak(kind, mb)
        return summary
    finally:
        store.close()


@contextmanager
def _session(ray: Any, ro: RayOptions) -> Iterator[None]:
    """The Ray to run on: the one this process already runs (left running), else a new local one (or a
    connection to ``ro.address``), shut down at the end. Ray Data's own bars and logs are turned off:
    callsense's bar shows done/skipped/failed."""
    started = False
    if not ray.is_initialized():
        kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "ignore_reinit_error": True,
                              "logging_level": logging.WARNING}
        if ro.address:
            ray.init(address=ro.address, **kw)
        else:
            ray.init(num_cpus=ro.num_cpus or _local_cpus(ro), **kw)
        started = True
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.enable_auto_log_stats = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def _sha_or_none(path: str) -> str | None:
    try:
        return runner.file_sha256(path)
    except OSError:
        return None  # process_item records why (not found, unreadable) exactly as the pool does


def _claim_all(items: list[WorkItem], store: Any, options: BatchOptions,
               note: Callable[[ItemOutcome], None]) -> list[tuple[int, WorkItem, str]]:
    """Hash the files (threads: hashlib releases the GIL) and claim them; returns what to analyse."""
    from callsense.store.work import claim

    readable = [(i, it) for i, it in enumerate(items) if it.error is None and it.path]
    with ThreadPoolExecutor(max_workers=4) as pool:
        shas = dict(zip((i for i, _ in readable), pool.map(_sha_or_none, [str(it.path) for _, it in readable])))
    todo: list[tuple[int, WorkItem, str]] = []
    first: dict[str, WorkItem] = {}  # content hash -> the item that claimed it in this run
    owner, fp = runner._W["owner"], runner._W["fingerprint"]
    for i, item in enumerate(items):
        sha = shas.get(i)
        if not sha:  # a source error or an unreadable file: process_item records it as the pool does
            note(runner.process_item(item))
            continue
        if sha in first:  # the same bytes twice: the first in order is the one analysed, as in the pool
            note(ItemOutcome(item.key, item.path, "skipped", f"the same recording as {first[sha].key}"))
            continue
        first[sha] = item
        state = claim(store, sha, owner, fingerprint=fp, source_key=item.key, force=options.force,
                      retry_failed=options.retry_failed, stale_after_s=options.stale_after_s)
        if state == "claimed":
            todo.append((i, item, sha))
        else:
            reason = {"done": "already analysed with this pipeline", "busy": "being analysed by another worker",
                      "failed_before": "failed before (use --retry-failed)"}[state]
            note(ItemOutcome(item.key, item.path, "busy" if state == "busy" else "skipped", reason))
    return todo


def _store(item: WorkItem, sha: str, replay: _Replay, pending: tuple[str, Any],
           note: Callable[[ItemOutcome], None]) -> None:
    """The driver's half of one recording: process_item re-claims it (same owner), stores the result or
    records the failure, as the process pool does."""
    replay.pending = pending
    note(replace(runner.process_item(item, sha), peak_rss_mb=0.0))


def _analyse(ray: Any, todo: list[tuple[int, WorkItem, str]], factory: AnalyzerFactory, ro: RayOptions,
             replay: _Replay, note: Callable[[ItemOutcome], None], peaks: dict[str, float]) -> None:
    by_index = {i: (it, sha) for i, it, sha in todo}
    rows = [{"i": i, "path": it.path, "meta": pickle.dumps(dict(it.metadata))} for i, it, _ in todo]
    ds = ray.data.from_items(rows).map_batches(
        _AnalyzeActor, fn_constructor_args=(factory,), batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=max(1, ro.actors)),
        **_remote_args(ro, cpus=ro.cpus_per_actor, gpus=ro.gpus_per_actor),
    )
    for row in ds.iter_rows():
        item, sha = by_index[int(row["i"])]
        kind, value = pickle.loads(row["payload"])
        _peak(peaks, "actor", row)
        if kind == "error" and isinstance(value, ModelError):
            raise value  # a broken model fails every file the same way: stop the batch (exit 4)
        _store(item, sha, replay, (kind, value), note)


def _remote_args(ro: RayOptions, *, cpus: float, gpus: float = 0.0) -> dict[str, Any]:
    """Ray resources for a task or actor, and callsense's environment (``CALLSENSE_*``: model folders,
    offline mode, fake-analyzer knobs) carried from the driver to every worker of the job, so that a
    Ray started earlier (a cluster, a test's session) runs with the driver's settings."""
    env = {k: v for k, v in os.environ.items() if k.startswith("CALLSENSE_")}
    args: dict[str, Any] = {"num_cpus": cpus, "runtime_env": {"env_vars": env}}
    if gpus:
        args["num_gpus"] = gpus
    return args


def _peak(peaks: dict[str, float], kind: str, row: dict[str, Any], column: str = "rss") -> None:
    mb = float(row.get(column) or 0.0)
    if mb > peaks.get(kind, 0.0):
        peaks[kind] = mb


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
    """Pickle a phase's output; an exception that does not pickle goes back as its text."""
    try:
        return pickle.dumps(value)
    except Exception as e:  # noqa: BLE001 - unpicklable exceptions (C extensions) keep their message
        return pickle.dumps(("error", RuntimeError(f"{type(e).__name__}: {e}")))


_DECODERS: dict[bytes, Any] = {}  # per Ray worker process: the analyzer whose diarizer is loaded once


def _prepare_row(row: dict[str, Any], *, options_blob: bytes) -> dict[str, Any]:
    """Ray task: ``Analyzer.prepare`` on one recording (decode, VAD, a mono call's diarization plan).

    ``front`` (for the driver) is the whole :class:`~callsense.pipeline.phases.Prepared`; ``segs`` (for
    the model actors) the speech segments only, so the actors never unpickle the whole call.
    """
    from callsense.pipeline import Analyzer

    analyzer = _DECODERS.get(options_blob)
    if analyzer is None:
        analyzer = _DECODERS[options_blob] = Analyzer(pickle.loads(options_blob))
    try:
        prepared = analyzer.prepare(str(row["path"]))
        front: tuple[str, Any] = ("ok", prepared)
        segs: Any = prepared.segments()
    except Exception as e:  # noqa: BLE001 - recorded by the driver with the file's name
        front, segs = ("error", e), None
    return {"i": row["i"], "front": _dumps(front), "segs": pickle.dumps(segs), "rss": runner.peak_rss_mb()}


class _StageActor:
    """One phase's model, loaded once per actor, run on each recording's segments (``Analyzer.transcribe``
    or ``Analyzer.score``); its :class:`~callsense.pipeline.phases.StageRun` goes in the ``stage`` column.

    A model that fails to load does not kill the actor (Ray would restart it and fail again): every
    row gets the error, and the driver stops the batch with it (exit 4), as the process pool does.
    """

    stage = ""

    def __init__(self, options_blob: bytes, last: bool = False):
        from callsense.pipeline import Analyzer

        self.last = last  # the last model pool drops the segments: the driver cuts them again from `front`
        self.analyzer = Analyzer(pickle.loads(options_blob))
        self.error: BaseException | None = None
        try:
            self.load()
        except Exception as e:  # noqa: BLE001 - handed to the driver with every row
            self.error = e

    def load(self) -> None:
        raise NotImplementedError

    def phase(self, segs: list[Any]) -> Any:
        raise NotImplementedError

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out: list[bytes] = []
        for blob in batch["segs"]:
            segs = pickle.loads(blob)
            if segs is None:  # decoding failed: nothing to run
                out.append(pickle.dumps(None))
                continue
            try:
                if self.error is not None:
                    raise self.error
                value: tuple[str, Any] = ("ok", self.phase(segs))
            except Exception as e:  # noqa: BLE001 - every failure goes back to the driver, which records it
                value = ("error", e)
            out.append(_dumps(value))
        kept = {k: v for k, v in batch.items() if not (self.last and k == "segs")}
        return {**kept, self.stage: out, f"{self.stage}_rss": [runner.peak_rss_mb()] * len(out)}


class _AsrActor(_StageActor):
    stage = "asr"

    def load(self) -> None:
        self.analyzer.asr_engine()

    def phase(self, segs: list[Any]) -> Any:
        return self.analyzer.transcribe(segs)


class _EmotionActor(_StageActor):
    stage = "emotion"

    def load(self) -> None:
        self.analyzer.emotion_engine()  # None, with the reason kept, when emotion2vec cannot run: score says so

    def phase(self, segs: list[Any]) -> Any:
        return self.analyzer.score(segs)


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


def _analyse_staged(ray: Any, todo: list[tuple[int, WorkItem, str]], analyzer: Any, ro: RayOptions,
                    replay: _Replay, note: Callable[[ItemOutcome], None], peaks: dict[str, float]) -> None:
    o = analyzer.options
    _check_resources(ray, ro, pools=int(o.run_asr) * ro.asr_pool + int(o.run_emotion) * ro.emotion_pool)
    blob = pickle.dumps(o)
    by_index = {i: (it, sha) for i, it, sha in todo}
    ds = ray.data.from_items([{"i": i, "path": it.path} for i, it, _ in todo]).map(
        _prepare_row, fn_kwargs={"options_blob": blob}, **_remote_args(ro, cpus=ro.cpus_per_decode))
    pools = [(cls, n) for cls, n, on in ((_AsrActor, ro.asr_pool, o.run_asr),
                                         (_EmotionActor, ro.emotion_pool, o.run_emotion)) if on]
    for k, (cls, n) in enumerate(pools):
        ds = ds.map_batches(cls, fn_constructor_args=(blob, k == len(pools) - 1), batch_size=1,
                            compute=ray.data.ActorPoolStrategy(size=n),
                            **_remote_args(ro, cpus=ro.cpus_per_actor, gpus=ro.gpus_per_actor))
    for row in ds.iter_rows():
        item, sha = by_index[int(row["i"])]
        _peak(peaks, "decode-task", row)
        for stage in ("asr", "emotion"):
            _peak(peaks, f"{stage}-actor", row, f"{stage}_rss")
        outputs = [pickle.loads(row[k]) for k in ("front", "asr", "emotion") if k in row]
        for value in outputs:
            if value is not None and value[0] == "error" and isinstance(value[1], ModelError):
                raise value[1]  # a broken model fails every file the same way: stop the batch (exit 4)
        _store(item, sha, replay, _assemble(analyzer, item, outputs), note)


def _assemble(analyzer: Any, item: WorkItem, outputs: list[Any]) -> tuple[str, Any]:
    """``Analyzer.assemble`` on the phases' outputs (driver side), or the first phase's error (recorded
    by process_item at stage "analyze", as the pool records a failing ``Analyzer.run``)."""
    front, *stages = outputs
    for value in (front, *stages):
        if value is not None and value[0] == "error":
            return value
    try:
        return "ok", analyzer.assemble(front[1], [v[1] for v in stages], metadata=dict(item.metadata))
    except Exception as e:  # noqa: BLE001 - a failing assembly or QA is this recording's failure
        return "error", e
