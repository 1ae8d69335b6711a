"""``callsense batch SOURCE --ray [ADDRESS]``: the batch as a Ray Data job (extra ``callsense[ray]``).

The driver lists the files and owns the store; Ray does the reading and the models:

1. **Read** (Ray tasks): each file is read and hashed (SHA-256 of its bytes, the batch's identity).
2. **Claim** (driver): the same :func:`callsense.store.work.claim` as the process pool, so already-stored,
   failed-before and busy recordings are skipped exactly as ``docs/batch.md`` says.
3. **Analyse** (an actor pool, ``ray.data.ActorPoolStrategy``): each actor builds its analyzer once
   (models loaded once per actor) and decodes and analyses one recording per call, on
   ``cpus_per_actor`` CPUs and ``gpus_per_actor`` GPUs (``--device cuda``: one GPU each, or a fraction).
   Failures come back as values, never as Ray task errors, so Ray's retries never re-run a bad file.
4. **Store** (driver): cross-call rules, then one transaction per result through the same
   :func:`callsense.batch.runner.process_item` as the process pool (claims, failures with stage and
   reason, audio copies, deletion after storing). Actors never touch the store.

Killing the driver leaves every call stored or absent; its claims belong to a dead process and are
taken over at once by the re-run, which finishes the rest. Ray is imported only here.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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
    actors: int = 1  # analysis actors (each holds one copy of the models)
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0  # > 0 with --device cuda; fractions share one GPU between actors


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
    """The driver's stand-in analyzer: ``run`` returns (or raises) what an actor produced."""

    def __init__(self, fingerprint: str, ruleset: Any):
        self.fingerprint = fingerprint
        self.ruleset = ruleset
        self.pending: tuple[str, Any] | None = None

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
    replay = _Replay(fingerprint, getattr(driver_analyzer, "ruleset", None))
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
                ray.init(num_cpus=ray_options.num_cpus, **kw)
            started_ray = True
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # callsense's own bar shows done/skipped/failed
        todo = _claim_all(ray, items, store, owner, fingerprint, options, note, claim)
        if todo:
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
