"""Analysis jobs persisted in the database, so that they survive a restart and several servers can share them.

A job is a row of ``service_jobs``: queued → running → done | failed. A server owns a running job
through a **lease** (``lease_until``, epoch seconds) that a heartbeat thread renews every third of the
lease; a job is claimed when it is queued, or running under a lease that has expired (its server died).
Claiming is one atomic step: ``SELECT … FOR UPDATE SKIP LOCKED`` then ``UPDATE`` on PostgreSQL (servers
never wait on each other's rows), a conditional ``UPDATE`` on SQLite (whose single writer makes the
condition and the write one step). A job's outcome is written once, by its owner: the final ``UPDATE``
requires ``owner`` = this server and ``status`` = running, so a server that lost its lease (stalled past
it while another took the job over) records nothing and says so in its log.

A server only claims jobs whose upload it can read (servers sharing a store should share the data
folder); a job whose upload is gone is failed by a server that can see the uploads folder it was in.

The table is part of the store's schema (:data:`callsense.store.models.service_jobs`), created by the
store's migrations like every other table: the engine given to :class:`JobQueue` is that of a store
opened with :func:`callsense.store.open_store`, which brings the schema up to date.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger("callsense")

TERMINAL = ("done", "failed")


@dataclass(frozen=True)
class Job:
    id: str
    status: str  # queued, running, done, failed
    created_at: str
    started_at: str | None
    finished_at: str | None
    filename: str | None
    upload_path: str
    options: dict[str, Any]
    metadata: dict[str, Any]
    call_id: str | None
    error: dict[str, Any] | None
    attempts: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "status": self.status, "created_at": self.created_at, "started_at": self.started_at,
            "finished_at": self.finished_at, "filename": self.filename, "call_id": self.call_id,
            "error": self.error, "attempts": self.attempts, "options": self.options, "metadata": self.metadata,
        }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class JobQueue:
    """The job table and the worker threads that drain it.

    ``runner(job) -> call_id`` does the work; a :class:`~callsense.errors.CallsenseError` it raises is
    recorded on the job (a failed job, not a crashed worker).
    """

    def __init__(self, engine: Any, runner: Callable[[Job], str], *, workers: int = 1, max_attempts: int = 3,
                 lease_s: float = 30.0):
        from callsense.store.models import service_jobs

        self.runner = runner
        self.workers = workers
        self.max_attempts = max_attempts
        self.lease_s = float(lease_s)
        self.engine = engine  # the store's engine: jobs live next to the calls they produce
        # Created by the store's migrations (revisions 0002, 0003), not here: one schema, one version check.
        self.table = service_jobs
        # Unique per process even where pids repeat (containers): the owner check must never match another server.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._mine: set[str] = set()  # ids of the jobs this process is running now
        self._mine_lock = threading.Lock()

    # ---- records -------------------------------------------------------------------------------
    def submit(self, upload_path: str, *, filename: str | None, options: dict[str, Any],
               metadata: dict[str, Any]) -> Job:
        job_id = uuid.uuid4().hex
        with self.engine.begin() as conn:
            conn.execute(self.table.insert().values(
                id=job_id, status="queued", created_at=_now(), filename=filename, upload_path=upload_path,
                options_json=json.dumps(options), metadata_json=json.dumps(metadata, ensure_ascii=False),
                attempts=0,
            ))
        self._notify()
        return self.get(job_id)  # type: ignore[return-value]

    def get(self, job_id: str) -> Job | None:
        with self.engine.connect() as conn:
            row = conn.execute(self.table.select().where(self.table.c.id == job_id)).mappings().first()
        return _job(row) if row else None

    def list(self, status: str | None = None, limit: int = 50) -> list[Job]:
        q = self.table.select().order_by(self.table.c.created_at.desc()).limit(limit)
        if status:
            q = q.where(self.table.c.status == status)
        with self.engine.connect() as conn:
            return [_job(r) for r in conn.execute(q).mappings()]

    def counts(self) -> dict[str, int]:
        from sqlalchemy import func, select

        q = select(self.table.c.status, func.count()).group_by(self.table.c.status)
        with self.engine.connect() as conn:
            return {s: n for s, n in conn.execute(q)}

    def wait(self, job_id: str, timeout: float) -> Job | None:
        """The job once it is done or failed, or as it is after ``timeout`` seconds."""
        deadline = _monotonic() + max(0.0, timeout)
        while True:
            job = self.get(job_id)
            if job is None or job.status in TERMINAL:
                return job
            left = deadline - _monotonic()
            if left <= 0:
                return job
            with self._changed:
                self._changed.wait(min(left, 0.5))  # also polls: another process may run the job

    # ---- workers -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker threads and the heartbeat. Jobs that other servers are running are left
        alone: only an expired lease is taken over (by :meth:`_claim`)."""
        self._stop.clear()
        names = [f"callsense-job-{i}" for i in range(self.workers)]
        for name in names:
            t = threading.Thread(target=self._work, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        t = threading.Thread(target=self._heartbeat, name="callsense-job-heartbeat", daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the workers; jobs still running here are handed back (queued) for another server."""
        self._stop.set()
        self._notify()
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()
        with self._mine_lock:
            mine = list(self._mine)
        for job_id in mine:
            try:
                self._write_outcome(job_id, "queued")
            except Exception as e:  # noqa: BLE001 - the lease expires anyway
                log.debug("could not hand back job %s: %s", job_id, e)

    def _claimable(self, now: float) -> Any:
        from sqlalchemy import and_, or_

        t = self.table.c
        return or_(t.status == "queued",
                   and_(t.status == "running", or_(t.lease_until.is_(None), t.lease_until < now)))

    def _claim(self) -> Job | None:
        from sqlalchemy import and_

        now = time.time()
        t = self.table.c
        with self.engine.connect() as conn:
            rows = conn.execute(self.table.select().where(self._claimable(now))
                                .order_by(t.created_at).limit(20)).mappings().all()
        for row in rows:
            if not self._visible(row):
                continue
            takeover = row["status"] == "running"
            values = dict(status="running", started_at=_now(), owner=self.owner, lease_until=now + self.lease_s,
                          attempts=row["attempts"] + 1)
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # Lock the row (skipping rows another server is claiming right now), then take it.
                    locked = conn.execute(self.table.select().with_only_columns(t.id)
                                          .where(and_(t.id == row["id"], self._claimable(now)))
                                          .with_for_update(skip_locked=True)).first()
                    won = 0
                    if locked is not None:
                        won = conn.execute(self.table.update().where(t.id == row["id"]).values(**values)).rowcount
                else:  # SQLite: one writer at a time, so the conditional UPDATE is the claim
                    won = conn.execute(self.table.update().where(and_(t.id == row["id"], self._claimable(now)))
                                       .values(**values)).rowcount
            if not won:
                continue
            if takeover:
                log.info("job %s: took over from %s (lease expired)", row["id"], row["owner"])
            job = self.get(row["id"])
            if job is not None and takeover and row["attempts"] >= self.max_attempts:
                self._finish(job.id, "failed", error={"code": "interrupted", "message":
                             f"the job was interrupted {row['attempts']} times (its server stopped while running it)"},
                             upload=job.upload_path)
                continue
            return job
        return None

    def _visible(self, row: Any) -> bool:
        """Whether this server can run the job: its upload is here, or its uploads folder is (then the
        upload is really gone and the runner fails the job with that reason)."""
        path = Path(row["upload_path"])
        return path.is_file() or path.parent.is_dir()

    def _work(self) -> None:
        from callsense.errors import CallsenseError

        while not self._stop.is_set():
            try:
                job = self._claim()
            except Exception:  # database briefly locked or gone: retry, never kill the worker
                log.exception("job queue: claiming failed")
                job = None
            if job is None:
                with self._changed:
                    self._changed.wait(1.0)
                continue
            with self._mine_lock:
                self._mine.add(job.id)
            log.info("job %s: started (attempt %d)", job.id, job.attempts)
            try:
                call_id = self.runner(job)
            except CallsenseError as e:
                self._finish(job.id, "failed", error={**e.to_dict(), "status": e.status}, upload=job.upload_path)
                log.info("job %s: failed: %s", job.id, e)
            except Exception as e:  # a bug: record it; retry a few times (a restart may fix it)
                log.exception("job %s: crashed", job.id)
                status = "failed" if job.attempts >= self.max_attempts else "queued"
                self._finish(job.id, status, error={"code": "internal", "message": f"{type(e).__name__}: {e}"},
                             upload=job.upload_path if status == "failed" else None)
            else:
                if self._finish(job.id, "done", call_id=call_id, upload=job.upload_path):
                    log.info("job %s: done (call %s)", job.id, call_id)
            finally:
                with self._mine_lock:
                    self._mine.discard(job.id)

    def _heartbeat(self) -> None:
        """Renew the lease of every job running here, every third of the lease."""
        from sqlalchemy import and_

        t = self.table.c
        while not self._stop.wait(self.lease_s / 3):
            with self._mine_lock:
                mine = list(self._mine)
            if not mine:
                continue
            try:
                with self.engine.begin() as conn:
                    n = conn.execute(self.table.update().where(and_(t.id.in_(mine), t.owner == self.owner,
                                                                    t.status == "running"))
                                     .values(lease_until=time.time() + self.lease_s)).rowcount
                if n < len(mine):
                    log.warning("job queue: %d job(s) running here lost their lease", len(mine) - n)
            except Exception:  # noqa: BLE001 - the database may be briefly away; the lease has slack
                log.exception("job queue: heartbeat failed")

    def _finish(self, job_id: str, status: str, *, call_id: str | None = None,
                error: dict[str, Any] | None = None, upload: str | None = None) -> bool:
        """Write the job's outcome if this server still owns it; returns whether it did. The upload of a
        finished job (done or failed) is deleted: a failed job leaves nothing behind."""
        won = self._write_outcome(job_id, status, call_id=call_id, error=error)
        if not won:
            log.warning("job %s: another server took it over (this server's lease expired); its outcome here "
                        "(%s) is not recorded", job_id, status)
        elif upload and status in TERMINAL:
            Path(upload).unlink(missing_ok=True)
        self._notify()
        return won

    def _write_outcome(self, job_id: str, status: str, *, call_id: str | None = None,
                       error: dict[str, Any] | None = None) -> bool:
        from sqlalchemy import and_

        t = self.table.c
        values: dict[str, Any] = dict(status=status, finished_at=_now() if status in TERMINAL else None,
                                      call_id=call_id, error_json=json.dumps(error, ensure_ascii=False) if error else None,
                                      lease_until=None)
        if status == "queued":
            values["owner"] = None
        with self.engine.begin() as conn:
            n = conn.execute(self.table.update().where(and_(t.id == job_id, t.owner == self.owner,
                                                            t.status == "running")).values(**values)).rowcount
        return bool(n)

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()


def _monotonic() -> float:
    import time

    return time.monotonic()


def _job(row: Any) -> Job:
    return Job(
        id=row["id"], status=row["status"], created_at=row["created_at"], started_at=row["started_at"],
        finished_at=row["finished_at"], filename=row["filename"], upload_path=row["upload_path"],
        options=json.loads(row["options_json"]), metadata=json.loads(row["metadata_json"]),
        call_id=row["call_id"], error=json.loads(row["error_json"]) if row["error_json"] else None,
        attempts=row["attempts"],
    )
