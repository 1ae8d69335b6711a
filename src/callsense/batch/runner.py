"""The batch runner: analyse many recordings with N worker processes into the store.

Guarantees (tested):

* **Idempotent**: a recording is identified by the SHA-256 of its bytes; one already stored with the
  same pipeline fingerprint (pipeline, model and rule versions) is skipped; ``force`` re-runs it and
  replaces the stored result.
* **Resumable and crash-safe**: each result is stored in one transaction, together with the deletion
  of its claim and failure records, so killing the batch at any moment (``kill -9`` included) leaves
  either the whole result or nothing; re-running the same command finishes the rest.
* **Concurrent-safe**: workers and other batch processes on the same store claim a recording before
  analysing it (:mod:`callsense.store.work`), so none is analysed twice at the same time.
* **Failures never stop the batch**: a file that cannot be decoded or analysed (or a manifest row with
  a missing file or bad metadata) is recorded with its reason and the batch goes on. Files that failed
  with the same fingerprint are skipped later unless ``retry_failed``. A worker process that dies is
  replaced; its file is retried once, then recorded as failed.
* **Alerts after storing**: each result's alerting hits are queued with it (the outbox,
  :mod:`callsense.store.outbox`) and sent by a delivery thread of this process, never by a worker, so a
  webhook that hangs holds no analysis; ``force`` re-analysis does not re-send them. At the end the
  batch keeps delivering for up to ``alert_drain_s``.
* **Disk full stops cleanly**: the batch stops, nothing half-written is visible, the claims are
  released, and re-running resumes.

Each worker process builds its analyzer once (``analyzer_factory()``), so models load once per worker.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from callsense.batch.sources import WorkItem
from callsense.errors import AudioNotFoundError, BatchStopped, CallsenseError, InputError, ModelError, StoreError

log = logging.getLogger("callsense")

Status = Literal["done", "skipped", "failed", "busy"]
AnalyzerFactory = Callable[[], Any]
"""A picklable callable returning an object with ``run(path, metadata=...)`` (returning a run with
``result`` and ``embeddings``) and a ``fingerprint`` attribute — :class:`callsense.pipeline.Analyzer`."""


@dataclass(frozen=True)
class BatchOptions:
    workers: int = 1  # worker processes; 1 runs in this process
    force: bool = False  # re-analyse recordings already stored with the same fingerprint
    retry_failed: bool = False  # re-attempt recordings that failed before with the same fingerprint
    copy_audio: Path | None = None  # keep a copy of each analysed recording here (<sha[:2]>/<sha><ext>)
    delete_audio_after: bool = False  # delete the source file once its result is stored
    redact: bool = False  # store transcripts with PII redacted
    stale_after_s: float = 6 * 3600.0  # a claim older than this (other host, no liveness check) is taken over
    alert_drain_s: float = 30.0  # at the end, keep delivering queued alerts (and due retries) this long


@dataclass(frozen=True)
class ItemOutcome:
    key: str
    path: str | None
    status: Status
    reason: str | None = None  # why skipped / failed
    error_code: str | None = None
    call_id: str | None = None
    audio_ms: int = 0
    seconds: float = 0.0  # processing time of this item
    peak_rss_mb: float = 0.0  # peak resident memory of the process that analysed it, so far (0: not known)


@dataclass
class BatchSummary:
    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    busy: int = 0  # being analysed by another batch on the same store
    audio_ms: int = 0  # audio analysed by this run (done items)
    wall_s: float = 0.0
    run_id: int | None = None
    stopped: str | None = None  # why the batch stopped early (disk full, interrupted)
    failures: list[ItemOutcome] = field(default_factory=list)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)  # per kind of process (worker; Ray: asr-actor...)

    @property
    def audio_hours(self) -> float:
        return self.audio_ms / 3_600_000

    @property
    def rtf(self) -> float | None:
        """Real-time factor: wall time / audio time (lower is faster); None when no audio ran."""
        return self.wall_s / (self.audio_ms / 1000) if self.audio_ms else None

    @property
    def throughput(self) -> float | None:
        """Audio hours per wall hour."""
        return (self.audio_ms / 1000) / self.wall_s if self.audio_ms and self.wall_s else None

    def peak(self, kind: str, mb: float) -> None:
        """Keep the highest peak resident memory seen for one kind of process."""
        if mb > self.peak_rss_mb.get(kind, 0.0):
            self.peak_rss_mb[kind] = round(mb, 1)

    def add(self, outcome: ItemOutcome) -> None:
        if outcome.peak_rss_mb:
            self.peak("worker", outcome.peak_rss_mb)
        if outcome.status == "done":
            self.done += 1
            self.audio_ms += outcome.audio_ms
        elif outcome.status == "skipped":
            self.skipped += 1
        elif outcome.status == "busy":
            self.busy += 1
        else:
            self.failed += 1
            self.failures.append(outcome)


# ---------------------------------------------------------------- worker side

_W: dict[str, Any] = {}


def _init_worker(db_url: str | None, factory: AnalyzerFactory, options: BatchOptions, fingerprint: str,
                 run_id: int | None, parent_pid: int | None = None) -> None:
    from callsense.store.db import open_store
    from callsense.store.work import Owner

    if parent_pid is not None:
        _die_with_parent(parent_pid)
    _W.clear()
    _W.update(store=open_store(db_url, migrate=False), factory=factory, analyzer=None, options=options,
              fingerprint=fingerprint, run_id=run_id, owner=Owner())


PARENT_POLL_S = 0.5
"""How often a worker checks that its batch process is still there (where the kernel cannot tell it)."""


def _die_with_parent(parent_pid: int) -> None:
    """Make this worker process end when the batch process that started it ends, however it ends.

    A worker left behind by a ``kill -9`` of its batch would go on analysing and storing for minutes,
    holding its models' memory, with nobody to collect its results. On Linux the kernel kills us the
    moment the parent dies (``PR_SET_PDEATHSIG``); everywhere (and should the parent have died before
    the request took effect) a daemon thread also watches the parent pid and exits the process.
    """
    import signal
    import sys
    import threading

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError) as e:  # no libc prctl: the watcher below still works
            log.debug("PR_SET_PDEATHSIG unavailable: %s", e)
    if os.getppid() != parent_pid:  # died while this process was starting
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_S)
            if os.getppid() != parent_pid:  # re-parented: the batch process is gone
                os._exit(1)

    threading.Thread(target=watch, name="callsense-parent-watch", daemon=True).start()


def _analyzer() -> Any:
    if _W["analyzer"] is None:
        _W["analyzer"] = _W["factory"]()  # once per worker: models load lazily and stay loaded
    return _W["analyzer"]


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (``getrusage``: exact, not sampled), in MB."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


def process_item(item: WorkItem, sha: str | None = None) -> ItemOutcome:
    """Analyse and store one item in a worker (initialised by :func:`_init_worker`); ``sha``: its content
    hash when the caller has just computed it (the Ray driver, which claimed it)."""
    from callsense.store.db import DiskFullError, is_disk_full
    from callsense.store.repo import save_result
    from callsense.store.work import claim, error_reason, record_failure, release

    store, options, fp, owner = _W["store"], _W["options"], _W["fingerprint"], _W["owner"]
    t0 = time.perf_counter()

    def failed(error: BaseException, stage: str, sha: str | None = None) -> ItemOutcome:
        record_failure(store, source_key=item.key, error=error, stage=stage, source_path=item.path,
                       content_sha256=sha, manifest=item.manifest, row=item.row, metadata=item.metadata,
                       fingerprint=fp, run_id=_W["run_id"])
        code = error.code if isinstance(error, CallsenseError) else "internal"
        reason = error_reason(error)
        return ItemOutcome(item.key, item.path, "failed", reason, code, seconds=time.perf_counter() - t0)

    if item.error is not None:
        if isinstance(item.error, AudioNotFoundError) and item.path and _stored_from(store, item.path):
            return ItemOutcome(item.key, item.path, "skipped", "already stored (audio deleted after analysis)")
        return failed(item.error, "source")
    assert item.path is not None
    try:
        sha = sha or file_sha256(item.path)
    except FileNotFoundError:
        if _stored_from(store, item.path):
            return ItemOutcome(item.key, item.path, "skipped", "already stored (audio deleted after analysis)")
        return failed(AudioNotFoundError("file not found", source=item.path), "source")
    except OSError as e:
        return failed(InputError(f"cannot read the file: {e.strerror}", source=item.path), "source")

    state = claim(store, sha, owner, fingerprint=fp, source_key=item.key, force=options.force,
                  retry_failed=options.retry_failed, stale_after_s=options.stale_after_s)
    if state != "claimed":
        reason = {"done": "already analysed with this pipeline", "busy": "being analysed by another worker",
                  "failed_before": "failed before (use --retry-failed)"}[state]
        return ItemOutcome(item.key, item.path, "busy" if state == "busy" else "skipped", reason,
                           seconds=time.perf_counter() - t0)
    try:
        try:
            run = _analyzer().run(item.path, metadata=dict(item.metadata))
        except ModelError:
            raise  # a missing or broken model fails every file the same way: stop the batch (exit 4)
        except Exception as e:
            if is_disk_full(e):
                raise DiskFullError(f"disk full while analysing {item.path}",
                                    hint="free some space and re-run the same command to resume") from e
            if isinstance(e, MemoryError):
                e = InputError("out of memory while analysing this recording", source=item.path)
            release(store, sha, owner)
            return failed(e, "analyze", sha)
        from callsense.store.repo import keep_identity

        result = keep_identity(store, run.result)  # a re-analysed recording keeps its call id
        ruleset = getattr(_analyzer(), "ruleset", None)  # analyzers without QA (test doubles) have none
        if ruleset is not None:  # history / outlier conditions read the store (earlier calls, outlier scores)
            from callsense.store.history import apply_store_rules

            result = apply_store_rules(store, result, ruleset)
        audio_copy = _copy_audio(item.path, sha, options.copy_audio) if options.copy_audio else None
        try:
            targets = getattr(_analyzer(), "alert_targets", tuple)()  # queued with the result (outbox)
            call_id = save_result(store, result, embeddings=run.embeddings, fingerprint=fp, content_sha256=sha,
                                  run_id=_W["run_id"], audio_path=audio_copy, redact=options.redact,
                                  source_key=item.key, alert_targets=targets)
        except CallsenseError as e:
            if isinstance(e, DiskFullError) or is_disk_full(e):
                raise
            if isinstance(e, StoreError):
                raise
            release(store, sha, owner)
            return failed(e, "store", sha)
    except BaseException:
        try:
            release(store, sha, owner)
        except Exception as e:  # noqa: BLE001 - the store may be the problem; a stale claim is taken over later
            log.debug("could not release the claim on %s: %s", sha[:12], e)
        raise
    if options.delete_audio_after:
        try:
            os.unlink(item.path)
        except OSError as e:
            log.warning("could not delete %s after analysis: %s", item.path, e)
    return ItemOutcome(item.key, item.path, "done", call_id=call_id, audio_ms=result.duration_ms,
                       seconds=time.perf_counter() - t0, peak_rss_mb=peak_rss_mb())


def _stored_from(store: Any, path: str) -> bool:
    from sqlalchemy import select

    from callsense.store.models import Call

    with store.session() as s:
        return s.execute(select(Call.call_id).where(Call.source_path == path).limit(1)).first() is not None


def _copy_audio(path: str, sha: str, folder: Path) -> str:
    """Copy atomically (temporary name, then rename) so a kill never leaves half a copy under the final name."""
    from callsense.store.db import DiskFullError, is_disk_full

    target = Path(folder) / sha[:2] / f"{sha}{Path(path).suffix.lower()}"
    if target.exists():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if is_disk_full(e):
            raise DiskFullError(f"disk full while copying audio to {folder}",
                                hint="free some space and re-run the same command to resume") from e
        raise StoreError(f"cannot copy audio to {folder}: {e.strerror}") from e
    return str(target)


# ---------------------------------------------------------------- parent side


def run_batch(
    items: Iterable[WorkItem],
    *,
    analyzer_factory: AnalyzerFactory,
    db_url: str | None = None,
    options: BatchOptions = BatchOptions(),
    source_label: str = "",
    on_outcome: Callable[[ItemOutcome], None] | None = None,
) -> BatchSummary:
    """Process ``items`` into the store at ``db_url`` (see the module docstring); returns the summary.

    Raises :class:`StoreError` at start when the store cannot be reached. A batch that stops early (disk
    full, Ctrl-C) returns a summary with ``stopped`` set, after releasing its claims.
    """
    from callsense.store.db import open_store

    items = list(items)
    store = open_store(db_url)  # one clear error here when unreachable; migrations run once, here
    try:
        fingerprint = str(analyzer_factory().fingerprint)  # analyzers load models lazily: cheap

        def analyse(run_id: int, note: Callable[[ItemOutcome], None]) -> None:
            if options.workers <= 1:
                _run_inline(items, store.url, analyzer_factory, options, fingerprint, run_id, note)
            else:
                _run_pool(items, store.url, analyzer_factory, options, fingerprint, run_id, note)

        return record_run(store, analyse, total=len(items), fingerprint=fingerprint, workers=options.workers,
                          options=options, source_label=source_label, on_outcome=on_outcome)
    finally:
        store.close()


def record_run(store: Any, analyse: Callable[[int, Callable[[ItemOutcome], None]], None], *, total: int,
               fingerprint: str, workers: int, options: BatchOptions, source_label: str = "",
               on_outcome: Callable[[ItemOutcome], None] | None = None) -> BatchSummary:
    """What every batch (process pool or Ray) does around ``analyse(run_id, note)``: the run row, the
    summary, alert delivery, and at the end (however it ends) the claims released and the run closed.

    ``analyse`` reports each item's outcome through ``note``. A :class:`StoreError` (disk full ...) or a
    Ctrl-C stops the batch with ``summary.stopped`` set; anything else is re-raised after the clean-up.
    """
    from callsense.store.outbox import Courier
    from callsense.store.work import Owner, finish_run, release_all, start_run

    owner = Owner()
    summary = BatchSummary(total=total)
    summary.run_id = start_run(store, source=source_label, fingerprint=fingerprint, workers=workers, owner=owner)
    t0 = time.perf_counter()
    # Alerts are queued with each stored result and sent by this thread, outside the analyses: a webhook
    # that hangs never holds a worker. Woken after each stored result; drained at the end.
    courier = Courier(store).start()

    def note(outcome: ItemOutcome) -> None:
        summary.add(outcome)
        if outcome.status == "done":
            courier.wake()
        if on_outcome is not None:
            on_outcome(outcome)

    status = "finished"
    try:
        analyse(summary.run_id, note)
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
        courier.stop(drain_s=options.alert_drain_s if status == "finished" else 0.0)
        try:
            release_all(store, owner)
            if _W.get("owner") is not None and _W["owner"] is not owner:
                release_all(store, _W["owner"])
            finish_run(store, summary.run_id, status=status, done=summary.done, skipped=summary.skipped + summary.busy,
                       failed=summary.failed, audio_ms=summary.audio_ms, wall_s=summary.wall_s)
        except Exception as e:  # noqa: BLE001 - bookkeeping must not hide the real outcome
            log.warning("could not record the end of the batch run: %s", e)
    return summary


def _run_inline(items: list[WorkItem], url: str, factory: AnalyzerFactory, options: BatchOptions, fingerprint: str,
                run_id: int, note: Callable[[ItemOutcome], None]) -> None:
    _init_worker(url, factory, options, fingerprint, run_id)
    try:
        for item in items:
            note(process_item(item))
    finally:
        _W["store"].close()


def _run_pool(items: list[WorkItem], url: str, factory: AnalyzerFactory, options: BatchOptions, fingerprint: str,
              run_id: int, note: Callable[[ItemOutcome], None]) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # no inherited DB connections or model threads

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=options.workers, mp_context=ctx, initializer=_init_worker,
                                   initargs=(url, factory, options, fingerprint, run_id, os.getpid()))

    queue: list[tuple[WorkItem, int]] = [(it, 0) for it in reversed(items)]  # pop() from the end
    window = options.workers * 2
    pool = new_pool()
    running: dict[Future, tuple[WorkItem, int]] = {}
    stop: BaseException | None = None
    fruitless_breaks = 0  # pool breaks in a row with no item finished: workers cannot even start
    try:
        while (queue and stop is None) or running:
            while queue and stop is None and len(running) < window:
                item, attempt = queue[-1]
                if attempt > 0 and running:
                    break  # a retry after a worker died runs alone, so a second death names its file
                queue.pop()
                running[pool.submit(process_item, item)] = (item, attempt)
                if attempt > 0:
                    break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            broken = False
            for fut in finished:
                item, attempt = running.pop(fut)
                try:
                    note(fut.result())
                    fruitless_breaks = 0
                except BrokenProcessPool:
                    broken = True
                    if attempt == 0:
                        queue.append((item, 1))
                    else:
                        note(_worker_died(item, url, fingerprint, run_id))
                except (StoreError, ModelError) as e:
                    stop = stop or e
                except Exception as e:  # noqa: BLE001 - a bug in one item must not stop the batch
                    note(ItemOutcome(item.key, item.path, "failed", f"{type(e).__name__}: {e}", "internal"))
            if broken:
                fruitless_breaks += 1
                for fut, (item, attempt) in list(running.items()):
                    queue.append((item, max(attempt, 1)))
                running.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                if fruitless_breaks >= 3 and stop is None:
                    stop = BatchStopped("worker processes keep dying before finishing any recording",
                                        hint="run with --workers 1 --debug to see why")
                    queue.clear()
                pool = new_pool()
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True, cancel_futures=True)
    if stop is not None:
        raise stop


def _worker_died(item: WorkItem, url: str, fingerprint: str, run_id: int) -> ItemOutcome:
    from callsense.store.db import open_store
    from callsense.store.work import record_failure

    error = InputError("the worker process died while analysing this recording (crash or out of memory)",
                       source=item.path)
    store = open_store(url, migrate=False)
    try:
        record_failure(store, source_key=item.key, error=error, stage="analyze", source_path=item.path,
                       manifest=item.manifest, row=item.row, metadata=item.metadata, fingerprint=fingerprint,
                       run_id=run_id)
    finally:
        store.close()
    return ItemOutcome(item.key, item.path, "failed", error.message, error.code)
